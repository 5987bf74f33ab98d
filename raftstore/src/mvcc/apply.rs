//! Applying one command: validate, compute on an overlay of this command's own writes, and
//! collect everything into one WriteBatch together with the new revision.
//!
//! Nothing reaches RocksDB unless the whole command succeeds, so a failed txn leaves no trace.

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message;
use rocksdb::WriteBatch;

use super::read::{checked_range, encode_kv, Reader};
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

/// What applying a command produced.
#[derive(Default)]
pub struct ApplyOutput {
    /// The batch to write (already includes the revision; the caller adds the applied log id).
    pub batch: WriteBatch,
    /// The store revision after the command.
    pub revision: i64,
    /// Watch events of this command (all share `revision`), with `prev_kv` filled in.
    pub events: Vec<Event>,
    /// Lease table changes.
    pub lease_notices: Vec<LeaseNotice>,
}

/// The state of one command being applied.
pub struct ApplyCtx<'a> {
    pub(super) reader: Reader<'a>,
    pub(super) engine: &'a Engine,
    pub(super) keys: Keys,
    pub(super) batch: WriteBatch,
    /// The revision before the command.
    pub(super) base_rev: i64,
    /// Number of changes so far (the sub-revision of the next change).
    pub(super) changes: u32,
    /// This command's own writes to current state (`None` = deleted).
    pub(super) overlay: BTreeMap<Vec<u8>, Option<KeyValue>>,
    pub(super) events: Vec<Event>,
    pub(super) lease_notices: Vec<LeaseNotice>,
}

impl<'a> ApplyCtx<'a> {
    /// Starts applying a command on `shard`.
    pub fn new(engine: &'a Engine, shard: u32) -> Result<Self> {
        let reader = Reader::new(engine, shard);
        let base_rev = reader.revision()?;
        Ok(Self {
            reader,
            engine,
            keys: Keys::new(shard),
            batch: WriteBatch::default(),
            base_rev,
            changes: 0,
            overlay: BTreeMap::new(),
            events: Vec::new(),
            lease_notices: Vec::new(),
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

    /// Applies `cmd`; on error nothing of it is kept.
    pub fn apply(mut self, cmd: &Command) -> Result<(Bytes, ApplyOutput)> {
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
        };
        Ok((Bytes::from(resp), self.finish()))
    }

    fn finish(mut self) -> ApplyOutput {
        let revision = self.current_rev();
        if self.changes > 0 {
            self.batch.put_cf(
                self.engine.cf(cf::META),
                self.keys.named(meta::REV),
                i64_bytes(revision),
            );
        }
        ApplyOutput {
            batch: self.batch,
            revision,
            events: self.events,
            lease_notices: self.lease_notices,
        }
    }

    /// The current value of `key`, including this command's writes.
    pub(super) fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.reader.get(key),
        }
    }

    /// Current key-values in `range`, including this command's writes, in key order.
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
        self.batch.put_cf(
            self.engine.cf(cf::HIST),
            self.keys.hist(&kv.key, rev),
            encode_kv(&kv),
        );
        self.batch.put_cf(
            self.engine.cf(cf::EVENTS),
            self.keys.event(rev, sub),
            &kv.key,
        );
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
                self.batch.delete_cf(
                    self.engine.cf(cf::LEASE_KEYS),
                    self.keys.lease_key(old_lease, &kv.key),
                );
            }
            if kv.lease != 0 {
                self.batch.put_cf(
                    self.engine.cf(cf::LEASE_KEYS),
                    self.keys.lease_key(kv.lease, &kv.key),
                    [],
                );
            }
        }
        self.batch.put_cf(
            self.engine.cf(cf::KV),
            self.keys.kv(&kv.key),
            encode_kv(&kv),
        );
        self.overlay.insert(kv.key.clone(), Some(kv.clone()));
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
            self.batch.delete_cf(
                self.engine.cf(cf::LEASE_KEYS),
                self.keys.lease_key(prev.lease, &key),
            );
        }
        self.batch
            .delete_cf(self.engine.cf(cf::KV), self.keys.kv(&key));
        self.overlay.insert(key.clone(), None);
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
            if !kept_one {
                kept_one = true;
                let kv = KeyValue::decode(v.as_ref())?;
                if kv.version != 0 {
                    continue;
                }
            }
            self.batch.delete_cf(hist, k);
        }
        self.batch.delete_range_cf(
            self.engine.cf(cf::EVENTS),
            self.keys.event(0, 0),
            self.keys.event(rev, 0),
        );
        self.batch.put_cf(
            self.engine.cf(cf::META),
            self.keys.named(meta::COMPACT_REV),
            i64_bytes(rev),
        );
        Ok(())
    }
}
