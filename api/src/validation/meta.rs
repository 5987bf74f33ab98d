//! `metadata` validation common to every kind (apimachinery's `ValidateObjectMeta`).

use serde_json::Value;

use super::names::{
    dns1035_label_errors, dns1123_label_errors, dns1123_subdomain_errors, label_value_errors,
    qualified_name_errors,
};
use super::{arr_of, index, key, obj_of, str_of, Causes};
use crate::resources::ResourceInfo;
use crate::status::Cause;

/// Largest total size of all annotations (keys plus values), in bytes.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// The name rule of a kind: DNS-1123 label for namespaces, DNS-1035 label for services, subdomain otherwise.
pub fn name_errors(info: &ResourceInfo, name: &str) -> Vec<String> {
    match (info.group, info.plural) {
        ("", "namespaces") => dns1123_label_errors(name),
        ("", "services") => dns1035_label_errors(name),
        _ => dns1123_subdomain_errors(name),
    }
}

/// `metadata.labels` rules, reported under `path`.
pub fn validate_labels(
    labels: Option<&serde_json::Map<String, Value>>,
    path: &str,
    causes: &mut Causes,
) {
    let Some(labels) = labels else { return };
    for (k, v) in labels {
        for msg in qualified_name_errors(k) {
            causes.push(Cause::invalid(path, &Value::from(k.as_str()), &msg));
        }
        let Some(s) = v.as_str() else { continue };
        for msg in label_value_errors(s) {
            causes.push(Cause::invalid(&key(path, k), v, &msg));
        }
    }
}

/// Checks `metadata` of an object of kind `info`.
pub fn validate_object_meta(info: &ResourceInfo, obj: &Value) -> Causes {
    let mut causes = Causes::new();
    let empty = Value::Object(Default::default());
    let meta = obj.get("metadata").unwrap_or(&empty);
    let name = str_of(meta, "name");
    let generate_name = str_of(meta, "generateName");
    if name.is_empty() {
        if generate_name.is_empty() {
            causes.push(Cause::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for msg in name_errors(info, name) {
            causes.push(Cause::invalid("metadata.name", &Value::from(name), &msg));
        }
    }
    let namespace = str_of(meta, "namespace");
    if info.namespaced {
        if namespace.is_empty() {
            causes.push(Cause::required("metadata.namespace", ""));
        } else {
            for msg in dns1123_label_errors(namespace) {
                causes.push(Cause::invalid(
                    "metadata.namespace",
                    &Value::from(namespace),
                    &msg,
                ));
            }
        }
    } else if !namespace.is_empty() {
        causes.push(Cause::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    validate_labels(obj_of(meta, "labels"), "metadata.labels", &mut causes);
    if let Some(annotations) = obj_of(meta, "annotations") {
        let mut total = 0usize;
        for (k, v) in annotations {
            for msg in qualified_name_errors(&k.to_lowercase()) {
                causes.push(Cause::invalid(
                    "metadata.annotations",
                    &Value::from(k.as_str()),
                    &msg,
                ));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > TOTAL_ANNOTATION_SIZE_LIMIT {
            causes.push(Cause::too_long(
                "metadata.annotations",
                TOTAL_ANNOTATION_SIZE_LIMIT,
            ));
        }
    }
    for (i, f) in arr_of(meta, "finalizers").iter().enumerate() {
        let s = f.as_str().unwrap_or_default();
        for msg in qualified_name_errors(s) {
            causes.push(Cause::invalid(&index("metadata.finalizers", i), f, &msg));
        }
    }
    for (i, r) in arr_of(meta, "ownerReferences").iter().enumerate() {
        let p = index("metadata.ownerReferences", i);
        for (field, what) in [
            ("apiVersion", "version"),
            ("kind", "kind"),
            ("name", "name"),
            ("uid", "uid"),
        ] {
            if str_of(r, field).is_empty() {
                causes.push(Cause::invalid(
                    &format!("{p}.{field}"),
                    &Value::from(""),
                    &format!("{what} must not be empty"),
                ));
            }
        }
    }
    let controllers = arr_of(meta, "ownerReferences")
        .iter()
        .filter(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .count();
    if controllers > 1 {
        causes.push(Cause::invalid_no_value(
            "metadata.ownerReferences",
            "Only one reference can have Controller set to true",
        ));
    }
    causes
}

/// Checks that identity fields of `metadata` did not change on update.
pub fn validate_object_meta_update(new: &Value, old: &Value) -> Causes {
    let mut causes = Causes::new();
    for field in ["name", "namespace", "uid", "creationTimestamp"] {
        let pointer = format!("/metadata/{field}");
        let (n, o) = (new.pointer(&pointer), old.pointer(&pointer));
        let n_str = n.and_then(Value::as_str).unwrap_or_default();
        let o_str = o.and_then(Value::as_str).unwrap_or_default();
        // An unset uid/creationTimestamp on the new object is filled in from the old one by the server.
        if n_str != o_str && !(n_str.is_empty() && matches!(field, "uid" | "creationTimestamp")) {
            causes.push(Cause::invalid(
                &format!("metadata.{field}"),
                &Value::from(n_str),
                "field is immutable",
            ));
        }
    }
    causes
}
