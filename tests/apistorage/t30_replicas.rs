//! Several apiserver replicas (each its own store client and watch cache) over one store: the
//! same events at the same revisions, so a client resumes on another replica without a gap
//! or a duplicate, even when its replica goes away mid-watch.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use navarch_apiserver::storage::testing::next_event;
use navarch_apiserver::storage::{EventKind, ReadRevision, Revision, Storage, WatchItem};

use crate::support::{cache_over, test_cache_config, unique_prefix, Kind, Store};

type Seen = (EventKind, String, Revision, Bytes);

async fn replicas_resume(kind: Kind) {
    let Some(store) = Store::start(kind).await else {
        return;
    };
    // Two replicas: separate connections, separate caches.
    let a = cache_over(store.etcd_storage().await, test_cache_config());
    let b = cache_over(store.etcd_storage().await, test_cache_config());
    let p = unique_prefix("replicas");
    let start = a.current_revision(&p).await.unwrap();
    let mut wa = a.watch(&p, start).await.unwrap();
    let mut wb = b.watch(&p, start).await.unwrap();
    // Writes through both replicas.
    let mut written = Vec::new();
    for i in 0..30 {
        let via: &dyn Storage = if i % 2 == 0 { a.as_ref() } else { b.as_ref() };
        let k = format!("{p}obj-{}", i % 10);
        let o = match via.get(&k, ReadRevision::Latest).await.unwrap() {
            None => via.create(&k, Bytes::from(format!("{i}"))).await.unwrap(),
            Some(cur) if i % 3 == 0 => via.delete(&k, Some(cur.mod_revision)).await.unwrap(),
            Some(cur) => via
                .update(&k, Bytes::from(format!("{i}")), cur.mod_revision)
                .await
                .unwrap(),
        };
        written.push(o.mod_revision);
    }
    let mut seen_a: Vec<Seen> = Vec::new();
    let mut seen_b: Vec<Seen> = Vec::new();
    for _ in 0..30 {
        let e = next_event(&mut wa).await.unwrap();
        seen_a.push((e.kind, e.object.key, e.object.mod_revision, e.object.value));
        let e = next_event(&mut wb).await.unwrap();
        seen_b.push((e.kind, e.object.key, e.object.mod_revision, e.object.value));
    }
    assert_eq!(seen_a, seen_b, "the replicas disagree");
    let revs: Vec<Revision> = seen_a.iter().map(|s| s.2).collect();
    assert_eq!(revs, written, "the events are not the writes, in order");

    // A client on replica A reads up to the 12th event of a new batch, then A dies.
    let resume_start = *written.last().unwrap();
    let mut wa = a.watch(&p, resume_start).await.unwrap();
    let mut batch = Vec::new();
    for i in 0..25 {
        let k = format!("{p}late-{i}");
        batch.push(
            a.create(&k, Bytes::from(format!("{i}")))
                .await
                .unwrap()
                .mod_revision,
        );
    }
    let mut client: Vec<Revision> = Vec::new();
    while client.len() < 12 {
        match tokio::time::timeout(Duration::from_secs(10), wa.next()).await {
            Ok(Some(Ok(WatchItem::Event(e)))) => client.push(e.object.mod_revision),
            Ok(Some(Ok(WatchItem::Progress(_)))) => {}
            other => panic!("watch on replica A: {other:?}"),
        }
    }
    drop(a);
    // Replica A's watch ends (its cache stopped) rather than hanging or inventing events.
    match tokio::time::timeout(Duration::from_secs(10), wa.next()).await {
        Ok(Some(Ok(WatchItem::Event(e)))) => {
            // Events already queued before the stop may still drain; they must be in order.
            assert_eq!(e.object.mod_revision, batch[12]);
        }
        Ok(Some(Ok(WatchItem::Progress(_)))) | Ok(Some(Err(_))) | Ok(None) => {}
        Err(_) => panic!("replica A's watch neither delivered nor ended after the replica stopped"),
    }
    drop(wa);
    // The client resumes on B from its last revision.
    let last = *client.last().unwrap();
    let mut wb = b.watch(&p, last).await.unwrap();
    while client.len() < batch.len() {
        let e = next_event(&mut wb).await.unwrap();
        client.push(e.object.mod_revision);
    }
    assert_eq!(
        client, batch,
        "resuming on another replica lost or repeated events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_agree_and_clients_resume_on_navarch_store() {
    replicas_resume(Kind::Navarch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_agree_and_clients_resume_on_etcd34() {
    replicas_resume(Kind::Etcd).await;
}
