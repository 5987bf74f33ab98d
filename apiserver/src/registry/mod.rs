//! Registry strategies: the create/update rules per resource, as plain functions of their inputs.
//!
//! ```text
//! create: decode ─► default ─► prepare_create (uid, creationTimestamp, generation, status reset)
//!                 ─► validate_create ─► storage.create
//! update: decode ─► prepare_update (server metadata from old, status kept, generation bump)
//!                 ─► validate_update ─► storage.update(expected rev)
//! status: prepare_status_update (only .status from the request)
//! delete: delete::plan_delete (graceful pods, finalizers, propagation) — see delete.rs
//! ```

pub mod binding;
pub mod delete;
pub mod scale;
pub mod service;

use jiff::Timestamp;
use navarch_api::resources::ResourceInfo;
use serde_json::{json, Map, Value};

use crate::objects::{meta, meta_mut};

/// RFC 3339 with second precision, UTC (`metav1.Time`).
pub fn rfc3339(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Characters of a generated name suffix (Kubernetes' `utilrand.String` alphabet).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `generateName` + 5 random characters.
pub fn generate_name(prefix: &str) -> String {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    let suffix: String = bytes[..5]
        .iter()
        .map(|b| ALPHANUMS[usize::from(*b) % ALPHANUMS.len()] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// Kinds whose status a create resets (controllers own it).
fn resets_status_on_create(kind: &str) -> bool {
    matches!(
        kind,
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" | "Service"
    )
}

/// Server-managed metadata and status for a new object.
pub fn prepare_create(info: &ResourceInfo, obj: &mut Value, now: Timestamp) {
    let has_spec = obj.get("spec").is_some();
    {
        let m = meta_mut(obj);
        m.insert(
            "uid".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        m.insert("creationTimestamp".into(), Value::String(rfc3339(now)));
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(f);
        }
        if has_spec {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
    }
    let Value::Object(root) = obj else { return };
    if resets_status_on_create(info.kind) {
        root.remove("status");
        if info.kind == "Service" {
            root.insert("status".into(), json!({"loadBalancer": {}}));
        }
    }
    match info.kind {
        "Pod" => {
            let qos = qos_class(root.get("spec"));
            let status = root
                .entry("status")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(s) = status {
                s.entry("phase").or_insert_with(|| json!("Pending"));
                s.insert("qosClass".into(), json!(qos));
            }
        }
        "Namespace" => {
            root.insert("status".into(), json!({"phase": "Active"}));
        }
        "Job" => generate_job_selector(root),
        _ => {}
    }
}

/// A Job without `spec.manualSelector: true` gets a selector on its own uid, and its pod
/// template the matching labels (Kubernetes' job strategy).
fn generate_job_selector(root: &mut Map<String, Value>) {
    let uid = root
        .get("metadata")
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let name = root
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(Value::Object(spec)) = root.get_mut("spec") else {
        return;
    };
    if spec.get("manualSelector") == Some(&json!(true)) {
        return;
    }
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let template = spec.entry("template").or_insert_with(|| json!({}));
    let Value::Object(t) = template else { return };
    let meta = t.entry("metadata").or_insert_with(|| json!({}));
    let Value::Object(m) = meta else { return };
    let labels = m.entry("labels").or_insert_with(|| json!({}));
    if let Value::Object(l) = labels {
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("job-name", &name),
        ] {
            l.insert(k.into(), json!(v));
        }
    }
}

/// A pod's QoS class from its containers' requests and limits.
pub fn qos_class(spec: Option<&Value>) -> &'static str {
    let containers = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(res));
            let request = requests.and_then(|r| r.get(res)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Server metadata a client cannot change on update.
const PRESERVED_META: &[&str] = &[
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

fn copy_preserved_meta(new: &mut Value, old: &Value) {
    let old_meta = meta(old).cloned().unwrap_or_default();
    let m = meta_mut(new);
    for f in PRESERVED_META {
        match old_meta.get(*f) {
            Some(v) => {
                m.insert((*f).to_string(), v.clone());
            }
            None => {
                m.remove(*f);
            }
        }
    }
    // name and namespace come from the URL/old object; they are checked before we get here.
    for f in ["name", "namespace"] {
        if let Some(v) = old_meta.get(f) {
            m.insert(f.to_string(), v.clone());
        }
    }
}

fn generation(obj: &Value) -> i64 {
    meta(obj)
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// An update of the main resource: keeps server metadata and (for kinds with a status
/// subresource) the old status; bumps `metadata.generation` when the spec changed.
pub fn prepare_update(info: &ResourceInfo, new: &mut Value, old: &Value) {
    copy_preserved_meta(new, old);
    if info.kind == "Service" {
        service::keep_allocated(new, old);
    }
    if info.has_status {
        if let Value::Object(root) = new {
            match old.get("status") {
                Some(s) => {
                    root.insert("status".into(), s.clone());
                }
                None => {
                    root.remove("status");
                }
            }
        }
    }
    if crate::model::spec_changed(old, new) {
        let g = generation(old) + 1;
        meta_mut(new).insert("generation".into(), json!(g));
    }
}

/// An update through the `status` subresource: only `.status` (and metadata other than the
/// server-managed fields) comes from the request; the spec stays as stored.
pub fn prepare_status_update(new: &Value, old: &Value) -> Value {
    let mut out = new.clone();
    copy_preserved_meta(&mut out, old);
    if let Value::Object(root) = &mut out {
        match old.get("spec") {
            Some(s) => {
                root.insert("spec".into(), s.clone());
            }
            None => {
                root.remove("spec");
            }
        }
    }
    out
}

/// Kinds a PUT may create when the object does not exist (Kubernetes' `AllowCreateOnUpdate`).
pub fn allow_create_on_update(info: &ResourceInfo) -> bool {
    matches!(
        info.kind,
        "Endpoints" | "Service" | "Event" | "Lease" | "EndpointSlice"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_api::resources::find;

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    #[test]
    fn create_sets_server_metadata_and_resets_status() {
        let info = find("apps", "v1", "deployments").unwrap();
        let mut d = json!({"metadata": {"name": "web", "resourceVersion": "5", "uid": "client"},
                           "spec": {"replicas": 1}, "status": {"replicas": 9}});
        prepare_create(info, &mut d, now());
        assert_ne!(d["metadata"]["uid"], "client");
        assert_eq!(d["metadata"]["uid"].as_str().unwrap().len(), 36);
        assert_eq!(d["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(d["metadata"]["generation"], 1);
        assert!(d["metadata"].get("resourceVersion").is_none());
        assert!(d.get("status").is_none());

        let pods = find("", "v1", "pods").unwrap();
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        prepare_create(pods, &mut p, now());
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["status"]["qosClass"], "BestEffort");
    }

    #[test]
    fn jobs_get_a_generated_selector() {
        let info = find("batch", "v1", "jobs").unwrap();
        let mut j = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {}}}});
        prepare_create(info, &mut j, now());
        let uid = j["metadata"]["uid"].clone();
        assert_eq!(
            j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            uid
        );
        assert_eq!(j["spec"]["template"]["metadata"]["labels"]["job-name"], "j");
        let mut manual = json!({"metadata": {"name": "m"}, "spec": {"manualSelector": true,
            "selector": {"matchLabels": {"a": "b"}}}});
        prepare_create(info, &mut manual, now());
        assert_eq!(
            manual["spec"]["selector"],
            json!({"matchLabels": {"a": "b"}})
        );
    }

    #[test]
    fn qos_classes() {
        let g = json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(Some(&g)), "Guaranteed");
        let b = json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(qos_class(Some(&b)), "Burstable");
        assert_eq!(qos_class(Some(&json!({"containers": [{}]}))), "BestEffort");
    }

    #[test]
    fn update_bumps_generation_only_on_spec_change_and_keeps_status() {
        let info = find("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "web", "uid": "u1", "generation": 3,
                                      "creationTimestamp": "2023-01-01T00:00:00Z"},
                         "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut labels_only = json!({"metadata": {"name": "web", "labels": {"a": "b"}},
                                     "spec": {"replicas": 1}, "status": {"replicas": 7}});
        prepare_update(info, &mut labels_only, &old);
        assert_eq!(labels_only["metadata"]["generation"], 3);
        assert_eq!(labels_only["metadata"]["uid"], "u1");
        assert_eq!(labels_only["status"]["replicas"], 1);
        assert_eq!(labels_only["metadata"]["labels"]["a"], "b");

        let mut scaled = json!({"metadata": {"name": "web"}, "spec": {"replicas": 4}});
        prepare_update(info, &mut scaled, &old);
        assert_eq!(scaled["metadata"]["generation"], 4);
    }

    #[test]
    fn status_update_keeps_spec() {
        let old = json!({"metadata": {"name": "web", "uid": "u1", "generation": 2},
                         "spec": {"replicas": 1}, "status": {}});
        let new = json!({"metadata": {"name": "web", "uid": "other"},
                         "spec": {"replicas": 100}, "status": {"observedGeneration": 2}});
        let out = prepare_status_update(&new, &old);
        assert_eq!(out["spec"]["replicas"], 1);
        assert_eq!(out["status"]["observedGeneration"], 2);
        assert_eq!(out["metadata"]["uid"], "u1");
        assert_eq!(out["metadata"]["generation"], 2);
    }

    #[test]
    fn generated_names_have_the_prefix_and_five_chars() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-"));
        assert_eq!(n.len(), 9);
        assert!(n[4..].bytes().all(|b| ALPHANUMS.contains(&b)));
    }
}
