//! Strategic merge patch tests, with the patches kubectl actually sends.

use super::*;
use crate::resources;
use crate::status::ApiError;
use serde_json::json;

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default",
            "labels": {"app": "web", "tier": "x"},
            "finalizers": ["a", "b"]},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "nginx", "image": "nginx:1.25",
                     "env": [{"name": "A", "value": "1"}],
                     "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 8080, "protocol": "TCP"}]},
                    {"name": "sidecar", "image": "busybox"}
                ]}
            }
        }
    })
}

fn smp(target: &Value, patch: Value) -> Result<Value, ApiError> {
    let info = resources::find("apps", "v1", "deployments").expect("deployments");
    crate::patch::strategic_merge_patch(info, target, patch.to_string().as_bytes())
}

#[test]
fn kubectl_apply_patch_with_all_directives() {
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}},
        "spec": {"replicas": 3,
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [
                    {"name": "nginx", "image": "nginx:1.26", "args": ["a"], "env": null,
                     "$setElementOrder/ports": [{"containerPort": 8080}],
                     "ports": [{"containerPort": 8080}, {"$patch": "delete", "containerPort": 80}]},
                    {"$patch": "delete", "name": "sidecar"}
                ]}}}
    });
    let out = smp(&deployment(), patch).expect("patch applies");
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "nginx", "image": "nginx:1.26", "args": ["a"],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}]}])
    );
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{}\n"
    );
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "tier": "x"})
    );
}

#[test]
fn image_change_keeps_other_containers_and_fields() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
        "containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}});
    let out = smp(&deployment(), patch).expect("patch");
    let cs = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(cs[0]["image"], "nginx:1.27");
    assert_eq!(cs[0]["env"], json!([{"name": "A", "value": "1"}]));
    assert_eq!(cs[0]["ports"].as_array().map(Vec::len), Some(2));
    assert_eq!(cs[1]["name"], "sidecar");
}

#[test]
fn null_deletes_label_and_edit_patch() {
    let out = smp(
        &deployment(),
        json!({"metadata": {"labels": {"tier": null, "edited": "yes"}}, "spec": {"replicas": 4}}),
    )
    .expect("patch");
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "edited": "yes"})
    );
    assert_eq!(out["spec"]["replicas"], 4);
    let uncordon = smp(&deployment(), json!({"spec": {"replicas": null}})).expect("patch");
    assert!(uncordon["spec"].get("replicas").is_none());
}

#[test]
fn finalizers_merge_as_a_set_and_delete_from_primitive_list() {
    let out = smp(
        &deployment(),
        json!({"metadata": {"finalizers": ["c", "a"]}}),
    )
    .expect("patch");
    let f = out["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(f.len(), 3, "{f:?}");
    for x in ["a", "b", "c"] {
        assert!(f.contains(&json!(x)));
    }
    let out = smp(
        &deployment(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    )
    .expect("patch");
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn set_element_order_reorders() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}],
        "containers": [{"name": "nginx", "image": "new"}]}}}});
    let out = smp(&deployment(), patch).expect("patch");
    let cs = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(cs[0]["name"], "sidecar");
    assert_eq!(cs[1]["name"], "nginx");
    assert_eq!(cs[1]["image"], "new");
}

#[test]
fn replace_directives_on_maps_and_lists() {
    let out = smp(
        &deployment(),
        json!({"spec": {"selector": {"$patch": "replace", "matchLabels": {"x": "y"}}}}),
    )
    .expect("patch");
    assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"x": "y"}}));
    let out = smp(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "only", "image": "i"}, {"$patch": "replace"}]}}}}),
    )
    .expect("patch");
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only", "image": "i"}])
    );
    let out = smp(
        &deployment(),
        json!({"spec": {"strategy": {"$patch": "delete"}}}),
    )
    .expect("patch");
    assert_eq!(out["spec"]["strategy"], json!({}));
}

#[test]
fn new_elements_are_appended_without_directives_or_nulls() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "extra", "image": "e", "args": null,
         "ports": [{"containerPort": 1}, {"$patch": "delete", "containerPort": 2}]}]}}}});
    let out = smp(&deployment(), patch).expect("patch");
    let cs = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(cs.len(), 3);
    assert_eq!(
        cs[2],
        json!({"name": "extra", "image": "e", "ports": [{"containerPort": 1}]})
    );
}

#[test]
fn service_ports_merge_by_port_and_lists_without_key_replace() {
    let info = resources::find("", "v1", "services").expect("services");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "https", "port": 443}],
                 "selector": {"app": "web"}}});
    let out = crate::patch::strategic_merge_patch(
        info,
        &svc,
        br#"{"spec":{"ports":[{"port":80,"targetPort":9090}]}}"#,
    )
    .expect("patch");
    assert_eq!(
        out["spec"]["ports"],
        json!([{"name": "http", "port": 80, "targetPort": 9090}, {"name": "https", "port": 443}])
    );
    let pods = resources::find("", "v1", "pods").expect("pods");
    let pod = json!({"spec": {"tolerations": [{"key": "a"}, {"key": "b"}], "containers": [{"name": "c"}]}});
    let out = crate::patch::strategic_merge_patch(
        pods,
        &pod,
        br#"{"spec":{"tolerations":[{"key":"z"}]}}"#,
    )
    .expect("patch");
    assert_eq!(out["spec"]["tolerations"], json!([{"key": "z"}]));
}

#[test]
fn bad_patches_are_rejected() {
    let e = smp(
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
    )
    .expect_err("no merge key");
    assert_eq!(e.code, 400);
    assert!(
        e.message
            .contains("does not contain declared merge key: name"),
        "{}",
        e.message
    );
    let e = smp(
        &deployment(),
        json!({"spec": {"strategy": {"$patch": "bogus"}}}),
    )
    .expect_err("bad type");
    assert_eq!(e.code, 400);
    let info = resources::find("apps", "v1", "deployments").expect("deployments");
    let e = crate::patch::strategic_merge_patch(info, &deployment(), b"[1,2]")
        .expect_err("not an object");
    assert_eq!(e.code, 400);
    let e = smp(
        &deployment(),
        json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
    )
    .expect_err("retainKeys");
    assert_eq!(e.code, 400);
}

/// The body kubectl 1.28/1.33 sent (captured against a mock serving our OpenAPI) for
/// `kubectl apply` after: image change, port 80 removed, sidecar removed, label `tier` removed.
#[test]
fn captured_kubectl_client_side_apply_patch() {
    let live = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "x"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "old"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"image": "nginx:1.25", "name": "nginx",
                 "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 8080, "protocol": "TCP"}]},
                {"image": "busybox", "name": "sidecar"}]}}}});
    let body = r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"new\n"},"labels":{"tier":null}},"spec":{"replicas":3,"template":{"spec":{"$setElementOrder/containers":[{"name":"nginx"}],"containers":[{"$setElementOrder/ports":[{"containerPort":8080}],"image":"nginx:1.26","name":"nginx","ports":[{"$patch":"delete","containerPort":80}]},{"$patch":"delete","name":"sidecar"}]}}}}"#;
    let info = resources::find("apps", "v1", "deployments").expect("deployments");
    let out = crate::patch::strategic_merge_patch(info, &live, body.as_bytes()).expect("patch");
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "new\n"
    );
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"image": "nginx:1.26", "name": "nginx",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}]}])
    );
}
