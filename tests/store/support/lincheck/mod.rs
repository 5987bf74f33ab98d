//! Linearizability checker (Wing–Gong search with memoisation, as in porcupine) for histories of concurrent clients against an etcd-v3-like KV store with revisions.
//!
//! ```text
//!  clients ──call/ret──▶ Recorder ──into_history──▶ Vec<Event>
//!                                                      │ check / check_from / check_from_state
//!                                                      ▼
//!   prepare   intern keys and values; drop unknown gets; merge values no get returned;
//!             group unknown ops by effect; static checks (revisions claimed twice or out of
//!             reach, values nobody wrote) ──────────────────────────▶ NotLinearizable
//!                                                      │
//!                                                      ▼
//!   relaxed   Wing–Gong search in which an unknown op may fill any number of revisions;
//!   search    memo key (completed ops placed, model state) ─────────▶ NotLinearizable
//!                                                      │ found an order
//!                                                      ▼
//!   exact     the same search, each unknown op used at most once; memo key also holds the
//!   search    unknown ops used; skips nodes the relaxed search proved dead
//!                                                      │
//!                                                      ▼
//!             Linearizable | NotLinearizable { explanation } | Timeout
//! ```
//!
//! # Model
//!
//! One revision counter shared by all keys (one Raft group). The store starts empty at
//! `initial_rev` (etcd: 1). A put, a successful CAS and a delete of an existing key each bump the
//! revision by one and answer with the new revision; a get, a failed CAS and a delete of an absent
//! key change nothing and answer with the current revision. Ops on all keys share the counter, so
//! the history is not partitioned by key; instead each completed op's revision pins where it can
//! go (a put answering `rev` only when the model is at `rev - 1`, a get answering `rev` only at
//! `rev`), and a step that moves the model past the revision an unplaced op needs is refused.
//!
//! An op whose outcome is [`Outcome::Unknown`] may take effect at any point after its call, or
//! never. Since every write bumps the revision, an unknown write is only ever placed to create a
//! revision that no completed write claims and that some completed op has seen (a gap); placing
//! it anywhere else, or placing an unknown op that changes nothing, cannot help.
//!
//! The relaxed search over-approximates (every real linearization is one of its orders), so its
//! "no" is final; it cannot blow up over which of several interchangeable unknown ops filled a
//! gap, which is what makes refuting a history with many unknowns cheap.
//!
//! # Layout
//!
//! - this file: the public types and the entry points;
//! - `model`: the interned ops and the model's transition function;
//! - `prepare`: interning a history, the static checks, which unknown op may fill which gap;
//! - `search`: the Wing–Gong search, relaxed and exact;
//! - `explain`: the human-readable account of a history that is not linearizable;
//! - `recorder`: recording a history from concurrent clients.

mod explain;
mod model;
mod prepare;
mod recorder;
mod search;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prepare::Prepared;
use search::{Search, SearchEnd};

pub use recorder::Recorder;

/// A client request against the KV store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Put `value` at `key`.
    Put {
        /// The key written.
        key: String,
        /// The value written.
        value: String,
    },
    /// Read `key` (a linearizable Range of one key).
    Get {
        /// The key read.
        key: String,
    },
    /// Delete `key`.
    Delete {
        /// The key deleted.
        key: String,
    },
    /// Txn: if mod_revision(key) == expect_mod_rev (0 = key absent) then put(key, value).
    Cas {
        /// The key compared and written.
        key: String,
        /// The mod_revision the compare expects; 0 means "key absent".
        expect_mod_rev: i64,
        /// The value written when the compare succeeds.
        value: String,
    },
}

impl Op {
    /// The key the op touches.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Get { key } | Op::Delete { key } | Op::Cas { key, .. } => key,
        }
    }
}

/// What the client saw come back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// header.revision returned by the put
    Put {
        /// header.revision of the response.
        rev: i64,
    },
    /// value (None = absent), the key's mod_revision (0 if absent), and header.revision of the response
    Get {
        /// The value read; `None` if the key is absent.
        value: Option<String>,
        /// The key's mod_revision; 0 if absent.
        mod_rev: i64,
        /// header.revision of the response.
        rev: i64,
    },
    /// number of keys deleted (0 or 1) and header.revision
    Delete {
        /// Keys deleted: 0 or 1.
        deleted: i64,
        /// header.revision of the response.
        rev: i64,
    },
    /// whether the txn compare succeeded, and header.revision
    Cas {
        /// Whether the compare succeeded (and the put was applied).
        succeeded: bool,
        /// header.revision of the response.
        rev: i64,
    },
    /// The client does not know whether the op took effect (timeout, connection reset...).
    Unknown,
}

/// One op of one client: when it was called, when (if ever) it returned, and what it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The client that issued the op; clients issue one op at a time.
    pub client: usize,
    /// The request.
    pub op: Op,
    /// Call time, in ns from the history's origin.
    pub call: u64,
    /// Return time, in ns from the history's origin; `None` <=> `outcome` is [`Outcome::Unknown`].
    pub ret: Option<u64>,
    /// The response.
    pub outcome: Outcome,
}

// Defined here rather than in `recorder` (a child module, so it still sees the private field)
// so that re-exporting it cannot warn as unused in a test binary that never names it.
/// Names one recorded call, to pass back to [`Recorder::ret`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallId(usize);

/// The checker's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// Some order of the ops, consistent with real time, explains every outcome.
    Linearizable,
    /// No such order exists.
    NotLinearizable {
        /// The longest linearizable prefix found and the ops that could not be placed after it.
        explanation: String,
    },
    /// The deadline passed before the search finished.
    Timeout,
}

impl CheckResult {
    /// True for [`CheckResult::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, CheckResult::Linearizable)
    }
}

/// Checks `history` against a store that starts empty at revision 1 (a fresh etcd).
///
/// # Panics
/// On a malformed history (an outcome of the wrong kind for its op, a return before its call):
/// that is a bug in the test harness, not in the store.
pub fn check(history: &[Event], timeout: Duration) -> CheckResult {
    check_from(history, 1, timeout)
}

/// Checks `history` against a store that starts with no keys at revision `initial_rev`.
///
/// # Panics
/// As [`check`].
pub fn check_from(history: &[Event], initial_rev: i64, timeout: Duration) -> CheckResult {
    check_from_state(history, &InitialState::empty(initial_rev), timeout)
}

/// The revision the store must have been at when the history began, going by its completed
/// ops: the lowest revision at which one of them can take effect (a write answering `rev` takes
/// effect at `rev - 1`, anything else at the `rev` it answers with). Exact unless unknown writes
/// took effect before every completed op. `None` if no op completed.
///
/// For histories against a store that was already written to: `check_from(h,
/// implied_initial_rev(h).unwrap_or(1), timeout)`, with the keys the history touches absent at
/// the start.
pub fn implied_initial_rev(history: &[Event]) -> Option<i64> {
    history
        .iter()
        .filter_map(|e| match e.outcome {
            Outcome::Put { rev }
            | Outcome::Delete { deleted: 1, rev }
            | Outcome::Cas {
                succeeded: true,
                rev,
            } => Some(rev - 1),
            Outcome::Get { rev, .. } | Outcome::Delete { rev, .. } | Outcome::Cas { rev, .. } => {
                Some(rev)
            }
            Outcome::Unknown => None,
        })
        .min()
}

/// The store's state before the first op of a history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InitialState {
    /// The store revision.
    pub rev: i64,
    /// Keys present: key -> (value, mod_revision).
    pub keys: BTreeMap<String, (String, i64)>,
}

impl InitialState {
    /// No keys, at revision `rev`.
    pub fn empty(rev: i64) -> Self {
        InitialState {
            rev,
            keys: BTreeMap::new(),
        }
    }
}

/// Checks `history` against a store that starts in state `initial`.
///
/// # Panics
/// As [`check`].
pub fn check_from_state(
    history: &[Event],
    initial: &InitialState,
    timeout: Duration,
) -> CheckResult {
    let deadline = Instant::now() + timeout;
    let prepared = Prepared::new(history, initial);
    if let Some(explanation) = prepared.static_conflicts(history) {
        return CheckResult::NotLinearizable { explanation };
    }
    let mut relaxed = Search::new(&prepared, None);
    match relaxed.run(deadline) {
        SearchEnd::Linearizable if !relaxed.reuses_unknowns() => CheckResult::Linearizable,
        SearchEnd::Linearizable => {
            let mut exact = Search::new(&prepared, Some(relaxed.into_dead()));
            match exact.run(deadline) {
                SearchEnd::Linearizable => CheckResult::Linearizable,
                end => prepared.verdict(history, end),
            }
        }
        end => prepared.verdict(history, end),
    }
}
