//! Field selectors: `field=v`, `field==v`, `field!=v` terms over the fields each kind supports.

use serde_json::Value;

use crate::resources::ResourceInfo;
use crate::status::ApiError;

/// One `field=value` / `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// Field label, e.g. `spec.nodeName`.
    pub field: String,
    /// Expected value.
    pub value: String,
    /// `true` for `!=`.
    pub negated: bool,
}

/// A parsed field selector (all terms must hold).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    /// Terms in the order written.
    pub terms: Vec<FieldTerm>,
}

/// Field labels each kind supports beyond `metadata.name` and `metadata.namespace`; `None` for
/// kinds with only the defaults.
fn extra_fields(info: &ResourceInfo) -> Option<&'static [&'static str]> {
    Some(match (info.group, info.plural) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "namespaces") => &["status.phase"],
        ("", "secrets") => &["type"],
        ("", "services") => &["spec.clusterIP", "spec.type"],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        _ => return None,
    })
}

/// Splits on unescaped `sep`, keeping escapes in place.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if escaped {
        cur.push('\\');
    }
    out.push(cur);
    out
}

/// Finds the first unescaped operator in a term: (`!=` | `==` | `=`) → (lhs, rhs, negated).
fn split_term(term: &str) -> Option<(String, String, bool)> {
    let b: Vec<char> = term.chars().collect();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            '\\' => i += 2,
            '!' if b.get(i + 1) == Some(&'=') => {
                return Some((b[..i].iter().collect(), b[i + 2..].iter().collect(), true))
            }
            '=' => {
                let skip = if b.get(i + 1) == Some(&'=') { 2 } else { 1 };
                return Some((
                    b[..i].iter().collect(),
                    b[i + skip..].iter().collect(),
                    false,
                ));
            }
            _ => i += 1,
        }
    }
    None
}

/// Removes `\` escapes from a field selector value; `None` on an invalid escape.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// The string form of a selectable field of `obj` (missing fields read as `""`).
fn field_value(obj: &Value, field: &str) -> String {
    let pointer = match field {
        "source" => "/source/component".to_string(),
        f => format!("/{}", f.replace('.', "/")),
    };
    match obj.pointer(&pointer) {
        None | Some(Value::Null) => {
            // An absent boolean reads as "false", as Go's zero value does.
            if matches!(field, "spec.hostNetwork" | "spec.unschedulable") {
                "false".into()
            } else if matches!(field, "status.replicas" | "status.successful") {
                "0".into()
            } else {
                String::new()
            }
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

impl FieldSelector {
    /// Parses `fieldSelector` for `info`; 400 BadRequest on bad syntax or a field the kind does not support.
    pub fn parse(s: &str, info: &ResourceInfo) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self { terms });
        }
        for raw in split_unescaped(s, ',') {
            let Some((field, value, negated)) = split_term(&raw) else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{raw}'"
                )));
            };
            let value = unescape(&value).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid selector: '{s}'; invalid escape sequence in '{raw}'"
                ))
            })?;
            let field = field.trim().to_string();
            let known = matches!(field.as_str(), "metadata.name" | "metadata.namespace")
                || extra_fields(info).is_some_and(|f| f.contains(&field.as_str()));
            if !known {
                return Err(ApiError::bad_request(match extra_fields(info) {
                    Some(_) => format!("field label not supported: {field}"),
                    None => format!(
                        "\"{field}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                    ),
                }));
            }
            terms.push(FieldTerm {
                field,
                value,
                negated,
            });
        }
        Ok(Self { terms })
    }

    /// Whether the selector has no terms.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value the selector pins `field` to with `=` (e.g. `metadata.name` for a watch on one object).
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negated)
            .map(|t| t.value.as_str())
    }

    /// Whether `obj` satisfies every term.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms
            .iter()
            .all(|t| (field_value(obj, &t.field) == t.value) != t.negated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;
    use serde_json::json;

    #[test]
    fn field_selectors_pods() {
        let pods = find("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p1", "namespace": "ns"},
                         "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let fs = |s: &str| FieldSelector::parse(s, pods).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!(fs("").matches(&pod));
        assert!(fs("metadata.name=p1").matches(&pod));
        assert!(fs("metadata.name==p1").matches(&pod));
        assert!(!fs("metadata.name=p2").matches(&pod));
        assert!(fs("spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed").matches(&pod));
        assert!(!fs("spec.nodeName=n1,status.phase!=Running").matches(&pod));
        assert!(fs("spec.nodeName=").matches(&json!({"metadata": {"name": "x"}})));
        assert!(fs("spec.hostNetwork=false").matches(&pod));
        assert_eq!(fs("metadata.name=p1").exact("metadata.name"), Some("p1"));
        let e = FieldSelector::parse("foo=bar", pods).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "field label not supported: foo")
        );
        let e = FieldSelector::parse("metadata.name", pods).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("can't understand 'metadata.name'"));
    }

    #[test]
    fn field_selectors_events_and_defaults() {
        let events = find("", "v1", "events").unwrap();
        let ev = json!({"metadata": {"name": "e", "namespace": "ns"},
                        "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "ns", "uid": "u-1"},
                        "source": {"component": "kubelet"}, "type": "Normal"});
        let s = FieldSelector::parse(
            "involvedObject.name=p1,involvedObject.namespace=ns,involvedObject.uid=u-1,involvedObject.kind=Pod",
            events,
        )
        .unwrap();
        assert!(s.matches(&ev));
        assert!(!FieldSelector::parse("involvedObject.uid=u-2", events)
            .unwrap()
            .matches(&ev));
        assert!(FieldSelector::parse("source=kubelet,type!=Warning", events)
            .unwrap()
            .matches(&ev));
        let cms = find("", "v1", "configmaps").unwrap();
        let e = FieldSelector::parse("foo=bar", cms).unwrap_err();
        assert_eq!(
            e.message,
            "\"foo\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        assert!(FieldSelector::parse("metadata.namespace!=kube-system", cms)
            .unwrap()
            .matches(&json!({"metadata": {"namespace": "default"}})));
        let esc = FieldSelector::parse("metadata.name=a\\,b", cms).unwrap();
        assert!(esc.matches(&json!({"metadata": {"name": "a,b"}})));
    }
}
