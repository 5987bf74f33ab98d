//! kube-apiserver's compactor (`storage::etcd::compactor`) over a real etcd 3.4: the first
//! round only records the revision, each later round compacts the revision of the round
//! before, and a second replica one round behind loses the race instead of compacting again.
//! On a sharded Navarch store the compactor stands down (the store compacts each shard itself).

use bytes::Bytes;
use navarch_apiserver::storage::{ReadRevision, Storage, StorageError};

use crate::support::{unique_prefix, Store};

#[tokio::test]
async fn rounds_compact_one_interval_behind_and_replicas_compact_once() {
    let Some(etcd) = Store::etcd().await else {
        return;
    };
    let (a, b) = (etcd.etcd_storage_lazy(), etcd.etcd_storage_lazy());
    let key = format!("{}k", unique_prefix("compactor"));
    let first = a.create(&key, Bytes::from_static(b"0")).await.unwrap();
    let second = a
        .update(&key, Bytes::from_static(b"1"), first.mod_revision)
        .await
        .unwrap();

    // Round 1 wins the clock (t = 0) and records the revision; nothing is compacted yet.
    let (t1, rev1) = a.compact_round(0, 0).await.unwrap();
    assert_eq!(t1, 1);
    assert!(
        rev1 > second.mod_revision,
        "the clock write is a revision too"
    );
    assert!(
        a.get(&key, ReadRevision::Exact(first.mod_revision))
            .await
            .unwrap()
            .is_some(),
        "the first round compacts nothing"
    );
    // Replica B, still at t = 0, loses and learns t = 1 without compacting.
    let (tb, _) = b.compact_round(0, 0).await.unwrap();
    assert_eq!(tb, 1, "B adopts the clock's version");

    // Round 2 compacts at rev1: history below it is gone, the current value stays.
    let (t2, _) = a.compact_round(t1, rev1).await.unwrap();
    assert_eq!(t2, 2);
    match a.get(&key, ReadRevision::Exact(first.mod_revision)).await {
        Err(StorageError::Expired { .. }) => {}
        other => panic!("read below the compacted revision: {other:?}"),
    }
    let now = a.get(&key, ReadRevision::Latest).await.unwrap().unwrap();
    assert_eq!(now.value, Bytes::from_static(b"1"));
    // B one round behind (t = 1) loses again: the clock is at version 2.
    let (tb2, _) = b.compact_round(1, rev1).await.unwrap();
    assert_eq!(tb2, 2);
}

#[tokio::test]
async fn the_compactor_stands_down_on_a_sharded_navarch_store() {
    let navarch = Store::navarch().await;
    assert!(
        navarch.etcd_storage_lazy().is_sharded().await.unwrap(),
        "Navarch's default store has several shards"
    );
    if let Some(etcd) = Store::etcd().await {
        assert!(!etcd.etcd_storage_lazy().is_sharded().await.unwrap());
    }
}
