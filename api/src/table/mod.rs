//! `meta.k8s.io/v1` Table output for `kubectl get`: kube-apiserver's printer columns per kind.
//!
//! The server always prints the wide (priority 1) columns; kubectl hides them unless `-o wide`.
//! Each row carries the object's metadata as a `PartialObjectMetadata`, which kubectl needs for
//! `-A`, `--show-labels` and `-L`.

mod apps;
mod core;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use crate::resources::ResourceInfo;

/// One column definition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: u8,
}

impl Column {
    /// A normal column.
    pub(crate) const fn new(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            ty: "string",
            format: "",
            description,
            priority: 0,
        }
    }

    /// A normal column of type `integer`.
    pub(crate) const fn int(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            ty: "integer",
            format: "",
            description,
            priority: 0,
        }
    }

    /// A column shown only with `-o wide`.
    pub(crate) const fn wide(name: &'static str, description: &'static str) -> Self {
        Self {
            name,
            ty: "string",
            format: "",
            description,
            priority: 1,
        }
    }

    /// The same column with another priority.
    pub(crate) const fn with_priority(self, priority: u8) -> Self {
        Self { priority, ..self }
    }

    /// The `Name` column (format `name`, which `kubectl get all` rewrites to `kind/name`).
    pub(crate) const NAME: Column = Column {
        name: "Name",
        ty: "string",
        format: "name",
        description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        priority: 0,
    };

    /// The `Age` column.
    pub(crate) const AGE: Column = Column::new(
        "Age",
        "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    );

    fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// A printed row: cells plus optional row conditions (`Completed` for finished pods).
pub(crate) struct Row {
    pub(crate) cells: Vec<Value>,
    pub(crate) conditions: Vec<Value>,
}

impl From<Vec<Value>> for Row {
    fn from(cells: Vec<Value>) -> Self {
        Self {
            cells,
            conditions: Vec::new(),
        }
    }
}

/// A kind's printer: its columns and a function rendering one object.
pub(crate) type Printer = (&'static [Column], fn(&Value, Timestamp) -> Row);

fn printer(info: &ResourceInfo) -> Printer {
    match (info.group, info.plural) {
        ("", "pods") => core::POD,
        ("", "nodes") => core::NODE,
        ("", "services") => core::SERVICE,
        ("", "namespaces") => core::NAMESPACE,
        ("", "endpoints") => core::ENDPOINTS,
        ("", "configmaps") => core::CONFIG_MAP,
        ("", "secrets") => core::SECRET,
        ("", "serviceaccounts") => core::SERVICE_ACCOUNT,
        ("", "events") => core::EVENT,
        ("apps", "deployments") => apps::DEPLOYMENT,
        ("apps", "replicasets") => apps::REPLICA_SET,
        ("apps", "statefulsets") => apps::STATEFUL_SET,
        ("apps", "daemonsets") => apps::DAEMON_SET,
        ("batch", "jobs") => apps::JOB,
        ("discovery.k8s.io", "endpointslices") => apps::ENDPOINT_SLICE,
        ("coordination.k8s.io", "leases") => apps::LEASE,
        _ => GENERIC,
    }
}

const GENERIC_COLUMNS: &[Column] = &[Column::NAME, Column::AGE];
const GENERIC: Printer = (GENERIC_COLUMNS, print_generic);

fn print_generic(o: &Value, now: Timestamp) -> Row {
    vec![name_cell(o), age_cell(o, now)].into()
}

/// Renders `objects` of kind `info` as a `meta.k8s.io/v1` Table (without `metadata`; the caller
/// adds `resourceVersion` and `continue`).
pub fn to_table(info: &ResourceInfo, objects: &[&Value], now: Timestamp) -> Value {
    let (columns, print) = printer(info);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let row = print(o, now);
            let mut r = Map::new();
            r.insert("cells".into(), Value::Array(row.cells));
            if !row.conditions.is_empty() {
                r.insert("conditions".into(), Value::Array(row.conditions));
            }
            r.insert("object".into(), partial_object_metadata(o));
            Value::Object(r)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "columnDefinitions": columns.iter().map(|c| c.to_json()).collect::<Vec<_>>(),
        "rows": rows,
    })
}

/// The column names of `info`'s table, in order (for tests and docs).
pub fn column_names(info: &ResourceInfo) -> Vec<&'static str> {
    printer(info).0.iter().map(|c| c.name).collect()
}

/// `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{...}}` of `obj`.
pub fn partial_object_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// Kubernetes' `duration.HumanDuration`: `5s`, `119s`, `3m20s`, `45m`, `5h30m`, `20h`, `2d3h`, `30d`, `2y10d`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Parses an RFC 3339 timestamp field value.
pub(crate) fn timestamp(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_str)
        .and_then(|s| s.parse::<Timestamp>().ok())
}

/// `translateTimestampSince`: the human age of `ts`, or `<unknown>` when unset.
pub(crate) fn since(ts: Option<&Value>, now: Timestamp) -> String {
    match timestamp(ts) {
        Some(t) => human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

/// The `Name` cell.
pub(crate) fn name_cell(o: &Value) -> Value {
    json!(o
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default())
}

/// The `Age` cell.
pub(crate) fn age_cell(o: &Value, now: Timestamp) -> Value {
    json!(since(o.pointer("/metadata/creationTimestamp"), now))
}

/// A string field or `<none>`.
pub(crate) fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.to_string()
    }
}

/// An integer field (0 when absent), as a JSON number cell.
pub(crate) fn int_at(o: &Value, pointer: &str) -> i64 {
    o.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// A string field (`""` when absent).
pub(crate) fn str_at<'a>(o: &'a Value, pointer: &str) -> &'a str {
    o.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `labels.SelectorFromSet(m).String()`: `k=v` pairs sorted by key, comma-joined.
pub(crate) fn map_selector(m: Option<&Value>) -> String {
    let mut pairs: Vec<String> = m
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    pairs.join(",")
}

#[cfg(test)]
mod tests;
