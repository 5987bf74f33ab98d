//! Watches and exact lists from a resourceVersion the store has compacted away: 410 Expired (as
//! an HTTP Status or as an ERROR event in the stream), and a fresh list+watch recovers.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::http::{self, WatchStream};
use crate::support::store::etcdctl;
use crate::support::TestCluster;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no numeric resourceVersion: {obj}"))
}

fn assert_expired(s: &Value, what: &str) {
    assert_eq!(s["kind"], "Status", "{what}: {s}");
    assert_eq!(s["code"], 410, "{what}: {s}");
    assert!(
        s["reason"] == "Expired" || s["reason"] == "Gone",
        "{what}: reason Expired (or Gone): {s}"
    );
}

#[test]
fn compacted_resource_versions_are_expired() {
    let mut c = TestCluster::start();
    let mut rvs = Vec::new();
    for i in 0..10 {
        let r = http::post_json(
            c.addr(),
            CMS,
            &json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":format!("c{i}")}}),
        );
        assert_eq!(r.status, 201, "{}", r.describe());
        rvs.push(rv_of(&r.json()));
    }
    let last = *rvs.last().expect("writes");
    let (ok, out, err) = etcdctl(&c.store.endpoints(), &["compact", &last.to_string()], None);
    assert!(ok, "etcdctl compact {last}: {out} {err}");
    // A fresh apiserver process: its watch cache starts after the compaction.
    c.apiservers[0].kill9();
    c.apiservers[0].restart();
    c.apiservers[0].wait_ready(Duration::from_secs(45));
    let a = c.addr().to_string();

    // Watch from before the compaction.
    let old = rvs[1];
    let mut w = WatchStream::open(
        &a,
        &format!("{CMS}?watch=true&resourceVersion={old}"),
        "application/json",
    )
    .expect("open watch");
    if w.status == 200 {
        let ev = w
            .next_event(Duration::from_secs(10))
            .expect("read")
            .unwrap_or_else(|| panic!("no event on a watch from compacted rv {old}"));
        assert_eq!(ev["type"], "ERROR", "first event from a compacted rv: {ev}");
        assert_expired(&ev["object"], "watch ERROR event");
    } else {
        assert_eq!(w.status, 410, "watch from compacted rv: {}", w.rest_text());
        let s: Value = serde_json::from_str(w.rest_text().trim()).expect("Status JSON");
        assert_expired(&s, "watch answer");
    }

    // An exact list at a compacted revision.
    let r = http::get(
        &a,
        &format!("{CMS}?resourceVersion={old}&resourceVersionMatch=Exact"),
    );
    assert_eq!(r.status, 410, "{}", r.describe());
    assert_expired(&r.json(), "exact list");

    // Recovery as clients do it: list, then watch from the list's resourceVersion.
    let list = http::get(&a, CMS).json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(10), "{list}");
    let from = rv_of(&list);
    assert!(from >= last, "list rv {from} < last write {last}");
    let mut w = WatchStream::open(
        &a,
        &format!("{CMS}?watch=true&resourceVersion={from}"),
        "application/json",
    )
    .expect("open watch");
    assert_eq!(w.status, 200, "{}", w.rest_text());
    let r = http::post_json(
        &a,
        CMS,
        &json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"after"}}),
    );
    assert_eq!(r.status, 201, "{}", r.describe());
    let ev = w
        .next_event(Duration::from_secs(10))
        .expect("read")
        .expect("an event for the new object");
    assert_eq!(ev["type"], "ADDED", "{ev}");
    assert_eq!(ev["object"]["metadata"]["name"], "after", "{ev}");
}
