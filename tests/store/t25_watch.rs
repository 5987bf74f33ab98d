//! Watch semantics against a real store process: filters, prev_kv, cancel, progress
//! notifications (requested and periodic), and a slow watcher that is cancelled without
//! stalling writes and resumes from its last revision.

use std::time::{Duration, Instant};

use navarch_raftstore::proto::etcdserverpb::{
    watch_create_request::FilterType, watch_request::RequestUnion, DeleteRangeRequest,
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::Streaming;

use crate::support::{Client, Cluster};

struct W {
    tx: mpsc::Sender<WatchRequest>,
    rx: Streaming<WatchResponse>,
}

impl W {
    async fn open(c: &mut Client) -> W {
        let (tx, rx) = mpsc::channel(16);
        let rx = c
            .watch
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        W { tx, rx }
    }
    async fn send(&self, r: RequestUnion) {
        self.tx
            .send(WatchRequest {
                request_union: Some(r),
            })
            .await
            .unwrap();
    }
    async fn next(&mut self) -> WatchResponse {
        tokio::time::timeout(Duration::from_secs(10), self.rx.next())
            .await
            .expect("watch response within 10s")
            .expect("stream open")
            .expect("no stream error")
    }
    async fn create(&mut self, c: WatchCreateRequest) -> i64 {
        self.send(RequestUnion::CreateRequest(c)).await;
        let r = self.next().await;
        assert!(r.created && !r.canceled, "create answered {r:?}");
        r.watch_id
    }
}

fn create(key: &str, end: &str, start: i64) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.into(),
        range_end: end.into(),
        start_revision: start,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_prev_kv_cancel_and_progress_notifications() {
    let c = Cluster::start(1, &["--watch-progress-notify-interval-ms", "300"]);
    let mut cl = Client::connect_eventually(&c.nodes[0].client_addr).await;
    let mut w = W::open(&mut cl).await;

    // Two watchers on one stream: one with prev_kv and the NOPUT filter, one plain.
    let deletes = w
        .create(WatchCreateRequest {
            prev_kv: true,
            filters: vec![FilterType::Noput as i32],
            ..create("/w/", "/w0", 0)
        })
        .await;
    let all = w.create(create("/w/", "/w0", 0)).await;
    assert_ne!(deletes, all);
    let r1 = cl.put("/w/a", "1").await.unwrap();
    cl.kv
        .delete_range(DeleteRangeRequest {
            key: b"/w/a".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let r = w.next().await;
        if !r.events.is_empty() {
            got.push(r);
        }
    }
    let by_id = |id: i64| {
        got.iter()
            .find(|r| r.watch_id == id)
            .expect("response for watcher")
    };
    let plain = by_id(all);
    assert_eq!(
        plain.events.len(),
        1,
        "first batch of the plain watcher: {plain:?}"
    );
    assert_eq!(plain.events[0].kv.as_ref().unwrap().mod_revision, r1);
    assert!(plain.events[0].prev_kv.is_none());
    let del = by_id(deletes);
    assert_eq!(
        del.events.len(),
        1,
        "NOPUT watcher sees only the delete: {del:?}"
    );
    assert_eq!(del.events[0].r#type, 1);
    assert_eq!(del.events[0].prev_kv.as_ref().unwrap().value, b"1");

    // Cancel the filtered watcher; the other keeps going.
    w.send(RequestUnion::CancelRequest(WatchCancelRequest {
        watch_id: deletes,
    }))
    .await;
    let mut cancelled = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cancelled && Instant::now() < deadline {
        let r = w.next().await;
        cancelled = r.watch_id == deletes && r.canceled;
    }
    assert!(cancelled, "cancel acknowledged");

    // Requested progress: watch id -1, header revision = the store revision, after all events.
    let r2 = cl.put("/w/b", "2").await.unwrap();
    w.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
        .await;
    let mut saw_b = false;
    loop {
        let r = w.next().await;
        if r.events
            .iter()
            .any(|e| e.kv.as_ref().unwrap().mod_revision == r2)
        {
            saw_b = true;
        }
        if r.watch_id == -1 && r.events.is_empty() && !r.created {
            assert!(
                saw_b,
                "the progress response must come after every event below its revision"
            );
            assert!(r.header.unwrap().revision >= r2);
            break;
        }
    }

    // Periodic progress notifications for a watcher that asked for them, while idle.
    let notify = w
        .create(WatchCreateRequest {
            progress_notify: true,
            ..create("/idle", "", 0)
        })
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < deadline,
            "no periodic progress notification"
        );
        let r = w.next().await;
        if r.watch_id == notify && r.events.is_empty() && !r.created && !r.canceled {
            assert!(r.header.unwrap().revision >= r2);
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_is_cancelled_without_stalling_writes_and_resumes_from_its_revision() {
    let c = Cluster::start(1, &["--watch-buffer", "8"]);
    let mut cl = Client::connect_eventually(&c.nodes[0].client_addr).await;
    let start = cl.put("/slow/0", "x").await.unwrap();
    let mut w = W::open(&mut cl).await;
    let id = w.create(create("/slow/", "/slow0", start)).await;

    // Never read the stream while writing far more than the watch buffer and HTTP/2 windows.
    let value = "v".repeat(4096);
    let t = Instant::now();
    let mut last = start;
    for i in 1..=1500 {
        last = cl.put(&format!("/slow/{i}"), &value).await.unwrap();
    }
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "writes stalled behind a slow watcher"
    );

    // Now read: events from `start` in order, then a cancel naming the revision to resume from.
    let mut next_expected = start;
    let resume = loop {
        let r = w.next().await;
        for e in &r.events {
            let rev = e.kv.as_ref().unwrap().mod_revision;
            assert_eq!(rev, next_expected, "gap or duplicate before the cancel");
            next_expected += 1;
        }
        if r.canceled {
            assert_eq!(r.watch_id, id);
            let n: i64 = r
                .cancel_reason
                .rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .expect("resume revision in reason");
            assert_eq!(
                n, next_expected,
                "resume point is the first undelivered revision: {}",
                r.cancel_reason
            );
            break n;
        }
    };
    assert!(resume <= last, "the watcher fell behind before the end");

    // Resuming from there delivers the rest, without gaps, up to the last write.
    let mut w2 = W::open(&mut cl).await;
    w2.create(create("/slow/", "/slow0", resume)).await;
    let mut want = resume;
    while want <= last {
        let r = w2.next().await;
        for e in r.events {
            assert_eq!(e.kv.unwrap().mod_revision, want);
            want += 1;
        }
    }
    // The store kept serving throughout.
    assert_eq!(cl.get("/slow/1500").await.unwrap().1, last);
}

/// Requested progress never overtakes events: under concurrent writes, a progress response at
/// revision R comes only after every event ≤ R (the apiserver's watch cache relies on it for
/// consistent reads; a violation shows up there as "an event at revision R after revision R").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_responses_never_overtake_events_under_concurrent_writes() {
    const WRITERS: usize = 8;
    const PUTS_EACH: usize = 150;
    let c = Cluster::start(1, &[]);
    let mut cl = Client::connect_eventually(&c.nodes[0].client_addr).await;
    let mut w = W::open(&mut cl).await;
    w.create(create("/race/", "/race0", 0)).await;

    let mut writers = Vec::new();
    for t in 0..WRITERS {
        let mut wc = cl.clone();
        writers.push(tokio::spawn(async move {
            // Large values fill the stream's send buffer, so delivering drained events waits
            // on the client: the window in which new revisions are published while a progress
            // response is being prepared.
            let value = "v".repeat(32 * 1024);
            for i in 0..PUTS_EACH {
                wc.put(&format!("/race/{t}/{i}"), &value).await.unwrap();
            }
        }));
    }
    let tx = w.tx.clone();
    let asker = tokio::spawn(async move {
        // Bounded: at most 5,000 requests, one every 2 ms, while the writers run.
        for _ in 0..5_000 {
            let req = WatchRequest {
                request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
            };
            if tx.send(req).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let mut events = 0usize;
    let mut progress_at = 0i64;
    let mut progress_count = 0usize;
    while events < WRITERS * PUTS_EACH {
        let r = w.next().await;
        if r.watch_id == -1 && r.events.is_empty() {
            progress_at = progress_at.max(r.header.unwrap().revision);
            progress_count += 1;
            continue;
        }
        for e in &r.events {
            let rev = e.kv.as_ref().unwrap().mod_revision;
            assert!(
                rev > progress_at,
                "event at revision {rev} arrived after a progress response at {progress_at}"
            );
            events += 1;
        }
    }
    asker.abort();
    for wr in writers {
        wr.await.unwrap();
    }
    assert!(
        progress_count > 10,
        "only {progress_count} progress responses"
    );
}

/// Periodic auto-compaction (etcd's `--auto-compaction-retention`): history older than the
/// retention is compacted on every shard without anyone calling Compact; reads and watches
/// below the compacted revision then get etcd's "compacted" error, current reads still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_older_than_the_retention_is_compacted_on_every_shard() {
    let c = Cluster::start(1, &["--auto-compaction-retention", "1s"]);
    let mut cl = Client::connect_eventually(&c.nodes[0].client_addr).await;
    // One key in the pods shard and one in the default shard, each written twice.
    let keys = ["/registry/pods/default/p", "/registry/configmaps/default/c"];
    let mut first = Vec::new();
    for k in keys {
        first.push(cl.put(k, "1").await.unwrap());
        cl.put(k, "2").await.unwrap();
    }
    for (k, rev) in keys.iter().zip(&first) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = cl
                .kv
                .range(navarch_raftstore::proto::etcdserverpb::RangeRequest {
                    key: k.as_bytes().to_vec(),
                    revision: *rev,
                    ..Default::default()
                })
                .await;
            match r {
                Err(s) if s.message().contains("required revision has been compacted") => break,
                Ok(_) => {}
                Err(s) => panic!("reading {k} at {rev}: {s}"),
            }
            assert!(
                Instant::now() < deadline,
                "{k}: revision {rev} still readable after 20 s with a 1 s retention"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (v, _, _) = cl.get(k).await.unwrap();
        assert_eq!(
            v.as_deref(),
            Some("2"),
            "{k}: the current value survives compaction"
        );
    }
}
