//! openraft's storage conformance suite against our log store (segment files + RocksDB
//! metadata) and RocksDB state machine.

use std::sync::Arc;

use navarch_raftstore::engine::Engine;
use navarch_raftstore::log_store::{LogEngine, LogStore};
use navarch_raftstore::state_machine::StateMachineStore;
use navarch_raftstore::types::TypeConfig;
use navarch_raftstore::watch::WatchHub;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("open rocksdb");
        let hub = Arc::new(WatchHub::new(1, 1024));
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let raft_log = LogEngine::open(&dir.path().join("raft-log")).expect("open raft log");
        let log = LogStore::new(engine.clone(), raft_log, 0).expect("open log store");
        let sm = StateMachineStore::new(engine, 0, hub, tx);
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes_on_rocksdb_stores() {
    Suite::test_all(RocksBuilder)
        .await
        .expect("openraft storage suite");
}
