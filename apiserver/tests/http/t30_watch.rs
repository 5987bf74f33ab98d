//! Watch: list-then-watch, event types and kinds, sendInitialEvents, 410 Expired.

use std::time::Duration;

use serde_json::json;

use crate::support::{Server, Watch};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn watch_from_list_resource_version() {
    let s = Server::start().await;
    s.post(CM, &json!({"metadata": {"name": "before"}})).await;
    let list = s.get(CM).await.json();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut w = Watch::open(
        s.addr,
        &format!("{CM}?watch=true&resourceVersion={rv}"),
        "application/json",
    )
    .await;
    assert_eq!(w.status, 200);
    assert_eq!(
        w.content_type.as_deref(),
        Some("application/json;stream=watch")
    );
    let created = s
        .post(CM, &json!({"metadata": {"name": "w1"}, "data": {"a": "1"}}))
        .await
        .json();
    let ev = w.next(T).await.unwrap();
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["kind"], "ConfigMap");
    assert_eq!(ev["object"]["apiVersion"], "v1");
    assert_eq!(ev["object"]["metadata"]["name"], "w1");
    let mut upd = created.clone();
    upd["data"]["a"] = json!("2");
    assert_eq!(s.put(&format!("{CM}/w1"), &upd).await.status, 200);
    let ev = w.next(T).await.unwrap();
    assert_eq!(ev["type"], "MODIFIED");
    assert_eq!(ev["object"]["data"]["a"], "2");
    s.delete(&format!("{CM}/w1"), "").await;
    let ev = w.next(T).await.unwrap();
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(ev["object"]["kind"], "ConfigMap");
    s.stop().await;
}

#[tokio::test]
async fn watch_without_rv_sends_initial_state_and_selector_transitions() {
    let s = Server::start().await;
    s.post(
        CM,
        &json!({"metadata": {"name": "x", "labels": {"app": "a"}}}),
    )
    .await;
    let mut w = Watch::open(
        s.addr,
        &format!("{CM}?watch=1&labelSelector=app%3Da"),
        "application/json",
    )
    .await;
    let ev = w.next(T).await.unwrap();
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("x"))
    );
    // Moving the object out of the selector is a DELETED for this watcher.
    let r = s
        .patch(
            &format!("{CM}/x"),
            "application/merge-patch+json",
            r#"{"metadata":{"labels":{"app":"b"}}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ev = w.next(T).await.unwrap();
    assert_eq!(ev["type"], "DELETED");
    s.stop().await;
}

#[tokio::test]
async fn send_initial_events_ends_with_bookmark_and_expired_is_an_error_event() {
    let s = Server::start().await;
    s.post(CM, &json!({"metadata": {"name": "i1"}})).await;
    let mut w = Watch::open(
        s.addr,
        &format!("{CM}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"),
        "application/json",
    )
    .await;
    let ev = w.next(T).await.unwrap();
    assert_eq!(ev["type"], "ADDED");
    let bm = w.next(T).await.unwrap();
    assert_eq!(bm["type"], "BOOKMARK");
    assert_eq!(bm["object"]["kind"], "ConfigMap");
    assert_eq!(
        bm["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    let rv: i64 = s.get(CM).await.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    s.storage.compact(rv);
    let mut old = Watch::open(
        s.addr,
        &format!("{CM}?watch=true&resourceVersion=1"),
        "application/json",
    )
    .await;
    assert_eq!(old.status, 200);
    let ev = old.next(T).await.unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    assert!(
        old.next(T).await.is_none(),
        "the stream ends after the error"
    );
    s.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_watches() {
    let s = Server::start().await;
    let mut w = Watch::open(
        s.addr,
        &format!("{CM}?watch=true&resourceVersion=1"),
        "application/json",
    )
    .await;
    let addr = s.addr;
    let stopper = tokio::spawn(s.stop());
    assert!(w.next(T).await.is_none(), "the watch ends on shutdown");
    stopper.await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}

#[tokio::test]
async fn table_watch_sends_columns_once() {
    let s = Server::start().await;
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let mut w = Watch::open(
        s.addr,
        &format!("{CM}?watch=true&resourceVersion=1"),
        accept,
    )
    .await;
    s.post(CM, &json!({"metadata": {"name": "t1"}})).await;
    s.post(CM, &json!({"metadata": {"name": "t2"}})).await;
    let first = w.next(T).await.unwrap();
    assert_eq!(first["object"]["kind"], "Table");
    assert!(first["object"]["columnDefinitions"]
        .as_array()
        .is_some_and(|c| !c.is_empty()));
    assert_eq!(
        first["object"]["rows"][0]["object"]["metadata"]["name"],
        "t1"
    );
    let second = w.next(T).await.unwrap();
    assert!(second["object"].get("columnDefinitions").is_none());
    assert_eq!(second["object"]["rows"][0]["cells"][0], "t2");
    s.stop().await;
}

#[tokio::test]
async fn timeout_seconds_ends_the_watch_and_idle_bookmarks_flow() {
    let s = Server::start().await;
    let started = std::time::Instant::now();
    let mut w = Watch::open(
        s.addr,
        &format!("{CM}?watch=true&resourceVersion=1&allowWatchBookmarks=true&timeoutSeconds=3"),
        "application/json",
    )
    .await;
    // The test server sends an idle bookmark every second.
    let bm = w.next(T).await.unwrap();
    assert_eq!(bm["type"], "BOOKMARK");
    assert_eq!(bm["object"]["kind"], "ConfigMap");
    let mut ended = false;
    for _ in 0..10 {
        match w.next(T).await {
            Some(ev) => assert_eq!(ev["type"], "BOOKMARK"),
            None => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "the watch ends after timeoutSeconds");
    assert!(started.elapsed() >= Duration::from_secs(3));
    s.stop().await;
}
