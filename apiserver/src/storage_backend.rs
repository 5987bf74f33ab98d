//! Builds the production storage stack: `EtcdStorage` (etcd v3 gRPC) behind `CacheStorage`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::storage::cache::{CacheConfig, CacheStorage};
use crate::storage::etcd::{EtcdConfig, EtcdStorage};
use crate::storage::Storage;

/// Builds the client for the etcd v3 `endpoints` (dialed lazily) behind the watch cache.
///
/// Every resource's prefix is registered and its cache started at once (not on first use), as
/// kube-apiserver does: a replica's watch window then begins at its start, so a client that
/// resumes a watch on it from a resourceVersion seen on another replica is served instead of
/// getting 410 Expired.
///
/// `compaction_interval` runs kube-apiserver's compactor over the store (zero: never; it stands
/// down by itself on a sharded Navarch store, which compacts itself).
pub fn etcd_with_cache(
    endpoints: &[String],
    compaction_interval: Duration,
) -> Result<Arc<dyn Storage>> {
    let etcd = Arc::new(
        EtcdStorage::connect_lazy(EtcdConfig::new(endpoints.to_vec()))
            .with_context(|| format!("store endpoints {endpoints:?}"))?,
    );
    crate::storage::etcd::compactor::spawn(&etcd, compaction_interval);
    let cache = Arc::new(CacheStorage::new(etcd, CacheConfig::default()));
    let prefixes: Vec<&'static str> = navarch_api::resources::all()
        .iter()
        .map(|r| r.etcd_prefix)
        .collect();
    for p in &prefixes {
        cache.register_prefix(p);
    }
    let warm = cache.clone();
    tokio::spawn(async move {
        let waits = prefixes.iter().map(|p| {
            let warm = warm.clone();
            async move { (p, warm.wait_ready(p, Duration::from_secs(120)).await) }
        });
        for (p, r) in futures::future::join_all(waits).await {
            if let Err(e) = r {
                tracing::warn!(prefix = p, error = %e, "watch cache warm-up");
            }
        }
    });
    Ok(cache)
}
