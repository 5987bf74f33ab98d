//! Raft log storage in RocksDB (`raft_log` and `raft_meta` column families).
//!
//! # Correctness
//! - `save_vote` returns only after the vote is fsynced.
//! - `append` writes the entries (readable at once) and reports them flushed to openraft only
//!   after the WAL is fsynced; appends from concurrent calls share one fsync (group commit).
//! - `purge` first flushes the state machine (whose writes skip the WAL), then records the last
//!   purged id, then deletes: a crash at any point leaves every applied-but-unflushed entry
//!   still in the log, and at worst extra entries that openraft ignores.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use tokio::sync::mpsc;

use crate::engine::{Engine, WeakEngine};
use crate::error::StoreError;
use crate::keys::{cf, Keys};
use crate::types::{decode, encode, Entry, LogId, TypeConfig, Vote};

const VOTE: &str = "vote";
const LAST_PURGED: &str = "last_purged";
const COMMITTED: &str = "committed";

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// The WAL fsync thread of a database: every shard's log hands it its flush callbacks, so
/// appends of all shards that arrive while an fsync runs share the next one (group commit
/// across Raft groups).
#[derive(Clone)]
pub struct WalSyncer {
    tx: mpsc::UnboundedSender<IOFlushed<TypeConfig>>,
}

impl WalSyncer {
    /// Starts the fsync thread of `engine`.
    pub fn start(engine: &Engine) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let e = engine.downgrade();
        std::thread::Builder::new()
            .name("wal-sync".into())
            .spawn(move || wal_sync_loop(e, rx))
            .expect("spawn wal sync thread");
        Self { tx }
    }
}

/// The Raft log of one shard.
#[derive(Clone)]
pub struct LogStore {
    engine: Engine,
    keys: Keys,
    syncer: mpsc::UnboundedSender<IOFlushed<TypeConfig>>,
}

impl LogStore {
    /// Opens the log of `shard` with its own fsync thread.
    pub fn new(engine: Engine, shard: u32) -> Self {
        let syncer = WalSyncer::start(&engine);
        Self::with_syncer(engine, shard, syncer)
    }

    /// Opens the log of `shard`, fsyncing through a syncer shared with other shards.
    pub fn with_syncer(engine: Engine, shard: u32, syncer: WalSyncer) -> Self {
        Self {
            engine,
            keys: Keys::new(shard),
            syncer: syncer.tx,
        }
    }

    fn get_meta<T: for<'de> serde::Deserialize<'de>>(&self, name: &str) -> io::Result<Option<T>> {
        let v = self
            .engine
            .db()
            .get_cf(self.engine.cf(cf::RAFT_META), self.keys.named(name))
            .map_err(io_err)?;
        v.map(|b| decode(&b).map_err(io_err)).transpose()
    }

    fn put_meta<T: serde::Serialize>(&self, name: &str, v: &T, sync: bool) -> io::Result<()> {
        let mut b = WriteBatch::default();
        b.put_cf(
            self.engine.cf(cf::RAFT_META),
            self.keys.named(name),
            encode(v).map_err(io_err)?,
        );
        self.engine.write(b, sync).map_err(io_err)
    }
}

/// Fsyncs the WAL for batches of appends: every callback queued before an fsync starts is
/// completed by it, so concurrent appends share one fsync.
///
/// The thread holds only a weak handle, so it never keeps the database open: RocksDB must be
/// closed before the process exits, not torn down by static destructors.
fn wal_sync_loop(engine: WeakEngine, mut rx: mpsc::UnboundedReceiver<IOFlushed<TypeConfig>>) {
    while let Some(first) = rx.blocking_recv() {
        let mut pending = vec![first];
        while let Ok(cb) = rx.try_recv() {
            pending.push(cb);
        }
        let res = match engine.upgrade() {
            Some(e) => e.sync_wal(),
            None => Err(StoreError::Stopped),
        };
        metrics::counter!("navarch_store_wal_fsyncs_total").increment(1);
        for cb in pending {
            cb.io_completed(res.clone().map_err(io_err));
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => *x + 1,
            Bound::Unbounded => 0,
        };
        let db = self.engine.db();
        let from = self.keys.log(start);
        let mut out = Vec::new();
        for item in db.iterator_cf(
            self.engine.cf(cf::RAFT_LOG),
            IteratorMode::From(&from, Direction::Forward),
        ) {
            let (k, v) = item.map_err(io_err)?;
            if !k.starts_with(&self.keys.prefix()) {
                break;
            }
            let idx = self.keys.log_index(&k);
            if !range.contains(&idx) {
                break;
            }
            let entry: Entry = decode(&v).map_err(io_err)?;
            if entry.index() != idx {
                return Err(io_err(StoreError::Internal(format!(
                    "log entry at {idx} has index {}",
                    entry.index()
                ))));
            }
            out.push(entry);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.get_meta(VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let db = self.engine.db();
        let upper = self.keys.upper();
        let mut it = db.iterator_cf(
            self.engine.cf(cf::RAFT_LOG),
            IteratorMode::From(&upper, Direction::Reverse),
        );
        let mut last = None;
        if let Some(item) = it.next() {
            let (k, v) = item.map_err(io_err)?;
            if k.starts_with(&self.keys.prefix()) {
                let e: Entry = decode(&v).map_err(io_err)?;
                last = Some(e.log_id());
            }
        }
        let last_purged: Option<LogId> = self.get_meta(LAST_PURGED)?;
        Ok(LogState {
            last_log_id: last.or(last_purged),
            last_purged_log_id: last_purged,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.put_meta(VOTE, vote, true)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.put_meta(COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.get_meta::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let cf_log = self.engine.cf(cf::RAFT_LOG);
        let mut n = 0u64;
        for e in entries {
            batch.put_cf(
                cf_log,
                self.keys.log(e.index()),
                encode(&e).map_err(io_err)?,
            );
            n += 1;
        }
        self.engine.write(batch, false).map_err(io_err)?;
        metrics::counter!("navarch_store_log_entries_appended_total").increment(n);
        if let Err(mpsc::error::SendError(cb)) = self.syncer.send(callback) {
            // The sync thread is gone only if the engine is being torn down: sync inline.
            cb.io_completed(self.engine.sync_wal().map_err(io_err));
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let start = last_log_id.map(|l| l.index() + 1).unwrap_or(0);
        let mut b = WriteBatch::default();
        b.delete_range_cf(
            self.engine.cf(cf::RAFT_LOG),
            self.keys.log(start),
            self.keys.upper(),
        );
        // Sync: a truncated suffix must not reappear after a crash once a new suffix is acked.
        self.engine.write(b, true).map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // The state machine skips the WAL: make its writes durable before the log entries
        // that could replay them disappear.
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.flush_state_machine())
            .await
            .map_err(io_err)?
            .map_err(io_err)?;
        self.put_meta(LAST_PURGED, &log_id, true)?;
        let mut b = WriteBatch::default();
        b.delete_range_cf(
            self.engine.cf(cf::RAFT_LOG),
            self.keys.log(0),
            self.keys.log(log_id.index() + 1),
        );
        self.engine.write(b, false).map_err(io_err)
    }
}

/// Shared handle type used by callers that only need to read the log state.
pub type SharedLogStore = Arc<LogStore>;
