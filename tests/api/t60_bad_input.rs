//! Bad input over raw HTTP: malformed JSON/YAML, wrong kind for the URL, invalid names, oversized
//! bodies, stale resourceVersions, unknown fields, wrong media types — each answered with the
//! right `Status`, and nothing reaches the store.

use serde_json::{json, Value};

use crate::support::http::{self, Response};
use crate::support::TestCluster;

const PODS: &str = "/api/v1/namespaces/default/pods";
const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// Asserts `r` is a failure Status with `code` and `reason`; returns it.
fn assert_status(r: &Response, code: u16, reason: &str, what: &str) -> Value {
    assert_eq!(r.status, code, "{what}: {}", r.describe());
    let s = r.json();
    assert_eq!(s["kind"], "Status", "{what}: {s}");
    assert_eq!(s["apiVersion"], "v1", "{what}: {s}");
    assert_eq!(s["status"], "Failure", "{what}: {s}");
    assert_eq!(s["reason"], reason, "{what}: {s}");
    assert_eq!(s["code"], code, "{what}: {s}");
    assert!(
        s["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: Status without a message: {s}"
    );
    s
}

/// A client mistake: 4xx with a Status (never a 500).
fn assert_client_error(r: &Response, what: &str) -> Value {
    assert!(
        (400..500).contains(&r.status),
        "{what}: a client mistake must be a 4xx: {}",
        r.describe()
    );
    let s = r.json();
    assert_eq!(s["kind"], "Status", "{what}: {s}");
    s
}

fn pod(name: &str) -> Value {
    json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":name},
           "spec":{"containers":[{"name":"c","image":"busybox:1.36"}]}})
}

/// What the store holds, to compare before/after each bad request.
struct Baseline {
    pods: i64,
    configmaps: i64,
    deployments: i64,
    target_rv: Value,
}

fn baseline(c: &TestCluster) -> Baseline {
    Baseline {
        pods: c.store_key_count("/registry/pods/"),
        configmaps: c.store_key_count("/registry/configmaps/"),
        deployments: c.store_key_count("/registry/deployments/"),
        target_rv: http::get(c.addr(), &format!("{PODS}/target")).json()["metadata"]
            ["resourceVersion"]
            .clone(),
    }
}

fn assert_nothing_stored(c: &TestCluster, b: &Baseline, what: &str) {
    let now = baseline(c);
    assert_eq!(now.pods, b.pods, "{what}: pods in the store changed");
    assert_eq!(
        now.configmaps, b.configmaps,
        "{what}: configmaps in the store changed"
    );
    assert_eq!(
        now.deployments, b.deployments,
        "{what}: deployments in the store changed"
    );
    assert_eq!(
        now.target_rv, b.target_rv,
        "{what}: pod `target` was written"
    );
}

fn setup() -> (TestCluster, Baseline) {
    let c = TestCluster::start();
    let r = http::post_json(c.addr(), PODS, &pod("target"));
    assert_eq!(r.status, 201, "create target: {}", r.describe());
    let r = http::post_json(
        c.addr(),
        CMS,
        &json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"base"},"data":{"k":"v"}}),
    );
    assert_eq!(r.status, 201, "create base: {}", r.describe());
    let b = baseline(&c);
    assert_eq!(b.pods, 1, "one pod stored");
    (c, b)
}

#[test]
fn malformed_bodies() {
    let (c, b) = setup();
    let a = c.addr();
    let cases: Vec<(&str, &str, String, &str, &[u8])> = vec![
        ("truncated JSON", "POST", PODS.into(), "application/json", br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x""#),
        ("not JSON at all", "POST", PODS.into(), "application/json", b"hello"),
        ("JSON of the wrong type", "POST", PODS.into(), "application/json", br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":"not-a-list"}}"#),
        ("a JSON array", "POST", PODS.into(), "application/json", br#"[1,2,3]"#),
        ("malformed YAML", "POST", PODS.into(), "application/yaml", b"apiVersion: v1\nkind: Pod\nmetadata: {name: x\n  spec: [\n"),
        ("malformed apply YAML", "PATCH", format!("{PODS}/target?fieldManager=t"), "application/apply-patch+yaml", b"metadata:\n  labels: [unclosed\n - :\n"),
        ("malformed apply YAML, new object", "PATCH", format!("{PODS}/fresh?fieldManager=t"), "application/apply-patch+yaml", b"{{{{"),
        ("malformed merge patch", "PATCH", format!("{PODS}/target"), "application/merge-patch+json", br#"{"metadata":"#),
        ("malformed strategic patch", "PATCH", format!("{PODS}/target"), "application/strategic-merge-patch+json", b"nope"),
        ("JSON patch that is not a list", "PATCH", format!("{PODS}/target"), "application/json-patch+json", br#"{"op":"add"}"#),
        ("malformed PUT", "PUT", format!("{PODS}/target"), "application/json", br#"{"apiVersion":"v1""#),
    ];
    for (what, method, path, ct, body) in cases {
        let r = http::send(a, method, &path, ct, body);
        assert_status(&r, 400, "BadRequest", what);
        assert_nothing_stored(&c, &b, what);
    }
    // A JSON patch whose `test` fails, or that points nowhere: refused, nothing written.
    for (what, body) in [
        (
            "failing test op",
            r#"[{"op":"test","path":"/metadata/name","value":"other"}]"#,
        ),
        (
            "remove of a missing path",
            r#"[{"op":"remove","path":"/metadata/labels/nosuch"}]"#,
        ),
    ] {
        let r = http::send(
            a,
            "PATCH",
            &format!("{PODS}/target"),
            "application/json-patch+json",
            body.as_bytes(),
        );
        assert_client_error(&r, what);
        assert_nothing_stored(&c, &b, what);
    }
    // Unsupported media type.
    let r = http::send(
        a,
        "POST",
        PODS,
        "text/plain",
        pod("x").to_string().as_bytes(),
    );
    assert_status(&r, 415, "UnsupportedMediaType", "text/plain body");
    let r = http::send(
        a,
        "PATCH",
        &format!("{PODS}/target"),
        "application/json",
        b"{}",
    );
    assert_status(
        &r,
        415,
        "UnsupportedMediaType",
        "PATCH with plain application/json",
    );
    assert_nothing_stored(&c, &b, "unsupported media types");
}

#[test]
fn wrong_kind_and_names() {
    let (c, b) = setup();
    let a = c.addr();
    let deployment = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
        "spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},
        "spec":{"containers":[{"name":"c","image":"i"}]}}}});
    let r = http::post_json(a, PODS, &deployment);
    assert_status(&r, 400, "BadRequest", "a Deployment POSTed to pods");
    let cm = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}});
    let r = http::post_json(a, PODS, &cm);
    assert_status(&r, 400, "BadRequest", "a ConfigMap POSTed to pods");
    let r = http::post_json(a, "/apis/apps/v1/namespaces/default/deployments", &pod("x"));
    assert_status(&r, 400, "BadRequest", "a Pod POSTed to deployments");
    let mut other_ns = pod("x");
    other_ns["metadata"]["namespace"] = json!("kube-system");
    let r = http::post_json(a, PODS, &other_ns);
    let s = assert_status(&r, 400, "BadRequest", "body namespace differs from the URL");
    assert!(
        s["message"]
            .as_str()
            .unwrap_or_default()
            .contains("namespace"),
        "{s}"
    );
    let mut target = http::get(a, &format!("{PODS}/target")).json();
    target["metadata"]["name"] = json!("renamed");
    let r = http::put_json(a, &format!("{PODS}/target"), &target);
    assert_status(&r, 400, "BadRequest", "body name differs from the URL");
    assert_nothing_stored(&c, &b, "wrong kinds");

    // Invalid names: 422 with the field in the causes.
    for (what, name) in [
        ("uppercase and underscore", "Bad_Name".to_string()),
        ("254 characters", "a".repeat(254)),
        ("leading dash", "-x".to_string()),
    ] {
        let r = http::post_json(a, PODS, &pod(&name));
        let s = assert_status(&r, 422, "Invalid", what);
        assert_eq!(s["details"]["kind"], "Pod", "{what}: {s}");
        let causes = s["details"]["causes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            causes.iter().any(|c| c["field"] == "metadata.name"),
            "{what}: causes must name metadata.name: {s}"
        );
    }
    let mut nameless = pod("x");
    nameless["metadata"] = json!({});
    let r = http::post_json(a, PODS, &nameless);
    let s = assert_status(&r, 422, "Invalid", "no name and no generateName");
    assert!(
        s["message"]
            .as_str()
            .unwrap_or_default()
            .contains("name or generateName is required"),
        "{s}"
    );
    let mut bad_label = pod("x");
    bad_label["metadata"]["labels"] = json!({"bad key!": "v"});
    let r = http::post_json(a, PODS, &bad_label);
    let s = assert_status(&r, 422, "Invalid", "invalid label key");
    assert!(
        s["details"]["causes"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["field"]
                .as_str()
                .is_some_and(|f| f.starts_with("metadata.labels")))),
        "{s}"
    );
    let no_containers =
        json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[]}});
    let r = http::post_json(a, PODS, &no_containers);
    assert_status(&r, 422, "Invalid", "a pod without containers");
    // A namespace that does not exist.
    let r = http::post_json(a, "/api/v1/namespaces/nosuchns/pods", &pod("x"));
    assert_status(&r, 404, "NotFound", "create in a missing namespace");
    assert_nothing_stored(&c, &b, "invalid objects");

    // Unknown and duplicate fields under fieldValidation=Strict.
    let mut unknown = pod("x");
    unknown["spec"]["foo"] = json!("bar");
    let r = http::post_json(a, &format!("{PODS}?fieldValidation=Strict"), &unknown);
    let s = assert_status(&r, 400, "BadRequest", "unknown field, Strict");
    assert!(
        s["message"]
            .as_str()
            .unwrap_or_default()
            .contains(r#"unknown field "spec.foo""#),
        "{s}"
    );
    let dup = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"metadata":{"name":"y"},"spec":{"containers":[{"name":"c","image":"i"}]}}"#;
    let r = http::send(
        a,
        "POST",
        &format!("{PODS}?fieldValidation=Strict"),
        "application/json",
        dup,
    );
    let s = assert_status(&r, 400, "BadRequest", "duplicate field, Strict");
    assert!(
        s["message"]
            .as_str()
            .unwrap_or_default()
            .contains("duplicate field"),
        "{s}"
    );
    assert_nothing_stored(&c, &b, "strict field validation");
    // Warn: accepted, with a warning header; Ignore: accepted silently.
    let r = http::post_json(a, &format!("{PODS}?fieldValidation=Warn"), &unknown);
    assert_eq!(r.status, 201, "{}", r.describe());
    assert!(
        r.header("warning")
            .is_some_and(|w| w.contains("unknown field")),
        "fieldValidation=Warn: Warning header {:?}",
        r.header("warning")
    );
    assert!(
        r.json()["spec"].get("foo").is_none(),
        "unknown fields are dropped"
    );
}

#[test]
fn oversized_bodies() {
    let (c, b) = setup();
    let a = c.addr();
    // Over the 3 MiB request limit: 413 before anything is decoded.
    let big = "x".repeat(3 * 1024 * 1024 + 1024);
    let body =
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"huge"},"data":{"k":big}});
    let r = http::post_json(a, CMS, &body);
    assert_status(&r, 413, "RequestEntityTooLarge", "a 3 MiB body");
    assert_nothing_stored(&c, &b, "3 MiB body");
    // Under the request limit but over the ConfigMap size limit (1 MiB of data): 422.
    let data = "y".repeat(1024 * 1024 + 16);
    let body =
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"k":data}});
    let r = http::post_json(a, CMS, &body);
    assert_status(
        &r,
        422,
        "Invalid",
        "a ConfigMap with more than 1 MiB of data",
    );
    assert_nothing_stored(&c, &b, "1 MiB configmap");
    // A patch that grows an object past the limit.
    let patch = json!({"data":{"k": "z".repeat(1024 * 1024 + 16)}});
    let r = http::send(
        a,
        "PATCH",
        &format!("{CMS}/base"),
        "application/merge-patch+json",
        patch.to_string().as_bytes(),
    );
    assert_status(
        &r,
        422,
        "Invalid",
        "a patch that makes the ConfigMap too large",
    );
    assert_nothing_stored(&c, &b, "patch past the limit");
    // The server still answers normally afterwards.
    assert_eq!(http::get(a, &format!("{CMS}/base")).status, 200);
}

#[test]
fn stale_resource_versions() {
    let (c, _) = setup();
    let a = c.addr();
    let path = format!("{CMS}/base");
    let v1 = http::get(a, &path).json();
    let mut v2 = v1.clone();
    v2["data"]["k"] = json!("v2");
    let r = http::put_json(a, &path, &v2);
    assert_eq!(r.status, 200, "fresh update: {}", r.describe());
    let rv2 = r.json()["metadata"]["resourceVersion"].clone();
    assert_ne!(rv2, v1["metadata"]["resourceVersion"]);

    // PUT with the old resourceVersion.
    let mut stale = v1.clone();
    stale["data"]["k"] = json!("stale");
    let r = http::put_json(a, &path, &stale);
    let s = assert_status(&r, 409, "Conflict", "stale PUT");
    assert_eq!(
        s["message"],
        r#"Operation cannot be fulfilled on configmaps "base": the object has been modified; please apply your changes to the latest version and try again"#,
        "{s}"
    );
    assert_eq!(s["details"]["name"], "base", "{s}");
    assert_eq!(s["details"]["kind"], "configmaps", "{s}");
    // A patch that carries a stale resourceVersion is a precondition too.
    let patch = json!({"metadata":{"resourceVersion": v1["metadata"]["resourceVersion"]},"data":{"k":"stale"}});
    let r = http::send(
        a,
        "PATCH",
        &path,
        "application/merge-patch+json",
        patch.to_string().as_bytes(),
    );
    assert_status(
        &r,
        409,
        "Conflict",
        "merge patch with a stale resourceVersion",
    );
    // DELETE with a stale precondition.
    let del = json!({"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"resourceVersion": v1["metadata"]["resourceVersion"]}});
    let r = http::send(
        a,
        "DELETE",
        &path,
        "application/json",
        del.to_string().as_bytes(),
    );
    assert_status(
        &r,
        409,
        "Conflict",
        "DELETE with a stale resourceVersion precondition",
    );
    let del = json!({"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid": "00000000-0000-0000-0000-000000000000"}});
    let r = http::send(
        a,
        "DELETE",
        &path,
        "application/json",
        del.to_string().as_bytes(),
    );
    assert_status(&r, 409, "Conflict", "DELETE with a wrong uid precondition");
    // A garbage resourceVersion is a client error, not a 500.
    let mut garbage = v1.clone();
    garbage["metadata"]["resourceVersion"] = json!("not-a-number");
    let r = http::put_json(a, &path, &garbage);
    assert_client_error(&r, "PUT with a garbage resourceVersion");
    // None of it was stored.
    let now = http::get(a, &path).json();
    assert_eq!(now["data"]["k"], "v2", "{now}");
    assert_eq!(now["metadata"]["resourceVersion"], rv2, "{now}");
    // Updating a missing object.
    let mut ghost = now.clone();
    ghost["metadata"]["name"] = json!("ghost");
    let r = http::put_json(a, &format!("{CMS}/ghost"), &ghost);
    assert_status(
        &r,
        404,
        "NotFound",
        "PUT of a missing object with a resourceVersion",
    );
    assert_eq!(c.store_key_count("/registry/configmaps/default/ghost"), 0);
}

#[test]
fn bad_requests_elsewhere() {
    let (c, b) = setup();
    let a = c.addr();
    let r = http::get(a, "/api/v1/namespaces/default/nosuchthings");
    assert_status(&r, 404, "NotFound", "unknown resource");
    let r = http::get(a, &format!("{PODS}/nosuch"));
    let s = assert_status(&r, 404, "NotFound", "missing pod");
    assert_eq!(s["message"], r#"pods "nosuch" not found"#, "{s}");
    assert_eq!(s["details"]["name"], "nosuch", "{s}");
    assert_eq!(s["details"]["kind"], "pods", "{s}");
    let r = http::get(a, "/apis/apps/v1/namespaces/default/deployments/nosuch");
    let s = assert_status(&r, 404, "NotFound", "missing deployment");
    assert_eq!(
        s["message"], r#"deployments.apps "nosuch" not found"#,
        "{s}"
    );
    assert_eq!(s["details"]["group"], "apps", "{s}");
    // In a namespace that does not exist, the object is what is not found.
    let r = http::get(a, "/apis/apps/v1/namespaces/nosuchns/deployments/nosuch");
    let s = assert_status(&r, 404, "NotFound", "deployment in a missing namespace");
    assert_eq!(
        s["message"], r#"deployments.apps "nosuch" not found"#,
        "{s}"
    );
    let r = http::get(a, "/api/v1/namespaces/nosuchns/pods");
    assert_eq!(
        r.status,
        200,
        "list in a missing namespace is empty: {}",
        r.describe()
    );
    assert_eq!(r.json()["items"], json!([]), "{}", r.describe());
    let r = http::post_json(a, PODS, &pod("target"));
    let s = assert_status(&r, 409, "AlreadyExists", "duplicate create");
    assert_eq!(s["message"], r#"pods "target" already exists"#, "{s}");
    let r = http::get(a, &format!("{PODS}?labelSelector=a%3D%3D%3Db%3D"));
    assert_status(&r, 400, "BadRequest", "malformed label selector");
    let r = http::get(a, &format!("{PODS}?fieldSelector=spec.nosuch%3Dx"));
    assert_status(&r, 400, "BadRequest", "unsupported field selector");
    let r = http::get(a, &format!("{PODS}?limit=5&continue=garbage"));
    assert_status(&r, 400, "BadRequest", "garbage continue token");
    let r = http::send(
        a,
        "PUT",
        PODS,
        "application/json",
        pod("x").to_string().as_bytes(),
    );
    assert_status(&r, 405, "MethodNotAllowed", "PUT on a collection");
    assert_nothing_stored(&c, &b, "bad requests");
    // The target pod is intact and the server healthy.
    let t = http::get(a, &format!("{PODS}/target"));
    assert_eq!(t.status, 200, "{}", t.describe());
    assert_eq!(http::must(a, "GET", "/readyz", &[], None).status, 200);
}
