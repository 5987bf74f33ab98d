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
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::WriteBatch;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::error::StoreError;
use crate::keys::{cf, Keys};
use crate::mvcc::{meta, ApplyCtx, LeaseNotice};
use crate::types::{decode, encode, CommandResponse, LogId, StoredMembership, TypeConfig};
use crate::watch::WatchHub;

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Snapshot payload: every state-machine row of the shard.
pub type SnapshotData = Vec<u8>;
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
        }
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
        let ctx = ApplyCtx::new(&self.engine, self.shard).map_err(io_err)?;
        match ctx.apply(cmd) {
            Ok((resp, mut out)) => {
                self.put_applied(&mut out.batch, log_id)?;
                self.engine.write_state_machine(out.batch).map_err(io_err)?;
                if !out.events.is_empty() {
                    self.hub.publish(out.revision, out.events);
                }
                for n in out.lease_notices {
                    let _ = self.lease_tx.send(n);
                }
                Ok(CommandResponse(Ok(resp)))
            }
            Err(StoreError::Internal(msg)) => Err(io_err(msg)),
            Err(e) => {
                let mut b = WriteBatch::default();
                self.put_applied(&mut b, log_id)?;
                self.engine.write_state_machine(b).map_err(io_err)?;
                Ok(CommandResponse(Err(e)))
            }
        }
    }

    fn build(&self) -> io::Result<Snapshot> {
        let snap = self.engine.db().snapshot();
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_snapshot(&snap);
        let get = |name: &str| -> io::Result<Option<Vec<u8>>> {
            self.engine
                .db()
                .get_cf_opt(self.engine.cf(cf::META), self.keys.named(name), &ro)
                .map_err(io_err)
        };
        let applied: Option<LogId> = get(meta::APPLIED)?
            .map(|b| decode(&b).map_err(io_err))
            .transpose()?;
        let membership: StoredMembership = get(meta::MEMBERSHIP)?
            .map(|b| decode(&b).map_err(io_err))
            .transpose()?
            .unwrap_or_default();
        let mut out = crate::snapshot_format::Writer::new();
        for name in cf::STATE_MACHINE {
            out.column_family(name)?;
            let mut ro = rocksdb::ReadOptions::default();
            ro.set_snapshot(&snap);
            let from = self.keys.prefix();
            for item in self.engine.db().iterator_cf_opt(
                self.engine.cf(name),
                ro,
                rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward),
            ) {
                let (k, v) = item.map_err(io_err)?;
                if !k.starts_with(&self.keys.prefix()) {
                    break;
                }
                out.row(&k, &v)?;
            }
        }
        let data = out.finish();
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                last_log_id: applied,
                last_membership: membership,
            },
            snapshot: data,
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
                    CommandResponse(Ok(bytes::Bytes::new()))
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
                    CommandResponse(Ok(bytes::Bytes::new()))
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
        let mut b = WriteBatch::default();
        for name in cf::STATE_MACHINE {
            b.delete_range_cf(
                self.engine.cf(name),
                self.keys.prefix().to_vec(),
                self.keys.upper(),
            );
        }
        let prefix = self.keys.prefix();
        crate::snapshot_format::read(&snapshot, |name, k, v| {
            if !cf::STATE_MACHINE.contains(&name) {
                return Err(io_err(format!("snapshot has unknown column family {name}")));
            }
            if !k.starts_with(&prefix) {
                return Err(io_err("snapshot row outside this shard"));
            }
            b.put_cf(self.engine.cf(name), k, v);
            Ok(())
        })?;
        if let Some(l) = &meta.last_log_id {
            self.put_applied(&mut b, l)?;
        }
        b.put_cf(
            self.engine.cf(cf::META),
            self.keys.named(meta::MEMBERSHIP),
            encode(&meta.last_membership).map_err(io_err)?,
        );
        self.engine.write(b, true).map_err(io_err)?;
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
