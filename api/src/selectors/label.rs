//! Label selectors: apimachinery's `labels.Parse` grammar, `metav1.LabelSelector` conversion and matching.

use std::fmt;

use serde_json::{Map, Value};

use crate::status::ApiError;
use crate::validation::names::{label_value_errors, qualified_name_errors};

/// A label requirement's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `key in (a,b)` and `key=v` / `key==v`.
    In,
    /// `key notin (a,b)` and `key!=v`.
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>n` (integer comparison).
    GreaterThan,
    /// `key<n` (integer comparison).
    LessThan,
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub op: Operator,
    /// Values (sorted, deduplicated); one for `=`/`!=`, empty for exists checks.
    pub values: Vec<String>,
    /// How the operator was written (`=`, `==`, `!=`, `in`, ...), for printing.
    written: &'static str,
}

impl Requirement {
    fn new(
        key: &str,
        op: Operator,
        written: &'static str,
        mut values: Vec<String>,
    ) -> Result<Self, String> {
        let key_errs = qualified_name_errors(key);
        if !key_errs.is_empty() {
            return Err(format!(
                "key: Invalid value: {:?}: {}",
                key,
                key_errs.join("; ")
            ));
        }
        match op {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    return Err("values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty".into());
                }
                if written != "in" && written != "notin" && values.len() != 1 {
                    return Err("values: Invalid value: exact-match compatibility requires one single value".into());
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    return Err("values: Invalid value: values set must be empty for exists and does not exist".into());
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err("values: Invalid value: for 'Gt', 'Lt' operators, exactly one value is required".into());
                }
                if values[0].parse::<i64>().is_err() {
                    return Err(format!(
                        "values[0]: Invalid value: {:?}: for 'Gt', 'Lt' operators, the value must be an integer",
                        values[0]
                    ));
                }
            }
        }
        for v in &values {
            let errs = label_value_errors(v);
            if !errs.is_empty() {
                return Err(format!(
                    "values[0][{key}]: Invalid value: {v:?}: {}",
                    errs.join("; ")
                ));
            }
        }
        values.sort();
        values.dedup();
        Ok(Self {
            key: key.to_string(),
            op,
            values,
            written,
        })
    }

    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels.and_then(|l| l.get(&self.key)).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        match self.op {
            Operator::In => value.is_some_and(|v| self.values.contains(&v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(&v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(want)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::In | Operator::NotIn if self.written == "in" || self.written == "notin" => {
                write!(
                    f,
                    "{} {} ({})",
                    self.key,
                    self.written,
                    self.values.join(",")
                )
            }
            _ => write!(f, "{}{}{}", self.key, self.written, self.values.join(",")),
        }
    }
}

/// A parsed label selector (all requirements must hold).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// Requirements, sorted by key.
    pub requirements: Vec<Requirement>,
    /// A null `metav1.LabelSelector`: matches nothing.
    pub nothing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    NotEquals,
    Equals,
    DoubleEquals,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
    In,
    NotIn,
    End,
}

impl Token {
    fn literal(&self) -> String {
        match self {
            Token::Ident(s) => s.clone(),
            Token::Not => "!".into(),
            Token::NotEquals => "!=".into(),
            Token::Equals => "=".into(),
            Token::DoubleEquals => "==".into(),
            Token::Gt => ">".into(),
            Token::Lt => "<".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Comma => ",".into(),
            Token::In => "in".into(),
            Token::NotIn => "notin".into(),
            Token::End => String::new(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '>' | '<' | '(' | ')' | ',')
}

fn lex(s: &str) -> Vec<Token> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (tok, n) = match (c, next) {
                ('!', Some('=')) => (Token::NotEquals, 2),
                ('!', _) => (Token::Not, 1),
                ('=', Some('=')) => (Token::DoubleEquals, 2),
                ('=', _) => (Token::Equals, 1),
                ('>', _) => (Token::Gt, 1),
                ('<', _) => (Token::Lt, 1),
                ('(', _) => (Token::Open, 1),
                (')', _) => (Token::Close, 1),
                _ => (Token::Comma, 1),
            };
            out.push(tok);
            i += n;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        out.push(match word.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Ident(word),
        });
    }
    out.push(Token::End);
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&Token::End)
    }

    fn advance(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let negated = *self.peek() == Token::Not;
        if negated {
            self.advance();
        }
        let key = match self.advance() {
            Token::Ident(k) => k,
            t => return Err(format!("found '{}', expected: identifier", t.literal())),
        };
        if negated {
            return Requirement::new(&key, Operator::DoesNotExist, "!", Vec::new());
        }
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Requirement::new(&key, Operator::Exists, "", Vec::new());
        }
        let (op, written) = match self.advance() {
            Token::In => (Operator::In, "in"),
            Token::NotIn => (Operator::NotIn, "notin"),
            Token::Equals => (Operator::In, "="),
            Token::DoubleEquals => (Operator::In, "=="),
            Token::NotEquals => (Operator::NotIn, "!="),
            Token::Gt => (Operator::GreaterThan, ">"),
            Token::Lt => (Operator::LessThan, "<"),
            t => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    t.literal()
                ))
            }
        };
        let values = if written == "in" || written == "notin" {
            self.value_set()?
        } else {
            match self.peek_value() {
                Token::Ident(v) => {
                    self.advance();
                    vec![v]
                }
                Token::End | Token::Comma => vec![String::new()],
                t => return Err(format!("found '{}', expected: identifier", t.literal())),
            }
        };
        Requirement::new(&key, op, written, values)
    }

    /// The next token in a value position, where `in`/`notin` are plain identifiers.
    fn next_value(&mut self) -> Token {
        match self.advance() {
            Token::In => Token::Ident("in".into()),
            Token::NotIn => Token::Ident("notin".into()),
            t => t,
        }
    }

    fn peek_value(&self) -> Token {
        match self.peek() {
            Token::In => Token::Ident("in".into()),
            Token::NotIn => Token::Ident("notin".into()),
            t => t.clone(),
        }
    }

    /// `( v1, v2 )` as apimachinery reads it: `()` is the set {""}, `(,a)` adds "".
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        match self.advance() {
            Token::Open => {}
            t => return Err(format!("found '{}', expected: '('", t.literal())),
        }
        match self.peek_value() {
            Token::Close => {
                self.advance();
                return Ok(vec![String::new()]);
            }
            Token::Ident(_) | Token::Comma => {}
            t => {
                return Err(format!(
                    "found '{}', expected: ',', ')' or identifier",
                    t.literal()
                ))
            }
        }
        let mut values: Vec<String> = Vec::new();
        loop {
            match self.next_value() {
                Token::Ident(v) => {
                    values.push(v);
                    match self.peek_value() {
                        Token::Comma => {
                            self.advance();
                            if matches!(self.peek_value(), Token::Close) {
                                values.push(String::new());
                            }
                        }
                        Token::Close => break,
                        t => return Err(format!("found '{}', expected: ',' or ')'", t.literal())),
                    }
                }
                Token::Comma => {
                    values.push(String::new());
                    if matches!(self.peek_value(), Token::Close) {
                        break;
                    }
                }
                Token::Close => break,
                t => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        t.literal()
                    ))
                }
            }
        }
        match self.advance() {
            Token::Close => Ok(values),
            t => Err(format!("found '{}', expected: ')'", t.literal())),
        }
    }
}

impl LabelSelector {
    /// A selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses the `labelSelector` query grammar; errors are 400 BadRequest.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Self::parse_inner(s).map_err(ApiError::bad_request)
    }

    fn parse_inner(s: &str) -> Result<Self, String> {
        let mut p = Parser {
            tokens: lex(s),
            pos: 0,
        };
        let mut requirements = Vec::new();
        if *p.peek() == Token::End {
            return Ok(Self::default());
        }
        loop {
            match p.peek() {
                Token::Ident(_) | Token::Not => requirements.push(
                    p.requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?,
                ),
                t => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.literal()
                    ))
                }
            }
            match p.advance() {
                Token::End => break,
                Token::Comma => {
                    if !matches!(p.peek(), Token::Ident(_) | Token::Not) {
                        return Err(format!(
                            "found '{}', expected: identifier after ','",
                            p.peek().literal()
                        ));
                    }
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',' or 'end of string'",
                        t.literal()
                    ))
                }
            }
        }
        requirements.sort_by(|a: &Requirement, b: &Requirement| a.key.cmp(&b.key));
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    /// Converts a `metav1.LabelSelector` (`matchLabels`, `matchExpressions`); JSON `null` matches nothing,
    /// `{}` matches everything.
    pub fn from_spec(spec: &Value) -> Result<Self, ApiError> {
        let bad = |m: String| ApiError::bad_request(format!("invalid label selector: {m}"));
        let obj = match spec {
            Value::Null => {
                return Ok(Self {
                    requirements: Vec::new(),
                    nothing: true,
                })
            }
            Value::Object(o) => o,
            _ => return Err(bad("not an object".into())),
        };
        let mut requirements = Vec::new();
        if let Some(ml) = obj.get("matchLabels").filter(|v| !v.is_null()) {
            let ml = ml
                .as_object()
                .ok_or_else(|| bad("matchLabels is not an object".into()))?;
            for (k, v) in ml {
                let v = v
                    .as_str()
                    .ok_or_else(|| bad(format!("matchLabels[{k}] is not a string")))?;
                requirements.push(
                    Requirement::new(k, Operator::In, "=", vec![v.to_string()]).map_err(bad)?,
                );
            }
        }
        if let Some(me) = obj.get("matchExpressions").filter(|v| !v.is_null()) {
            let me = me
                .as_array()
                .ok_or_else(|| bad("matchExpressions is not a list".into()))?;
            for e in me {
                let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let (op, written) = match e
                    .get("operator")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                {
                    "In" => (Operator::In, "in"),
                    "NotIn" => (Operator::NotIn, "notin"),
                    "Exists" => (Operator::Exists, ""),
                    "DoesNotExist" => (Operator::DoesNotExist, "!"),
                    other => {
                        return Err(bad(format!(
                            "{other:?} is not a valid label selector operator"
                        )))
                    }
                };
                requirements.push(Requirement::new(key, op, written, values).map_err(bad)?);
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self {
            requirements,
            nothing: false,
        })
    }

    /// Whether the selector has no requirements (and so matches everything, unless `nothing`).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty() && !self.nothing
    }

    /// Whether a label map (`metadata.labels`; `None` = no labels) satisfies every requirement.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string (`app=web,tier in (a,b)`), as Scale's `status.selector` carries it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn label_grammar() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5"}));
        let l = Some(&l);
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("app notin (web, db)", false),
            ("missing notin (a)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=web,tier=front", true),
            ("app=web, tier=back", false),
            ("n>4", true),
            ("n<5", false),
            ("  app = web ", true),
        ];
        for (s, want) in cases {
            assert_eq!(sel(s).matches(l), *want, "{s}");
        }
        assert!(sel("!app").matches(None));
        assert!(!sel("app").matches(None));
        assert!(sel("app=").matches(Some(&labels(json!({"app": ""})))));
        assert!(sel("app in ()").matches(Some(&labels(json!({"app": ""})))));
        assert!(sel("app in (in, web)").matches(l));
        assert_eq!(
            LabelSelector::parse("a b").unwrap_err().message,
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            LabelSelector::parse("app=web,").unwrap_err().message,
            "found '', expected: identifier after ','"
        );
    }

    #[test]
    fn label_syntax_errors_are_400() {
        for bad in [
            "app=web,",
            "a b",
            "app in web",
            "app in (web",
            "=web",
            "Bad Key!",
            "app=w e",
            "-app=web",
            "app=-web",
            "n>x",
            ",",
        ] {
            let e = LabelSelector::parse(bad).expect_err(bad);
            assert_eq!(e.code, 400, "{bad}");
            assert_eq!(e.reason, crate::status::StatusReason::BadRequest, "{bad}");
        }
    }

    #[test]
    fn label_display_canonical() {
        assert_eq!(
            sel("tier in (b,a),app=web").to_string(),
            "app=web,tier in (a,b)"
        );
        assert_eq!(sel("!x,y").to_string(), "!x,y");
    }

    #[test]
    fn from_spec() {
        let s = LabelSelector::from_spec(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                 {"key": "gone", "operator": "DoesNotExist"}]
        }))
        .unwrap();
        assert_eq!(s.to_string(), "app=web,!gone,tier in (a,b)");
        assert!(s.matches_object(&json!({"metadata": {"labels": {"app": "web", "tier": "a"}}})));
        assert!(!s.matches_object(&json!({"metadata": {"labels": {"app": "web", "tier": "c"}}})));
        assert!(!s.matches_object(
            &json!({"metadata": {"labels": {"app": "web", "tier": "a", "gone": "1"}}})
        ));
        assert!(LabelSelector::from_spec(&json!({}))
            .unwrap()
            .matches_object(&json!({"metadata": {}})));
        assert!(!LabelSelector::from_spec(&Value::Null)
            .unwrap()
            .matches_object(&json!({"metadata": {}})));
        assert!(LabelSelector::from_spec(
            &json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]})
        )
        .is_err());
        assert!(LabelSelector::from_spec(
            &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
        )
        .is_err());
    }
}
