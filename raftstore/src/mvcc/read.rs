//! Consistent reads: a RocksDB snapshot fixes one revision for the whole request.

use prost::Message;
use rocksdb::{DBIteratorWithThreadMode, Direction, IteratorMode, ReadOptions, DB};

use super::meta;
use crate::engine::Engine;
use crate::error::{Result, StoreError};
use crate::keys::{cf, KeyRange, Keys};
use crate::proto::etcdserverpb::{range_request, RangeRequest, RangeResponse, ResponseHeader};
use crate::proto::mvccpb::KeyValue;

/// A point-in-time view of one shard's state machine.
pub struct Reader<'a> {
    engine: &'a Engine,
    keys: Keys,
    snap: rocksdb::SnapshotWithThreadMode<'a, DB>,
}

impl<'a> Reader<'a> {
    /// Opens a view at the current state.
    pub fn new(engine: &'a Engine, shard: u32) -> Self {
        Self {
            engine,
            keys: Keys::new(shard),
            snap: engine.db().snapshot(),
        }
    }

    fn opts(&self) -> ReadOptions {
        let mut o = ReadOptions::default();
        o.set_snapshot(&self.snap);
        o
    }

    fn iter_from(&self, cf_name: &str, from: &[u8]) -> DBIteratorWithThreadMode<'a, DB> {
        self.engine.db().iterator_cf_opt(
            self.engine.cf(cf_name),
            self.opts(),
            IteratorMode::From(from, Direction::Forward),
        )
    }

    fn meta_i64(&self, name: &str) -> Result<i64> {
        Ok(self
            .engine
            .db()
            .get_cf_opt(
                self.engine.cf(cf::META),
                self.keys.named(name),
                &self.opts(),
            )?
            .map(|b| super::bytes_i64(&b))
            .unwrap_or(0))
    }

    /// The store revision (1 for an empty store, as in etcd).
    pub fn revision(&self) -> Result<i64> {
        Ok(self.meta_i64(meta::REV)?.max(1))
    }

    /// The compaction revision (0 if never compacted).
    pub fn compact_revision(&self) -> Result<i64> {
        self.meta_i64(meta::COMPACT_REV)
    }

    /// The current value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        let v =
            self.engine
                .db()
                .get_cf_opt(self.engine.cf(cf::KV), self.keys.kv(key), &self.opts())?;
        v.map(|b| decode_kv(key, &b)).transpose()
    }

    /// Calls `f` for every current key-value in `range`, in key order, until it returns false.
    pub fn scan_current(
        &self,
        range: &KeyRange,
        mut f: impl FnMut(KeyValue) -> bool,
    ) -> Result<()> {
        if let KeyRange::Single(k) = range {
            if let Some(kv) = self.get(k)? {
                f(kv);
            }
            return Ok(());
        }
        let from = self.keys.kv(range.start());
        for item in self.iter_from(cf::KV, &from) {
            let (k, v) = item?;
            if !k.starts_with(&self.keys.prefix()) {
                break;
            }
            let user = &k[4..];
            if !range.contains(user) {
                break;
            }
            if !f(decode_kv(user, &v)?) {
                break;
            }
        }
        Ok(())
    }

    /// Calls `f` for every key-value in `range` as of revision `rev`, in key order.
    pub fn scan_at(
        &self,
        range: &KeyRange,
        rev: i64,
        mut f: impl FnMut(KeyValue) -> bool,
    ) -> Result<()> {
        let from = match range {
            KeyRange::Single(k) => self.keys.hist_key_prefix(k),
            KeyRange::Span { start, .. } => self.keys.hist_bound(start),
        };
        let mut last_key: Option<Vec<u8>> = None;
        for item in self.iter_from(cf::HIST, &from) {
            let (k, v) = item?;
            if !k.starts_with(&self.keys.prefix()) {
                break;
            }
            let (user, at) = self
                .keys
                .parse_hist(&k)
                .ok_or_else(|| StoreError::Internal("corrupt hist key".into()))?;
            if !range.contains(&user) {
                if user.as_slice() < range.start() {
                    continue;
                }
                break;
            }
            if last_key.as_deref() == Some(user.as_slice()) || at > rev {
                continue;
            }
            // Newest version of `user` at or before `rev`.
            last_key = Some(user.clone());
            let kv = decode_kv(&user, &v)?;
            if kv.version != 0 && !f(kv) {
                break;
            }
        }
        Ok(())
    }

    /// The version of `key` at exactly revision `rev` (a tombstone has version 0), if kept.
    pub fn version_at(&self, key: &[u8], rev: i64) -> Result<Option<KeyValue>> {
        let v = self.engine.db().get_cf_opt(
            self.engine.cf(cf::HIST),
            self.keys.hist(key, rev),
            &self.opts(),
        )?;
        v.map(|b| decode_kv(key, &b)).transpose()
    }

    /// The newest live version of `key` strictly before revision `rev`.
    pub fn version_before(&self, key: &[u8], rev: i64) -> Result<Option<KeyValue>> {
        let from = self.keys.hist(key, rev - 1);
        let prefix = self.keys.hist_key_prefix(key);
        if let Some(item) = self.iter_from(cf::HIST, &from).next() {
            let (k, v) = item?;
            if k.starts_with(&prefix) {
                let kv = decode_kv(key, &v)?;
                return Ok((kv.version != 0).then_some(kv));
            }
        }
        Ok(None)
    }

    /// Calls `f(rev, sub, key)` for every change with revision in `[from, to]`, in order.
    pub fn scan_changes(
        &self,
        from: i64,
        to: i64,
        mut f: impl FnMut(i64, u32, Vec<u8>) -> Result<bool>,
    ) -> Result<()> {
        let start = self.keys.event(from, 0);
        for item in self.iter_from(cf::EVENTS, &start) {
            let (k, v) = item?;
            if !k.starts_with(&self.keys.prefix()) {
                break;
            }
            let (rev, sub) = self.keys.parse_event(&k);
            if rev > to {
                break;
            }
            if !f(rev, sub, v.to_vec())? {
                break;
            }
        }
        Ok(())
    }

    /// Serves an etcd Range request (etcd 3.4's `applierV3backend.Range`).
    pub fn range(&self, r: &RangeRequest) -> Result<RangeResponse> {
        let range = checked_range(&r.key, &r.range_end)?;
        let current = self.revision()?;
        let at = if r.revision <= 0 { current } else { r.revision };
        if at > current {
            return Err(StoreError::FutureRev);
        }
        let compact = self.compact_revision()?;
        if r.revision > 0 && at < compact {
            return Err(StoreError::Compacted {
                compact_revision: compact,
            });
        }
        let needs_all = r.sort_order != range_request::SortOrder::None as i32
            || r.sort_target != range_request::SortTarget::Key as i32
            || r.min_mod_revision != 0
            || r.max_mod_revision != 0
            || r.min_create_revision != 0
            || r.max_create_revision != 0;
        let fetch = if r.count_only {
            0
        } else if needs_all || r.limit <= 0 {
            usize::MAX
        } else {
            r.limit as usize + 1
        };
        let mut kvs = Vec::new();
        let mut count = 0i64;
        let collect = |kv: KeyValue| {
            count += 1;
            if kvs.len() < fetch {
                kvs.push(kv);
            }
            true
        };
        if at == current {
            self.scan_current(&range, collect)?;
        } else {
            self.scan_at(&range, at, collect)?;
        }
        let kvs = shape_range_result(r, kvs);
        let more = r.limit > 0 && kvs.len() > r.limit as usize;
        let mut kvs = kvs;
        if more {
            kvs.truncate(r.limit as usize);
        }
        if r.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        Ok(RangeResponse {
            header: Some(ResponseHeader {
                revision: current,
                ..Default::default()
            }),
            kvs,
            more,
            count,
        })
    }
}

/// Validates and decodes an etcd key range.
pub(crate) fn checked_range(key: &[u8], range_end: &[u8]) -> Result<KeyRange> {
    if key.is_empty() && range_end.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    let range = KeyRange::new(key, range_end);
    if range.is_inverted() {
        return Err(StoreError::InvertedRange);
    }
    Ok(range)
}

/// Filters and sorts fetched key-values as etcd does after the MVCC range.
pub(crate) fn shape_range_result(r: &RangeRequest, mut kvs: Vec<KeyValue>) -> Vec<KeyValue> {
    use range_request::{SortOrder, SortTarget};
    kvs.retain(|kv| {
        (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
            && (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
            && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
            && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
    });
    let mut order = SortOrder::try_from(r.sort_order).unwrap_or(SortOrder::None);
    let target = SortTarget::try_from(r.sort_target).unwrap_or(SortTarget::Key);
    if target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    }
    if order != SortOrder::None && !(target == SortTarget::Key && order == SortOrder::Ascend) {
        // Stable sort: ties keep key order, as etcd's sort.Sort on key-ordered input mostly does.
        kvs.sort_by(|a, b| match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        });
        if order == SortOrder::Descend {
            kvs.reverse();
        }
    }
    kvs
}

/// Decodes a stored key-value (stored without its key).
pub(crate) fn decode_kv(key: &[u8], b: &[u8]) -> Result<KeyValue> {
    let mut kv = KeyValue::decode(b)?;
    kv.key = key.to_vec();
    Ok(kv)
}

/// Encodes a key-value for storage (without its key, which the column family key carries).
pub(crate) fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    let stored = KeyValue {
        key: Vec::new(),
        ..kv.clone()
    };
    stored.encode_to_vec()
}
