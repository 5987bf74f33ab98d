//! Navarch load generators.
//!
//! `navarch loadtest store` ([`run_store`]) drives any etcd v3 endpoint —
//! Navarch's `raftstore` or a real etcd — with a configurable mix of
//! Put / Range / compare-and-swap Txn requests and reports throughput and
//! latency percentiles. The crate deliberately does not depend on
//! `navarch-raftstore`: it compiles the shared etcd v3 protos itself
//! (client side only), so the same binary benchmarks both stores fairly.

pub mod proto;
pub mod store;

pub use store::{run_store, StoreArgs, StoreReport};
