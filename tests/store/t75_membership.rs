//! Membership: replace a dead member (remove it, add a new one that catches up as a learner
//! and is promoted to voter in every shard) while a client keeps writing without errors.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{
    etcdctl, eventually, free_port, http_get, navarch_bin, Client, Cluster, StoreProc,
};

fn navarch(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(navarch_bin())
        .args(args)
        .output()
        .expect("run navarch");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Member id → (voter in every shard) from `GET /members`.
fn members(addr: &str) -> Vec<(u64, bool)> {
    let (code, body) = http_get(addr, "/members").expect("GET /members");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    v.as_array()
        .expect("array")
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().unwrap_or(0),
                m["voter"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_member_is_replaced_without_client_errors() {
    let mut c = Cluster::start(3, &[]);
    for n in &c.nodes {
        Client::connect_eventually(&n.client_addr).await;
    }
    let ep = c.nodes[0].client_addr.clone();
    let mut cl = Client::connect(&ep).await.unwrap();
    for i in 0..100 {
        cl.put(&format!("/registry/pods/ns/p{i}"), "v")
            .await
            .unwrap();
        cl.put(&format!("/cfg/k{i}"), "v").await.unwrap();
    }

    // Member 3 dies for good.
    c.nodes[2].kill9();
    c.wait_leader(Duration::from_secs(30)).await;
    eventually(
        Duration::from_secs(30),
        "every shard led by a live member",
        || async {
            let (_, body) = http_get(&ep, "/shards").ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            v["shards"]
                .as_array()?
                .iter()
                .all(|s| matches!(s["leader"].as_u64(), Some(1 | 2)))
                .then_some(())
        },
    )
    .await;

    // A client writes through member 1 for the whole change; none of its writes may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let writes = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, failures, writes, ep) =
            (stop.clone(), failures.clone(), writes.clone(), ep.clone());
        tokio::spawn(async move {
            let mut cl = Client::connect(&ep).await.unwrap();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) && i < 100_000 {
                match cl.put(&format!("/registry/pods/ns/w{}", i % 50), "x").await {
                    Ok(_) => writes.fetch_add(1, Ordering::SeqCst),
                    Err(_) => failures.fetch_add(1, Ordering::SeqCst),
                };
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // The change starts only once the writer is running (it must span the whole change).
    eventually(Duration::from_secs(30), "the writer running", || {
        let n = writes.load(Ordering::SeqCst);
        async move { (n >= 20).then_some(()) }
    })
    .await;
    let (ok, out, err) = navarch(&["store", "member", "remove", "--endpoint", &ep, "--id", "3"]);
    assert!(ok, "{out}{err}");
    assert!(!members(&ep).iter().any(|(id, _)| *id == 3));

    // Member 4 joins: started first (it waits), then added.
    let (cp, pp) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let peer4 = format!("127.0.0.1:{pp}");
    let initial = format!(
        "1={},2={},4={peer4}",
        c.nodes[0].peer_addr, c.nodes[1].peer_addr
    );
    let args: Vec<String> = [
        "--data-dir",
        &dir.path().join("n4").display().to_string(),
        "--client-addr",
        &format!("127.0.0.1:{cp}"),
        "--peer-addr",
        &peer4,
        "--id",
        "4",
        "--initial-cluster",
        &initial,
        "--initial-cluster-state",
        "existing",
        "--heartbeat-ms",
        "100",
        "--election-timeout-ms",
        "800",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let n4 = StoreProc::start_with(
        4,
        dir.path().join("n4"),
        format!("127.0.0.1:{cp}"),
        peer4.clone(),
        args,
    );
    let (ok, out, err) = navarch(&[
        "store",
        "member",
        "add",
        "--endpoint",
        &ep,
        "--id",
        "4",
        "--peer-addr",
        &peer4,
    ]);
    assert!(ok, "{out}{err}");
    eventually(
        Duration::from_secs(60),
        "member 4 a voter of every shard",
        || async { members(&ep).contains(&(4, true)).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(
        writes.load(Ordering::SeqCst) > 20,
        "the writer must have run"
    );
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "client writes failed during the change\n{}",
        c.logs()
    );

    // Member 4 holds the data (local, serializable reads).
    let (ok, out, err) = etcdctl(
        &n4.client_addr,
        &[
            "get",
            "--prefix",
            "/registry/pods/ns/p",
            "--keys-only",
            "--consistency=s",
            "-w",
            "json",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("\"count\":100"), "{out}\n{}", n4.log_tail());
    // etcdctl sees the new membership.
    let (ok, out, err) = etcdctl(&ep, &["member", "list"], None);
    assert!(ok, "{err}");
    assert!(
        out.contains(&peer4) && !out.contains(&c.nodes[2].peer_addr),
        "{out}"
    );

    // With 4 a voter, losing member 2 still leaves a quorum (1 and 4).
    c.nodes[1].kill9();
    let mut cl = Client::connect_eventually(&ep).await;
    eventually(
        Duration::from_secs(30),
        "writes with members 1 and 4",
        || {
            let mut cl = cl.clone();
            async move { cl.put("/registry/pods/ns/after", "ok").await.ok() }
        },
    )
    .await;
    let (v, _, _) = cl.get("/cfg/k7").await.unwrap();
    assert_eq!(v.as_deref(), Some("v"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_mistakes_get_clear_errors() {
    let c = Cluster::start(1, &[]);
    let ep = c.nodes[0].client_addr.clone();
    Client::connect_eventually(&ep).await;
    let (ok, _, err) = navarch(&["store", "member", "remove", "--endpoint", &ep, "--id", "9"]);
    assert!(!ok && err.contains("member 9 not found"), "{err}");
    let (ok, _, err) = navarch(&["store", "member", "remove", "--endpoint", &ep, "--id", "1"]);
    assert!(!ok && err.contains("last voter"), "{err}");
    let (ok, _, err) = navarch(&[
        "store",
        "member",
        "add",
        "--endpoint",
        &ep,
        "--id",
        "2",
        "--peer-addr",
        "nowhere",
    ]);
    assert!(!ok && err.contains("bad peer address"), "{err}");
    // Promote a learner that never started: refused until it catches up.
    let (ok, out, err) = navarch(&[
        "store",
        "member",
        "add",
        "--endpoint",
        &ep,
        "--id",
        "2",
        "--peer-addr",
        "127.0.0.1:9",
        "--learner",
    ]);
    assert!(ok, "{out}{err}");
    assert!(members(&ep).contains(&(2, false)));
    let (ok, _, err) = etcdctl(&ep, &["member", "promote", "2"], None);
    assert!(!ok && err.contains("not caught up"), "{err}");
    let (ok, _, err) = navarch(&["store", "member", "remove", "--endpoint", &ep, "--id", "2"]);
    assert!(ok, "{err}");
    assert_eq!(members(&ep), vec![(1, true)]);
}
