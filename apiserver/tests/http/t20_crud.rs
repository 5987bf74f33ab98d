//! Create/get/list/update/delete, errors as Status, pagination, selectors, Table output.

use serde_json::json;

use crate::support::Server;

const CM: &str = "/api/v1/namespaces/default/configmaps";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

fn cm(name: &str, labels: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

#[tokio::test]
async fn create_get_update_delete_with_status_errors() {
    let s = Server::start().await;
    let r = s.post(CM, &cm("a", json!({"app": "x"}))).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let created = r.json();
    assert_eq!(created["kind"], "ConfigMap");
    assert_eq!(created["metadata"]["namespace"], "default");
    assert!(created["metadata"]["uid"].as_str().unwrap().len() == 36);
    assert!(created["metadata"]["creationTimestamp"].is_string());
    let rv1 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let dup = s.post(CM, &cm("a", json!({}))).await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.json()["reason"], "AlreadyExists");
    assert_eq!(dup.json()["message"], "configmaps \"a\" already exists");

    let missing = s.get(&format!("{CM}/nosuch")).await;
    assert_eq!(missing.status, 404);
    let st = missing.json();
    assert_eq!(st["reason"], "NotFound");
    assert_eq!(st["details"]["name"], "nosuch");
    assert_eq!(st["details"]["kind"], "configmaps");

    let mut upd = created.clone();
    upd["data"]["k"] = json!("w");
    let ok = s.put(&format!("{CM}/a"), &upd).await;
    assert_eq!(ok.status, 200);
    let rv2 = ok.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rv1, rv2);
    assert_eq!(ok.json()["metadata"]["uid"], created["metadata"]["uid"]);
    // Stale resourceVersion: 409 Conflict.
    let stale = s.put(&format!("{CM}/a"), &upd).await;
    assert_eq!(stale.status, 409);
    assert_eq!(stale.json()["reason"], "Conflict");

    let bad = s
        .request(
            "POST",
            CM,
            &[("Content-Type", "application/json")],
            b"{not json",
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["reason"], "BadRequest");
    let media = s
        .request("POST", CM, &[("Content-Type", "text/plain")], b"x")
        .await;
    assert_eq!(media.status, 415);
    let wrong_ns = s
        .post("/api/v1/namespaces/nope/configmaps", &cm("b", json!({})))
        .await;
    assert_eq!(wrong_ns.status, 404);
    assert_eq!(wrong_ns.json()["message"], "namespaces \"nope\" not found");
    let big = vec![b'x'; 4 * 1024 * 1024];
    let too_large = s
        .request("POST", CM, &[("Content-Type", "application/json")], &big)
        .await;
    assert_eq!(too_large.status, 413);

    let del = s
        .delete(&format!("{CM}/a"), r#"{"propagationPolicy":"Background"}"#)
        .await;
    assert_eq!(del.status, 200);
    assert_eq!(del.json()["metadata"]["name"], "a");
    assert_eq!(s.get(&format!("{CM}/a")).await.status, 404);
    s.stop().await;
}

#[tokio::test]
async fn generate_name_list_pagination_selectors_and_table() {
    let s = Server::start().await;
    for i in 0..5 {
        let labels = if i % 2 == 0 {
            json!({"even": "yes"})
        } else {
            json!({"even": "no"})
        };
        let r = s.post(CM, &cm(&format!("c{i}"), labels)).await;
        assert_eq!(r.status, 201);
    }
    let g = s
        .post(
            CM,
            &json!({"metadata": {"generateName": "gen-"}, "data": {}}),
        )
        .await;
    assert_eq!(g.status, 201);
    let gname = g.json()["metadata"]["name"].as_str().unwrap().to_string();
    assert!(gname.starts_with("gen-") && gname.len() == 9, "{gname}");

    // Pages of 2 until done: 6 objects, all at one resourceVersion.
    let mut names = Vec::new();
    let mut path = format!("{CM}?limit=2");
    let mut rv = None;
    for _ in 0..10 {
        let page = s.get(&path).await.json();
        assert_eq!(page["kind"], "ConfigMapList");
        let prv = page["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(rv.get_or_insert(prv.clone()), &prv);
        for it in page["items"].as_array().unwrap() {
            names.push(it["metadata"]["name"].as_str().unwrap().to_string());
        }
        match page["metadata"]["continue"].as_str() {
            Some(c) => path = format!("{CM}?limit=2&continue={c}"),
            None => break,
        }
    }
    assert_eq!(names.len(), 6, "{names:?}");

    let even = s
        .get(&format!("{CM}?labelSelector=even%3Dyes&limit=2"))
        .await
        .json();
    let n1 = even["items"].as_array().unwrap().len();
    assert_eq!(n1, 2);
    assert!(even["metadata"]["continue"].is_string());
    let by_name = s
        .get(&format!("{CM}?fieldSelector=metadata.name%3Dc3"))
        .await
        .json();
    assert_eq!(by_name["items"].as_array().unwrap().len(), 1);
    let bad = s.get(&format!("{CM}?fieldSelector=spec.foo%3Dx")).await;
    assert_eq!(bad.status, 400);
    let empty = s
        .get("/api/v1/namespaces/kube-public/configmaps")
        .await
        .json();
    assert_eq!(empty["items"], json!([]));

    let t = s.request("GET", CM, &[("Accept", TABLE)], b"").await.json();
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["rows"].as_array().unwrap().len(), 6);
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert!(t["metadata"]["resourceVersion"].is_string());

    let dc = s
        .request(
            "DELETE",
            &format!("{CM}?labelSelector=even%3Dyes"),
            &[],
            b"",
        )
        .await;
    assert_eq!(dc.status, 200);
    assert_eq!(dc.json()["items"].as_array().unwrap().len(), 3);
    let left = s.get(CM).await.json();
    assert_eq!(left["items"].as_array().unwrap().len(), 3);
    s.stop().await;
}

#[tokio::test]
async fn strict_field_validation_rejects_unknown_and_duplicate_fields() {
    let s = Server::start().await;
    let dup = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"metadata":{"name":"y"}}"#;
    let r = s
        .request(
            "POST",
            &format!("{CM}?fieldValidation=Strict"),
            &[("Content-Type", "application/json")],
            dup,
        )
        .await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(msg.contains("duplicate field \"metadata\""), "{msg}");
    let unknown = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"u"},"foo":1}"#;
    let r = s
        .request(
            "POST",
            &format!("{CM}?fieldValidation=Strict"),
            &[("Content-Type", "application/json")],
            unknown,
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"foo\""
    );
    // Warn (the default): created, unknown field dropped, Warning header.
    let r = s
        .request("POST", CM, &[("Content-Type", "application/json")], unknown)
        .await;
    assert_eq!(r.status, 201);
    assert!(r.json().get("foo").is_none());
    assert_eq!(
        r.header("warning"),
        Some("299 - \"unknown field \\\"foo\\\"\"")
    );
    s.stop().await;
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let s = Server::start().await;
    let r = s
        .post(&format!("{CM}?dryRun=All"), &cm("dry", json!({})))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["metadata"]["name"], "dry");
    assert_eq!(s.get(&format!("{CM}/dry")).await.status, 404);
    let bad = s
        .post(&format!("{CM}?dryRun=Some"), &cm("dry", json!({})))
        .await;
    assert_eq!(bad.status, 400);
    s.stop().await;
}

#[tokio::test]
async fn overload_answers_429_with_retry_after() {
    // A server with one mutating slot, held by a request whose body never finishes arriving.
    let storage = std::sync::Arc::new(navarch_apiserver::memory::MemoryStorage::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = navarch_apiserver::Config::memory(&addr.to_string());
    cfg.max_mutating_requests_inflight = 1;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(navarch_apiserver::serve(
        cfg,
        storage,
        listener,
        async move {
            let _ = rx.await;
        },
    ));
    use tokio::io::AsyncWriteExt;
    let mut slow = loop {
        if let Ok(c) = tokio::net::TcpStream::connect(addr).await {
            break c;
        }
        tokio::task::yield_now().await;
    };
    // Wait until the server answers at all.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while crate::support::request(addr, "GET", "/livez", &[], b"")
        .await
        .status
        != 200
    {
        assert!(tokio::time::Instant::now() < deadline);
    }
    slow.write_all(format!("POST {CM} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{").as_bytes())
        .await
        .unwrap();
    // Poll until the slow request holds the slot (bounded).
    let mut got = None;
    for _ in 0..200 {
        let r = crate::support::request(addr, "DELETE", &format!("{CM}/x"), &[], b"").await;
        if r.status == 429 {
            got = Some(r);
            break;
        }
        tokio::task::yield_now().await;
    }
    let r = got.expect("a 429 while the only mutating slot is taken");
    assert_eq!(r.json()["reason"], "TooManyRequests");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Reads have their own slots.
    assert_eq!(
        crate::support::request(addr, "GET", CM, &[], b"")
            .await
            .status,
        200
    );
    drop(slow);
    let _ = tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
