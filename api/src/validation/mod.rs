//! Defaulting and validation of objects, as kube-apiserver's registry strategies do them.
//!
//! ```text
//! request body ─► check_types (400: wrong JSON types, bad quantities) ─► unknown_fields (fieldValidation)
//!              ─► default_object ─► validate_create | validate_update (422 Invalid with causes)
//! ```
//!
//! Objects stay `serde_json::Value`s throughout; k8s-openapi's typed structs are only used to
//! detect wrong types and unknown fields (see [`unknown`]).

pub mod core;
pub mod defaults;
pub mod meta;
pub mod names;
pub mod pod;
pub mod quantity;
pub mod unknown;
pub mod workloads;

use serde_json::{Map, Value};

use crate::resources::ResourceInfo;
use crate::status::{ApiError, Cause};

pub use defaults::default_object;
pub use unknown::{check_types, unknown_fields};

/// Causes collected while validating one object.
pub type Causes = Vec<Cause>;

/// `path.name` (or `name` at the root).
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// `path[i]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// `path[key]`.
pub(crate) fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

/// `v[name]` as a string, `""` when missing or not a string.
pub(crate) fn str_of<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// `v[name]` as an array, empty when missing.
pub(crate) fn arr_of<'a>(v: &'a Value, name: &str) -> &'a [Value] {
    v.get(name)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `v[name]` as an object, if present.
pub(crate) fn obj_of<'a>(v: &'a Value, name: &str) -> Option<&'a Map<String, Value>> {
    v.get(name).and_then(Value::as_object)
}

/// `must be greater than or equal to 0` for a negative integer at `path`.
pub(crate) fn non_negative(v: &Value, name: &str, path: &str, causes: &mut Causes) {
    if let Some(n) = v.get(name).and_then(Value::as_i64) {
        if n < 0 {
            causes.push(Cause::invalid(
                &child(path, name),
                &Value::from(n),
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// `must be greater than 0` for a non-positive integer at `path` (when present).
pub(crate) fn positive(v: &Value, name: &str, path: &str, causes: &mut Causes) {
    if let Some(n) = v.get(name).and_then(Value::as_i64) {
        if n <= 0 {
            causes.push(Cause::invalid(
                &child(path, name),
                &Value::from(n),
                "must be greater than 0",
            ));
        }
    }
}

/// A value not among `supported` at `path` (only when present and non-empty).
pub(crate) fn one_of(v: &Value, name: &str, path: &str, supported: &[&str], causes: &mut Causes) {
    if let Some(s) = v.get(name).and_then(Value::as_str) {
        if !supported.contains(&s) {
            causes.push(Cause::not_supported(
                &child(path, name),
                &Value::from(s),
                supported,
            ));
        }
    }
}

/// A copy without `null` members: validation treats them as absent, as Go's zero values are.
fn without_nulls(v: &Value) -> Value {
    let mut v = v.clone();
    unknown::strip_nulls(&mut v);
    v
}

fn object_name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn finish(info: &ResourceInfo, obj: &Value, causes: Causes) -> Result<(), ApiError> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(info, object_name(obj), causes))
    }
}

/// Validates an object about to be created: types (400), then every field rule of its kind (422).
pub fn validate_create(info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
    check_types(info, obj)?;
    let obj = &without_nulls(obj);
    let mut causes = meta::validate_object_meta(info, obj);
    validate_kind(info, obj, &mut causes);
    finish(info, obj, causes)
}

/// Validates an update: the new object on its own, then the immutable fields against `old`.
pub fn validate_update(info: &ResourceInfo, new: &Value, old: &Value) -> Result<(), ApiError> {
    check_types(info, new)?;
    let (new, old) = (&without_nulls(new), &without_nulls(old));
    let mut causes = meta::validate_object_meta(info, new);
    causes.extend(meta::validate_object_meta_update(new, old));
    validate_kind(info, new, &mut causes);
    match (info.group, info.plural) {
        ("apps", _) => workloads::validate_update(info, new, old, &mut causes),
        ("batch", "jobs") => workloads::validate_job_update(new, old, &mut causes),
        _ => core::validate_update(info, new, old, &mut causes),
    }
    finish(info, new, causes)
}

fn validate_kind(info: &ResourceInfo, obj: &Value, causes: &mut Causes) {
    match (info.group, info.plural) {
        ("", "pods") => pod::validate_pod(obj, causes),
        ("apps", "deployments") => workloads::validate_deployment(obj, causes),
        ("apps", "replicasets") => workloads::validate_replica_set(obj, causes),
        ("apps", "statefulsets") => workloads::validate_stateful_set(obj, causes),
        ("apps", "daemonsets") => workloads::validate_daemon_set(obj, causes),
        ("batch", "jobs") => workloads::validate_job(obj, causes),
        _ => core::validate(info, obj, causes),
    }
}

/// Whether anything besides `metadata` and `status` differs (a spec change bumps `metadata.generation`).
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        let mut m = v.as_object().cloned().unwrap_or_default();
        for k in ["metadata", "status", "kind", "apiVersion"] {
            m.remove(k);
        }
        m
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod tests;
