//! Multi-raft: the keyspace split over several Raft groups (default map: pods, events, leases,
//! nodes, everything else). Routing, per-shard revisions, cross-shard refusals, `navarch store
//! status`, leader spreading/transfer/drain, leases across shards, and linearizability per shard
//! under a leader kill and a SIGSTOP-paused leader.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use navarch_raftstore::proto::etcdserverpb::{
    watch_request, WatchCreateRequest, WatchRequest, WatchResponse,
};

use crate::support::lincheck::{check, CheckResult, Event, Recorder};
use crate::support::{etcdctl, eventually, http_get, navarch_bin, Client, Cluster};
use crate::t40_linearizability::spawn_clients;

/// The default shard map's shard of `key` (mirrors `ShardMap::default`).
fn shard_of(key: &str) -> &'static str {
    for (prefix, name) in [
        ("/registry/pods/", "pods"),
        ("/registry/events/", "events"),
        ("/registry/leases/", "leases"),
        ("/registry/minions/", "nodes"),
    ] {
        if key.starts_with(prefix) {
            return name;
        }
    }
    "default"
}

/// `/shards` of one member: shard name → (leader, revision).
fn shards(addr: &str) -> BTreeMap<String, (u64, i64)> {
    let (code, body) = http_get(addr, "/shards").expect("GET /shards");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    v["shards"]
        .as_array()
        .expect("shards array")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                (
                    s["leader"].as_u64().unwrap_or(0),
                    s["revision"].as_i64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

fn navarch(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(navarch_bin())
        .args(args)
        .output()
        .expect("run navarch");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_route_to_shards_with_their_own_revisions_and_cross_shard_requests_are_refused() {
    let c = Cluster::start(1, &[]);
    let ep = c.nodes[0].client_addr.clone();
    Client::connect_eventually(&ep).await;
    eventually(
        Duration::from_secs(20),
        "every shard has a leader",
        || async {
            let s = shards(&ep);
            (s.len() == 5 && s.values().all(|(l, _)| *l == 1)).then_some(())
        },
    )
    .await;

    let mut cl = Client::connect(&ep).await.unwrap();
    let r1 = cl.put("/registry/pods/default/a", "p1").await.unwrap();
    let r2 = cl.put("/registry/pods/default/b", "p2").await.unwrap();
    let d1 = cl
        .put("/registry/deployments/default/web", "d")
        .await
        .unwrap();
    let e1 = cl.put("/registry/events/default/e1", "e").await.unwrap();
    // Revisions are per shard: each shard counts its own writes.
    assert_eq!(r2, r1 + 1);
    assert_eq!(d1, 2, "first write of the default shard");
    assert_eq!(e1, 2, "first write of the events shard");
    let s = shards(&ep);
    assert_eq!(s["pods"].1, r2);
    assert_eq!(s["default"].1, d1);
    assert_eq!(s["nodes"].1, 1);

    // etcdctl: a prefix inside one shard works.
    let (ok, out, err) = etcdctl(
        &ep,
        &["get", "--prefix", "/registry/pods/", "--keys-only"],
        None,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("/registry/pods/default/a") && out.contains("/registry/pods/default/b"),
        "{out}"
    );
    // A range over several shards names them and is InvalidArgument.
    let (ok, _, err) = etcdctl(&ep, &["get", "--prefix", "/registry/"], None);
    assert!(!ok, "a range across shards must fail");
    assert!(
        err.contains("spans several shards") && err.contains("pods (/registry/pods/)"),
        "{err}"
    );
    assert!(err.contains("InvalidArgument"), "{err}");
    // A txn touching two shards.
    let (ok, _, err) = etcdctl(
        &ep,
        &["txn"],
        Some("\nput /registry/pods/default/x 1\nput /registry/deployments/default/y 2\n\n\n"),
    );
    assert!(!ok, "a txn across shards must fail");
    assert!(err.contains("spans several shards"), "{err}");
    let (_, out, _) = etcdctl(&ep, &["get", "/registry/pods/default/x"], None);
    assert!(
        out.is_empty(),
        "nothing of the refused txn was written: {out}"
    );
    // A txn inside one shard.
    let (ok, out, err) = etcdctl(
        &ep,
        &["txn"],
        Some("\nput /registry/pods/default/x 1\nput /registry/pods/default/y 2\n\n\n"),
    );
    assert!(ok && out.contains("SUCCESS"), "{out}{err}");

    // A watch across shards is refused; one inside a shard replays that shard's history.
    let first = watch_first(&cl, "/registry/", 0).await;
    assert!(first.canceled, "{first:?}");
    assert!(
        first.cancel_reason.contains("spans several shards"),
        "{first:?}"
    );
    let first = watch_first(&cl, "/registry/pods/", r1).await;
    assert!(!first.canceled, "{first:?}");
    let keys: Vec<String> = first
        .events
        .iter()
        .filter_map(|e| e.kv.as_ref())
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    assert_eq!(
        keys[..2],
        ["/registry/pods/default/a", "/registry/pods/default/b"],
        "{keys:?}"
    );

    // `navarch store status` prints every shard.
    let (ok, out, err) = navarch(&["store", "status", "--endpoints", &ep]);
    assert!(ok, "{err}");
    for name in ["default", "pods", "events", "leases", "nodes"] {
        assert!(out.contains(name), "status lacks {name}:\n{out}");
    }
    assert!(out.contains("/registry/minions/"), "{out}");
}

/// Opens a prefix watch from `rev` (0 = now) and returns the first answer after the created
/// ack (or the ack itself if it cancels).
async fn watch_first(cl: &Client, prefix: &str, rev: i64) -> WatchResponse {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    let req = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: end,
                start_revision: rev,
                ..Default::default()
            },
        )),
    };
    let mut w = cl.watch.clone();
    let mut stream = w
        .watch(futures::stream::iter(vec![req]).chain(futures::stream::pending()))
        .await
        .expect("watch")
        .into_inner();
    loop {
        let r = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("watch answer in time")
            .expect("watch stream")
            .expect("watch response");
        if r.canceled || !r.events.is_empty() {
            return r;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_leaders_spread_move_on_request_and_leave_a_draining_member() {
    let mut c = Cluster::start(3, &[]);
    for n in &c.nodes {
        Client::connect_eventually(&n.client_addr).await;
    }
    let ep = c.nodes[0].client_addr.clone();
    // 5 shards over 3 members: nobody leads more than 2.
    let spread = eventually(Duration::from_secs(60), "shard leaders spread", || async {
        let s = shards(&ep);
        let mut per: BTreeMap<u64, usize> = BTreeMap::new();
        for (l, _) in s.values() {
            if *l == 0 {
                return None;
            }
            *per.entry(*l).or_default() += 1;
        }
        (per.len() == 3 && per.values().all(|n| *n <= 2)).then_some(s)
    })
    .await;

    // Transfer on request.
    let pods_leader = spread["pods"].0;
    let to = if pods_leader == 1 { 2 } else { 1 };
    let (ok, out, err) = navarch(&[
        "store",
        "transfer-leader",
        "--endpoint",
        &ep,
        "--shard",
        "1",
        "--to",
        &to.to_string(),
    ]);
    assert!(ok, "{out}{err}");
    eventually(
        Duration::from_secs(20),
        "pods led by the target",
        || async { (shards(&ep)["pods"].0 == to).then_some(()) },
    )
    .await;
    // Bad requests are refused clearly.
    let (ok, _, err) = navarch(&[
        "store",
        "transfer-leader",
        "--endpoint",
        &ep,
        "--shard",
        "1",
        "--to",
        "9",
    ]);
    assert!(!ok && err.contains("not a voter"), "{err}");

    // Drain member 3: it ends up leading nothing, and the cluster still serves.
    let (ok, out, err) = navarch(&["store", "drain", "--endpoint", &c.nodes[2].client_addr]);
    assert!(ok, "{out}{err}");
    eventually(
        Duration::from_secs(60),
        "member 3 leads no shard",
        || async {
            let s = shards(&ep);
            (s.values().all(|(l, _)| *l != 0 && *l != 3)).then_some(())
        },
    )
    .await;
    let mut cl = Client::connect(&c.nodes[2].client_addr).await.unwrap();
    cl.put("/registry/pods/ns/after-drain", "v").await.unwrap();
    let (v, _, _) = cl.get("/registry/pods/ns/after-drain").await.unwrap();
    assert_eq!(v.as_deref(), Some("v"));

    // SIGTERM stops every member of a running cluster cleanly, open replication and watch
    // streams included (terminate() fails after 20 s).
    let _watch = watch_first(&cl, "/registry/pods/", 1).await;
    for n in c.nodes.iter_mut() {
        let status = n.terminate();
        assert!(status.success(), "member {} exited with {status:?}", n.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_covers_keys_in_every_shard() {
    let c = Cluster::start(1, &[]);
    let ep = c.nodes[0].client_addr.clone();
    Client::connect_eventually(&ep).await;
    let (ok, out, err) = etcdctl(&ep, &["lease", "grant", "3"], None);
    assert!(ok, "{err}");
    let id = out.split_whitespace().nth(1).expect("lease id").to_string();
    for key in ["/registry/events/ns/e1", "/registry/pods/ns/p1", "/other/k"] {
        let (ok, _, err) = etcdctl(&ep, &["put", key, "v", "--lease", &id], None);
        assert!(ok, "{key}: {err}");
    }
    let (ok, out, err) = etcdctl(&ep, &["lease", "timetolive", &id, "--keys"], None);
    assert!(ok, "{err}");
    assert!(
        out.contains("/registry/events/ns/e1") && out.contains("/registry/pods/ns/p1"),
        "{out}"
    );
    // Expiry deletes the keys of every shard.
    let mut cl = Client::connect(&ep).await.unwrap();
    eventually(Duration::from_secs(20), "leased keys deleted", || {
        let mut cl = cl.clone();
        async move {
            for key in ["/registry/events/ns/e1", "/registry/pods/ns/p1", "/other/k"] {
                if cl.get(key).await.ok()?.0.is_some() {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    // A revoke of an expired lease is NotFound, as in etcd.
    let (ok, _, err) = etcdctl(&ep, &["lease", "revoke", &id], None);
    assert!(!ok && err.contains("lease not found"), "{err}");
    cl.put("/registry/pods/ns/p1", "again").await.unwrap();
}

/// Linearizability is local: a history over several shards is linearizable iff each shard's
/// part is, so the checker (a model with one revision sequence) runs once per shard.
fn check_per_shard(history: &[Event], logs: &str) {
    let mut parts: BTreeMap<&str, Vec<Event>> = BTreeMap::new();
    for e in history {
        parts
            .entry(shard_of(e.op.key()))
            .or_default()
            .push(e.clone());
    }
    assert!(
        parts.len() >= 3,
        "the workload must span shards: {:?}",
        parts.keys()
    );
    for (shard, part) in parts {
        match check(&part, Duration::from_secs(120)) {
            CheckResult::Linearizable => {}
            CheckResult::NotLinearizable { explanation } => {
                panic!("shard {shard}: history is not linearizable:\n{explanation}\n{logs}")
            }
            CheckResult::Timeout => panic!("shard {shard}: check timed out on {} ops", part.len()),
        }
    }
}

const SHARDED_KEYS: [&str; 4] = [
    "/registry/pods/ns/a",
    "/registry/pods/ns/b",
    "/registry/events/ns/e",
    "/lin/d",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shards_stay_linearizable_when_a_leader_is_killed_and_another_paused() {
    let mut c = Cluster::start(3, &[]);
    for n in &c.nodes {
        Client::connect_eventually(&n.client_addr).await;
    }
    let ep = c.nodes[0].client_addr.clone();
    let layout = eventually(Duration::from_secs(30), "every shard led", || async {
        let s = shards(&ep);
        s.values().all(|(l, _)| *l != 0).then_some(s)
    })
    .await;
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.client_addr.clone()).collect();
    let rec = Arc::new(Recorder::new());
    let tasks = spawn_clients(addrs, &SHARDED_KEYS, rec.clone());

    // Pause the events leader past the election timeout (800 ms), then resume it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let paused = (layout["events"].0 - 1) as usize;
    c.nodes[paused].signal("STOP");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    c.nodes[paused].signal("CONT");
    // Kill -9 the pods leader, then restart it.
    let victim = (shards(&c.nodes[paused].client_addr)["pods"].0.max(1) - 1) as usize;
    c.nodes[victim].kill9();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.nodes[victim].restart();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("clients finish")
            .unwrap();
    }
    let history = rec.history();
    let completed = history.iter().filter(|e| e.ret.is_some()).count();
    assert!(
        completed > 250,
        "too few completed ops ({completed})\n{}",
        c.logs()
    );
    check_per_shard(&history, &c.logs());
}
