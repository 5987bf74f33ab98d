//! A follower that misses more than the retained log catches up by snapshot (SST files sent
//! in chunks, staged on disk, ingested), purges the log the snapshot covers, and serves reads
//! and new writes afterwards.

use std::time::Duration;

use navarch_raftstore::proto::etcdserverpb::RangeRequest;

use crate::support::{eventually, http_get, metric, Client, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lagging_follower_catches_up_by_snapshot_after_log_purge() {
    let mut c = Cluster::start(3, &["--snapshot-count", "100"]);
    for n in &c.nodes {
        Client::connect_eventually(&n.client_addr).await;
    }
    let leader = c.wait_leader(Duration::from_secs(30)).await;
    let follower = (leader + 1) % 3;
    c.nodes[follower].kill9();

    // Far more entries than the snapshot interval plus the 1,000 entries kept behind it.
    let mut cl = Client::connect_eventually(&c.nodes[leader].client_addr).await;
    let mut last = 0;
    for i in 0..2500 {
        last = cl
            .put(&format!("/snap/{:05}", i % 700), &format!("v{i}"))
            .await
            .unwrap();
    }

    c.nodes[follower].restart();
    let f = Client::connect_eventually(&c.nodes[follower].client_addr).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut probe = f.clone();
        let seen = probe.range_prefix("/snap/", true, true).await.ok();
        if seen.as_ref().is_some_and(|r| {
            r.header.as_ref().is_some_and(|h| h.revision >= last) && r.count == 700
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "follower did not catch up by snapshot (last seen {:?}, want revision {last})\n{}",
            seen.map(|r| (r.header.map(|h| h.revision), r.count)),
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut f = f;
    let r = f.range_prefix("/snap/", true, false).await.unwrap();
    for kv in &r.kvs {
        let k = String::from_utf8_lossy(&kv.key).into_owned();
        let i: usize = k.trim_start_matches("/snap/").parse().unwrap();
        // The last write to key i%700 was iteration 2499 - ((2499 - i) % 700).
        let want = 2499 - ((2499 - i) % 700);
        assert_eq!(
            kv.value,
            format!("v{want}").into_bytes(),
            "{k} on the caught-up follower"
        );
    }
    let (status, body) = http_get(&c.nodes[follower].client_addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    let installed = metric(&body, "navarch_store_snapshots_installed_total").unwrap_or(0.0);
    assert!(
        installed >= 1.0,
        "the follower must have caught up by snapshot, not by log replay\n{}",
        c.nodes[follower].log_tail()
    );
    let received = metric(&body, "navarch_store_snapshot_bytes_received_total").unwrap_or(0.0);
    assert!(
        received > 0.0,
        "the snapshot must have arrived as file chunks\n{}",
        c.nodes[follower].log_tail()
    );
    // Nothing is left half-received, and old snapshots are removed once replaced.
    let snapshots = c.nodes[follower].data_dir.join("snapshots");
    eventually(
        Duration::from_secs(30),
        "the follower's snapshot directory holds at most the current snapshot per shard",
        || {
            let snapshots = snapshots.clone();
            async move {
                let entries = |d: &std::path::Path| -> Vec<String> {
                    std::fs::read_dir(d)
                        .map(|rd| {
                            rd.filter_map(|e| e.ok())
                                .map(|e| e.file_name().to_string_lossy().into_owned())
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let staging_empty = entries(&snapshots.join("staging")).is_empty();
                let per_shard_ok = entries(&snapshots)
                    .iter()
                    .filter(|n| *n != "staging")
                    .all(|n| entries(&snapshots.join(n)).len() <= 1);
                (staging_empty && per_shard_ok).then_some(())
            }
        },
    )
    .await;
    // The log the installed snapshot covers is purged (the follower had missed > 1,000
    // entries of the default shard, which holds /snap/).
    eventually(
        Duration::from_secs(30),
        "the follower purges the log covered by the snapshot",
        || {
            let addr = c.nodes[follower].client_addr.clone();
            async move {
                let (code, body) = http_get(&addr, "/shards").ok()?;
                let v: serde_json::Value = serde_json::from_str(&body).ok()?;
                let purged = v["shards"]
                    .as_array()?
                    .iter()
                    .find(|s| s["name"] == "default")?["purged_index"]
                    .as_u64()?;
                (code == 200 && purged >= 1000).then_some(())
            }
        },
    )
    .await;
    // It keeps serving new writes too.
    let rev = cl.put("/snap/after", "x").await.unwrap();
    eventually(
        Duration::from_secs(30),
        "follower applies new writes",
        || {
            let mut f = f.clone();
            async move {
                let r =
                    f.kv.range(RangeRequest {
                        key: b"/snap/after".to_vec(),
                        serializable: true,
                        ..Default::default()
                    })
                    .await
                    .ok()?
                    .into_inner();
                (r.kvs.first()?.mod_revision == rev).then_some(())
            }
        },
    )
    .await;
}
