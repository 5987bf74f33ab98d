//! Pod and pod template validation (`ValidatePodSpec`, `ValidatePodTemplateSpec`, containers, volumes).

use std::cmp::Ordering;
use std::collections::HashSet;

use serde_json::{Map, Value};

use super::meta::validate_labels;
use super::names::{
    dns1123_label_errors, dns1123_subdomain_errors, env_var_name_errors, port_name_errors,
    qualified_name_errors,
};
use super::quantity::Quantity;
use super::{arr_of, child, index, key, obj_of, one_of, str_of, Causes};
use crate::status::Cause;

/// Restart policies a pod may have.
pub const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const TERMINATION_MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];

/// `must be between 1 and 65535, inclusive` unless `n` is a valid port.
pub(crate) fn port_range_error(n: i64) -> Option<&'static str> {
    if (1..=65535).contains(&n) {
        None
    } else {
        Some("must be between 1 and 65535, inclusive")
    }
}

/// Validates a Pod object's `spec`.
pub fn validate_pod(obj: &Value, causes: &mut Causes) {
    let empty = Value::Object(Map::new());
    validate_pod_spec(obj.get("spec").unwrap_or(&empty), "spec", causes);
}

/// Validates a `PodTemplateSpec` at `path` (labels and spec).
pub fn validate_pod_template(template: &Value, path: &str, causes: &mut Causes) {
    let empty = Value::Object(Map::new());
    let meta = template.get("metadata").unwrap_or(&empty);
    validate_labels(
        obj_of(meta, "labels"),
        &child(&child(path, "metadata"), "labels"),
        causes,
    );
    validate_pod_spec(
        template.get("spec").unwrap_or(&empty),
        &child(path, "spec"),
        causes,
    );
}

/// Validates a `PodSpec` at `path`.
pub fn validate_pod_spec(spec: &Value, path: &str, causes: &mut Causes) {
    let volumes = validate_volumes(spec, path, causes);
    let containers = arr_of(spec, "containers");
    if containers.is_empty() {
        causes.push(Cause::required(&child(path, "containers"), ""));
    }
    let mut names = HashSet::new();
    for field in ["initContainers", "containers"] {
        let cpath = child(path, field);
        for (i, c) in arr_of(spec, field).iter().enumerate() {
            validate_container(c, &index(&cpath, i), &volumes, &mut names, causes);
        }
    }
    one_of(spec, "restartPolicy", path, RESTART_POLICIES, causes);
    one_of(spec, "dnsPolicy", path, DNS_POLICIES, causes);
    if let Some(n) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        if !(1..=i64::from(i32::MAX)).contains(&n) {
            causes.push(Cause::invalid(
                &child(path, "activeDeadlineSeconds"),
                &Value::from(n),
                "must be between 1 and 2147483647, inclusive",
            ));
        }
    }
    for field in ["nodeName", "serviceAccountName"] {
        let v = str_of(spec, field);
        if !v.is_empty() {
            for msg in dns1123_subdomain_errors(v) {
                causes.push(Cause::invalid(&child(path, field), &Value::from(v), &msg));
            }
        }
    }
    for field in ["hostname", "subdomain"] {
        let v = str_of(spec, field);
        if !v.is_empty() {
            for msg in dns1123_label_errors(v) {
                causes.push(Cause::invalid(&child(path, field), &Value::from(v), &msg));
            }
        }
    }
}

/// Checks `volumes` and returns their names (for volumeMount references).
fn validate_volumes(spec: &Value, path: &str, causes: &mut Causes) -> HashSet<String> {
    let mut names = HashSet::new();
    let vpath = child(path, "volumes");
    for (i, v) in arr_of(spec, "volumes").iter().enumerate() {
        let p = index(&vpath, i);
        let name = str_of(v, "name");
        if name.is_empty() {
            causes.push(Cause::required(&child(&p, "name"), ""));
        } else {
            for msg in dns1123_label_errors(name) {
                causes.push(Cause::invalid(&child(&p, "name"), &Value::from(name), &msg));
            }
            if !names.insert(name.to_string()) {
                causes.push(Cause::duplicate(&child(&p, "name"), &Value::from(name)));
            }
        }
        let sources = v
            .as_object()
            .map(|m| m.keys().filter(|k| *k != "name").count())
            .unwrap_or(0);
        if sources == 0 {
            causes.push(Cause::required(&p, "must specify a volume type"));
        } else if sources > 1 {
            causes.push(Cause::forbidden(
                &p,
                "may not specify more than 1 volume type",
            ));
        }
    }
    names
}

fn validate_container(
    c: &Value,
    path: &str,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    causes: &mut Causes,
) {
    let name = str_of(c, "name");
    let name_path = child(path, "name");
    if name.is_empty() {
        causes.push(Cause::required(&name_path, ""));
    } else {
        for msg in dns1123_label_errors(name) {
            causes.push(Cause::invalid(&name_path, &Value::from(name), &msg));
        }
        if !names.insert(name.to_string()) {
            causes.push(Cause::duplicate(&name_path, &Value::from(name)));
        }
    }
    if str_of(c, "image").trim().is_empty() {
        causes.push(Cause::required(&child(path, "image"), ""));
    }
    one_of(c, "imagePullPolicy", path, PULL_POLICIES, causes);
    one_of(
        c,
        "terminationMessagePolicy",
        path,
        TERMINATION_MESSAGE_POLICIES,
        causes,
    );
    validate_ports(c, path, causes);
    validate_env(c, path, causes);
    let mpath = child(path, "volumeMounts");
    for (i, m) in arr_of(c, "volumeMounts").iter().enumerate() {
        let p = index(&mpath, i);
        let vname = str_of(m, "name");
        if vname.is_empty() {
            causes.push(Cause::required(&child(&p, "name"), ""));
        } else if !volumes.contains(vname) {
            causes.push(Cause::not_found(&child(&p, "name"), &Value::from(vname)));
        }
        if str_of(m, "mountPath").is_empty() {
            causes.push(Cause::required(&child(&p, "mountPath"), ""));
        }
    }
    if let Some(r) = c.get("resources") {
        validate_resources(r, &child(path, "resources"), causes);
    }
}

fn validate_ports(c: &Value, path: &str, causes: &mut Causes) {
    let ppath = child(path, "ports");
    let mut port_names = HashSet::new();
    for (i, p) in arr_of(c, "ports").iter().enumerate() {
        let ip = index(&ppath, i);
        let name = str_of(p, "name");
        if !name.is_empty() {
            for msg in port_name_errors(name) {
                causes.push(Cause::invalid(
                    &child(&ip, "name"),
                    &Value::from(name),
                    &msg,
                ));
            }
            if !port_names.insert(name.to_string()) {
                causes.push(Cause::duplicate(&child(&ip, "name"), &Value::from(name)));
            }
        }
        match p.get("containerPort").and_then(Value::as_i64) {
            None | Some(0) => causes.push(Cause::required(&child(&ip, "containerPort"), "")),
            Some(n) => {
                if let Some(msg) = port_range_error(n) {
                    causes.push(Cause::invalid(
                        &child(&ip, "containerPort"),
                        &Value::from(n),
                        msg,
                    ));
                }
            }
        }
        if let Some(n) = p
            .get("hostPort")
            .and_then(Value::as_i64)
            .filter(|n| *n != 0)
        {
            if let Some(msg) = port_range_error(n) {
                causes.push(Cause::invalid(
                    &child(&ip, "hostPort"),
                    &Value::from(n),
                    msg,
                ));
            }
        }
        one_of(p, "protocol", &ip, PROTOCOLS, causes);
    }
}

fn validate_env(c: &Value, path: &str, causes: &mut Causes) {
    let epath = child(path, "env");
    for (i, e) in arr_of(c, "env").iter().enumerate() {
        let p = index(&epath, i);
        let name = str_of(e, "name");
        if name.is_empty() {
            causes.push(Cause::required(&child(&p, "name"), ""));
        } else {
            for msg in env_var_name_errors(name) {
                causes.push(Cause::invalid(&child(&p, "name"), &Value::from(name), &msg));
            }
        }
        if e.get("valueFrom").is_some() && !str_of(e, "value").is_empty() {
            causes.push(Cause::invalid_no_value(
                &child(&p, "valueFrom"),
                "may not be specified when `value` is not empty",
            ));
        }
    }
}

/// Parses every quantity of a resource map; malformed ones are skipped (they are a 400 found earlier).
fn quantities(m: Option<&Map<String, Value>>) -> Vec<(&str, &Value, Quantity)> {
    m.map(|m| {
        m.iter()
            .filter_map(|(k, v)| {
                let q = match v {
                    Value::String(s) => Quantity::parse(s).ok(),
                    Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
                    _ => None,
                }?;
                Some((k.as_str(), v, q))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// `ValidateResourceRequirements`: names, non-negative values, requests ≤ limits.
pub fn validate_resources(r: &Value, path: &str, causes: &mut Causes) {
    let lim_path = child(path, "limits");
    let req_path = child(path, "requests");
    let limits = quantities(obj_of(r, "limits"));
    let requests = quantities(obj_of(r, "requests"));
    for (list, lpath) in [(&limits, &lim_path), (&requests, &req_path)] {
        for (name, v, q) in list.iter() {
            let kpath = key(lpath, name);
            if !name.contains('/') && !name.starts_with("hugepages-") {
                if !matches!(*name, "cpu" | "memory" | "ephemeral-storage") {
                    causes.push(Cause::invalid(
                        &kpath,
                        &Value::from(*name),
                        "must be a standard resource type or fully qualified",
                    ));
                }
            } else {
                for msg in qualified_name_errors(name) {
                    causes.push(Cause::invalid(&kpath, &Value::from(*name), &msg));
                }
            }
            if q.is_negative() {
                causes.push(Cause::invalid(
                    &kpath,
                    v,
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    for (name, v, q) in &requests {
        if let Some((_, lv, lq)) = limits.iter().find(|(n, _, _)| n == name) {
            if q.cmp_value(lq) == Ordering::Greater {
                let shown = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
                causes.push(Cause::invalid(
                    &req_path,
                    v,
                    &format!(
                        "must be less than or equal to {name} limit of {}",
                        shown(lv)
                    ),
                ));
            }
        }
    }
}

/// The fields of a pod spec an update may change (images, activeDeadlineSeconds, tolerations,
/// terminationGracePeriodSeconds); everything else must stay equal.
pub fn validate_pod_update(new: &Value, old: &Value, causes: &mut Causes) {
    let mask = |spec: Option<&Value>| -> Value {
        let mut s = spec.cloned().unwrap_or(Value::Null);
        if let Some(m) = s.as_object_mut() {
            for f in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
            ] {
                m.remove(f);
            }
            for f in ["containers", "initContainers", "ephemeralContainers"] {
                if let Some(cs) = m.get_mut(f).and_then(Value::as_array_mut) {
                    for c in cs {
                        if let Some(c) = c.as_object_mut() {
                            c.remove("image");
                        }
                    }
                }
            }
        }
        s
    };
    if mask(new.get("spec")) != mask(old.get("spec")) {
        causes.push(Cause::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}
