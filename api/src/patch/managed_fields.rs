//! Field sets and `metadata.managedFields`: the `FieldsV1` wire format (`f:`/`k:`/`v:`/`i:` keys,
//! `.` for a set member that also has children), manager entries, and readable paths for conflicts.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

/// One path element in `FieldsV1` spelling: `f:name`, `k:{"name":"x"}`, `v:"x"` or `i:0`.
pub type Element = String;
/// A path from the object root.
pub type Path = Vec<Element>;
/// A set of paths (what one manager owns).
pub type FieldSet = BTreeSet<Path>;

/// `f:<name>`.
pub fn field(name: &str) -> Element {
    format!("f:{name}")
}

/// `k:{...}` with the key fields in sorted order, compact JSON.
pub fn key(fields: &BTreeMap<String, Value>) -> Element {
    let m: Map<String, Value> = fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    format!("k:{}", Value::Object(m))
}

/// `v:<json>` for a member of a set list.
pub fn value(v: &Value) -> Element {
    format!("v:{v}")
}

/// Renders a field set as a `FieldsV1` object.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    let mut root = Node::default();
    for path in set {
        let mut n = &mut root;
        for pe in path {
            n = n.children.entry(pe.clone()).or_default();
        }
        n.member = true;
    }
    fn render(n: &Node) -> Value {
        let mut m = Map::new();
        if n.member && !n.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &n.children {
            m.insert(k.clone(), render(c));
        }
        Value::Object(m)
    }
    render(&root)
}

/// Parses a `FieldsV1` object into a field set (unknown shapes are skipped).
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut Path, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        for (k, c) in m {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(k.clone());
            if c.as_object().is_some_and(Map::is_empty) {
                out.insert(path.clone());
            } else {
                walk(c, path, out);
            }
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// A path as Kubernetes prints it in conflicts: `.spec.containers[name="nginx"].image`.
pub fn path_string(path: &[Element]) -> String {
    let mut s = String::new();
    for pe in path {
        if let Some(f) = pe.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = pe.strip_prefix("k:") {
            let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_else(|_| vec![k.to_string()]);
            s.push('[');
            s.push_str(&parts.join(","));
            s.push(']');
        } else if let Some(v) = pe.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = pe.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        } else {
            s.push_str(pe);
        }
    }
    s
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    /// Field manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// API version the fields are expressed in.
    pub api_version: String,
    /// RFC 3339 time of the last change by this manager.
    pub time: Option<String>,
    /// Subresource the writes went to, if any.
    pub subresource: String,
    /// Owned fields.
    pub fields: FieldSet,
}

impl ManagedEntry {
    /// Whether `other` identifies the same manager (apimachinery's `BuildManagerIdentifier`:
    /// name, operation, subresource, and the API version for `Update`).
    pub fn same_manager(&self, other: &ManagedEntry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == "Apply" || self.api_version == other.api_version)
    }

    /// How conflicts name this manager: `"m"` for Apply, `"m" using apps/v1` for Update.
    pub fn display(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    /// Parses one entry; `None` for entries that are not `FieldsV1`.
    pub fn parse(v: &Value) -> Option<ManagedEntry> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        if s("fieldsType").is_some_and(|t| t != "FieldsV1") {
            return None;
        }
        Some(ManagedEntry {
            manager: s("manager").unwrap_or_default(),
            operation: s("operation").unwrap_or_default(),
            api_version: s("apiVersion").unwrap_or_default(),
            time: s("time"),
            subresource: s("subresource").unwrap_or_default(),
            fields: v.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
        })
    }

    /// The wire form.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), self.manager.clone().into());
        m.insert("operation".into(), self.operation.clone().into());
        m.insert("apiVersion".into(), self.api_version.clone().into());
        if let Some(t) = &self.time {
            m.insert("time".into(), t.clone().into());
        }
        m.insert("fieldsType".into(), "FieldsV1".into());
        m.insert("fieldsV1".into(), to_fields_v1(&self.fields));
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), self.subresource.clone().into());
        }
        Value::Object(m)
    }
}

/// Reads `metadata.managedFields` of an object.
pub fn read(obj: &Value) -> Vec<ManagedEntry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(ManagedEntry::parse).collect())
        .unwrap_or_default()
}

/// Writes `entries` (dropping empty ones, sorted as apimachinery sorts them) into
/// `metadata.managedFields`; removes the field when nothing is left.
pub fn write(obj: &mut Value, mut entries: Vec<ManagedEntry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then_with(|| p.time.cmp(&q.time))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
    let Some(meta) = obj
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(ManagedEntry::to_value).collect()),
        );
    }
}

/// RFC 3339 in whole seconds, as `metav1.Time` serialises.
pub fn format_time(now: jiff::Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(parts: &[&str]) -> Path {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fields_v1_round_trip_with_dot_members() {
        let mut set = FieldSet::new();
        set.insert(p(&["f:spec", "f:replicas"]));
        set.insert(p(&[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            r#"k:{"name":"nginx"}"#,
        ]));
        set.insert(p(&[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            r#"k:{"name":"nginx"}"#,
            "f:image",
        ]));
        set.insert(p(&["f:metadata", "f:finalizers", r#"v:"a""#]));
        let v = to_fields_v1(&set);
        assert_eq!(
            v,
            json!({"f:metadata": {"f:finalizers": {"v:\"a\"": {}}},
                   "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                       "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}}}}}}})
        );
        assert_eq!(from_fields_v1(&v), set);
    }

    #[test]
    fn paths_print_like_kubernetes() {
        assert_eq!(path_string(&p(&["f:spec", "f:replicas"])), ".spec.replicas");
        assert_eq!(
            path_string(&p(&[
                "f:spec",
                r#"k:{"containerPort":80,"protocol":"TCP"}"#,
                "f:name"
            ])),
            r#".spec[containerPort=80,protocol="TCP"].name"#
        );
        assert_eq!(
            path_string(&p(&["f:metadata", "f:finalizers", r#"v:"x""#])),
            r#".metadata.finalizers[="x"]"#
        );
    }

    #[test]
    fn entries_sort_and_display() {
        let e = ManagedEntry {
            manager: "kubectl-client-side-apply".into(),
            operation: "Update".into(),
            api_version: "apps/v1".into(),
            time: Some("2026-01-01T00:00:00Z".into()),
            subresource: String::new(),
            fields: [p(&["f:spec", "f:replicas"])].into_iter().collect(),
        };
        assert_eq!(e.display(), r#""kubectl-client-side-apply" using apps/v1"#);
        let a = ManagedEntry {
            manager: "kubectl".into(),
            operation: "Apply".into(),
            ..e.clone()
        };
        assert_eq!(a.display(), r#""kubectl""#);
        let mut obj = json!({"metadata": {"name": "x"}});
        write(&mut obj, vec![e.clone(), a.clone()]);
        let got = read(&obj);
        assert_eq!(got, vec![a, e]);
        assert_eq!(
            format_time(jiff::Timestamp::from_second(0).expect("ts")),
            "1970-01-01T00:00:00Z"
        );
    }
}
