//! `CacheStorage`: a watch cache in front of another [`Storage`] (Kubernetes' cacher).
//!
//! ```text
//!                 writes ──────────────────────────────────────────────► inner
//! get/list/watch ─► route key to its cache prefix ─► none ─────────────► inner
//!                                                 └► PrefixCache (lazily started)
//!                                                      feed task: inner.list + inner.watch
//!                                                      state: objects, event ring, watchers
//! reads:  Any            serve once listed
//!         Latest         R = inner.current_revision; wait until the cache has R (asking the
//!                        store for progress); after `consistent_read_timeout`, read the inner
//!         NotOlderThan(r) wait until the cache has r, else Timeout(r) after `wait_timeout`
//!         Exact(r)       inner (the store keeps the history; the cache keeps only the present)
//! watch:  from the ring (Expired when older than the ring), then live; one bounded queue per
//!         watcher, a full queue ends that watcher with Expired and never blocks the others
//! ```
//! Every replica caches the same store revisions, so a client can resume a watch on another
//! replica from its last revision.

mod feed;
mod state;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    ListOptions, ListPage, ReadRevision, Result, Revision, Storage, StorageError, StoredObject,
    WatchItem, WatchStream,
};
use state::{CacheState, Registration, WatcherEnd};

/// Tuning of the watch cache.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Events kept per prefix for watches that start in the past.
    pub ring_capacity: usize,
    /// Items queued per watcher before it is ended with `Expired`.
    pub watcher_buffer: usize,
    /// How long `NotOlderThan` reads and watches wait for the cache to catch up.
    pub wait_timeout: Duration,
    /// How long a `Latest` read waits for the cache before reading the inner storage.
    pub consistent_read_timeout: Duration,
    /// How often the store is asked for progress (bookmarks for idle watchers).
    pub progress_interval: Duration,
    /// Page size of the cache's own lists.
    pub list_page_size: usize,
    /// Prefixes to cache without registering them: the key up to and including its N-th `/`
    /// after the leading one (2: `/registry/pods/`). `None`: only registered prefixes.
    pub auto_prefix_segments: Option<usize>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ring_capacity: 10_000,
            watcher_buffer: 1_000,
            wait_timeout: Duration::from_secs(3),
            consistent_read_timeout: Duration::from_secs(3),
            progress_interval: Duration::from_secs(5),
            list_page_size: 5_000,
            auto_prefix_segments: Some(2),
        }
    }
}

/// One cached prefix.
struct PrefixCache {
    prefix: String,
    inner: Arc<dyn Storage>,
    cfg: CacheConfig,
    state: Mutex<CacheState>,
    /// The state's revision, for waiters (0 until the first list).
    rev_tx: watch::Sender<Revision>,
}

/// [`Storage`] served from per-prefix watch caches over an inner storage.
pub struct CacheStorage {
    inner: Arc<dyn Storage>,
    cfg: CacheConfig,
    registered: Mutex<Vec<String>>,
    caches: Mutex<HashMap<String, Arc<PrefixCache>>>,
    cancel: CancellationToken,
}

impl Drop for CacheStorage {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl CacheStorage {
    /// A cache over `inner`. Nothing starts until a prefix is first used.
    pub fn new(inner: Arc<dyn Storage>, cfg: CacheConfig) -> Self {
        Self {
            inner,
            cfg,
            registered: Mutex::new(Vec::new()),
            caches: Mutex::new(HashMap::new()),
            cancel: CancellationToken::new(),
        }
    }

    /// The storage this cache reads from and writes to.
    pub fn inner(&self) -> &Arc<dyn Storage> {
        &self.inner
    }

    /// Caches everything under `prefix` (ending in `/`) as one unit: every key, list and watch
    /// under it is served from that cache. Takes precedence over `auto_prefix_segments`.
    pub fn register_prefix(&self, prefix: &str) {
        let mut r = self.registered.lock();
        if !r.iter().any(|p| p == prefix) {
            r.push(prefix.to_string());
        }
    }

    /// Starts the cache of `prefix` and waits until it has listed (warm-up at startup).
    pub async fn wait_ready(&self, prefix: &str, timeout: Duration) -> Result<Revision> {
        let pc = self
            .route(prefix)
            .ok_or_else(|| StorageError::Internal(format!("{prefix} is not a cached prefix")))?;
        wait_for(&pc, 1, timeout)
            .await
            .ok_or(StorageError::Timeout(1))
    }

    /// The revision the cache of `prefix` is at (0 if none or not listed yet).
    pub fn cached_revision(&self, prefix: &str) -> Revision {
        self.caches
            .lock()
            .get(prefix)
            .map_or(0, |pc| *pc.rev_tx.borrow())
    }

    /// The cache unit for a key or prefix, started on first use; `None`: not cached.
    fn route(&self, key: &str) -> Option<Arc<PrefixCache>> {
        let unit = {
            let reg = self.registered.lock();
            reg.iter()
                .filter(|p| key.starts_with(p.as_str()))
                .max_by_key(|p| p.len())
                .cloned()
        }
        .or_else(|| auto_prefix(key, self.cfg.auto_prefix_segments?))?;
        let mut caches = self.caches.lock();
        if let Some(pc) = caches.get(&unit) {
            return Some(pc.clone());
        }
        let (rev_tx, _) = watch::channel(0);
        let pc = Arc::new(PrefixCache {
            prefix: unit.clone(),
            inner: self.inner.clone(),
            cfg: self.cfg.clone(),
            state: Mutex::new(CacheState::new(
                self.cfg.ring_capacity,
                self.cfg.watcher_buffer,
            )),
            rev_tx,
        });
        tokio::spawn(feed::run(pc.clone(), self.cancel.child_token()));
        caches.insert(unit, pc.clone());
        Some(pc)
    }

    /// Waits until the cache can serve a read at `revision`; `Ok(false)`: read the inner store.
    async fn fresh_enough(&self, pc: &PrefixCache, revision: ReadRevision) -> Result<bool> {
        match revision {
            ReadRevision::Exact(_) => Ok(false),
            ReadRevision::Any => Ok(wait_for(pc, 1, self.cfg.wait_timeout).await.is_some()),
            ReadRevision::NotOlderThan(r) => {
                if *pc.rev_tx.borrow() < r {
                    self.inner.request_progress(&pc.prefix).await?;
                }
                match wait_for(pc, r.max(1), self.cfg.wait_timeout).await {
                    Some(_) => Ok(true),
                    None => Err(StorageError::Timeout(r)),
                }
            }
            ReadRevision::Latest => {
                // A store that may report progress ahead of its events cannot vouch for the
                // cache being current: read the store itself (as kube-apiserver does for etcd
                // without the etcd#15220 fix).
                if !self.inner.progress_is_ordered().await? {
                    return Ok(false);
                }
                let target = self.inner.current_revision(&pc.prefix).await?;
                if *pc.rev_tx.borrow() < target {
                    self.inner.request_progress(&pc.prefix).await?;
                }
                let ok = wait_for(pc, target.max(1), self.cfg.consistent_read_timeout)
                    .await
                    .is_some();
                if !ok {
                    metrics::counter!("apiserver_watch_cache_consistent_read_fallbacks_total")
                        .increment(1);
                }
                Ok(ok)
            }
        }
    }
}

/// The first `segments` path segments of `key` (with its trailing `/`), if `key` is that or
/// longer.
fn auto_prefix(key: &str, segments: usize) -> Option<String> {
    if segments == 0 || !key.starts_with('/') {
        return None;
    }
    let mut end = 0;
    for _ in 0..segments {
        let rest = key.get(end + 1..)?;
        let slash = rest.find('/')?;
        if slash == 0 {
            return None;
        }
        end += 1 + slash;
    }
    key.get(..=end).map(str::to_string)
}

/// Waits until the cache's revision is at least `target`; `None` on timeout.
async fn wait_for(pc: &PrefixCache, target: Revision, timeout: Duration) -> Option<Revision> {
    let mut rx = pc.rev_tx.subscribe();
    let waited = tokio::time::timeout(timeout, async {
        rx.wait_for(|r| *r >= target).await.map(|r| *r).ok()
    })
    .await;
    waited.ok().flatten()
}

/// A watcher's stream: its backlog, then its queue, then how it ended.
struct WatcherStream {
    backlog: std::collections::VecDeque<WatchItem>,
    rx: tokio::sync::mpsc::Receiver<WatchItem>,
    end: Arc<WatcherEnd>,
    done: bool,
}

fn watcher_stream(reg: Registration) -> WatchStream {
    let st = WatcherStream {
        backlog: reg.backlog.into(),
        rx: reg.rx,
        end: reg.end,
        done: false,
    };
    Box::pin(futures::stream::unfold(st, |mut st| async move {
        if let Some(i) = st.backlog.pop_front() {
            return Some((Ok(i), st));
        }
        if st.done {
            return None;
        }
        match st.rx.recv().await {
            Some(i) => Some((Ok(i), st)),
            None => {
                st.done = true;
                let e = st
                    .end
                    .take()
                    .unwrap_or_else(|| StorageError::Unavailable("watch cache stopped".into()));
                Some((Err(e), st))
            }
        }
    }))
}

#[async_trait]
impl Storage for CacheStorage {
    async fn get(&self, key: &str, revision: ReadRevision) -> Result<Option<StoredObject>> {
        if let Some(pc) = self.route(key) {
            if self.fresh_enough(&pc, revision).await? {
                return Ok(pc.state.lock().get(key));
            }
        }
        self.inner.get(key, revision).await
    }

    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListPage> {
        if let Some(pc) = self.route(prefix) {
            if self.fresh_enough(&pc, opts.revision).await? {
                return Ok(pc
                    .state
                    .lock()
                    .list(prefix, opts.start_after.as_deref(), opts.limit));
            }
        }
        self.inner.list(prefix, opts).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<StoredObject> {
        self.inner.create(key, value).await
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<StoredObject> {
        self.inner.update(key, value, expected).await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<StoredObject> {
        self.inner.delete(key, expected).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let Some(pc) = self.route(prefix) else {
            return self.inner.watch(prefix, after).await;
        };
        if wait_for(&pc, 1, self.cfg.wait_timeout).await.is_none() {
            return Err(StorageError::Unavailable(format!(
                "watch cache of {} not ready within {:?}",
                pc.prefix, self.cfg.wait_timeout
            )));
        }
        let reg = pc.state.lock().register(prefix, after)?;
        Ok(watcher_stream(reg))
    }

    async fn current_revision(&self, prefix: &str) -> Result<Revision> {
        self.inner.current_revision(prefix).await
    }

    async fn progress_is_ordered(&self) -> Result<bool> {
        self.inner.progress_is_ordered().await
    }

    async fn request_progress(&self, prefix: &str) -> Result<()> {
        match self.route(prefix) {
            Some(pc) => self.inner.request_progress(&pc.prefix).await,
            None => self.inner.request_progress(prefix).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::auto_prefix;

    #[test]
    fn auto_prefix_takes_leading_segments() {
        assert_eq!(
            auto_prefix("/registry/pods/default/web", 2).as_deref(),
            Some("/registry/pods/")
        );
        assert_eq!(
            auto_prefix("/registry/pods/", 2).as_deref(),
            Some("/registry/pods/")
        );
        assert_eq!(auto_prefix("/registry/", 2), None);
        assert_eq!(auto_prefix("/registry/pods", 2), None);
        assert_eq!(auto_prefix("registry/pods/", 2), None);
        assert_eq!(auto_prefix("//x/", 2), None);
        assert_eq!(auto_prefix("/a/b/c", 1).as_deref(), Some("/a/"));
    }
}
