//! /version, health, metrics, discovery (legacy and aggregated), OpenAPI caching rules.

use crate::support::Server;

const AGG_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

#[tokio::test]
async fn version_health_and_metrics() {
    let s = Server::start().await;
    let v = s.get("/version").await;
    assert_eq!(v.status, 200);
    assert_eq!(v.json()["minor"], "33");
    for p in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(s.get(p).await.status, 200, "{p}");
    }
    s.get("/api/v1/namespaces").await;
    let m = s.get("/metrics").await;
    assert_eq!(m.status, 200);
    let text = String::from_utf8_lossy(&m.body);
    assert!(text.contains("apiserver_request_total"), "{text}");
    assert!(text.contains("resource=\"namespaces\""), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn legacy_and_aggregated_discovery() {
    let s = Server::start().await;
    let api = s
        .request("GET", "/api", &[("Accept", "application/json, */*")], b"")
        .await;
    assert_eq!(api.json()["kind"], "APIVersions");
    let agg = s.request("GET", "/apis", &[("Accept", AGG_V2)], b"").await;
    assert_eq!(
        agg.header("content-type"),
        Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    );
    assert_eq!(agg.json()["kind"], "APIGroupDiscoveryList");
    let core = s.request("GET", "/api", &[("Accept", AGG_V2)], b"").await;
    assert_eq!(core.json()["items"][0]["versions"][0]["version"], "v1");
    let v1 = s.get("/api/v1").await.json();
    let ev = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods/eviction")
        .cloned()
        .unwrap();
    assert_eq!(ev["group"], "policy");
    let apps = s.get("/apis/apps/v1").await.json();
    assert!(apps["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "deployments/scale"));
    let missing = s.get("/apis/nosuch.io/v1").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["kind"], "Status");
    s.stop().await;
}

#[tokio::test]
async fn openapi_hashes_etags_and_v2_content_type() {
    let s = Server::start().await;
    let v2 = s
        .request(
            "GET",
            "/openapi/v2",
            &[(
                "Accept",
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            )],
            b"",
        )
        .await;
    assert_eq!(v2.status, 200);
    assert_eq!(
        v2.header("content-type"),
        Some("application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    );
    let root = s.get("/openapi/v3").await.json();
    let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let hash = url.split("hash=").nth(1).unwrap().to_string();
    let doc = s.get(&url).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.header("etag"), Some(format!("\"{hash}\"").as_str()));
    assert_eq!(doc.header("cache-control"), Some("public, immutable"));
    assert!(doc.json()["paths"].is_object());
    let stale = s.get("/openapi/v3/apis/apps/v1?hash=0000").await;
    assert_eq!(stale.status, 301);
    assert_eq!(stale.header("location"), Some(url.as_str()));
    let etag = format!("\"{hash}\"");
    let cached = s
        .request("GET", &url, &[("If-None-Match", etag.as_str())], b"")
        .await;
    assert_eq!(cached.status, 304);
    assert_eq!(s.get("/openapi/v3/apis/nosuch/v1").await.status, 404);
    s.stop().await;
}
