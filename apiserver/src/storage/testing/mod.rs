//! The storage conformance suite: one set of cases every [`Storage`] implementation must pass
//! (Kubernetes runs one storage test suite against etcd and the watch cache; openraft exports
//! `testing::Suite`). Public so integration tests run it against real stores.
//!
//! ```text
//! run_all(storage, "/root/") ─► for each case: case(storage, "/root/<case>/") ─► failures by name
//! ```
//! Each case works only under its own prefix, so cases may share a store (and even run
//! concurrently). Reads with a future `NotOlderThan` wait up to the implementation's timeout,
//! so give a cache a short `wait_timeout` when running the suite.

mod crud;
mod list;
mod watch;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use futures::StreamExt;

use super::{Storage, StorageError, WatchEvent, WatchItem, WatchStream};

/// How long a case waits for one watch item before failing.
pub const WATCH_ITEM_TIMEOUT: Duration = Duration::from_secs(10);

type CaseFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// One named conformance case.
pub struct Case {
    /// The case's name (also its key prefix under the suite root).
    pub name: &'static str,
    run: fn(Arc<dyn Storage>, String) -> CaseFuture,
}

impl Case {
    /// Runs the case under `root` (its keys go under `root<name>/`).
    pub async fn run(&self, storage: Arc<dyn Storage>, root: &str) -> anyhow::Result<()> {
        let prefix = format!("{root}{}/", self.name);
        (self.run)(storage, prefix)
            .await
            .with_context(|| format!("conformance case {}", self.name))
    }
}

macro_rules! case {
    ($module:ident :: $name:ident) => {
        Case {
            name: stringify!($name),
            run: |s, p| Box::pin($module::$name(s, p)),
        }
    };
}

/// Every case of the suite.
pub fn cases() -> Vec<Case> {
    vec![
        case!(crud::create_then_get),
        case!(crud::update_preconditions),
        case!(crud::delete_preconditions),
        case!(crud::binary_and_empty_values),
        case!(crud::too_large_values),
        case!(crud::concurrent_creates_one_wins),
        case!(crud::concurrent_cas_updates),
        case!(list::list_prefix_boundaries),
        case!(list::list_pagination),
        case!(list::list_pages_keep_their_snapshot),
        case!(list::read_revisions),
        case!(list::future_revisions_time_out),
        case!(watch::watch_reports_every_change),
        case!(watch::watch_from_past_revision),
        case!(watch::watch_sub_prefix),
        case!(watch::watch_progress),
        case!(watch::watch_delete_and_recreate),
    ]
}

/// Runs every case under `prefix` (ending in `/`, unique per run) and returns the failures,
/// each with its case name.
pub async fn try_run_all(storage: Arc<dyn Storage>, prefix: &str) -> Vec<(String, anyhow::Error)> {
    let mut failures = Vec::new();
    for case in cases() {
        let started = Instant::now();
        let out = case.run(storage.clone(), prefix).await;
        let took = started.elapsed();
        match out {
            Ok(()) => tracing::info!(case = case.name, ?took, "conformance case passed"),
            Err(e) => {
                tracing::error!(case = case.name, error = ?e, "conformance case failed");
                failures.push((case.name.to_string(), e));
            }
        }
    }
    failures
}

/// Runs every case under `prefix`; panics listing every failed case.
pub async fn run_all(storage: Arc<dyn Storage>, prefix: &str) {
    let failures = try_run_all(storage, prefix).await;
    if !failures.is_empty() {
        let report: Vec<String> = failures
            .iter()
            .map(|(name, e)| format!("- {name}: {e:#}"))
            .collect();
        panic!(
            "{} conformance case(s) failed:\n{}",
            failures.len(),
            report.join("\n")
        );
    }
}

/// The next watch item within [`WATCH_ITEM_TIMEOUT`].
pub async fn next_item(w: &mut WatchStream) -> anyhow::Result<WatchItem> {
    match tokio::time::timeout(WATCH_ITEM_TIMEOUT, w.next()).await {
        Err(_) => bail!("no watch item within {WATCH_ITEM_TIMEOUT:?}"),
        Ok(None) => bail!("watch stream ended"),
        Ok(Some(Err(e))) => Err(anyhow!(e).context("watch stream failed")),
        Ok(Some(Ok(i))) => Ok(i),
    }
}

/// The next event, skipping progress notifications.
pub async fn next_event(w: &mut WatchStream) -> anyhow::Result<WatchEvent> {
    let deadline = Instant::now() + WATCH_ITEM_TIMEOUT;
    while Instant::now() < deadline {
        if let WatchItem::Event(e) = next_item(w).await? {
            return Ok(e);
        }
    }
    bail!("only progress notifications for {WATCH_ITEM_TIMEOUT:?}")
}

/// Opens a watch that must end with `Expired`: either at once or as its first error.
pub async fn expect_watch_expired(
    storage: &dyn Storage,
    prefix: &str,
    after: i64,
) -> anyhow::Result<()> {
    let mut w = match storage.watch(prefix, after).await {
        Err(StorageError::Expired { .. }) => return Ok(()),
        Err(e) => bail!("watch from {after}: expected Expired, got {e}"),
        Ok(w) => w,
    };
    let deadline = Instant::now() + WATCH_ITEM_TIMEOUT;
    while Instant::now() < deadline {
        match tokio::time::timeout(WATCH_ITEM_TIMEOUT, w.next()).await {
            Ok(Some(Err(StorageError::Expired { .. }))) => return Ok(()),
            Ok(Some(Err(e))) => bail!("watch from {after}: expected Expired, got {e}"),
            Ok(Some(Ok(WatchItem::Progress(_)))) => continue,
            Ok(Some(Ok(WatchItem::Event(e)))) => {
                bail!(
                    "watch from {after}: expected Expired, got an event at {}",
                    e.object.mod_revision
                )
            }
            Ok(None) => bail!("watch from {after}: ended without Expired"),
            Err(_) => break,
        }
    }
    bail!("watch from {after}: no Expired within {WATCH_ITEM_TIMEOUT:?}")
}
