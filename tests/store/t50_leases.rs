//! Lease expiry through Raft: keys go when the lease does; keep-alive holds it; and a lease
//! still expires while the leader keeps changing (etcd issue 9888: the remaining TTL is
//! checkpointed, so a new leader does not restart it at the full TTL).

use std::time::{Duration, Instant};

use navarch_raftstore::proto::etcdserverpb::{
    compare, Compare, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseTimeToLiveRequest, PutRequest,
    TxnRequest,
};
use tokio_stream::StreamExt;

use crate::support::{eventually, Client, Cluster};

async fn leased_key(cl: &mut Client, key: &str, ttl: i64) -> i64 {
    let id = cl
        .lease
        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id;
    cl.kv
        .put(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            lease: id,
            ..Default::default()
        })
        .await
        .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_deletes_keys_and_keep_alive_holds_the_lease() {
    let c = Cluster::start(1, &[]);
    let mut cl = Client::connect_eventually(&c.nodes[0].client_addr).await;
    c.wait_leader(Duration::from_secs(20)).await;

    let kept = leased_key(&mut cl, "/lease/kept", 2).await;

    // Txn compare on the lease target.
    let cmp = |lease: i64| TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Lease as i32,
            key: b"/lease/kept".to_vec(),
            range_end: vec![],
            target_union: Some(compare::TargetUnion::Lease(lease)),
        }],
        ..Default::default()
    };
    assert!(cl.kv.txn(cmp(kept)).await.unwrap().into_inner().succeeded);
    assert!(
        !cl.kv
            .txn(cmp(kept + 1))
            .await
            .unwrap()
            .into_inner()
            .succeeded
    );
    let dies = leased_key(&mut cl, "/lease/dies", 2).await;
    let granted = Instant::now();

    // Keep `kept` alive for 5 s (well past its TTL) while `dies` expires.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut ka = cl
        .lease
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut renewals = 0;
    while granted.elapsed() < Duration::from_secs(5) {
        tx.send(LeaseKeepAliveRequest { id: kept }).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), ka.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!((r.id, r.ttl), (kept, 2));
        renewals += 1;
        tokio::time::sleep(Duration::from_millis(500)).await; // keep-alive cadence, as a client does
    }
    assert!(renewals >= 5);
    assert_eq!(
        cl.get("/lease/dies").await.unwrap().0,
        None,
        "expired lease's key must be deleted"
    );
    assert_eq!(
        cl.get("/lease/kept").await.unwrap().0.as_deref(),
        Some("v"),
        "kept-alive lease's key must stay"
    );
    let ttl = cl
        .lease
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: dies,
            keys: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ttl.ttl, -1, "an expired lease reports TTL -1");

    // Stop renewing: it expires too.
    drop(tx);
    eventually(Duration::from_secs(15), "unrenewed lease to expire", || {
        let mut cl = cl.clone();
        async move { cl.get("/lease/kept").await.ok()?.0.is_none().then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_expires_although_the_leader_keeps_changing() {
    let mut c = Cluster::start(3, &["--lease-checkpoint-interval-ms", "500"]);
    for n in &c.nodes {
        Client::connect_eventually(&n.client_addr).await;
    }
    let leader = c.wait_leader(Duration::from_secs(30)).await;
    let mut cl = Client::connect_eventually(&c.nodes[leader].client_addr).await;
    const TTL: i64 = 8;
    leased_key(&mut cl, "/lease/9888", TTL).await;
    let granted = Instant::now();

    // Change leader every ~3 s (shorter than the TTL) by killing and restarting it. Without
    // checkpoints every new leader would restart the lease at 8 s and it would never expire.
    let mut changes = 0;
    let expired_at = loop {
        assert!(
            granted.elapsed() < Duration::from_secs(60),
            "lease did not expire within 60 s across {changes} leader changes\n{}",
            c.logs()
        );
        let l = c.wait_leader(Duration::from_secs(30)).await;
        let mut lc = Client::connect_eventually(&c.nodes[l].client_addr).await;
        tokio::time::sleep(Duration::from_millis(2500)).await; // fault cadence, not synchronisation
        if lc
            .get("/lease/9888")
            .await
            .map(|r| r.0.is_none())
            .unwrap_or(false)
        {
            break granted.elapsed();
        }
        c.nodes[l].kill9();
        c.nodes[l].restart();
        changes += 1;
    };
    assert!(
        changes >= 2,
        "the test must change leaders while the lease runs (changes: {changes})"
    );
    assert!(
        expired_at >= Duration::from_secs(TTL as u64 - 1),
        "lease expired early: {expired_at:?}"
    );
}
