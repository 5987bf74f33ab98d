//! The apiserver's storage layer: Kubernetes' `storage.Interface` over raw object bytes.
//!
//! ```text
//! handlers ─► dyn Storage
//!               ├─ CacheStorage   (cache.rs): writes pass through; get/list/watch from a per-prefix
//!               │                  watch cache fed by ONE store watch per resource prefix
//!               └─ EtcdStorage    (etcd.rs):  etcd v3 gRPC (Navarch's raftstore or a real etcd)
//! ```
//!
//! Keys are full etcd keys (`/registry/pods/default/web-1`). Values are the serialized object
//! exactly as the apiserver wants it stored (JSON, with `metadata.resourceVersion` left out: the
//! resource version of an object is its `mod_revision`). No etcd type crosses this boundary.
//!
//! One implementation-independent conformance suite (`testing`) runs against every
//! implementation, and against a real etcd 3.4.

pub mod cache;
pub mod etcd;
pub mod testing;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

/// A store revision (etcd `mod_revision` / `header.revision`); Kubernetes' resourceVersion.
pub type Revision = i64;

/// `Result` with [`StorageError`].
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Full key.
    pub key: String,
    /// Serialized object.
    pub value: Bytes,
    /// Revision of the last write of this key (the object's resourceVersion).
    pub mod_revision: Revision,
    /// Revision that created this key.
    pub create_revision: Revision,
}

/// Which state a read must observe (Kubernetes' `resourceVersion` + `resourceVersionMatch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRevision {
    /// The latest state, linearizable (`resourceVersion` unset): a cache first reads the store's
    /// current revision, then waits until it has caught up to it.
    Latest,
    /// Any state (`resourceVersion=0`): a cache serves what it has.
    Any,
    /// A state at least this new (`resourceVersion=N`, match `NotOlderThan` or unset).
    NotOlderThan(Revision),
    /// Exactly this revision (`resourceVersionMatch=Exact`); `Expired` if compacted.
    Exact(Revision),
}

/// Options of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// Which state to read.
    pub revision: ReadRevision,
    /// At most this many items (`None`: all).
    pub limit: Option<usize>,
    /// Continue strictly after this key (from a previous page's `next_key`). Later pages of one
    /// list pass `revision: ReadRevision::Exact(first_page.revision)` so that every page reads
    /// the same snapshot (`Expired` once that revision is compacted).
    pub start_after: Option<String>,
}

impl Default for ListOptions {
    fn default() -> Self {
        Self {
            revision: ReadRevision::Latest,
            limit: None,
            start_after: None,
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Items in key order.
    pub items: Vec<StoredObject>,
    /// The revision this page was read at (the list's resourceVersion; later pages of the
    /// same list are read at the same revision).
    pub revision: Revision,
    /// Set when more items remain: the last key of this page (pass as `start_after`).
    pub next_key: Option<String>,
    /// How many items remain after this page, when known (`None` or `Some(0)` on the last page).
    pub remaining: Option<i64>,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created.
    Added,
    /// The key was updated.
    Modified,
    /// The key was deleted.
    Deleted,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// What happened.
    pub kind: EventKind,
    /// The object after the change (for `Deleted`: its last state, with `mod_revision` set to
    /// the revision of the deletion).
    pub object: StoredObject,
    /// The object before the change (`None` for `Added`).
    pub prev_value: Option<Bytes>,
}

/// What a watch stream yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchItem {
    /// A change, in revision order, never repeated, never skipped.
    Event(WatchEvent),
    /// Every change up to this revision has been delivered (a bookmark/progress notify).
    Progress(Revision),
}

/// A stream of changes under a prefix. It ends with `Err(StorageError::Expired)` when the
/// watcher fell too far behind or the start revision is too old; the client relists.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchItem>> + Send>>;

/// Errors of the storage layer. Retryable: `Conflict`, `Expired`, `Unavailable`, `Timeout`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StorageError {
    /// No such key.
    #[error("key {key} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// Create of a key that exists.
    #[error("key {key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// A precondition (expected mod revision) did not hold.
    #[error("key {key}: expected revision {expected}, found {actual:?}")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// The object's current revision (`None`: the key is gone).
        actual: Option<Revision>,
    },
    /// The requested revision is compacted or older than the cache holds (HTTP 410).
    #[error("revision {requested} is too old (oldest available {oldest})")]
    Expired {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available (0 when the store does not say: etcd's `Range`
        /// error carries no compaction revision).
        oldest: Revision,
    },
    /// A cache could not reach the requested revision in time (HTTP 504/429).
    #[error("timed out waiting for revision {0}")]
    Timeout(Revision),
    /// The value is larger than the store accepts (HTTP 413).
    #[error("value of {key} too large ({size} bytes)")]
    TooLarge {
        /// The key.
        key: String,
        /// Its size in bytes.
        size: usize,
    },
    /// The store cannot be reached or has no leader (HTTP 503/500, retryable).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else (HTTP 500).
    #[error("storage error: {0}")]
    Internal(String),
}

/// Kubernetes' `storage.Interface`, narrowed to what the apiserver needs.
///
/// # Correctness
/// - A successful write is durable (acknowledged by the store) before it returns, and returns the
///   object with its new `mod_revision`.
/// - `list` with `start_after` and `ReadRevision::Exact(first_page.revision)` continues the same
///   snapshot: later pages see exactly the state of the first page, whatever was written since.
/// - Reads honour their [`ReadRevision`]: `Latest` sees every write acknowledged before the read
///   started; `NotOlderThan(r)` sees a state at least as new as `r`, or fails with `Timeout(r)`
///   when `r` is ahead of the store (after waiting a bounded time, for a cache); `Exact(r)`
///   fails with `Expired` once `r` is compacted and with `Timeout(r)` when `r` is in the future.
/// - `watch(prefix, after)` yields every change under `prefix` with revision `> after`, in revision
///   order, each exactly once, or ends with an error; a revision older than what the
///   implementation can replay gives `Expired`.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str, revision: ReadRevision) -> Result<Option<StoredObject>>;

    /// Lists keys under `prefix` (a prefix ending in `/`).
    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListPage>;

    /// Creates `key`; `AlreadyExists` if it is there.
    async fn create(&self, key: &str, value: Bytes) -> Result<StoredObject>;

    /// Replaces `key` if its `mod_revision` is `expected`; `NotFound` or `Conflict` otherwise.
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<StoredObject>;

    /// Deletes `key` (if `expected` is set, only at that `mod_revision`). Returns the deleted
    /// object with `mod_revision` set to the revision of the deletion.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<StoredObject>;

    /// Watches `prefix` for changes after revision `after`.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// The store's current revision for `prefix` (linearizable).
    async fn current_revision(&self, prefix: &str) -> Result<Revision>;

    /// Whether a watch's [`WatchItem::Progress`] at revision R always comes after every event
    /// ≤ R of that watch. A watch cache answers consistent reads from progress only where this
    /// holds (etcd ≥ 3.4.31 / 3.5.13 and Navarch's store; older etcd could report progress
    /// ahead of queued events, etcd#15220) and reads the store otherwise. Default: true.
    async fn progress_is_ordered(&self) -> Result<bool> {
        Ok(true)
    }

    /// Asks every open watch on `prefix` (or under it) to report its progress soon with a
    /// [`WatchItem::Progress`] (etcd's `WatchProgressRequest`). Watch caches call this for
    /// consistent reads and bookmarks. Best effort; the default does nothing.
    async fn request_progress(&self, prefix: &str) -> Result<()> {
        let _ = prefix;
        Ok(())
    }
}
