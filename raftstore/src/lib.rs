//! Navarch's store: an MVCC key-value store replicated by Raft (openraft) on RocksDB, serving
//! the etcd v3 gRPC API so that etcd clients (etcdctl, kube-apiserver, client libraries) work
//! against it unchanged.
//!
//! ```text
//! etcd client ─gRPC─► server::{Kv,Watch,Lease,Maintenance,Cluster}
//!                       │ writes: StoreNode::propose ─► ProposalBatcher (per shard, or per peer
//!                       │         that leads the shard) ─► openraft ─► LogStore (raft_log, fsync)
//!                       │                                    └─► StateMachineStore::apply ─► mvcc
//!                       │ reads:  read_barrier (ReadIndex) ─► mvcc::Reader (RocksDB snapshot)
//!                       └ watch:  WatchHub (live) + RocksDB history (replay)
//! ```

#![forbid(unsafe_code)]

pub mod certs;
mod compactor;
pub mod engine;
pub mod error;
pub mod keys;
pub mod lease;
pub mod log_store;
pub mod membership;
pub mod mvcc;
pub mod network;
pub mod node;
pub mod placement;
pub mod propose_batch;
pub mod proto;
pub mod raft_log;
pub mod read_batch;
pub mod server;
pub mod shard;
pub mod snapshot;
pub mod state_machine;
pub mod types;
pub mod watch;

pub use error::{Result, StoreError};
pub use node::{NodeConfig, StoreNode};
