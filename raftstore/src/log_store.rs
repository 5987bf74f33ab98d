//! The Raft log of one shard: entries in the node's [`LogEngine`] (append-only segment files
//! shared by all shards), vote and bookkeeping in RocksDB's `raft_meta` column family.
//!
//! # Correctness
//! - `save_vote` returns only after the vote is fsynced.
//! - `append` writes the entries (readable at once) and reports them flushed to openraft only
//!   after their segment is fsynced; appends from concurrent calls (of every shard) share one
//!   fsync (group commit).
//! - `truncate_after` is durable when it returns, so a removed suffix never reappears.
//! - `purge` first flushes the state machine (whose writes skip the WAL), then records the last
//!   purged id (fsynced), then drops the entries: a crash at any point leaves every
//!   applied-but-unflushed entry still in the log, and at worst extra entries that are purged
//!   again when the log is opened.

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use rocksdb::WriteBatch;

use crate::engine::Engine;
use crate::keys::{cf, Keys};
pub use crate::raft_log::LogEngine;
use crate::types::{decode, encode, Entry, LogId, TypeConfig, Vote};

const VOTE: &str = "vote";
const LAST_PURGED: &str = "last_purged";
const COMMITTED: &str = "committed";

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// The Raft log of one shard.
#[derive(Clone)]
pub struct LogStore {
    engine: Engine,
    log: LogEngine,
    shard: u32,
    keys: Keys,
}

impl LogStore {
    /// Opens the log of `shard`: entries in `log`, metadata in `engine`. Entries a purge
    /// recorded in `engine` but a crash left in `log` are purged again.
    pub fn new(engine: Engine, log: LogEngine, shard: u32) -> io::Result<Self> {
        let store = Self {
            engine,
            log,
            shard,
            keys: Keys::new(shard),
        };
        if let Some(purged) = store.get_meta::<LogId>(LAST_PURGED)? {
            store.log.purge(shard, purged.index)?;
        }
        Ok(store)
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

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        self.log.entries(self.shard, range)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.get_meta(VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged: Option<LogId> = self.get_meta(LAST_PURGED)?;
        let last = self.log.last_log_id(self.shard);
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
        self.log.append(self.shard, entries, callback)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map(|l| l.index + 1).unwrap_or(0);
        self.log.truncate(self.shard, from)
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
        self.log.purge(self.shard, log_id.index)
    }
}

/// Shared handle type used by callers that only need to read the log state.
pub type SharedLogStore = Arc<LogStore>;
