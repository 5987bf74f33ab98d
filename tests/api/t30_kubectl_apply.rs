//! kubectl apply, client-side and `--server-side`, twice, with changes in between: creates,
//! "unchanged", three-way merges that remove what the manifest no longer says and keep what
//! others set, managedFields, and server-side apply conflicts.

use serde_json::Value;

use crate::support::{Kubectl, TestCluster};

const V1: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
  labels:
    app: NAME
    tier: one
spec:
  replicas: 2
  selector:
    matchLabels:
      app: NAME
  template:
    metadata:
      labels:
        app: NAME
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
        - containerPort: 443
        env:
        - name: A
          value: "1"
        - name: B
          value: "2"
      - name: sidecar
        image: busybox:1.36
        args: ["sleep", "3600"]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: NAME-config
data:
  a: "1"
  b: "2"
"#;

/// V1 with: replicas 3, label `tier` dropped, image bumped, port 443 and env B and the sidecar
/// removed, configmap key b removed and c added.
const V2: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
  labels:
    app: NAME
spec:
  replicas: 3
  selector:
    matchLabels:
      app: NAME
  template:
    metadata:
      labels:
        app: NAME
    spec:
      containers:
      - name: web
        image: nginx:1.26
        ports:
        - containerPort: 80
        env:
        - name: A
          value: "1"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: NAME-config
data:
  a: "1"
  c: "3"
"#;

fn manifest(template: &str, name: &str) -> String {
    template.replace("NAME", name)
}

/// Checks the deployment and configmap match V2 (and that V1-only fields are gone).
fn assert_v2(k: &Kubectl, name: &str, how: &str) -> Value {
    let d = k.get_json("deployment", name);
    let v = &k.version;
    assert_eq!(d["spec"]["replicas"], 3, "kubectl {v} {how}: replicas: {d}");
    assert!(
        d["metadata"]["labels"].get("tier").is_none(),
        "kubectl {v} {how}: label tier must be removed: {}",
        d["metadata"]["labels"]
    );
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(
        cs.len(),
        1,
        "kubectl {v} {how}: sidecar must be removed: {d}"
    );
    assert_eq!(cs[0]["image"], "nginx:1.26", "kubectl {v} {how}: {d}");
    let ports: Vec<i64> = cs[0]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["containerPort"].as_i64())
        .collect();
    assert_eq!(
        ports,
        [80],
        "kubectl {v} {how}: port 443 must be removed: {d}"
    );
    let env: Vec<&str> = cs[0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(env, ["A"], "kubectl {v} {how}: env B must be removed: {d}");
    let cm = k.get_json("configmap", &format!("{name}-config"));
    assert_eq!(
        cm["data"],
        serde_json::json!({"a": "1", "c": "3"}),
        "kubectl {v} {how}: configmap data"
    );
    d
}

fn client_side(k: &Kubectl, version: &str) {
    let v1 = manifest(V1, "csa");
    let out = k.apply(&v1, &[]);
    assert!(
        out.contains("deployment.apps/csa created") && out.contains("configmap/csa-config created"),
        "kubectl {version} first apply:\n{out}"
    );
    let d = k.get_json("deployment", "csa");
    let last = d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap_or_else(|| panic!("kubectl {version}: no last-applied annotation: {d}"));
    let last: Value = serde_json::from_str(last).expect("last-applied is JSON");
    assert_eq!(last["spec"]["replicas"], 2, "{last}");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let rv = d["metadata"]["resourceVersion"].clone();

    // Same manifest again: nothing to do.
    let out = k.apply(&v1, &[]);
    assert!(
        out.contains("deployment.apps/csa unchanged")
            && out.contains("configmap/csa-config unchanged"),
        "kubectl {version} second apply of the same manifest:\n{out}"
    );
    assert_eq!(
        k.get_json("deployment", "csa")["metadata"]["resourceVersion"],
        rv
    );

    // Someone else labels it; then the manifest changes.
    k.ok(&["label", "deployment", "csa", "owner=ops"]);
    let out = k.apply(&manifest(V2, "csa"), &[]);
    assert!(
        out.contains("deployment.apps/csa configured")
            && out.contains("configmap/csa-config configured"),
        "kubectl {version} apply of changed manifest:\n{out}"
    );
    let d = assert_v2(k, "csa", "client-side apply");
    assert_eq!(
        d["metadata"]["labels"]["owner"], "ops",
        "kubectl {version}: a label set outside the manifest survives a three-way merge: {d}"
    );
    assert_eq!(d["metadata"]["generation"], 2, "kubectl {version}: {d}");
    let last = d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .expect("last-applied");
    let last: Value = serde_json::from_str(last).expect("last-applied is JSON");
    assert_eq!(last["spec"]["replicas"], 3, "{last}");

    // And again: unchanged.
    let out = k.apply(&manifest(V2, "csa"), &[]);
    assert!(
        out.contains("deployment.apps/csa unchanged"),
        "kubectl {version} re-apply:\n{out}"
    );
}

fn server_side(k: &Kubectl, version: &str) {
    let v1 = manifest(V1, "ssa");
    let out = k.apply(&v1, &["--server-side"]);
    assert!(
        out.contains("deployment.apps/ssa serverside-applied")
            && out.contains("configmap/ssa-config serverside-applied"),
        "kubectl {version} first server-side apply:\n{out}"
    );
    // kubectl hides managedFields unless asked.
    let out = k.ok(&[
        "get",
        "deployment",
        "ssa",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let d: Value = serde_json::from_str(&out).expect("json");
    let managers: Vec<(String, String)> = d["metadata"]["managedFields"]
        .as_array()
        .unwrap_or_else(|| panic!("kubectl {version}: no managedFields: {d}"))
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or_default().to_string(),
                m["operation"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("kubectl".to_string(), "Apply".to_string())),
        "kubectl {version}: managedFields {managers:?}"
    );
    assert!(
        d["metadata"]["annotations"]
            .get("kubectl.kubernetes.io/last-applied-configuration")
            .is_none(),
        "server-side apply does not write the client-side annotation: {d}"
    );
    assert_eq!(d["metadata"]["labels"]["tier"], "one", "{d}");

    // Apply the same again: the object does not change.
    let rv = d["metadata"]["resourceVersion"].clone();
    k.apply(&v1, &["--server-side"]);
    assert_eq!(
        k.get_json("deployment", "ssa")["metadata"]["resourceVersion"],
        rv,
        "kubectl {version}: an identical server-side apply must not write"
    );

    // Changed manifest: fields the manager no longer applies are removed.
    let out = k.apply(&manifest(V2, "ssa"), &["--server-side"]);
    assert!(
        out.contains("deployment.apps/ssa serverside-applied"),
        "kubectl {version}:\n{out}"
    );
    assert_v2(k, "ssa", "server-side apply");

    // Another manager takes spec.replicas: applying a different value conflicts...
    k.ok(&[
        "patch",
        "deployment",
        "ssa",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":5}}"#,
    ]);
    let v3 = manifest(V2, "ssa").replace("replicas: 3", "replicas: 4");
    let r = k.run_with(&["apply", "--server-side", "-f", "-"], Some(&v3), &[]);
    assert!(
        !r.success() && r.stderr.contains("conflict") && r.stderr.contains(".spec.replicas"),
        "kubectl {version}: a server-side apply over another manager's field must conflict\n{}",
        r.describe()
    );
    assert_eq!(k.get_json("deployment", "ssa")["spec"]["replicas"], 5);
    // ...unless forced.
    k.apply(&v3, &["--server-side", "--force-conflicts"]);
    assert_eq!(k.get_json("deployment", "ssa")["spec"]["replicas"], 4);
}

fn apply(version: &str) {
    let c = TestCluster::start();
    let k = c.kubectl(version);
    client_side(&k, version);
    server_side(&k, version);
    // delete -f removes what a manifest names.
    let r = k.run_with(&["delete", "-f", "-"], Some(&manifest(V2, "csa")), &[]);
    k.assert_ok(&r);
    assert!(
        r.stdout.contains(r#"deployment.apps "csa" deleted"#)
            && r.stdout.contains(r#"configmap "csa-config" deleted"#),
        "kubectl {version} delete -f\n{}",
        r.describe()
    );
    for (kind, name) in [("deployment", "csa"), ("configmap", "csa-config")] {
        let r = k.fail(&["get", kind, name]);
        assert!(r.stderr.contains("NotFound"), "{}", r.describe());
    }
}

kubectl_versions!(apply);
