//! Store faults under the watch cache: a store killed and restarted, and a cluster member
//! killed under a multi-endpoint client. Watchers of the cache see every change once, in order.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use navarch_apiserver::storage::etcd::{EtcdConfig, EtcdStorage};
use navarch_apiserver::storage::testing::next_event;
use navarch_apiserver::storage::{ReadRevision, Revision, Storage, StorageError};

use crate::support::{
    assert_cached, cache_over, eventually, test_cache_config, unique_prefix, Store,
};

/// Creates `key`, retrying while the store is unreachable; the created object's revision.
async fn create_retrying(s: &dyn Storage, key: &str) -> Revision {
    eventually(
        Duration::from_secs(30),
        &format!("create {key}"),
        || async {
            match s.create(key, Bytes::from_static(b"v")).await {
                Ok(o) => Some(o.mod_revision),
                // An earlier attempt may have been applied before its answer was lost.
                Err(StorageError::AlreadyExists { .. }) => s
                    .get(key, ReadRevision::Latest)
                    .await
                    .ok()
                    .flatten()
                    .map(|o| o.create_revision),
                Err(StorageError::Unavailable(_)) => None,
                Err(e) => panic!("create {key}: {e}"),
            }
        },
    )
    .await
}

/// kill -9 of the only store, then restart: the cache's store watch resumes from its revision
/// and its watchers miss nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_watchers_survive_a_store_restart() {
    let mut store = Store::navarch().await;
    let cache = cache_over(store.etcd_storage().await, test_cache_config());
    let p = unique_prefix("restart");
    let start = cache.current_revision(&p).await.unwrap();
    let mut w = cache.watch(&p, start).await.unwrap();
    assert_cached(&cache, &p);
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(create_retrying(cache.as_ref(), &format!("{p}before-{i}")).await);
    }
    store.kill();
    store.restart();
    store.wait_serving().await;
    for i in 0..5 {
        written.push(create_retrying(cache.as_ref(), &format!("{p}after-{i}")).await);
    }
    let mut seen = Vec::new();
    for _ in 0..written.len() {
        seen.push(next_event(&mut w).await.unwrap().object.mod_revision);
    }
    assert_eq!(
        seen,
        written,
        "events across the restart\n{}",
        store.log_tail()
    );
    let page = cache.list(&p, &Default::default()).await.unwrap();
    assert_eq!(page.items.len(), 10);
}

/// A three-member cluster behind one multi-endpoint client: killing a member (whichever one the
/// cache's watch used) loses no event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_watchers_survive_a_member_kill() {
    let mut nodes = Store::navarch_cluster(3).await;
    let mut cfg = EtcdConfig::new(nodes.iter().map(|n| n.endpoint.clone()).collect());
    cfg.connect_timeout = Duration::from_secs(1);
    cfg.request_timeout = Duration::from_secs(5);
    cfg.keep_alive_interval = Duration::from_secs(1);
    let inner: Arc<dyn Storage> = Arc::new(EtcdStorage::connect_lazy(cfg).unwrap());
    let cache = cache_over(inner, test_cache_config());
    let p = unique_prefix("member-kill");
    let start = eventually(Duration::from_secs(30), "a revision", || async {
        cache.current_revision(&p).await.ok()
    })
    .await;
    let mut w = cache.watch(&p, start).await.unwrap();
    assert_cached(&cache, &p);
    let mut written = Vec::new();
    for i in 0..10 {
        written.push(create_retrying(cache.as_ref(), &format!("{p}before-{i:02}")).await);
    }
    nodes[0].kill();
    for i in 0..10 {
        written.push(create_retrying(cache.as_ref(), &format!("{p}after-{i:02}")).await);
    }
    let mut seen = Vec::new();
    for _ in 0..written.len() {
        seen.push(next_event(&mut w).await.unwrap().object.mod_revision);
    }
    assert_eq!(seen, written, "events across the member kill");
    let got = cache
        .get(&format!("{p}after-09"), ReadRevision::Latest)
        .await
        .unwrap();
    assert_eq!(got.map(|o| o.mod_revision), written.last().copied());
}
