//! Patches, generation, status and scale subresources, binding, eviction, graceful deletion,
//! protobuf request bodies.

use serde_json::json;

use crate::support::Server;

const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";
const PODS: &str = "/api/v1/namespaces/default/pods";

fn deployment(name: &str) -> serde_json::Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                                 "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
}

#[tokio::test]
async fn generation_scale_and_status() {
    let s = Server::start().await;
    let d = s.post(DEPLOY, &deployment("web")).await;
    assert_eq!(d.status, 201, "{}", String::from_utf8_lossy(&d.body));
    assert_eq!(d.json()["metadata"]["generation"], 1);
    // A label change does not bump the generation; a spec change does.
    let r = s
        .patch(
            &format!("{DEPLOY}/web"),
            "application/merge-patch+json",
            r#"{"metadata":{"labels":{"x":"y"}}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["metadata"]["generation"], 1);
    let r = s
        .patch(
            &format!("{DEPLOY}/web"),
            "application/json-patch+json",
            r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["metadata"]["generation"], 2);

    let sc = s.get(&format!("{DEPLOY}/web/scale")).await.json();
    assert_eq!(sc["kind"], "Scale");
    assert_eq!(sc["apiVersion"], "autoscaling/v1");
    assert_eq!(sc["spec"]["replicas"], 2);
    assert_eq!(sc["status"]["selector"], "app=web");
    let r = s
        .patch(
            &format!("{DEPLOY}/web/scale"),
            "application/merge-patch+json",
            r#"{"spec":{"replicas":3}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["spec"]["replicas"], 3);
    let now = s.get(&format!("{DEPLOY}/web")).await.json();
    assert_eq!(now["spec"]["replicas"], 3);
    assert_eq!(now["metadata"]["generation"], 3);

    // Status writes go through /status only; the main resource ignores status.
    let mut st = now.clone();
    st["status"] = json!({"observedGeneration": 3, "replicas": 3});
    st["spec"]["replicas"] = json!(99);
    let r = s.put(&format!("{DEPLOY}/web/status"), &st).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["spec"]["replicas"], 3);
    assert_eq!(r.json()["status"]["observedGeneration"], 3);
    let mut main = r.json();
    main["status"] = json!({"replicas": 0});
    let r = s.put(&format!("{DEPLOY}/web"), &main).await;
    assert_eq!(r.json()["status"]["replicas"], 3);
    let bad = s.patch(&format!("{DEPLOY}/web"), "text/plain", "{}").await;
    assert_eq!(bad.status, 415);
    s.stop().await;
}

#[tokio::test]
async fn apply_creates_then_updates() {
    let s = Server::start().await;
    let body = deployment("applied").to_string();
    let r = s
        .patch(
            &format!("{DEPLOY}/applied?fieldManager=kubectl&force=false"),
            "application/apply-patch+yaml",
            &body,
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = s
        .patch(
            &format!("{DEPLOY}/applied?fieldManager=kubectl"),
            "application/apply-patch+yaml",
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let no_manager = s
        .patch(
            &format!("{DEPLOY}/applied"),
            "application/apply-patch+yaml",
            &body,
        )
        .await;
    assert_eq!(no_manager.status, 400);
    s.stop().await;
}

#[tokio::test]
async fn binding_eviction_and_graceful_delete() {
    let s = Server::start().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let r = s.post(PODS, &pod).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"]["phase"], "Pending");
    let b = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p1"},
                   "target": {"kind": "Node", "name": "n1"}});
    let r = s.post(&format!("{PODS}/p1/binding"), &b).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], "Success");
    assert_eq!(
        s.get(&format!("{PODS}/p1")).await.json()["spec"]["nodeName"],
        "n1"
    );
    let again = s.post(&format!("{PODS}/p1/binding"), &b).await;
    assert_eq!(again.status, 409);

    // A bound pod is deleted gracefully: it stays, with a deletionTimestamp.
    let r = s.delete(&format!("{PODS}/p1"), "{}").await;
    assert_eq!(r.status, 200);
    let p = s.get(&format!("{PODS}/p1")).await.json();
    assert!(p["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30);
    let r = s
        .delete(&format!("{PODS}/p1"), r#"{"gracePeriodSeconds":0}"#)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(s.get(&format!("{PODS}/p1")).await.status, 404);

    // Eviction of an unbound pod deletes it now.
    s.post(
        PODS,
        &json!({"metadata": {"name": "p2"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    )
    .await;
    let ev = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p2", "namespace": "default"}, "deleteOptions": {}});
    let r = s.post(&format!("{PODS}/p2/eviction"), &ev).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(s.get(&format!("{PODS}/p2")).await.status, 404);
    let log = s.get(&format!("{PODS}/nosuch/log")).await;
    assert_eq!(log.status, 404);
    s.stop().await;
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let s = Server::start().await;
    let cm = json!({"metadata": {"name": "f", "finalizers": ["example.com/hold"]}});
    s.post("/api/v1/namespaces/default/configmaps", &cm).await;
    let path = "/api/v1/namespaces/default/configmaps/f";
    assert_eq!(s.delete(path, "").await.status, 200);
    let held = s.get(path).await.json();
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    let r = s
        .patch(
            path,
            "application/merge-patch+json",
            r#"{"metadata":{"finalizers":null}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(s.get(path).await.status, 404);
    s.stop().await;
}

/// `kubectl create namespace pb` as kubectl 1.33 sends it (protobuf).
#[tokio::test]
async fn protobuf_namespace_create() {
    let s = Server::start().await;
    // runtime.Unknown{typeMeta{v1, Namespace}, raw: Namespace{metadata{name: "pb"}}}
    let meta = [0x0a, 0x02, b'p', b'b'];
    let mut ns = vec![0x0a, meta.len() as u8];
    ns.extend_from_slice(&meta);
    let tm = [
        0x0a, 0x02, b'v', b'1', 0x12, 0x09, b'N', b'a', b'm', b'e', b's', b'p', b'a', b'c', b'e',
    ];
    let mut body = b"k8s\0".to_vec();
    body.push(0x0a);
    body.push(tm.len() as u8);
    body.extend_from_slice(&tm);
    body.push(0x12);
    body.push(ns.len() as u8);
    body.extend_from_slice(&ns);
    let r = s
        .request(
            "POST",
            "/api/v1/namespaces?fieldManager=kubectl-create&fieldValidation=Strict",
            &[
                ("Content-Type", "application/vnd.kubernetes.protobuf"),
                (
                    "Accept",
                    "application/vnd.kubernetes.protobuf,application/json",
                ),
            ],
            &body,
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["metadata"]["name"], "pb");
    assert_eq!(r.json()["status"]["phase"], "Active");
    s.stop().await;
}

#[tokio::test]
async fn services_get_cluster_ips_and_node_ports() {
    let s = Server::start().await;
    let svcs = "/api/v1/namespaces/default/services";
    let mk = |name: &str, extra: serde_json::Value| {
        let mut spec = json!({"selector": {"app": name}, "ports": [{"port": 80}]});
        if let (Some(m), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        json!({"metadata": {"name": name}, "spec": spec})
    };
    let a = s.post(svcs, &mk("a", json!({}))).await;
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    let b = s
        .post(svcs, &mk("b", json!({"type": "NodePort"})))
        .await
        .json();
    let ip_a = a.json()["spec"]["clusterIP"].as_str().unwrap().to_string();
    let ip_b = b["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(ip_a.starts_with("10.") && ip_a != ip_b, "{ip_a} {ip_b}");
    let np = b["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&np));
    let taken = s.post(svcs, &mk("c", json!({"clusterIP": ip_a}))).await;
    assert_eq!(
        taken.status,
        422,
        "{}",
        String::from_utf8_lossy(&taken.body)
    );
    let headless = s
        .post(svcs, &mk("h", json!({"clusterIP": "None"})))
        .await
        .json();
    assert_eq!(headless["spec"]["clusterIP"], "None");
    // An update without clusterIP keeps it; a delete releases it.
    let mut upd = a.json();
    upd["spec"].as_object_mut().unwrap().remove("clusterIP");
    upd["spec"].as_object_mut().unwrap().remove("clusterIPs");
    let r = s.put(&format!("{svcs}/a"), &upd).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["spec"]["clusterIP"], ip_a.as_str());
    assert_eq!(s.delete(&format!("{svcs}/a"), "").await.status, 200);
    let again = s.post(svcs, &mk("c", json!({"clusterIP": ip_a}))).await;
    assert_eq!(
        again.status,
        201,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
    s.stop().await;
}

/// A PUT body without the server's defaults is defaulted again: no spurious change, no
/// generation bump, and a pod's (otherwise immutable) spec compares equal.
#[tokio::test]
async fn update_bodies_are_defaulted() {
    let s = Server::start().await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "d1", "labels": {"a": "b"}},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let created = s.post(PODS, &pod).await.json();
    let mut replaced = pod.clone();
    replaced["metadata"]["labels"]["a"] = json!("c");
    replaced["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"].clone();
    let r = s.put(&format!("{PODS}/d1"), &replaced).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["metadata"]["labels"]["a"], "c");

    let d = s.post(DEPLOY, &deployment("def")).await.json();
    assert_eq!(d["metadata"]["generation"], 1);
    let mut body = deployment("def");
    body["metadata"]["labels"] = json!({"x": "y"});
    let r = s.put(&format!("{DEPLOY}/def"), &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["metadata"]["generation"], 1);
    s.stop().await;
}
