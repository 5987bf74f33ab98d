//! Applying one entry (a command or a batch of them): validate, compute on an overlay of the
//! entry's own writes, and collect everything into one WriteBatch together with the new
//! revision.
//!
//! ```text
//! command ─► execute: reads (overlay, then RocksDB) + staged writes + overlay undo log
//!        ├─ ok  ─► staged writes move into the entry's WriteBatch; revision +1 if it changed
//!        └─ err ─► staged writes dropped, overlay rolled back (a failed txn leaves no trace)
//! ```

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message;
use rocksdb::WriteBatch;

use super::read::{checked_range, encode_kv_meta, Reader};
use super::{i64_bytes, meta};
use crate::engine::Engine;
use crate::error::{Result, StoreError};
use crate::keys::{cf, KeyRange, Keys};
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, ResponseHeader,
};
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::types::Command;

/// A change to the lease table the leader's lessor must know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseNotice {
    /// A lease was granted with this TTL.
    Granted {
        /// Lease id.
        id: i64,
        /// TTL in seconds.
        ttl: i64,
    },
    /// A lease was revoked (by a client or by expiry).
    Revoked {
        /// Lease id.
        id: i64,
    },
    /// The whole table was replaced (snapshot installed): reload it.
    Reloaded,
}

/// What applying a command (or a batch of them) produced.
#[derive(Default)]
pub struct ApplyOutput {
    /// The batch to write (already includes the revision; the caller adds the applied log id).
    pub batch: WriteBatch,
    /// The store revision after the last command.
    pub revision: i64,
    /// Watch events per new revision, in revision order (with `prev_kv` filled in).
    pub revisions: Vec<(i64, Vec<Event>)>,
    /// Lease table changes.
    pub lease_notices: Vec<LeaseNotice>,
    /// The entry's writes to current state, by key (`None` = deleted), for [`ApplyCache`].
    pub current: BTreeMap<Vec<u8>, Option<KeyValue>>,
}

/// What the apply path of one shard remembers between entries, so that the usual put does not
/// search RocksDB's memtables for the revision and the key's previous version: the revision,
/// and the current value of recently written keys (bounded; dropped wholesale when full).
///
/// It must only ever mirror what RocksDB holds: [`ApplyCache::written`] after each entry's
/// write succeeded, [`ApplyCache::clear`] whenever the shard's state is replaced (snapshot).
#[derive(Debug, Default)]
pub struct ApplyCache {
    revision: Option<i64>,
    values: std::collections::HashMap<Vec<u8>, Option<KeyValue>>,
    bytes: usize,
}

impl ApplyCache {
    /// Bytes of keys and values kept before the cache starts over.
    pub const MAX_BYTES: usize = 32 << 20;

    /// Records an entry whose write reached RocksDB.
    pub fn written(&mut self, out_revision: i64, current: BTreeMap<Vec<u8>, Option<KeyValue>>) {
        self.revision = Some(out_revision);
        for (k, v) in current {
            let size = k.len() + v.as_ref().map_or(0, |kv| kv.value.len() + 64);
            if self.bytes + size > Self::MAX_BYTES {
                self.values.clear();
                self.bytes = 0;
            }
            self.bytes += size;
            self.values.insert(k, v);
        }
    }

    /// Forgets everything (the shard's state was replaced or a write failed).
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// One write of the command being applied, kept apart until the command succeeds.
enum Staged {
    Put(&'static str, Vec<u8>, Vec<u8>),
    Delete(&'static str, Vec<u8>),
    DeleteRange(&'static str, Vec<u8>, Vec<u8>),
}

/// The state of one entry being applied: a single command or a batch of them, each computed
/// on an overlay of the writes before it.
pub struct ApplyCtx<'a> {
    pub(super) reader: Reader<'a>,
    pub(super) engine: &'a Engine,
    cache: Option<&'a ApplyCache>,
    pub(super) keys: Keys,
    /// Writes of the commands that succeeded so far.
    batch: WriteBatch,
    /// Writes of the command being applied.
    staged: Vec<Staged>,
    /// The revision before the command being applied.
    pub(super) base_rev: i64,
    /// Number of changes of the command being applied (the sub-revision of the next change).
    pub(super) changes: u32,
    /// Writes to current state by this entry so far (`None` = deleted).
    pub(super) overlay: BTreeMap<Vec<u8>, Option<KeyValue>>,
    /// How to take the command being applied out of `overlay` again: each key's entry before
    /// the command first touched it.
    undo: Vec<(Vec<u8>, Option<Option<KeyValue>>)>,
    /// Events of the command being applied.
    pub(super) events: Vec<Event>,
    pub(super) lease_notices: Vec<LeaseNotice>,
    /// Events of the commands that succeeded, per revision.
    revisions: Vec<(i64, Vec<Event>)>,
    /// Lease notices of the commands that succeeded.
    done_notices: Vec<LeaseNotice>,
    /// Whether some command changed the revision.
    rev_changed: bool,
}

impl<'a> ApplyCtx<'a> {
    /// Starts applying an entry on `shard`.
    pub fn new(engine: &'a Engine, shard: u32) -> Result<Self> {
        Self::start(engine, shard, None)
    }

    /// Starts applying an entry on `shard`, reading through `cache` where it knows the answer.
    pub fn cached(engine: &'a Engine, shard: u32, cache: &'a ApplyCache) -> Result<Self> {
        Self::start(engine, shard, Some(cache))
    }

    fn start(engine: &'a Engine, shard: u32, cache: Option<&'a ApplyCache>) -> Result<Self> {
        let reader = Reader::new(engine, shard);
        let base_rev = match cache.and_then(|c| c.revision) {
            Some(rev) => rev,
            None => reader.revision()?,
        };
        Ok(Self {
            reader,
            engine,
            cache,
            keys: Keys::new(shard),
            batch: WriteBatch::default(),
            staged: Vec::new(),
            base_rev,
            changes: 0,
            overlay: BTreeMap::new(),
            undo: Vec::new(),
            events: Vec::new(),
            lease_notices: Vec::new(),
            revisions: Vec::new(),
            done_notices: Vec::new(),
            rev_changed: false,
        })
    }

    /// The revision a change made by this command gets.
    pub(super) fn next_rev(&self) -> i64 {
        self.base_rev + 1
    }

    /// The store revision as seen after the changes so far.
    pub(super) fn current_rev(&self) -> i64 {
        if self.changes > 0 {
            self.base_rev + 1
        } else {
            self.base_rev
        }
    }

    pub(super) fn header(&self) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            revision: self.current_rev(),
            ..Default::default()
        })
    }

    /// Applies `cmd` alone; on error nothing of it is kept.
    pub fn apply(mut self, cmd: &Command) -> Result<(Bytes, ApplyOutput)> {
        let resp = self.apply_one(cmd)?;
        Ok((resp, self.finish()))
    }

    /// Applies `cmd` as a whole entry: an etcd error (nothing of the command kept) is the
    /// command's outcome; only an internal (storage) error fails the entry.
    pub fn apply_entry(mut self, cmd: &Command) -> Result<(Result<Bytes>, ApplyOutput)> {
        match self.apply_one(cmd) {
            Err(StoreError::Internal(m)) => Err(StoreError::Internal(m)),
            r => Ok((r, self.finish())),
        }
    }

    /// Applies the commands of a batch in order, each with its own revision and response; a
    /// command that fails leaves no trace and does not affect the others. Only an internal
    /// (storage) error fails the batch as a whole.
    pub fn apply_batch(mut self, cmds: &[Command]) -> Result<(Vec<Result<Bytes>>, ApplyOutput)> {
        let mut out = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let r = if cmd.batchable() {
                self.apply_one(cmd)
            } else {
                // Compaction and lease changes read the database directly, which does not
                // hold this batch's earlier writes yet: the proposer never batches them.
                Err(StoreError::Membership(format!(
                    "{cmd} cannot ride in a batch"
                )))
            };
            match r {
                Err(StoreError::Internal(m)) => return Err(StoreError::Internal(m)),
                r => out.push(r),
            }
        }
        Ok((out, self.finish()))
    }

    /// Applies one command on top of the entry's earlier ones: kept if it succeeds, rolled
    /// back if it fails.
    fn apply_one(&mut self, cmd: &Command) -> Result<Bytes> {
        match self.execute(cmd) {
            Ok(resp) => {
                for op in self.staged.drain(..) {
                    match op {
                        Staged::Put(name, k, v) => self.batch.put_cf(self.engine.cf(name), k, v),
                        Staged::Delete(name, k) => self.batch.delete_cf(self.engine.cf(name), k),
                        Staged::DeleteRange(name, from, to) => {
                            self.batch.delete_range_cf(self.engine.cf(name), from, to)
                        }
                    }
                }
                if self.changes > 0 {
                    self.base_rev += 1;
                    self.rev_changed = true;
                    self.revisions
                        .push((self.base_rev, std::mem::take(&mut self.events)));
                }
                self.events.clear();
                self.changes = 0;
                self.undo.clear();
                self.done_notices.append(&mut self.lease_notices);
                Ok(resp)
            }
            Err(e) => {
                self.staged.clear();
                while let Some((k, before)) = self.undo.pop() {
                    match before {
                        Some(v) => self.overlay.insert(k, v),
                        None => self.overlay.remove(&k),
                    };
                }
                self.events.clear();
                self.changes = 0;
                self.lease_notices.clear();
                Err(e)
            }
        }
    }

    fn execute(&mut self, cmd: &Command) -> Result<Bytes> {
        let resp = match cmd {
            Command::Put(b) => {
                let r = PutRequest::decode(b.as_ref())?;
                self.check_put(&r)?;
                self.put(&r)?.encode_to_vec()
            }
            Command::DeleteRange(b) => {
                let r = DeleteRangeRequest::decode(b.as_ref())?;
                let range = checked_range(&r.key, &r.range_end)?;
                self.delete_range(&range, r.prev_kv)?.encode_to_vec()
            }
            Command::Txn(b) => {
                let r = crate::proto::etcdserverpb::TxnRequest::decode(b.as_ref())?;
                self.txn(&r)?.encode_to_vec()
            }
            Command::Compact(b) => {
                let r = CompactionRequest::decode(b.as_ref())?;
                self.compact(r.revision)?;
                CompactionResponse {
                    header: self.header(),
                }
                .encode_to_vec()
            }
            Command::LeaseGrant { id, ttl } => self.lease_grant(*id, *ttl)?.encode_to_vec(),
            Command::LeaseRevoke { id } => self.lease_revoke(*id)?.encode_to_vec(),
            Command::LeaseCheckpoint { leases } => {
                self.lease_checkpoint(leases)?;
                Vec::new()
            }
            Command::Batch(_) => {
                return Err(StoreError::Internal("a batch inside a batch".into()));
            }
        };
        Ok(Bytes::from(resp))
    }

    fn finish(mut self) -> ApplyOutput {
        if self.rev_changed {
            self.batch.put_cf(
                self.engine.cf(cf::META),
                self.keys.named(meta::REV),
                i64_bytes(self.base_rev),
            );
        }
        ApplyOutput {
            batch: self.batch,
            revision: self.base_rev,
            revisions: self.revisions,
            lease_notices: self.done_notices,
            current: self.overlay,
        }
    }

    /// Stages a put into column family `name`.
    pub(super) fn stage_put(&mut self, name: &'static str, key: Vec<u8>, value: Vec<u8>) {
        self.staged.push(Staged::Put(name, key, value));
    }

    /// Stages a delete from column family `name`.
    pub(super) fn stage_delete(&mut self, name: &'static str, key: Vec<u8>) {
        self.staged.push(Staged::Delete(name, key));
    }

    /// Stages the deletion of `[from, to)` in column family `name`.
    pub(super) fn stage_delete_range(&mut self, name: &'static str, from: Vec<u8>, to: Vec<u8>) {
        self.staged.push(Staged::DeleteRange(name, from, to));
    }

    /// Sets the current state of `key` in the overlay, remembering how to undo it.
    fn set_overlay(&mut self, key: Vec<u8>, value: Option<KeyValue>) {
        let before = self.overlay.insert(key.clone(), value);
        self.undo.push((key, before));
    }

    /// The current value of `key`, including this entry's writes.
    pub(super) fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.cache.and_then(|c| c.values.get(key)) {
            return Ok(v.clone());
        }
        self.reader.get(key)
    }

    /// Current key-values in `range`, including this entry's writes, in key order.
    pub(super) fn scan(&self, range: &KeyRange) -> Result<Vec<KeyValue>> {
        let mut merged: BTreeMap<Vec<u8>, KeyValue> = BTreeMap::new();
        self.reader.scan_current(range, |kv| {
            merged.insert(kv.key.clone(), kv);
            true
        })?;
        for (k, v) in &self.overlay {
            if range.contains(k) {
                match v {
                    Some(kv) => {
                        merged.insert(k.clone(), kv.clone());
                    }
                    None => {
                        merged.remove(k);
                    }
                }
            }
        }
        Ok(merged.into_values().collect())
    }

    /// Checks a put against the state before the command (etcd's `checkRequestPut`).
    pub(super) fn check_put(&self, r: &PutRequest) -> Result<()> {
        if r.key.is_empty() {
            return Err(StoreError::EmptyKey);
        }
        if r.ignore_value && !r.value.is_empty() {
            return Err(StoreError::ValueProvided);
        }
        if r.ignore_lease && r.lease != 0 {
            return Err(StoreError::LeaseProvided);
        }
        if (r.ignore_value || r.ignore_lease) && self.get(&r.key)?.is_none() {
            return Err(StoreError::KeyNotFound);
        }
        if r.lease != 0 && !self.lease_exists(r.lease)? {
            return Err(StoreError::LeaseNotFound);
        }
        Ok(())
    }

    fn record_change(&mut self, kv: KeyValue, prev: Option<KeyValue>, ty: EventType) {
        let rev = self.next_rev();
        let sub = self.changes;
        self.changes += 1;
        self.stage_put(cf::HIST, self.keys.hist(&kv.key, rev), encode_kv_meta(&kv));
        if kv.version != 0 {
            let vals = cf::vals(self.keys.shard());
            self.stage_put(vals, self.keys.val(rev, &kv.key), kv.value.to_vec());
        }
        self.stage_put(cf::EVENTS, self.keys.event(rev, sub), kv.key.clone());
        self.events.push(Event {
            r#type: ty as i32,
            kv: Some(kv),
            prev_kv: prev,
        });
    }

    /// Puts a key (already validated by [`Self::check_put`]).
    pub(super) fn put(&mut self, r: &PutRequest) -> Result<PutResponse> {
        let prev = self.get(&r.key)?;
        let rev = self.next_rev();
        let kv = KeyValue {
            key: r.key.clone(),
            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value: if r.ignore_value {
                prev.as_ref().map(|p| p.value.clone()).unwrap_or_default()
            } else {
                r.value.clone()
            },
            lease: if r.ignore_lease {
                prev.as_ref().map_or(0, |p| p.lease)
            } else {
                r.lease
            },
        };
        let old_lease = prev.as_ref().map_or(0, |p| p.lease);
        if old_lease != kv.lease {
            if old_lease != 0 {
                self.stage_delete(cf::LEASE_KEYS, self.keys.lease_key(old_lease, &kv.key));
            }
            if kv.lease != 0 {
                self.stage_put(
                    cf::LEASE_KEYS,
                    self.keys.lease_key(kv.lease, &kv.key),
                    Vec::new(),
                );
            }
        }
        // The value itself goes to `hist` only (see `read`).
        self.stage_put(cf::KV, self.keys.kv(&kv.key), encode_kv_meta(&kv));
        self.set_overlay(kv.key.clone(), Some(kv.clone()));
        self.record_change(kv, prev.clone(), EventType::Put);
        Ok(PutResponse {
            header: self.header(),
            prev_kv: if r.prev_kv { prev } else { None },
        })
    }

    /// Deletes every key in `range`; one revision for all of them.
    pub(super) fn delete_range(
        &mut self,
        range: &KeyRange,
        want_prev: bool,
    ) -> Result<DeleteRangeResponse> {
        let victims = self.scan(range)?;
        let deleted = victims.len() as i64;
        let mut prev_kvs = Vec::new();
        for prev in victims {
            self.delete_key(prev.clone());
            if want_prev {
                prev_kvs.push(prev);
            }
        }
        Ok(DeleteRangeResponse {
            header: self.header(),
            deleted,
            prev_kvs,
        })
    }

    pub(super) fn delete_key(&mut self, prev: KeyValue) {
        let key = prev.key.clone();
        if prev.lease != 0 {
            self.stage_delete(cf::LEASE_KEYS, self.keys.lease_key(prev.lease, &key));
        }
        self.stage_delete(cf::KV, self.keys.kv(&key));
        self.set_overlay(key.clone(), None);
        let tomb = KeyValue {
            key,
            mod_revision: self.next_rev(),
            ..Default::default()
        };
        self.record_change(tomb, Some(prev), EventType::Delete);
    }

    /// Compacts history below `rev` (etcd's keyIndex.compact): for every key the newest version
    /// at or below `rev` survives unless it is a tombstone; everything older goes.
    fn compact(&mut self, rev: i64) -> Result<()> {
        let compacted = self.reader.compact_revision()?;
        if rev <= compacted {
            return Err(StoreError::Compacted {
                compact_revision: compacted,
            });
        }
        if rev > self.base_rev {
            return Err(StoreError::FutureRev);
        }
        let db = self.engine.db();
        let hist = self.engine.cf(cf::HIST);
        let mut current_key: Option<Vec<u8>> = None;
        let mut kept_one = false;
        let from = self.keys.prefix();
        for item in db.iterator_cf(
            hist,
            rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward),
        ) {
            let (k, v) = item?;
            if !k.starts_with(&self.keys.prefix()) {
                break;
            }
            let (user, at) = self
                .keys
                .parse_hist(&k)
                .ok_or_else(|| StoreError::Internal("corrupt hist key".into()))?;
            if current_key.as_deref() != Some(user.as_slice()) {
                current_key = Some(user);
                kept_one = false;
            }
            if at > rev {
                continue;
            }
            let live = KeyValue::decode(v.as_ref())?.version != 0;
            if !kept_one {
                kept_one = true;
                if live {
                    continue;
                }
            }
            self.stage_delete(cf::HIST, k.to_vec());
            if let (true, Some(user)) = (live, current_key.as_deref()) {
                let val = self.keys.val(at, user);
                self.stage_delete(cf::vals(self.keys.shard()), val);
            }
        }
        self.stage_delete_range(cf::EVENTS, self.keys.event(0, 0), self.keys.event(rev, 0));
        self.stage_put(
            cf::META,
            self.keys.named(meta::COMPACT_REV),
            i64_bytes(rev).to_vec(),
        );
        Ok(())
    }
}
