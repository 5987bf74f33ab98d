//! A shard leader partitioned into the minority (the transport's fault filter on every member,
//! both directions): it cannot commit, the majority elects a new leader, no acknowledged write
//! is lost, and the history of every shard stays linearizable across the partition and its
//! healing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::support::lincheck::{check, CheckResult, Event, Op, Outcome, Recorder};
use crate::support::{eventually, http_get, http_post, Client, Cluster};
use crate::t40_linearizability::spawn_clients;

const KEYS: [&str; 4] = [
    "/registry/pods/ns/a",
    "/registry/pods/ns/b",
    "/registry/leases/ns/l",
    "/p/d",
];

fn leader_of(addr: &str, shard: &str) -> u64 {
    let (_, body) = http_get(addr, "/shards").expect("GET /shards");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    v["shards"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == shard))
        .and_then(|s| s["leader"].as_u64())
        .unwrap_or(0)
}

fn partition(c: &Cluster, alone: usize) {
    let others: Vec<String> = (0..c.nodes.len())
        .filter(|i| *i != alone)
        .map(|i| c.nodes[i].peer_addr.clone())
        .collect();
    let (code, body) = http_post(
        &c.nodes[alone].client_addr,
        &format!("/fault/partition?peers={}", others.join(",")),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    for (i, n) in c.nodes.iter().enumerate().filter(|(i, _)| *i != alone) {
        let (code, body) = http_post(
            &n.client_addr,
            &format!("/fault/partition?peers={}", c.nodes[alone].peer_addr),
        )
        .unwrap();
        assert_eq!(code, 200, "node {i}: {body}");
    }
}

fn heal(c: &Cluster) {
    for n in &c.nodes {
        let (code, body) = http_post(&n.client_addr, "/fault/partition?peers=").unwrap();
        assert_eq!(code, 200, "{body}");
    }
}

fn shard_of(key: &str) -> &'static str {
    if key.starts_with("/registry/pods/") {
        "pods"
    } else if key.starts_with("/registry/leases/") {
        "leases"
    } else {
        "default"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_partitioned_into_the_minority_cannot_commit_and_nothing_is_lost() {
    let c = Cluster::start(3, &[]);
    for n in &c.nodes {
        Client::connect_eventually(&n.client_addr).await;
    }
    let ep = c.nodes[0].client_addr.clone();
    let old = eventually(Duration::from_secs(30), "a pods leader", || async {
        let l = leader_of(&ep, "pods");
        (l != 0).then_some(l)
    })
    .await;
    let alone = (old - 1) as usize;
    let mut acked = Client::connect(&c.nodes[(alone + 1) % 3].client_addr)
        .await
        .unwrap();
    let rec = Arc::new(Recorder::new());
    // The test's own writes go into the checked history too (clients 100 and 101).
    let put = |client: usize, key: &str, value: &str| {
        rec.call(
            client,
            Op::Put {
                key: key.into(),
                value: value.into(),
            },
        )
    };
    let id = put(100, "/registry/pods/ns/acked", "before");
    let before = acked
        .put("/registry/pods/ns/acked", "before")
        .await
        .unwrap();
    rec.ret(id, Outcome::Put { rev: before });
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.client_addr.clone()).collect();
    let tasks = spawn_clients(addrs, &KEYS, rec.clone());
    tokio::time::sleep(Duration::from_millis(1000)).await;

    partition(&c, alone);
    // The majority elects another pods leader.
    let majority = c.nodes[(alone + 1) % 3].client_addr.clone();
    eventually(
        Duration::from_secs(20),
        "a new pods leader in the majority",
        || async {
            let l = leader_of(&majority, "pods");
            (l != 0 && l != old).then_some(())
        },
    )
    .await;
    // The isolated old leader cannot commit: a write through it does not succeed.
    let mut isolated = Client::connect(&c.nodes[alone].client_addr).await.unwrap();
    // Its outcome stays unknown in the history: the checker must place it or leave it out.
    let _unknown = put(101, "/registry/pods/ns/minority", "lost");
    let r = tokio::time::timeout(
        Duration::from_secs(12),
        isolated.put("/registry/pods/ns/minority", "lost"),
    )
    .await;
    assert!(
        !matches!(r, Ok(Ok(_))),
        "a write through the minority must not be acknowledged: {r:?}"
    );
    // Writes through the majority succeed.
    let during = acked
        .put("/registry/pods/ns/acked", "during")
        .await
        .unwrap();
    assert!(during > before);
    heal(&c);

    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("clients finish")
            .unwrap();
    }
    // Everything acknowledged is there, read through the once-isolated member.
    let mut back = Client::connect_eventually(&c.nodes[alone].client_addr).await;
    let (v, m, _) = eventually(Duration::from_secs(20), "the healed member serves", || {
        let mut back = back.clone();
        async move { back.get("/registry/pods/ns/acked").await.ok() }
    })
    .await;
    assert_eq!((v.as_deref(), m), (Some("during"), during));
    let (v, _, _) = back.get("/registry/pods/ns/minority").await.unwrap();
    assert_ne!(
        v.as_deref(),
        Some("lost"),
        "a write never acknowledged must not reappear unacknowledged... unless committed later"
    );

    let history = rec.history();
    let mut parts: BTreeMap<&str, Vec<Event>> = BTreeMap::new();
    for e in &history {
        parts
            .entry(shard_of(e.op.key()))
            .or_default()
            .push(e.clone());
    }
    let completed = history.iter().filter(|e| e.ret.is_some()).count();
    assert!(
        completed > 250,
        "too few completed ops ({completed})\n{}",
        c.logs()
    );
    for (shard, part) in parts {
        match check(&part, Duration::from_secs(120)) {
            CheckResult::Linearizable => {}
            CheckResult::NotLinearizable { explanation } => {
                panic!(
                    "shard {shard}: not linearizable:\n{explanation}\n{}",
                    c.logs()
                )
            }
            CheckResult::Timeout => panic!("shard {shard}: check timed out"),
        }
    }
}
