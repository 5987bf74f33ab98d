//! kubectl version, api-resources, api-versions, explain and cluster-info against a fresh server.

use serde_json::Value;

use crate::support::{squash_ws, table_header, table_row, TestCluster};

/// The upstream description of `schema.properties.field` in a reference OpenAPI v3 document.
fn upstream_description(doc: &str, schema: &str, field: Option<&str>) -> String {
    let path = format!(
        "{}/../shared/reference/openapi-v3/{doc}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read reference OpenAPI document {path}: {e}"));
    let v: Value = serde_json::from_str(&text).expect("reference document is JSON");
    let s = &v["components"]["schemas"][schema];
    let d = match field {
        Some(f) => &s["properties"][f]["description"],
        None => &s["description"],
    };
    d.as_str()
        .unwrap_or_else(|| panic!("no description for {schema}.{field:?} in {path}"))
        .to_string()
}

fn discovery(version: &str) {
    let c = TestCluster::start();
    let k = c.kubectl(version);

    // version: the client talks to the server and prints its version (minor 33).
    let out = k.ok(&["version", "-o", "json"]);
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("kubectl {version} version -o json: {e}\n{out}"));
    let server = &v["serverVersion"];
    assert_eq!(
        server["major"], "1",
        "kubectl {version}: serverVersion {server}"
    );
    assert_eq!(
        server["minor"], "33",
        "kubectl {version}: serverVersion {server}"
    );
    assert!(
        server["gitVersion"]
            .as_str()
            .is_some_and(|g| g.starts_with("v1.33")),
        "kubectl {version}: serverVersion.gitVersion {server}"
    );
    let plain = k.ok(&["version"]);
    assert!(
        plain.contains("Server Version:") && plain.contains("Client Version:"),
        "kubectl {version} version:\n{plain}"
    );

    // api-resources: names, short names, group versions, scope, kinds.
    let out = k.ok(&["api-resources"]);
    assert_eq!(
        table_header(&out),
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
        "kubectl {version} api-resources header:\n{out}"
    );
    for (name, short, gv, namespaced, kind) in [
        ("pods", "po", "v1", "true", "Pod"),
        ("services", "svc", "v1", "true", "Service"),
        ("namespaces", "ns", "v1", "false", "Namespace"),
        ("nodes", "no", "v1", "false", "Node"),
        ("configmaps", "cm", "v1", "true", "ConfigMap"),
        ("events", "ev", "v1", "true", "Event"),
        ("deployments", "deploy", "apps/v1", "true", "Deployment"),
        ("replicasets", "rs", "apps/v1", "true", "ReplicaSet"),
        ("statefulsets", "sts", "apps/v1", "true", "StatefulSet"),
        ("daemonsets", "ds", "apps/v1", "true", "DaemonSet"),
    ] {
        let row = table_row(&out, name)
            .unwrap_or_else(|| panic!("kubectl {version} api-resources lacks {name}:\n{out}"));
        assert_eq!(
            row,
            [name, short, gv, namespaced, kind],
            "kubectl {version} api-resources row for {name}:\n{out}"
        );
    }
    for name in ["secrets", "serviceaccounts", "endpoints", "jobs", "leases"] {
        assert!(
            table_row(&out, name).is_some(),
            "kubectl {version} api-resources lacks {name}:\n{out}"
        );
    }
    // Subresources are not resource types.
    assert!(
        !out.lines().any(|l| l.starts_with("pods/")),
        "kubectl {version} api-resources lists a subresource:\n{out}"
    );
    let cluster_scoped = k.ok(&["api-resources", "--namespaced=false", "-o", "name"]);
    let names: Vec<&str> = cluster_scoped.lines().collect();
    assert!(
        names.contains(&"namespaces") && names.contains(&"nodes") && !names.contains(&"pods"),
        "kubectl {version} api-resources --namespaced=false -o name:\n{cluster_scoped}"
    );
    let apps = k.ok(&["api-resources", "--api-group=apps", "-o", "name"]);
    assert!(
        apps.lines().any(|l| l == "deployments.apps") && !apps.lines().any(|l| l == "pods"),
        "kubectl {version} api-resources --api-group=apps -o name:\n{apps}"
    );

    // api-versions.
    let out = k.ok(&["api-versions"]);
    let gvs: Vec<&str> = out.lines().collect();
    for gv in [
        "v1",
        "apps/v1",
        "batch/v1",
        "coordination.k8s.io/v1",
        "discovery.k8s.io/v1",
    ] {
        assert!(
            gvs.contains(&gv),
            "kubectl {version} api-versions lacks {gv}:\n{out}"
        );
    }

    // Short names resolve: an empty namespace answers "No resources found".
    for short in ["po", "deploy", "svc", "cm"] {
        let r = k.run(&["get", short]);
        k.assert_ok(&r);
        assert!(
            r.stderr
                .contains("No resources found in default namespace."),
            "kubectl {version} get {short} on an empty namespace:\n{}",
            r.describe()
        );
    }

    // explain: field descriptions come from the server's OpenAPI.
    for (path, doc, schema, field) in [
        (
            "deployment.spec.replicas",
            "apis/apps/v1.json",
            "io.k8s.api.apps.v1.DeploymentSpec",
            Some("replicas"),
        ),
        (
            "pods.spec.containers",
            "api/v1.json",
            "io.k8s.api.core.v1.PodSpec",
            Some("containers"),
        ),
        ("pods", "api/v1.json", "io.k8s.api.core.v1.Pod", None),
    ] {
        let want = squash_ws(&upstream_description(doc, schema, field));
        let out = k.ok(&["explain", path]);
        let got = squash_ws(&out);
        assert!(
            got.contains(&want),
            "kubectl {version} explain {path} should quote the field description {want:?}:\n{out}"
        );
        assert!(
            got.contains("KIND:") && got.contains("VERSION:"),
            "kubectl {version} explain {path} header:\n{out}"
        );
    }
    let r = k.run(&["explain", "deployment.spec.nosuchfield"]);
    assert!(
        !r.success() && r.stderr.contains("nosuchfield"),
        "kubectl {version} explain of an unknown field must fail naming it\n{}",
        r.describe()
    );

    // cluster-info: a reachable control plane.
    let out = k.ok(&["cluster-info"]);
    assert!(
        out.contains("is running at") && out.contains(c.addr()),
        "kubectl {version} cluster-info:\n{out}"
    );
}

kubectl_versions!(discovery);
