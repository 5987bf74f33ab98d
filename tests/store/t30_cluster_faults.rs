//! Three real store processes under write load; kill -9 the leader; restart; full restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use navarch_raftstore::proto::etcdserverpb::{watch_request, WatchCreateRequest, WatchRequest};
use tokio::sync::Mutex;
use tokio_stream::StreamExt;

use crate::support::{eventually, Client, Cluster};

/// (revision, key) of every event a resuming watcher saw, in arrival order.
type Seen = Arc<Mutex<Vec<(i64, String)>>>;

/// A watcher on prefix `/load/` that resumes from its last revision + 1 on the next node when
/// its stream breaks, until it has seen `stop_at`.
fn spawn_watcher(
    addrs: Vec<String>,
    first: usize,
    start: i64,
    seen: Seen,
    stop_at: Arc<Mutex<Option<i64>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut next = start;
        for node in first..first + 200 {
            if let Some(s) = *stop_at.lock().await {
                if next > s {
                    return;
                }
            }
            let addr = &addrs[node % addrs.len()];
            let Ok(mut c) = Client::connect(addr).await else {
                continue;
            };
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let _ = tx
                .send(WatchRequest {
                    request_union: Some(watch_request::RequestUnion::CreateRequest(
                        WatchCreateRequest {
                            key: b"/load/".to_vec(),
                            range_end: b"/load0".to_vec(),
                            start_revision: next,
                            ..Default::default()
                        },
                    )),
                })
                .await;
            let Ok(resp) = c
                .watch
                .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
            else {
                continue;
            };
            let mut s = resp.into_inner();
            loop {
                let msg = match tokio::time::timeout(Duration::from_millis(500), s.next()).await {
                    Ok(Some(Ok(m))) => m,
                    Ok(_) => break,
                    Err(_) => {
                        if let Some(stop) = *stop_at.lock().await {
                            if next > stop {
                                return;
                            }
                        }
                        continue;
                    }
                };
                if msg.canceled {
                    break;
                }
                let mut g = seen.lock().await;
                for e in msg.events {
                    let kv = e.kv.unwrap();
                    g.push((
                        kv.mod_revision,
                        String::from_utf8_lossy(&kv.key).into_owned(),
                    ));
                    next = kv.mod_revision + 1;
                }
            }
            drop(tx);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_loses_no_acknowledged_write_and_watches_see_every_event_once() {
    let mut c = Cluster::start(3, &[]);
    for n in &c.nodes {
        Client::connect_eventually(&n.client_addr).await;
    }
    let leader = c.wait_leader(Duration::from_secs(30)).await;
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.client_addr.clone()).collect();
    let mut lc = Client::connect_eventually(&addrs[leader]).await;
    let start = lc.put("/load/seed", "0").await.unwrap() + 1;

    // Two watchers from `start`: one on a follower, one on the leader (its stream dies with it
    // and must resume elsewhere).
    let stop_at = Arc::new(Mutex::new(None));
    let follower = (leader + 1) % 3;
    let seen_f: Seen = Arc::default();
    let seen_l: Seen = Arc::default();
    let wf = spawn_watcher(
        addrs.clone(),
        follower,
        start,
        seen_f.clone(),
        stop_at.clone(),
    );
    let wl = spawn_watcher(
        addrs.clone(),
        leader,
        start,
        seen_l.clone(),
        stop_at.clone(),
    );

    // Writers: 4 tasks, each to a different node in turn; record acknowledged writes.
    let acked: Arc<Mutex<Vec<(String, String, i64)>>> = Arc::default();
    let running = Arc::new(AtomicBool::new(true));
    let mut writers = Vec::new();
    for w in 0..4 {
        let addrs = addrs.clone();
        let acked = acked.clone();
        let running = running.clone();
        writers.push(tokio::spawn(async move {
            let mut clients: HashMap<usize, Client> = HashMap::new();
            let mut i = 0u64;
            while running.load(Ordering::SeqCst) && i < 100_000 {
                i += 1;
                let n = (w + i as usize) % addrs.len();
                if let std::collections::hash_map::Entry::Vacant(slot) = clients.entry(n) {
                    match Client::connect(&addrs[n]).await {
                        Ok(cl) => {
                            slot.insert(cl);
                        }
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    }
                }
                let key = format!("/load/{w}/{i}");
                let val = format!("v{w}-{i}");
                match clients.get_mut(&n).unwrap().put(&key, &val).await {
                    Ok(rev) => acked.lock().await.push((key, val, rev)),
                    Err(_) => {
                        clients.remove(&n);
                    }
                }
            }
        }));
    }

    eventually(
        Duration::from_secs(30),
        "200 acknowledged writes",
        || async { (acked.lock().await.len() >= 200).then_some(()) },
    )
    .await;
    c.nodes[leader].kill9();
    let before_kill = acked.lock().await.len();
    let new_leader = c.wait_leader(Duration::from_secs(30)).await;
    assert_ne!(new_leader, leader, "a surviving node must lead");
    eventually(
        Duration::from_secs(30),
        "writes acknowledged by the new leader",
        || async { (acked.lock().await.len() >= before_kill + 200).then_some(()) },
    )
    .await;
    running.store(false, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }

    // No acknowledged write is lost, and revisions are unique.
    let acked = acked.lock().await.clone();
    let mut revs: Vec<i64> = acked.iter().map(|a| a.2).collect();
    revs.sort();
    revs.dedup();
    assert_eq!(
        revs.len(),
        acked.len(),
        "two acknowledged writes share a revision"
    );
    let mut nl = Client::connect_eventually(&addrs[new_leader]).await;
    for (k, v, rev) in &acked {
        let (got, mod_rev, _) = nl.get(k).await.unwrap();
        assert_eq!(
            got.as_deref(),
            Some(v.as_str()),
            "acknowledged write {k} lost\n{}",
            c.logs()
        );
        assert_eq!(mod_rev, *rev, "{k} has the wrong revision");
    }
    let final_rev = nl.status().await.unwrap().header.unwrap().revision;

    // The killed node restarts and catches up.
    c.nodes[leader].restart();
    let mut back = Client::connect_eventually(&addrs[leader]).await;
    eventually(
        Duration::from_secs(60),
        "restarted node catching up",
        || {
            let mut back = back.clone();
            async move {
                let r = back.range_prefix("/load/", true, true).await.ok()?;
                (r.header?.revision >= final_rev).then_some(())
            }
        },
    )
    .await;
    let r = back.range_prefix("/load/", true, false).await.unwrap();
    let on_restarted: BTreeMap<String, i64> = r
        .kvs
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                kv.mod_revision,
            )
        })
        .collect();
    for (k, _, rev) in &acked {
        assert_eq!(on_restarted.get(k), Some(rev), "restarted node misses {k}");
    }

    // Watches: every revision in [start, final_rev] with a /load/ event arrives exactly once.
    *stop_at.lock().await = Some(final_rev);
    tokio::time::timeout(Duration::from_secs(60), wf)
        .await
        .expect("follower watcher finished")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), wl)
        .await
        .expect("leader watcher finished")
        .unwrap();
    for (name, seen) in [("follower", &seen_f), ("leader", &seen_l)] {
        let seen = seen.lock().await.clone();
        let mut last = 0;
        for (rev, _) in &seen {
            assert!(
                *rev > last,
                "{name} watcher: revision {rev} after {last} (duplicate or out of order)"
            );
            last = *rev;
        }
        let by_rev: HashMap<i64, String> = seen.into_iter().collect();
        for (k, _, rev) in &acked {
            assert_eq!(by_rev.get(rev), Some(k), "{name} watcher missed {k}@{rev}");
        }
    }

    // Full-cluster restart (kill -9 every node) keeps every key and revision.
    for n in &mut c.nodes {
        n.kill9();
    }
    for n in &mut c.nodes {
        n.restart();
    }
    let l = c.wait_leader(Duration::from_secs(60)).await;
    let mut cl = Client::connect_eventually(&addrs[l]).await;
    let r = cl.range_prefix("/load/", false, false).await.unwrap();
    assert!(r.header.unwrap().revision >= final_rev);
    let after: BTreeMap<String, (Vec<u8>, i64)> = r
        .kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                (kv.value, kv.mod_revision),
            )
        })
        .collect();
    for (k, v, rev) in &acked {
        assert_eq!(
            after.get(k),
            Some(&(v.as_bytes().to_vec(), *rev)),
            "{k} after full restart"
        );
    }
}
