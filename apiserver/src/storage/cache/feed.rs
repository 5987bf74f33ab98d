//! The task that feeds one prefix's cache from the store: list, then watch, forever.
//!
//! ```text
//! ┌► list prefix (paged, one snapshot) ─► reset state at R ─► watch(prefix, R)
//! │     events / progress ─► apply under the lock ─► notify revision waiters
//! │     Unavailable / Timeout / stream end ─► back off, watch again from the state's revision
//! └──── Expired / out-of-order / anything else ─► relist (watchers that cannot be served expire)
//! ```
//! A ticker asks the store for progress every `progress_interval` (bookmarks for idle watchers).
//!
//! Progress notifications are trusted: a store that reports progress R before it has sent every
//! event ≤ R (etcd before 3.4.26/3.5.8 could, under a race in `RequestProgress`) is detected when
//! the late event arrives (`OutOfOrder`), and the cache relists; its watchers get `Expired`.
//! Consistent (`Latest`) reads are answered from progress only when the store orders progress
//! after events (`Storage::progress_is_ordered`); otherwise they read the store.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::PrefixCache;
use crate::storage::{
    ListOptions, ReadRevision, Result, Revision, StorageError, StoredObject, WatchEvent, WatchItem,
};

/// Items handled under one lock acquisition.
const CHUNK: usize = 1024;
/// Back-off after a failed list or watch: first and largest.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why the watch loop returned.
enum WatchEnd {
    /// The cache is being dropped.
    Cancelled,
    /// Watch again from the state's revision.
    Resume,
    /// The history is gone or inconsistent: list again.
    Relist,
}

/// Runs until `cancel` fires.
pub(super) async fn run(cache: Arc<PrefixCache>, cancel: CancellationToken) {
    let mut backoff = BACKOFF_MIN;
    'relist: loop {
        let listed = tokio::select! {
            _ = cancel.cancelled() => break 'relist,
            r = list_all(&cache) => r,
        };
        let (items, rev) = match listed {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(prefix = %cache.prefix, error = %e, "watch cache: list failed");
                if !sleep_or_cancel(&cancel, &mut backoff).await {
                    break 'relist;
                }
                continue 'relist;
            }
        };
        {
            let mut st = cache.state.lock();
            st.reset(items, rev);
        }
        cache.rev_tx.send_replace(rev);
        metrics::counter!("apiserver_watch_cache_relists_total").increment(1);
        tracing::debug!(prefix = %cache.prefix, revision = rev, "watch cache: listed");
        loop {
            match watch_once(&cache, &cancel, &mut backoff).await {
                WatchEnd::Cancelled => break 'relist,
                WatchEnd::Relist => continue 'relist,
                WatchEnd::Resume => {
                    if !sleep_or_cancel(&cancel, &mut backoff).await {
                        break 'relist;
                    }
                }
            }
        }
    }
    cache
        .state
        .lock()
        .end_all(StorageError::Unavailable("watch cache stopped".into()));
}

/// Sleeps for the back-off (doubling it); false when cancelled meanwhile.
async fn sleep_or_cancel(cancel: &CancellationToken, backoff: &mut Duration) -> bool {
    let d = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Every object under the prefix, read page by page at one revision.
async fn list_all(cache: &PrefixCache) -> Result<(Vec<StoredObject>, Revision)> {
    let mut opts = ListOptions {
        revision: ReadRevision::Latest,
        limit: Some(cache.cfg.list_page_size),
        start_after: None,
    };
    let mut items = Vec::new();
    loop {
        let page = cache.inner.list(&cache.prefix, &opts).await?;
        items.extend(page.items);
        match page.next_key {
            Some(k) => {
                opts.revision = ReadRevision::Exact(page.revision);
                opts.start_after = Some(k);
            }
            None => return Ok((items, page.revision)),
        }
    }
}

/// One store watch from the state's revision until it fails.
async fn watch_once(
    cache: &PrefixCache,
    cancel: &CancellationToken,
    backoff: &mut Duration,
) -> WatchEnd {
    let from = cache.state.lock().revision();
    let stream = tokio::select! {
        _ = cancel.cancelled() => return WatchEnd::Cancelled,
        s = cache.inner.watch(&cache.prefix, from) => s,
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => return classify(cache, &e),
    };
    let mut chunks = stream.ready_chunks(CHUNK);
    let mut tick = tokio::time::interval(cache.cfg.progress_interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return WatchEnd::Cancelled,
            _ = tick.tick() => {
                if let Err(e) = cache.inner.request_progress(&cache.prefix).await {
                    tracing::debug!(prefix = %cache.prefix, error = %e, "progress request failed");
                }
            }
            chunk = chunks.next() => {
                let Some(chunk) = chunk else {
                    return WatchEnd::Resume;
                };
                match apply_chunk(cache, chunk) {
                    Ok(()) => *backoff = BACKOFF_MIN,
                    Err(end) => return end,
                }
            }
        }
    }
}

/// Applies one chunk of store watch items in order.
fn apply_chunk(cache: &PrefixCache, chunk: Vec<Result<WatchItem>>) -> Result<(), WatchEnd> {
    let mut failure = None;
    let rev = {
        let mut st = cache.state.lock();
        let mut events: Vec<WatchEvent> = Vec::new();
        for item in chunk {
            match item {
                Ok(WatchItem::Event(ev)) => events.push(ev),
                Ok(WatchItem::Progress(r)) => {
                    if let Err(e) = st.apply(std::mem::take(&mut events)) {
                        failure = Some(out_of_order(cache, e));
                        break;
                    }
                    st.progress(r);
                }
                Err(e) => {
                    failure = Some(classify(cache, &e));
                    break;
                }
            }
        }
        if failure.is_none() {
            if let Err(e) = st.apply(events) {
                failure = Some(out_of_order(cache, e));
            }
        }
        metrics::gauge!("apiserver_watch_cache_watchers", "prefix" => cache.prefix.clone())
            .set(st.watcher_count() as f64);
        st.revision()
    };
    cache.rev_tx.send_if_modified(|r| {
        let newer = rev > *r;
        if newer {
            *r = rev;
        }
        newer
    });
    match failure {
        Some(end) => Err(end),
        None => Ok(()),
    }
}

fn out_of_order(cache: &PrefixCache, e: super::state::OutOfOrder) -> WatchEnd {
    tracing::warn!(
        prefix = %cache.prefix, event_revision = e.event_rev, cache_revision = e.cache_rev,
        "watch cache: store sent an event out of order; relisting"
    );
    WatchEnd::Relist
}

fn classify(cache: &PrefixCache, e: &StorageError) -> WatchEnd {
    match e {
        StorageError::Unavailable(_) | StorageError::Timeout(_) => {
            tracing::debug!(prefix = %cache.prefix, error = %e, "watch cache: store watch interrupted");
            WatchEnd::Resume
        }
        _ => {
            tracing::warn!(prefix = %cache.prefix, error = %e, "watch cache: store watch failed; relisting");
            WatchEnd::Relist
        }
    }
}
