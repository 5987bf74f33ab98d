//! Type checks and unknown-field detection through k8s-openapi's typed structs.
//!
//! The object is deserialized into its typed struct (wrong JSON types fail, as Go's decoder does:
//! 400 `Pod in version "v1" cannot be handled as a Pod: ...`), serialized back, and compared with
//! the input: every input field missing from the round trip is unknown (`spec.replicass`). That
//! list drives `fieldValidation=Strict` (400) and `Warn` (a `Warning` header); `Ignore` drops it.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::quantity::{normalize_quantities, QUANTITY_FORMAT_ERROR};
use crate::resources::ResourceInfo;
use crate::status::{ApiError, Cause, StatusDetails};

use k8s_openapi::api::{apps, autoscaling, batch, coordination, core, discovery, policy};

/// Deserializes into `T` (reporting the failing path) and serializes back.
fn roundtrip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let typed: T = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        if path.is_empty() || path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// The typed round trip of an object of `api_version`/`kind`; `None` for kinds without a typed struct.
pub fn typed_roundtrip(api_version: &str, kind: &str, v: &Value) -> Option<Result<Value, String>> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => roundtrip::<core::v1::Namespace>(v),
        ("v1", "Pod") => roundtrip::<core::v1::Pod>(v),
        ("v1", "Node") => roundtrip::<core::v1::Node>(v),
        ("v1", "Service") => roundtrip::<core::v1::Service>(v),
        ("v1", "Endpoints") => roundtrip::<core::v1::Endpoints>(v),
        ("v1", "ConfigMap") => roundtrip::<core::v1::ConfigMap>(v),
        ("v1", "Secret") => roundtrip::<core::v1::Secret>(v),
        ("v1", "ServiceAccount") => roundtrip::<core::v1::ServiceAccount>(v),
        ("v1", "Event") => roundtrip::<core::v1::Event>(v),
        ("v1", "Binding") => roundtrip::<core::v1::Binding>(v),
        ("apps/v1", "Deployment") => roundtrip::<apps::v1::Deployment>(v),
        ("apps/v1", "ReplicaSet") => roundtrip::<apps::v1::ReplicaSet>(v),
        ("apps/v1", "StatefulSet") => roundtrip::<apps::v1::StatefulSet>(v),
        ("apps/v1", "DaemonSet") => roundtrip::<apps::v1::DaemonSet>(v),
        ("batch/v1", "Job") => roundtrip::<batch::v1::Job>(v),
        ("discovery.k8s.io/v1", "EndpointSlice") => roundtrip::<discovery::v1::EndpointSlice>(v),
        ("coordination.k8s.io/v1", "Lease") => roundtrip::<coordination::v1::Lease>(v),
        ("autoscaling/v1", "Scale") => roundtrip::<autoscaling::v1::Scale>(v),
        ("policy/v1", "Eviction") => roundtrip::<policy::v1::Eviction>(v),
        _ => return None,
    })
}

/// Drops `null` members of objects (Go decodes them as zero values; serde would reject some).
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The copy of `obj` that the typed decode sees: no nulls, numeric quantities as strings.
fn prepared(obj: &Value) -> (Value, Vec<(String, String)>) {
    let mut v = obj.clone();
    strip_nulls(&mut v);
    let bad = normalize_quantities(&mut v);
    (v, bad)
}

fn cannot_handle(kind: &str, version: &str, detail: &str) -> String {
    format!("{kind} in version \"{version}\" cannot be handled as a {kind}: {detail}")
}

/// 400 BadRequest when `obj` is not decodable as `api_version`/`kind` (wrong JSON types, bad
/// base64, malformed quantities), worded like kube-apiserver's decode errors.
pub fn check_types_kind(api_version: &str, kind: &str, obj: &Value) -> Result<(), ApiError> {
    let version = crate::resources::split_api_version(api_version).1;
    if !obj.is_object() {
        return Err(ApiError::bad_request(cannot_handle(
            kind,
            version,
            "the object is not a JSON object",
        )));
    }
    let (v, bad) = prepared(obj);
    if !bad.is_empty() {
        let mut e = ApiError::bad_request(cannot_handle(kind, version, QUANTITY_FORMAT_ERROR));
        e.details = Some(StatusDetails {
            causes: bad
                .iter()
                .map(|(path, value)| {
                    Cause::invalid(path, &Value::from(value.as_str()), QUANTITY_FORMAT_ERROR)
                })
                .collect(),
            ..StatusDetails::default()
        });
        return Err(e);
    }
    match typed_roundtrip(api_version, kind, &v) {
        Some(Err(msg)) => Err(ApiError::bad_request(cannot_handle(kind, version, &msg))),
        _ => Ok(()),
    }
}

/// [`check_types_kind`] for the main kind of `info`.
pub fn check_types(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    check_types_kind(&info.api_version(), info.kind, obj)
}

fn diff(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(i), Value::Object(k)) => diff_maps(i, k, path, out),
        (Value::Array(i), Value::Array(k)) => {
            for (n, (a, b)) in i.iter().zip(k.iter()).enumerate() {
                diff(a, b, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

fn diff_maps(
    input: &Map<String, Value>,
    known: &Map<String, Value>,
    path: &str,
    out: &mut Vec<String>,
) {
    for (k, v) in input {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match known.get(k) {
            None => out.push(p),
            Some(kv) => diff(v, kv, &p, out),
        }
    }
}

/// Fields of `obj` its kind does not define, as paths without a leading dot (`spec.replicass`,
/// `spec.template.spec.containers[0].imagee`), in document order. Empty when the object does not
/// decode (the type error is reported by [`check_types`]).
pub fn unknown_fields_kind(api_version: &str, kind: &str, obj: &Value) -> Vec<String> {
    let (v, _) = prepared(obj);
    let Some(Ok(known)) = typed_roundtrip(api_version, kind, &v) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    diff(&v, &known, "", &mut out);
    out
}

/// [`unknown_fields_kind`] for the main kind of `info`.
pub fn unknown_fields(info: &ResourceInfo, obj: &Value) -> Vec<String> {
    unknown_fields_kind(&info.api_version(), info.kind, obj)
}

/// The 400 `strict decoding error: unknown field "a", unknown field "b"` for `fieldValidation=Strict`.
pub fn strict_error(unknown: &[String]) -> ApiError {
    let list: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    ApiError::bad_request(format!("strict decoding error: {}", list.join(", ")))
}

/// The `Warning` header values (`299 - "unknown field \"spec.foo\""`) for `fieldValidation=Warn`.
pub fn warn_headers(unknown: &[String]) -> Vec<String> {
    unknown
        .iter()
        .map(|f| format!("299 - \"unknown field \\\"{f}\\\"\""))
        .collect()
}
