//! Navarch load generators.
//!
//! `navarch loadtest store` ([`run_store`]) drives any etcd v3 endpoint —
//! Navarch's `raftstore` or a real etcd — with a configurable mix of
//! Put / Range / compare-and-swap Txn requests and reports throughput and
//! latency percentiles. The crate deliberately does not depend on
//! `navarch-raftstore`: it compiles the shared etcd v3 protos itself
//! (client side only), so the same binary benchmarks both stores fairly.
//!
//! `navarch loadtest api` ([`run_api`]) drives the Kubernetes API through `navarch-client`:
//! create/get/update/list throughput and latency, watch fan-out latency to thousands of
//! watchers, LIST of a large namespace and memory per cached object.

pub mod api;
pub mod proto;
pub mod store;

pub use api::{run_api, ApiArgs, ApiReport};
pub use store::{run_store, StoreArgs, StoreReport};
