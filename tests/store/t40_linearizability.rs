//! Concurrent put/get/CAS on a few keys against three real store processes while the leader is
//! killed and restarted; the recorded history must be linearizable (see support::lincheck).

use std::sync::Arc;
use std::time::Duration;

use navarch_raftstore::proto::etcdserverpb::{
    compare, request_op, Compare, PutRequest, RequestOp, TxnRequest,
};
use rand::{Rng, SeedableRng};

use crate::support::lincheck::{check, CheckResult, Op, Outcome, Recorder};
use crate::support::{Client, Cluster};

const KEYS: [&str; 3] = ["/lin/a", "/lin/b", "/lin/c"];
const OPS_PER_CLIENT: usize = 120;
const CLIENTS: usize = 5;
/// Time between two ops of one client: 120 ops take about 6 s, across the kill and restart.
const PACE: Duration = Duration::from_millis(50);

async fn cas(
    c: &mut Client,
    key: &str,
    expect: i64,
    value: &str,
) -> Result<(bool, i64), tonic::Status> {
    let r =
        c.kv.txn(TxnRequest {
            compare: vec![Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Mod as i32,
                key: key.as_bytes().to_vec(),
                range_end: vec![],
                target_union: Some(compare::TargetUnion::ModRevision(expect)),
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: key.as_bytes().to_vec(),
                    value: value.as_bytes().to_vec(),
                    ..Default::default()
                })),
            }],
            failure: vec![],
        })
        .await?
        .into_inner();
    Ok((r.succeeded, r.header.map_or(0, |h| h.revision)))
}

/// Starts `CLIENTS` clients doing random put/get/CAS on `keys` against `addrs` (failing over
/// between nodes), recording into `rec`.
pub(crate) fn spawn_clients(
    addrs: Vec<String>,
    keys: &'static [&'static str],
    rec: Arc<Recorder>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let rec = rec.clone();
        let addrs = addrs.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(client as u64 * 7919 + 1);
            let mut node = client % addrs.len();
            let mut conn: Option<Client> = None;
            let mut last_mod = vec![0i64; keys.len()];
            // Spread the ops over the fault window (pacing, not synchronisation).
            let mut pace = tokio::time::interval(PACE);
            for n in 0..OPS_PER_CLIENT {
                pace.tick().await;
                if conn.is_none() {
                    conn = Client::connect(&addrs[node]).await.ok();
                    if conn.is_none() {
                        node = (node + 1) % addrs.len();
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
                let cl = conn.as_mut().unwrap();
                let k = rng.random_range(0..keys.len());
                let key = keys[k];
                let value = format!("c{client}-{n}");
                let dice = rng.random_range(0..10);
                let failed = if dice < 4 {
                    let id = rec.call(
                        client,
                        Op::Put {
                            key: key.into(),
                            value: value.clone(),
                        },
                    );
                    match cl.put(key, &value).await {
                        Ok(rev) => {
                            rec.ret(id, Outcome::Put { rev });
                            false
                        }
                        Err(_) => true,
                    }
                } else if dice < 8 {
                    let id = rec.call(client, Op::Get { key: key.into() });
                    match cl.get(key).await {
                        Ok((value, mod_rev, rev)) => {
                            last_mod[k] = mod_rev;
                            rec.ret(
                                id,
                                Outcome::Get {
                                    value,
                                    mod_rev,
                                    rev,
                                },
                            );
                            false
                        }
                        Err(_) => true,
                    }
                } else {
                    let expect = last_mod[k];
                    let id = rec.call(
                        client,
                        Op::Cas {
                            key: key.into(),
                            expect_mod_rev: expect,
                            value: value.clone(),
                        },
                    );
                    match cas(cl, key, expect, &value).await {
                        Ok((succeeded, rev)) => {
                            rec.ret(id, Outcome::Cas { succeeded, rev });
                            false
                        }
                        Err(_) => true,
                    }
                };
                if failed {
                    // Outcome unknown: left open in the history. Try another node after a pause.
                    conn = None;
                    node = (node + 1) % addrs.len();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }

    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_with_leader_kill_and_restart_is_linearizable() {
    let mut c = Cluster::start(3, &[]);
    for n in &c.nodes {
        Client::connect_eventually(&n.client_addr).await;
    }
    let leader = c.wait_leader(Duration::from_secs(30)).await;
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.client_addr.clone()).collect();
    let rec = Arc::new(Recorder::new());

    let tasks = spawn_clients(addrs, &KEYS, rec.clone());
    // Faults while the clients run: kill -9 the leader, then bring it back.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = rec.now();
    c.nodes[leader].kill9();
    c.wait_leader(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.nodes[leader].restart();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("clients finish")
            .unwrap();
    }

    let history = rec.history();
    let completed = history.iter().filter(|e| e.ret.is_some()).count();
    assert!(
        completed > CLIENTS * OPS_PER_CLIENT / 2,
        "too few completed ops ({completed}) for a meaningful check\n{}",
        c.logs()
    );
    let before = history
        .iter()
        .filter(|e| e.ret.is_some_and(|r| r < killed_at))
        .count();
    let after = history
        .iter()
        .filter(|e| e.call > killed_at && e.ret.is_some())
        .count();
    assert!(
        before > 50 && after > 50,
        "the fault must fall inside the workload ({before} ops before the kill, {after} after)"
    );
    match check(&history, Duration::from_secs(120)) {
        CheckResult::Linearizable => {}
        CheckResult::NotLinearizable { explanation } => {
            panic!("history is not linearizable:\n{explanation}\n{}", c.logs())
        }
        CheckResult::Timeout => panic!("linearizability check timed out on {} ops", history.len()),
    }
}

/// Concurrent linearizable reads share ReadIndex rounds (the read half of group commit), and
/// every read still sees each write acknowledged before it began.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_linearizable_reads_share_read_index_rounds() {
    use std::sync::atomic::{AtomicU64, Ordering};
    const READERS: usize = 64;
    const READS_EACH: usize = 20;
    let c = Cluster::start(3, &[]);
    let mut cl = Client::connect_eventually(&c.nodes[0].client_addr).await;
    cl.put("/rb/k", "0").await.unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (mut w, acked, done) = (cl.clone(), acked.clone(), done.clone());
        tokio::spawn(async move {
            for n in 1..=10_000u64 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                w.put("/rb/k", &n.to_string()).await.unwrap();
                acked.store(n, Ordering::SeqCst);
            }
        })
    };
    let mut readers = Vec::new();
    for r in 0..READERS {
        // Readers on every member: followers forward their ReadIndex to the leader.
        let addr = c.nodes[r % c.nodes.len()].client_addr.clone();
        let acked = acked.clone();
        readers.push(tokio::spawn(async move {
            let mut cl = Client::connect_eventually(&addr).await;
            for _ in 0..READS_EACH {
                let before = acked.load(Ordering::SeqCst);
                let (v, _, _) = cl.get("/rb/k").await.unwrap();
                let seen: u64 = v.unwrap().parse().unwrap();
                assert!(
                    seen >= before,
                    "stale read: {seen} after write {before} was acknowledged"
                );
            }
        }));
    }
    for r in readers {
        r.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let (mut reads, mut rounds) = (0.0, 0.0);
    for n in &c.nodes {
        let (_, body) = crate::support::http_get(&n.client_addr, "/metrics").unwrap();
        reads +=
            crate::support::metric(&body, "navarch_store_read_index_reads_total").unwrap_or(0.0);
        rounds +=
            crate::support::metric(&body, "navarch_store_read_index_rounds_total").unwrap_or(0.0);
    }
    assert!(
        reads >= (READERS * READS_EACH) as f64,
        "{reads} reads counted for {} issued",
        READERS * READS_EACH
    );
    assert!(
        rounds * 3.0 <= reads,
        "{rounds} ReadIndex rounds for {reads} reads: concurrent reads did not share rounds"
    );
}
