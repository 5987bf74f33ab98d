//! The storage conformance suite against every implementation and both stores.

use std::sync::Arc;

use navarch_apiserver::storage::testing;

use crate::support::{cache_over, test_cache_config, unique_prefix, Kind, Store};

async fn suite_direct(kind: Kind) {
    let Some(store) = Store::start(kind).await else {
        return;
    };
    let storage = store.etcd_storage().await;
    testing::run_all(storage, &unique_prefix("direct")).await;
}

async fn suite_cached(kind: Kind) {
    let Some(store) = Store::start(kind).await else {
        return;
    };
    let cache = cache_over(store.etcd_storage().await, test_cache_config());
    testing::run_all(cache, &unique_prefix("cached")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_storage_on_navarch_store() {
    suite_direct(Kind::Navarch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_storage_on_navarch_store() {
    suite_cached(Kind::Navarch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_storage_on_etcd34() {
    suite_direct(Kind::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_storage_on_etcd34() {
    suite_cached(Kind::Etcd).await;
}

/// The suite must be able to fail: a storage that loses updates is caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_catches_a_broken_storage() {
    let store = Store::navarch().await;
    let broken = Arc::new(broken::DropsUpdates(store.etcd_storage().await));
    let failures = testing::try_run_all(broken, &unique_prefix("broken")).await;
    let names: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"update_preconditions"),
        "failed cases: {names:?}"
    );
    assert!(
        names.contains(&"concurrent_cas_updates"),
        "failed cases: {names:?}"
    );
}

mod broken {
    use std::sync::Arc;

    use async_trait::async_trait;
    use bytes::Bytes;
    use navarch_apiserver::storage::{
        ListOptions, ListPage, ReadRevision, Result, Revision, Storage, StoredObject, WatchStream,
    };

    /// Acknowledges updates without writing them.
    pub struct DropsUpdates(pub Arc<dyn Storage>);

    #[async_trait]
    impl Storage for DropsUpdates {
        async fn get(&self, key: &str, r: ReadRevision) -> Result<Option<StoredObject>> {
            self.0.get(key, r).await
        }
        async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListPage> {
            self.0.list(prefix, opts).await
        }
        async fn create(&self, key: &str, value: Bytes) -> Result<StoredObject> {
            self.0.create(key, value).await
        }
        async fn update(
            &self,
            key: &str,
            value: Bytes,
            expected: Revision,
        ) -> Result<StoredObject> {
            Ok(StoredObject {
                key: key.to_string(),
                value,
                mod_revision: expected + 1,
                create_revision: expected,
            })
        }
        async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<StoredObject> {
            self.0.delete(key, expected).await
        }
        async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
            self.0.watch(prefix, after).await
        }
        async fn current_revision(&self, prefix: &str) -> Result<Revision> {
            self.0.current_revision(prefix).await
        }
    }
}
