//! Group commit on a real 3-node cluster: concurrent client writes (through the leader and
//! through followers, which forward them in batches per destination member, where they join
//! the leader's own batches) ride in few Raft entries and fsyncs, yet every write gets its own
//! revision, gap-free, and a watch sees each exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use navarch_raftstore::proto::etcdserverpb::{watch_request, WatchCreateRequest, WatchRequest};

use crate::support::{http_get, metric, Client, Cluster};

const WRITERS: usize = 48;
const PUTS_EACH: usize = 20;

/// Sum of a counter over every member's `/metrics`.
fn cluster_counter(c: &Cluster, name: &str) -> f64 {
    c.nodes
        .iter()
        .map(|n| {
            let (_, body) = http_get(&n.client_addr, "/metrics").unwrap();
            metric(&body, name).unwrap_or(0.0)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_entries_and_each_keeps_its_own_revision() {
    let c = Cluster::start(3, &[]);
    let mut clients = Vec::new();
    for n in &c.nodes {
        clients.push(Client::connect_eventually(&n.client_addr).await);
    }
    c.wait_leader(Duration::from_secs(30)).await;
    let base = clients[0].put("/registry/pods/gc/base", "b").await.unwrap();
    let entries_before = cluster_counter(&c, "navarch_store_log_entries_appended_total");

    // A watch from just after `base` on the pods shard, opened before the writes.
    let mut w = clients[1].watch.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b"/registry/pods/gc/".to_vec(),
                range_end: b"/registry/pods/gc0".to_vec(),
                start_revision: base + 1,
                ..Default::default()
            },
        )),
    })
    .await
    .unwrap();
    let mut stream = w
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let mut cl = clients[i % clients.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for j in 0..PUTS_EACH {
                revs.push(
                    cl.put(&format!("/registry/pods/gc/w{i:02}-{j:02}"), "v")
                        .await
                        .unwrap_or_else(|e| panic!("writer {i} put {j}: {e}")),
                );
            }
            revs
        }));
    }
    let mut revs = BTreeSet::new();
    for t in tasks {
        for r in t.await.unwrap() {
            assert!(revs.insert(r), "revision {r} acknowledged twice");
        }
    }
    let n = (WRITERS * PUTS_EACH) as i64;
    let want: BTreeSet<i64> = (base + 1..=base + n).collect();
    assert_eq!(revs, want, "every write its own revision, no gaps");

    // The watch delivers each revision exactly once, in order.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while (seen.len() as i64) < n {
        let resp = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("watch events in time")
            .unwrap()
            .expect("watch stream open");
        for ev in resp.events {
            seen.push(ev.kv.unwrap().mod_revision);
        }
    }
    assert_eq!(seen, want.iter().copied().collect::<Vec<_>>());

    // Few entries: the writes took far fewer log entries per member than there were writes
    // (the count also holds the odd lease checkpoint or blank entry of a new leader).
    let batches = cluster_counter(&c, "navarch_store_proposal_batches_total");
    let batched = cluster_counter(&c, "navarch_store_proposal_batched_requests_total");
    let entries = cluster_counter(&c, "navarch_store_log_entries_appended_total") - entries_before;
    assert!(
        batched >= n as f64,
        "{batched} batched requests for {n} writes"
    );
    assert!(
        batched / batches >= 2.0,
        "{batched} requests in {batches} batches: concurrent writes did not share entries"
    );
    // Two thirds of the writers talk to followers: their writes travel in shared forward
    // requests (per destination member) and then join the leader's batches (counted above).
    let forwards = cluster_counter(&c, "navarch_store_forward_batches_total");
    let forwarded = cluster_counter(&c, "navarch_store_forward_batched_requests_total");
    assert!(
        forwarded >= n as f64 / 3.0,
        "{forwarded} of {n} writes forwarded per member"
    );
    assert!(
        forwarded / forwards >= 2.0,
        "{forwarded} forwarded writes in {forwards} requests: they did not share requests"
    );
    // Each entry is appended on 3 members.
    assert!(
        entries / 3.0 < n as f64 / 2.0,
        "{entries} log appends across 3 members for {n} writes"
    );
}
