//! The HTTP surface kubectl relies on, checked byte for byte where kubectl is strict: /version,
//! health, legacy and aggregated discovery (content types), OpenAPI v2/v3 (content type, hash,
//! ETag, caching, fieldValidation), metrics.

use serde_json::Value;

use crate::support::http;
use crate::support::TestCluster;

const AGG_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
const AGG_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

fn ct(r: &http::Response) -> String {
    r.header("content-type")
        .unwrap_or_default()
        .replace(' ', "")
}

#[test]
fn version_and_health() {
    let c = TestCluster::start();
    let r = http::must(
        c.addr(),
        "GET",
        "/version?timeout=32s",
        &[("Accept", "application/json, */*")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(ct(&r).starts_with("application/json"), "{}", r.describe());
    let v = r.json();
    assert_eq!(v["major"], "1", "{v}");
    assert_eq!(v["minor"], "33", "{v}");
    for f in [
        "gitVersion",
        "gitCommit",
        "buildDate",
        "goVersion",
        "platform",
    ] {
        assert!(v[f].is_string(), "/version lacks {f}: {v}");
    }
    for path in ["/healthz", "/livez", "/readyz"] {
        let r = http::must(c.addr(), "GET", path, &[], None);
        assert_eq!(r.status, 200, "{path}: {}", r.describe());
        assert_eq!(r.text().trim(), "ok", "{path}: {}", r.describe());
    }
    // Unknown resources answer a Status, not a bare text 404.
    let r = http::get(c.addr(), "/api/v1/namespaces/default/nosuchthings");
    assert_eq!(r.status, 404, "{}", r.describe());
    let s = r.json();
    assert_eq!(s["kind"], "Status", "{s}");
    assert_eq!(s["reason"], "NotFound", "{s}");
    assert_eq!(s["code"], 404, "{s}");
}

#[test]
fn legacy_discovery() {
    let c = TestCluster::start();
    let r = http::must(
        c.addr(),
        "GET",
        "/api",
        &[("Accept", "application/json, */*")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    let v = r.json();
    assert_eq!(v["kind"], "APIVersions", "{v}");
    assert_eq!(v["versions"], serde_json::json!(["v1"]), "{v}");

    let v = http::get(c.addr(), "/apis").json();
    assert_eq!(v["kind"], "APIGroupList", "{v}");
    let groups = v["groups"].as_array().expect("groups");
    let apps = groups
        .iter()
        .find(|g| g["name"] == "apps")
        .unwrap_or_else(|| panic!("/apis lacks apps: {v}"));
    assert_eq!(
        apps["preferredVersion"]["groupVersion"], "apps/v1",
        "{apps}"
    );
    for g in ["batch", "coordination.k8s.io", "discovery.k8s.io"] {
        assert!(
            groups.iter().any(|x| x["name"] == g),
            "/apis lacks {g}: {v}"
        );
    }

    let v = http::get(c.addr(), "/api/v1").json();
    assert_eq!(v["kind"], "APIResourceList", "{v}");
    assert_eq!(v["groupVersion"], "v1", "{v}");
    let res = v["resources"].as_array().expect("resources");
    let find = |name: &str| {
        res.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("/api/v1 lacks {name}: {v}"))
            .clone()
    };
    let pods = find("pods");
    assert_eq!(pods["namespaced"], true, "{pods}");
    assert_eq!(pods["kind"], "Pod", "{pods}");
    assert_eq!(pods["shortNames"], serde_json::json!(["po"]), "{pods}");
    assert!(
        pods["categories"]
            .as_array()
            .is_some_and(|c| c.contains(&Value::from("all"))),
        "{pods}"
    );
    let verbs = pods["verbs"].as_array().expect("verbs");
    for verb in [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ] {
        assert!(
            verbs.contains(&Value::from(verb)),
            "pods verbs lack {verb}: {pods}"
        );
    }
    let eviction = find("pods/eviction");
    assert_eq!(eviction["group"], "policy", "{eviction}");
    assert_eq!(eviction["version"], "v1", "{eviction}");
    assert_eq!(eviction["kind"], "Eviction", "{eviction}");
    for sub in [
        "pods/status",
        "pods/log",
        "pods/binding",
        "nodes/status",
        "services/status",
    ] {
        find(sub);
    }
    assert_eq!(find("namespaces")["namespaced"], false);

    let v = http::get(c.addr(), "/apis/apps/v1").json();
    assert_eq!(v["groupVersion"], "apps/v1", "{v}");
    let res = v["resources"].as_array().expect("resources");
    let scale = res
        .iter()
        .find(|r| r["name"] == "deployments/scale")
        .unwrap_or_else(|| panic!("/apis/apps/v1 lacks deployments/scale: {v}"));
    assert_eq!(scale["group"], "autoscaling", "{scale}");
    assert_eq!(scale["kind"], "Scale", "{scale}");
    let deploy = res
        .iter()
        .find(|r| r["name"] == "deployments")
        .expect("deployments");
    assert_eq!(
        deploy["shortNames"],
        serde_json::json!(["deploy"]),
        "{deploy}"
    );

    let r = http::get(c.addr(), "/apis/nosuch.example.com/v1");
    assert_eq!(r.status, 404, "{}", r.describe());
}

fn check_aggregated(c: &TestCluster, accept: &str, version: &str) {
    for (path, expect_group) in [("/api", ""), ("/apis", "apps")] {
        let r = http::must(c.addr(), "GET", path, &[("Accept", accept)], None);
        assert_eq!(r.status, 200, "{path} {version}: {}", r.describe());
        assert_eq!(
            ct(&r),
            format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"),
            "{path} with Accept {accept}: the Content-Type must name what was sent"
        );
        let v = r.json();
        assert_eq!(v["kind"], "APIGroupDiscoveryList", "{v}");
        assert_eq!(
            v["apiVersion"],
            format!("apidiscovery.k8s.io/{version}"),
            "{v}"
        );
        let items = v["items"].as_array().expect("items");
        let g = items
            .iter()
            .find(|i| i["metadata"]["name"] == expect_group)
            .unwrap_or_else(|| panic!("{path} lacks group {expect_group:?}: {v}"));
        let resources = g["versions"][0]["resources"].as_array().expect("resources");
        if expect_group == "apps" {
            let d = resources
                .iter()
                .find(|r| r["resource"] == "deployments")
                .unwrap_or_else(|| panic!("apps lacks deployments: {g}"));
            assert_eq!(d["scope"], "Namespaced", "{d}");
            assert_eq!(d["singularResource"], "deployment", "{d}");
            assert_eq!(d["responseKind"]["kind"], "Deployment", "{d}");
            assert_eq!(d["shortNames"], serde_json::json!(["deploy"]), "{d}");
            let subs = d["subresources"].as_array().expect("subresources");
            let scale = subs
                .iter()
                .find(|s| s["subresource"] == "scale")
                .unwrap_or_else(|| panic!("deployments lacks scale: {d}"));
            assert_eq!(
                scale["responseKind"],
                serde_json::json!({"group":"autoscaling","version":"v1","kind":"Scale"}),
                "{scale}"
            );
        } else {
            let p = resources
                .iter()
                .find(|r| r["resource"] == "pods")
                .unwrap_or_else(|| panic!("core lacks pods: {g}"));
            assert_eq!(p["scope"], "Namespaced", "{p}");
            assert_eq!(p["shortNames"], serde_json::json!(["po"]), "{p}");
            let subs = p["subresources"].as_array().expect("subresources");
            assert!(
                subs.iter().any(|s| s["subresource"] == "eviction"),
                "pods lacks eviction: {p}"
            );
        }
    }
}

#[test]
fn aggregated_discovery() {
    let c = TestCluster::start();
    // kubectl >= 1.30 asks for v2 first, 1.27-1.29 only for v2beta1.
    check_aggregated(&c, AGG_V2, "v2");
    check_aggregated(&c, AGG_V2BETA1, "v2beta1");
    // Plain JSON asks for the legacy shapes.
    let r = http::get(c.addr(), "/apis");
    assert_eq!(r.json()["kind"], "APIGroupList", "{}", r.describe());
}

#[test]
fn openapi() {
    let c = TestCluster::start();
    // v2: protobuf with the `.v1.0` content type (1.27/1.28 apply needs a 200).
    let r = http::must(
        c.addr(),
        "GET",
        "/openapi/v2?timeout=32s",
        &[(
            "Accept",
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
        )],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.header("content-type"),
        Some("application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
        "/openapi/v2 content type"
    );

    // v3 root: one path per group version, with a hash.
    let root = http::must(
        c.addr(),
        "GET",
        "/openapi/v3?timeout=32s",
        &[("Accept", "application/json, */*")],
        None,
    );
    assert_eq!(root.status, 200, "{}", root.describe());
    let root = root.json();
    for gv in ["api/v1", "apis/apps/v1", "apis/batch/v1"] {
        let url = root["paths"][gv]["serverRelativeURL"]
            .as_str()
            .unwrap_or_else(|| panic!("/openapi/v3 lacks {gv}: {root}"));
        assert!(
            url.starts_with(&format!("/openapi/v3/{gv}?hash=")),
            "{gv}: {url}"
        );
    }
    let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .expect("url")
        .to_string();
    let hash = url
        .split_once("hash=")
        .map(|(_, h)| h.to_string())
        .expect("hash");
    assert!(
        hash.len() == 128
            && hash
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
        "hash must be uppercase hex SHA-512: {hash}"
    );
    let doc = http::get(c.addr(), &url);
    assert_eq!(doc.status, 200, "{}", doc.describe());
    assert_eq!(
        doc.header("etag").map(|e| e.trim_matches('"').to_string()),
        Some(hash.clone()),
        "ETag of {url}"
    );
    assert!(
        doc.header("cache-control")
            .is_some_and(|v| v.contains("immutable")),
        "Cache-Control of {url}: {:?}",
        doc.header("cache-control")
    );
    let d = doc.json();
    assert!(
        d["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object(),
        "apps/v1 document lacks the Deployment schema"
    );
    let patch = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        serde_json::json!({"group":"apps","version":"v1","kind":"Deployment"}),
        "PATCH deployment operation: {patch}"
    );
    let params = patch["parameters"].as_array().cloned().unwrap_or_default();
    let path_params = d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
        ["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has_fv = |ps: &[Value]| {
        ps.iter().any(|p| {
            p["name"] == "fieldValidation"
                || p["$ref"]
                    .as_str()
                    .is_some_and(|r| r.contains("fieldValidation"))
        })
    };
    assert!(
        has_fv(&params) || has_fv(&path_params),
        "PATCH deployment must take fieldValidation: {patch}"
    );
    // Upstream marks containers as merged by name: kubectl builds its strategic patches from this.
    let containers =
        &d["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(
        containers["x-kubernetes-patch-merge-key"], "name",
        "{containers}"
    );
    assert_eq!(
        containers["x-kubernetes-patch-strategy"], "merge",
        "{containers}"
    );

    // A stale hash redirects to the current document.
    let stale = http::must(
        c.addr(),
        "GET",
        "/openapi/v3/apis/apps/v1?hash=0000",
        &[("Accept", "application/json")],
        None,
    );
    assert!(
        stale.status == 301 && stale.header("location").is_some_and(|l| l.contains(&hash)),
        "stale hash: {}",
        stale.describe()
    );
    let r = http::get(c.addr(), "/openapi/v3/apis/nosuch/v1");
    assert_eq!(r.status, 404, "{}", r.describe());
}

#[test]
fn metrics() {
    let c = TestCluster::start();
    // Some traffic first.
    for _ in 0..3 {
        assert_eq!(
            http::get(c.addr(), "/api/v1/namespaces/default/pods").status,
            200
        );
    }
    let r = http::must(c.addr(), "GET", "/metrics", &[], None);
    assert_eq!(r.status, 200, "{}", r.describe());
    let body = r.text();
    assert!(
        body.lines()
            .any(|l| l.starts_with("# TYPE ") && l.ends_with(" counter")),
        "/metrics has no counter:\n{}",
        http::truncate(&body, 3000)
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("# TYPE ")
                && (l.ends_with(" histogram") || l.ends_with(" summary"))),
        "/metrics has no latency histogram:\n{}",
        http::truncate(&body, 3000)
    );
    assert!(
        body.lines().any(|l| !l.starts_with('#')
            && l.contains("pods")
            && l.to_ascii_lowercase().contains("list")),
        "/metrics has no LIST pods request count:\n{}",
        http::truncate(&body, 3000)
    );
}
