//! Builds the production storage stack: `EtcdStorage` (etcd v3 gRPC) behind `CacheStorage`.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::storage::cache::{CacheConfig, CacheStorage};
use crate::storage::etcd::{EtcdConfig, EtcdStorage};
use crate::storage::Storage;

/// Builds the client for the etcd v3 `endpoints` (dialed lazily) behind the watch cache.
pub fn etcd_with_cache(endpoints: &[String]) -> Result<Arc<dyn Storage>> {
    let etcd = EtcdStorage::connect_lazy(EtcdConfig::new(endpoints.to_vec()))
        .with_context(|| format!("store endpoints {endpoints:?}"))?;
    Ok(Arc::new(CacheStorage::new(
        Arc::new(etcd),
        CacheConfig::default(),
    )))
}
