//! QUIC peer transport with mutual TLS: `navarch certs` writes a CA and node certificates, a
//! 3-node cluster runs Raft and forwarded writes over QUIC, the leader is killed with -9, a new
//! leader serves, no acknowledged write is lost and the old leader catches up on restart.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use navarch_raftstore::proto::etcdserverpb::{RangeRequest, RangeResponse};
use tokio::sync::Mutex;

use crate::support::{eventually, navarch_bin, Client, Cluster};

/// Serializable (local replica) range over every key under `prefix`.
async fn local_prefix(c: &mut Client, prefix: &str) -> Result<RangeResponse, tonic::Status> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    Ok(c.kv
        .range(RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: end,
            serializable: true,
            ..Default::default()
        })
        .await?
        .into_inner())
}

/// Runs `navarch certs --out DIR --nodes N` and checks the layout it promises.
fn write_certs(dir: &Path, nodes: u64) {
    let out = Command::new(navarch_bin())
        .arg("certs")
        .arg("--out")
        .arg(dir)
        .args(["--nodes", &nodes.to_string(), "--hosts", "127.0.0.1"])
        .output()
        .expect("run navarch certs");
    assert!(
        out.status.success(),
        "navarch certs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected = vec!["ca.pem".to_string(), "ca-key.pem".to_string()];
    for id in 1..=nodes {
        expected.push(format!("node-{id}.pem"));
        expected.push(format!("node-{id}-key.pem"));
    }
    for f in expected {
        assert!(dir.join(&f).is_file(), "navarch certs did not write {f}");
    }
}

/// Puts `k` through `addr`, retrying transient errors (no leader yet) until `timeout`.
async fn put_eventually(addr: &str, k: &str, v: &str, timeout: Duration) -> i64 {
    eventually(timeout, &format!("put {k} via {addr}"), || async {
        let mut c = Client::connect(addr).await.ok()?;
        c.put(k, v).await.ok()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quic_cluster_forwards_writes_and_survives_leader_kill() {
    let certs = tempfile::tempdir().expect("tempdir");
    write_certs(certs.path(), 3);
    let certs_dir = certs.path().display().to_string();
    let mut c = Cluster::start(3, &["--peer-transport", "quic", "--peer-certs", &certs_dir]);
    for n in &c.nodes {
        Client::connect_eventually(&n.client_addr).await;
    }
    let leader = c.wait_leader(Duration::from_secs(30)).await;
    // Every node serves its peers over QUIC.
    for n in &c.nodes {
        let log = n.data_dir.with_extension("log");
        eventually(
            Duration::from_secs(10),
            "QUIC endpoint log line",
            || async {
                let text = std::fs::read_to_string(&log).ok()?;
                text.contains("QUIC peer endpoint listening").then_some(())
            },
        )
        .await;
    }

    // No plaintext way around mutual TLS: the gRPC peer service (TCP) is closed.
    for n in &c.nodes {
        eventually(Duration::from_secs(10), "TCP peer port closed", || async {
            std::net::TcpStream::connect(&n.peer_addr)
                .is_err()
                .then_some(())
        })
        .await;
    }

    // A write through every node (followers forward to the leader over QUIC), read back on
    // every node (followers get the read index from the leader over QUIC).
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.client_addr.clone()).collect();
    for (i, a) in addrs.iter().enumerate() {
        put_eventually(
            a,
            &format!("/quic/{i}"),
            &format!("v{i}"),
            Duration::from_secs(20),
        )
        .await;
    }
    for a in &addrs {
        let mut cl = Client::connect_eventually(a).await;
        for i in 0..addrs.len() {
            let (v, _, _) = cl.get(&format!("/quic/{i}")).await.expect("get");
            assert_eq!(v.as_deref(), Some(format!("v{i}").as_str()), "on {a}");
        }
    }

    // Writes through a follower, continuously, across a kill -9 of the leader.
    let follower = (leader + 1) % 3;
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (addr, acked, stop) = (addrs[follower].clone(), acked.clone(), stop.clone());
        async move {
            let mut cl = Client::connect_eventually(&addr).await;
            for i in 0..10_000u32 {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                // A fresh key per attempt: a failed put may or may not have been applied.
                let (k, v) = (format!("/load/{i:05}"), format!("val-{i}"));
                if cl.put(&k, &v).await.is_ok() {
                    acked.lock().await.push((k, v));
                }
            }
        }
    });
    eventually(
        Duration::from_secs(20),
        "30 writes before the kill",
        || async { (acked.lock().await.len() >= 30).then_some(()) },
    )
    .await;
    c.nodes[leader].kill9();
    let before_kill = acked.lock().await.len();
    let new_leader = c.wait_leader(Duration::from_secs(30)).await;
    assert_ne!(new_leader, leader);
    eventually(
        Duration::from_secs(30),
        "30 writes acknowledged after the kill",
        || async { (acked.lock().await.len() >= before_kill + 30).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("writer stops")
        .expect("writer task");
    let acked = acked.lock().await.clone();

    // Every acknowledged write is on both survivors (linearizable reads).
    for (idx, n) in c.nodes.iter().enumerate().filter(|(i, _)| *i != leader) {
        let mut cl = Client::connect_eventually(&n.client_addr).await;
        for (k, v) in &acked {
            let (got, _, _) = cl.get(k).await.expect("get after kill");
            assert_eq!(
                got.as_deref(),
                Some(v.as_str()),
                "{k} on node {idx}\n{}",
                c.logs()
            );
        }
    }

    // The old leader rejoins over QUIC and catches up (serializable = its own replica).
    c.nodes[leader].restart();
    let old = c.nodes[leader].client_addr.clone();
    let want = acked.len() as i64;
    eventually(
        Duration::from_secs(30),
        "restarted node catches up",
        || async {
            let mut cl = Client::connect(&old).await.ok()?;
            let r = local_prefix(&mut cl, "/load/").await.ok()?;
            (r.count >= want).then_some(())
        },
    )
    .await;
    let mut cl = Client::connect_eventually(&old).await;
    let r = local_prefix(&mut cl, "/load/").await.expect("range");
    let have: std::collections::HashMap<String, String> = r
        .kvs
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        })
        .collect();
    for (k, v) in &acked {
        assert_eq!(have.get(k), Some(v), "{k} missing on the restarted node");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_node_with_a_foreign_certificate_cannot_join() {
    // Nodes 1 and 2 share a CA; node 3 has certificates from another CA.
    let certs = tempfile::tempdir().expect("tempdir");
    let good = certs.path().join("good");
    let bad = certs.path().join("bad");
    write_certs(&good, 3);
    write_certs(&bad, 3);
    for f in ["node-3.pem", "node-3-key.pem"] {
        std::fs::copy(bad.join(f), good.join(f)).expect("swap in node 3's foreign cert");
    }
    let dir = good.display().to_string();
    let c = Cluster::start(3, &["--peer-transport", "quic", "--peer-certs", &dir]);
    let leader = c.wait_leader(Duration::from_secs(30)).await;
    assert_ne!(leader, 2, "the node with a foreign certificate cannot lead");
    put_eventually(
        &c.nodes[leader].client_addr,
        "/k",
        "v",
        Duration::from_secs(20),
    )
    .await;
    // Node 3 never hears from the cluster: its handshakes are refused both ways.
    let log = c.nodes[2].data_dir.with_extension("log");
    eventually(
        Duration::from_secs(20),
        "node 3 logs a refused handshake",
        || async {
            let text = std::fs::read_to_string(&log).ok()?;
            text.contains("peer QUIC handshake failed").then_some(())
        },
    )
    .await;
    let mut n3 = Client::connect_eventually(&c.nodes[2].client_addr).await;
    let r = local_prefix(&mut n3, "/k")
        .await
        .expect("serializable read on node 3");
    assert!(r.kvs.is_empty(), "node 3 must not have replicated anything");
}

/// Over pipelined QUIC replication streams (the default) and one AppendEntries call at a
/// time (`--peer-streams false`), writes through every member reach every member's own
/// replica; followers serve replication streams only in the first mode.
async fn quic_replication_carries_every_write_to_every_member(streams: bool) {
    let certs = tempfile::tempdir().expect("tempdir");
    write_certs(certs.path(), 3);
    let certs_dir = certs.path().display().to_string();
    let c = Cluster::start(
        3,
        &[
            "--peer-transport",
            "quic",
            "--peer-certs",
            &certs_dir,
            "--peer-streams",
            if streams { "true" } else { "false" },
        ],
    );
    for n in &c.nodes {
        Client::connect_eventually(&n.client_addr).await;
    }
    c.wait_leader(Duration::from_secs(30)).await;
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.client_addr.clone()).collect();
    const WRITES: usize = 150;
    for i in 0..WRITES {
        let a = &addrs[i % addrs.len()];
        put_eventually(a, &format!("/streams/{i:04}"), "v", Duration::from_secs(20)).await;
    }
    for a in &addrs {
        eventually(
            Duration::from_secs(20),
            &format!("{WRITES} keys on {a}"),
            || async {
                let mut cl = Client::connect(a).await.ok()?;
                let r = local_prefix(&mut cl, "/streams/").await.ok()?;
                (r.kvs.len() == WRITES).then_some(())
            },
        )
        .await;
    }
    let served: f64 = c
        .nodes
        .iter()
        .map(|n| {
            let (_, body) = crate::support::http_get(&n.client_addr, "/metrics").unwrap();
            crate::support::metric(&body, "navarch_store_replication_streams_served_total")
                .unwrap_or(0.0)
        })
        .sum();
    // Each member publishes what QUIC says of the connections it dialled, per peer.
    for n in &c.nodes {
        eventually(
            Duration::from_secs(10),
            &format!("QUIC peer metrics on {}", n.client_addr),
            || async {
                let (_, body) = crate::support::http_get(&n.client_addr, "/metrics").ok()?;
                let rtt = labelled_sum(&body, "navarch_store_peer_rtt_seconds");
                let sent = labelled_sum(&body, "navarch_store_peer_datagrams_sent_total");
                let received = labelled_sum(&body, "navarch_store_peer_datagrams_received_total");
                (rtt > 0.0 && sent > 0.0 && received > 0.0).then_some(())
            },
        )
        .await;
    }
    if streams {
        assert!(served >= 2.0, "replication streams served: {served}");
    } else {
        assert_eq!(
            served, 0.0,
            "replication streams served with --peer-streams false"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quic_replication_streams_carry_every_write_to_every_member() {
    quic_replication_carries_every_write_to_every_member(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quic_one_call_at_a_time_carries_every_write_to_every_member() {
    quic_replication_carries_every_write_to_every_member(false).await;
}

/// Sum of a metric's labelled series (`name{...} value` lines) in a `/metrics` body.
fn labelled_sum(body: &str, name: &str) -> f64 {
    let prefix = format!("{name}{{");
    body.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
