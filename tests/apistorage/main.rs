//! End-to-end tests of the apiserver's storage layer: the conformance suite against
//! `EtcdStorage` and `CacheStorage`, each over a real `navarch store` and a real etcd 3.4, and
//! the watch cache's own guarantees (slow watchers, replicas, freshness, expiry, pagination).

mod support;
mod t10_conformance;
mod t20_cache;
mod t30_replicas;
mod t40_store_faults;
mod t50_compactor;
