//! The replicated state machine: etcd's MVCC store on RocksDB, driven by openraft.
//!
//! ```text
//! committed entries ─► apply(entry): ApplyCtx ─► WriteBatch{data, hist, events, rev, leases,
//!                                                         applied log id} ─► RocksDB (one write)
//!                                            └─► WatchHub::publish(rev, events)
//!                                            └─► lessor notices (grant/revoke)
//! ```
//! # Correctness
//! The applied log id is written in the same batch as the entry's effects, so after a crash
//! an entry is either fully applied (and not re-applied) or not at all. Batches skip the WAL;
//! RocksDB's atomic flush persists all column families at one point, and the log store
//! flushes them before purging any log entry, so whatever a crash drops is replayed from the
//! Raft log.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::WriteBatch;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::keys::{cf, Keys};
use crate::mvcc::{meta, ApplyCache, ApplyCtx, LeaseNotice};
use crate::types::{decode, encode, CommandResponse, LogId, StoredMembership, TypeConfig};
use crate::watch::WatchHub;

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Snapshot payload: a handle on the shard's SST files on disk (see [`crate::snapshot`]).
pub use crate::snapshot::SnapshotData;
type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;
type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;

/// The state machine of one shard.
#[derive(Clone)]
pub struct StateMachineStore {
    engine: Engine,
    shard: u32,
    keys: Keys,
    hub: Arc<WatchHub>,
    lease_tx: mpsc::UnboundedSender<LeaseNotice>,
    current_snapshot: Arc<parking_lot::Mutex<Option<Snapshot>>>,
    /// Revision and recent values, so the usual put reads nothing from RocksDB.
    cache: Arc<parking_lot::Mutex<ApplyCache>>,
    /// Client requests applied since the last snapshot (a batch entry counts each).
    since_snapshot: Arc<AtomicU64>,
    /// Requests between snapshots and whom to tell when one is due (see
    /// [`StateMachineStore::snapshot_every`]).
    snapshot_due: Option<(u64, Arc<tokio::sync::Notify>)>,
}

impl StateMachineStore {
    /// Opens the state machine of `shard`; applied changes are published to `hub` and lease
    /// changes sent to `lease_tx`.
    pub fn new(
        engine: Engine,
        shard: u32,
        hub: Arc<WatchHub>,
        lease_tx: mpsc::UnboundedSender<LeaseNotice>,
    ) -> Self {
        Self {
            engine,
            shard,
            keys: Keys::new(shard),
            hub,
            lease_tx,
            current_snapshot: Arc::new(parking_lot::Mutex::new(None)),
            cache: Default::default(),
            since_snapshot: Default::default(),
            snapshot_due: None,
        }
    }

    /// Signals `due` each time `requests` client requests were applied since the last
    /// snapshot. openraft's own policy counts log entries, and one batch entry may carry
    /// hundreds of requests: counting requests keeps the log between snapshots (and so the
    /// disk it takes and the replay after a restart) as bounded as etcd's `--snapshot-count`.
    pub fn snapshot_every(mut self, requests: u64, due: Arc<tokio::sync::Notify>) -> Self {
        self.snapshot_due = Some((requests.max(1), due));
        self
    }

    fn read_meta<T: for<'de> Deserialize<'de>>(&self, name: &str) -> io::Result<Option<T>> {
        let v = self
            .engine
            .db()
            .get_cf(self.engine.cf(cf::META), self.keys.named(name))
            .map_err(io_err)?;
        v.map(|b| decode(&b).map_err(io_err)).transpose()
    }

    fn put_applied(&self, batch: &mut WriteBatch, log_id: &LogId) -> io::Result<()> {
        batch.put_cf(
            self.engine.cf(cf::META),
            self.keys.named(meta::APPLIED),
            encode(log_id).map_err(io_err)?,
        );
        Ok(())
    }

    fn apply_command(
        &self,
        log_id: &LogId,
        cmd: &crate::types::Command,
    ) -> io::Result<CommandResponse> {
        let mut cache = self.cache.lock();
        let ctx = ApplyCtx::cached(&self.engine, self.shard, &cache).map_err(io_err)?;
        let (resp, out) = match cmd {
            crate::types::Command::Batch(cmds) => match ctx.apply_batch(cmds) {
                Ok((resps, out)) => (CommandResponse::Batch(resps), out),
                Err(e) => return Err(io_err(e)),
            },
            cmd => match ctx.apply_entry(cmd) {
                Ok((resp, out)) => (CommandResponse::One(resp), out),
                Err(e) => return Err(io_err(e)),
            },
        };
        metrics::counter!("navarch_store_applied_requests_total").increment(cmd.requests() as u64);
        let mut batch = out.batch;
        self.put_applied(&mut batch, log_id)?;
        if let Err(e) = self.engine.write_state_machine(batch) {
            cache.clear();
            return Err(io_err(e));
        }
        cache.written(out.revision, out.current);
        drop(cache);
        let requests = cmd.requests() as u64;
        let since = self.since_snapshot.fetch_add(requests, Ordering::Relaxed) + requests;
        if let Some((every, due)) = &self.snapshot_due {
            if since >= *every && since - requests < *every {
                due.notify_one();
            }
        }
        for (rev, events) in out.revisions {
            self.hub.publish(rev, events);
        }
        for n in out.lease_notices {
            let _ = self.lease_tx.send(n);
        }
        Ok(resp)
    }

    fn build(&self) -> io::Result<Snapshot> {
        let since = self.since_snapshot.load(Ordering::Relaxed);
        let (files, applied, membership) = crate::snapshot::build(&self.engine, self.shard)?;
        // Requests applied while the snapshot was built count towards the next one.
        let _ = self
            .since_snapshot
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(since))
            });
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                last_log_id: applied,
                last_membership: membership,
            },
            snapshot: Arc::new(files),
        };
        metrics::counter!("navarch_store_snapshots_built_total").increment(1);
        *self.current_snapshot.lock() = Some(snapshot.clone());
        Ok(snapshot)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.build())
            .await
            .map_err(io_err)?
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let applied = self.read_meta::<LogId>(meta::APPLIED)?;
        let membership = self
            .read_meta::<StoredMembership>(meta::MEMBERSHIP)?
            .unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id;
            let resp = match &entry.payload {
                EntryPayload::Normal(cmd) => self.apply_command(&log_id, cmd)?,
                EntryPayload::Blank => {
                    let mut b = WriteBatch::default();
                    self.put_applied(&mut b, &log_id)?;
                    self.engine.write_state_machine(b).map_err(io_err)?;
                    CommandResponse::One(Ok(bytes::Bytes::new()))
                }
                EntryPayload::Membership(m) => {
                    let mut b = WriteBatch::default();
                    self.put_applied(&mut b, &log_id)?;
                    let sm = StoredMembership::new(Some(log_id), m.clone());
                    b.put_cf(
                        self.engine.cf(cf::META),
                        self.keys.named(meta::MEMBERSHIP),
                        encode(&sm).map_err(io_err)?,
                    );
                    self.engine.write_state_machine(b).map_err(io_err)?;
                    CommandResponse::One(Ok(bytes::Bytes::new()))
                }
            };
            if let Some(r) = responder {
                r.send(resp);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let (engine, shard, m, files) = (
            self.engine.clone(),
            self.shard,
            meta.clone(),
            snapshot.clone(),
        );
        self.cache.lock().clear();
        tokio::task::spawn_blocking(move || crate::snapshot::install(&engine, shard, &m, &files))
            .await
            .map_err(io_err)??;
        self.cache.lock().clear();
        self.since_snapshot.store(0, Ordering::Relaxed);
        let rev = crate::mvcc::Reader::new(&self.engine, self.shard)
            .revision()
            .map_err(io_err)?;
        self.hub.reset(rev);
        let _ = self.lease_tx.send(LeaseNotice::Reloaded);
        *self.current_snapshot.lock() = Some(Snapshot {
            meta: meta.clone(),
            snapshot,
        });
        metrics::counter!("navarch_store_snapshots_installed_total").increment(1);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self.current_snapshot.lock().clone())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openraft::entry::RaftEntry;
    use prost::Message;

    use super::*;
    use crate::proto::etcdserverpb::PutRequest;
    use crate::types::{Command, Entry};

    fn put(i: usize) -> Command {
        let req = PutRequest {
            key: format!("k{}", i % 7).into_bytes(),
            value: vec![b'v'; 10],
            ..Default::default()
        };
        Command::Put(req.encode_to_vec().into())
    }

    /// Applies `entries` (no responders) and reports whether a snapshot became due.
    async fn apply(
        sm: &mut StateMachineStore,
        entries: Vec<Entry>,
        due: &tokio::sync::Notify,
    ) -> bool {
        let stream = futures::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
        sm.apply(stream).await.unwrap();
        tokio::time::timeout(Duration::from_millis(1), due.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn snapshots_fall_due_by_requests_not_entries() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let (tx, _rx) = mpsc::unbounded_channel();
        let hub = Arc::new(WatchHub::new(1, 16));
        let due = Arc::new(tokio::sync::Notify::new());
        let mut sm = StateMachineStore::new(engine, 0, hub, tx).snapshot_every(100, due.clone());
        let log_id = |i| openraft::testing::log_id::<TypeConfig>(1, 1, i);

        // Two batch entries of 60 requests: the second crosses 100 requests.
        let batch = |from: usize| Command::Batch((from..from + 60).map(put).collect());
        assert!(!apply(&mut sm, vec![Entry::new_normal(log_id(1), batch(0))], &due).await);
        assert!(apply(&mut sm, vec![Entry::new_normal(log_id(2), batch(60))], &due).await);

        // A snapshot resets the count; 99 single entries later none is due yet, the 100th is.
        sm.build().unwrap();
        let singles = |from: u64, n: u64| {
            (from..from + n)
                .map(|i| Entry::new_normal(log_id(i), put(i as usize)))
                .collect::<Vec<_>>()
        };
        assert!(!apply(&mut sm, singles(3, 99), &due).await);
        assert!(apply(&mut sm, singles(102, 1), &due).await);
        // Every request was applied: revision 1 + 120 + 100.
        let rev = crate::mvcc::Reader::new(&sm.engine, 0).revision().unwrap();
        assert_eq!(rev, 221);
    }
}
