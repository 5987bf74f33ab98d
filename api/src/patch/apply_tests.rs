//! Server-side apply tests: create-on-apply, conflicts, force, pruning, shared ownership.

use super::*;
use crate::patch::{apply as ssa, update_managed_fields};
use crate::resources::{self, ResourceInfo};
use crate::status::ApiError;
use serde_json::json;

fn info() -> &'static ResourceInfo {
    resources::find("apps", "v1", "deployments").expect("deployments")
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_800_000_000).expect("ts")
}

fn config(replicas: i64, ports: &[i64], labels: Value) -> Value {
    let ports: Vec<Value> = ports.iter().map(|p| json!({"containerPort": p})).collect();
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "ports": ports}]}}
        }
    })
}

fn apply_json(
    live: Option<&Value>,
    cfg: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    ssa(
        info(),
        live,
        cfg.to_string().as_bytes(),
        manager,
        force,
        now(),
    )
}

fn entry<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
}

#[test]
fn apply_creates_with_managed_fields() {
    let cfg = config(2, &[80], json!({"app": "web"}));
    let obj = apply_json(None, &cfg, "kubectl", false).expect("create");
    assert_eq!(obj["spec"]["replicas"], 2);
    let e = entry(&obj, "kubectl").expect("entry");
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert_eq!(e["time"], "2027-01-15T08:00:00Z");
    let f = &e["fieldsV1"];
    assert_eq!(f["f:spec"]["f:replicas"], json!({}));
    assert_eq!(
        f["f:spec"]["f:selector"],
        json!({}),
        "atomic selector is a leaf: {f}"
    );
    assert_eq!(f["f:metadata"]["f:labels"]["f:app"], json!({}));
    let c = &f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"];
    assert_eq!(c["."], json!({}));
    assert_eq!(c["f:image"], json!({}));
    assert_eq!(
        c["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"]["f:containerPort"],
        json!({}),
        "{c}"
    );
    assert!(f.get("f:apiVersion").is_none() && f["f:metadata"].get("f:name").is_none());
}

#[test]
fn yaml_bodies_are_accepted_and_kind_is_checked() {
    let yaml =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 5\n";
    let obj = ssa(info(), None, yaml.as_bytes(), "m", false, now()).expect("yaml");
    assert_eq!(obj["spec"]["replicas"], 5);
    let e = ssa(
        info(),
        None,
        br#"{"apiVersion":"v1","kind":"Deployment","metadata":{"name":"x"}}"#,
        "m",
        false,
        now(),
    )
    .expect_err("wrong apiVersion");
    assert_eq!(e.code, 400);
    let e = ssa(
        info(),
        None,
        br#"{"apiVersion":"apps/v1","kind":"Pod","metadata":{"name":"x"}}"#,
        "m",
        false,
        now(),
    )
    .expect_err("wrong kind");
    assert_eq!(e.code, 400);
}

fn created_by_client_side_apply() -> Value {
    let mut obj = config(1, &[80], json!({"app": "web"}));
    update_managed_fields(
        info(),
        None,
        &mut obj,
        "kubectl-client-side-apply",
        "Update",
        now(),
    );
    obj
}

#[test]
fn conflict_with_update_manager_then_force() {
    let live = created_by_client_side_apply();
    let csa = entry(&live, "kubectl-client-side-apply").expect("update entry");
    assert_eq!(csa["operation"], "Update");
    assert_eq!(csa["fieldsV1"]["f:spec"]["f:replicas"], json!({}));

    let cfg = config(3, &[80], json!({"app": "web"}));
    let err = apply_json(Some(&live), &cfg, "kubectl", false).expect_err("conflict");
    assert_eq!(err.code, 409);
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
    let causes = &err.details.as_ref().expect("details").causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, ".spec.replicas");
    assert_eq!(causes[0].reason, "FieldManagerConflict");

    let obj = apply_json(Some(&live), &cfg, "kubectl", true).expect("force");
    assert_eq!(obj["spec"]["replicas"], 3);
    let csa = entry(&obj, "kubectl-client-side-apply").expect("still owns the rest");
    assert!(csa["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    assert!(csa["fieldsV1"]["f:spec"]["f:template"].is_object());
    let me = entry(&obj, "kubectl").expect("applier");
    assert_eq!(me["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
}

#[test]
fn equal_values_share_ownership_without_conflict() {
    let live = created_by_client_side_apply();
    let cfg = config(1, &[80], json!({"app": "web"}));
    let obj = apply_json(Some(&live), &cfg, "kubectl", false).expect("no conflict");
    for m in ["kubectl", "kubectl-client-side-apply"] {
        let e = entry(&obj, m).expect("entry");
        assert_eq!(e["fieldsV1"]["f:spec"]["f:replicas"], json!({}), "{m}");
    }
}

#[test]
fn omitted_fields_are_pruned_unless_owned_by_others() {
    let first = apply_json(
        None,
        &config(1, &[80, 8080], json!({"app": "web", "b": "1"})),
        "kubectl",
        false,
    )
    .expect("create");
    let second = apply_json(
        Some(&first),
        &config(1, &[8080], json!({"app": "web"})),
        "kubectl",
        false,
    )
    .expect("re-apply");
    assert_eq!(second["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        second["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 8080}])
    );
    // another manager takes label b by writing it: then it survives the applier dropping it
    let mut edited = first.clone();
    edited["metadata"]["labels"]["b"] = json!("2");
    update_managed_fields(
        info(),
        Some(&first),
        &mut edited,
        "kubectl-edit",
        "Update",
        now(),
    );
    let e = entry(&edited, "kubectl-edit").expect("edit entry");
    assert_eq!(e["fieldsV1"]["f:metadata"]["f:labels"]["f:b"], json!({}));
    let me = entry(&edited, "kubectl").expect("applier");
    assert!(me["fieldsV1"]["f:metadata"]["f:labels"]
        .get("f:b")
        .is_none());
    let third = apply_json(
        Some(&edited),
        &config(1, &[80, 8080], json!({"app": "web"})),
        "kubectl",
        false,
    )
    .expect("re-apply");
    assert_eq!(third["metadata"]["labels"], json!({"app": "web", "b": "2"}));
}

#[test]
fn other_appliers_keep_their_fields_and_last_applied_apply_is_harmless() {
    let first = apply_json(
        None,
        &config(1, &[80], json!({"app": "web"})),
        "kubectl",
        false,
    )
    .expect("create");
    let ann = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}});
    let out = apply_json(Some(&first), &ann, "kubectl-last-applied", false).expect("second apply");
    assert_eq!(out["spec"], first["spec"]);
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{}"
    );
    assert!(entry(&out, "kubectl").is_some() && entry(&out, "kubectl-last-applied").is_some());
    // a second applier setting a different replicas value conflicts with the first applier
    let err = apply_json(
        Some(&out),
        &config(4, &[80], json!({"app": "web"})),
        "other",
        false,
    )
    .expect_err("conflict");
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#
    );
}

#[test]
fn multiple_conflicts_are_listed_per_manager() {
    let live = created_by_client_side_apply();
    let mut cfg = config(3, &[80], json!({"app": "web"}));
    cfg["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let err = apply_json(Some(&live), &cfg, "kubectl", false).expect_err("conflicts");
    assert_eq!(err.code, 409);
    assert!(err.message.starts_with("Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n- "), "{}", err.message);
    assert!(
        err.message
            .contains(r#"- .spec.template.spec.containers[name="nginx"].image"#),
        "{}",
        err.message
    );
}

#[test]
fn update_tracking_moves_changed_fields() {
    let mut obj = config(1, &[80], json!({"app": "web"}));
    update_managed_fields(info(), None, &mut obj, "creator", "Update", now());
    let mut scaled = obj.clone();
    scaled["spec"]["replicas"] = json!(5);
    update_managed_fields(info(), Some(&obj), &mut scaled, "scaler", "Update", now());
    let scaler = entry(&scaled, "scaler").expect("scaler");
    assert_eq!(scaler["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    let creator = entry(&scaled, "creator").expect("creator");
    assert!(creator["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    // a no-op write adds no entry
    let mut same = scaled.clone();
    update_managed_fields(info(), Some(&scaled), &mut same, "noop", "Update", now());
    assert!(entry(&same, "noop").is_none());
}

#[test]
fn objects_without_managed_fields_conflict_with_before_first_apply() {
    let live = config(1, &[80], json!({"app": "web"}));
    let err = apply_json(
        Some(&live),
        &config(2, &[80], json!({"app": "web"})),
        "kubectl",
        false,
    )
    .expect_err("conflict");
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas"#
    );
    let ok = apply_json(
        Some(&live),
        &config(1, &[80], json!({"app": "web"})),
        "kubectl",
        false,
    )
    .expect("same values");
    assert!(entry(&ok, "before-first-apply").is_some());
}

#[test]
fn set_lists_and_service_ports_with_defaulted_protocol() {
    let svc_info = resources::find("", "v1", "services").expect("services");
    let cfg = |ports: Value, fin: Value| {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "s", "finalizers": fin},
               "spec": {"ports": ports, "selector": {"app": "web"}}})
    };
    let first = ssa(
        svc_info,
        None,
        cfg(json!([{"port": 80}, {"port": 443}]), json!(["a", "b"]))
            .to_string()
            .as_bytes(),
        "m",
        false,
        now(),
    )
    .expect("create");
    let f = &entry(&first, "m").expect("entry")["fieldsV1"];
    assert_eq!(f["f:metadata"]["f:finalizers"]["v:\"a\""], json!({}), "{f}");
    assert_eq!(
        f["f:spec"]["f:ports"]["k:{\"port\":443,\"protocol\":\"TCP\"}"]["f:port"],
        json!({}),
        "{f}"
    );
    let second = ssa(
        svc_info,
        Some(&first),
        cfg(json!([{"port": 443}]), json!(["b"]))
            .to_string()
            .as_bytes(),
        "m",
        false,
        now(),
    )
    .expect("re-apply");
    assert_eq!(second["metadata"]["finalizers"], json!(["b"]));
    assert_eq!(second["spec"]["ports"], json!([{"port": 443}]));
}

#[test]
fn explicitly_sent_managed_fields_replace_the_old_ones() {
    let obj = created_by_client_side_apply();
    let mut reset = obj.clone();
    reset["metadata"]["managedFields"] = json!([]);
    reset["spec"]["replicas"] = json!(2);
    update_managed_fields(info(), Some(&obj), &mut reset, "editor", "Update", now());
    let entries = reset["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["manager"], "editor");
    assert_eq!(
        entries[0]["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
}

/// `compare` skips top-level fields equal on both sides; its answer must be the one of
/// flattening both whole objects.
#[test]
fn compare_equals_flattening_everything() {
    let node = crate::patch::schema::Node::for_kind("apps", "v1", "Deployment");
    let naive = |old: &Value, new: &Value| {
        let (o, n) = (
            flatten(&strip_meta(old), node),
            flatten(&strip_meta(new), node),
        );
        let changed: FieldSet = n
            .iter()
            .filter(|(p, v)| o.get(*p).is_none_or(|ov| ov != *v))
            .map(|(p, _)| p.clone())
            .collect();
        let removed: FieldSet = o.keys().filter(|p| !n.contains_key(*p)).cloned().collect();
        (changed, removed)
    };
    let base = config(2, &[80, 443], json!({"app": "web"}));
    let mut meta_only = base.clone();
    meta_only["metadata"]["annotations"] = json!({"a": "1"});
    meta_only["metadata"]["resourceVersion"] = json!("7");
    let mut spec_change = base.clone();
    spec_change["spec"]["replicas"] = json!(5);
    let mut status_added = base.clone();
    status_added["status"] = json!({"replicas": 2});
    let mut server_meta_only = base.clone();
    server_meta_only["metadata"]["generation"] = json!(9);
    let bare = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
    let cases = [
        (&base, &meta_only),
        (&meta_only, &base),
        (&base, &spec_change),
        (&spec_change, &status_added),
        (&status_added, &base),
        (&base, &server_meta_only),
        (&base, &base),
        (&bare, &base),
        (&base, &bare),
    ];
    for (i, (old, new)) in cases.into_iter().enumerate() {
        assert_eq!(compare(old, new, node), naive(old, new), "case {i}");
    }
}
