//! Consistent reads: a RocksDB snapshot fixes one revision for the whole request.
//!
//! A value is stored once, in `hist` under its key and revision; `kv` holds the current
//! version's metadata (create/mod revision, version, lease), and a read of the current value
//! takes its bytes from `hist` at the key's `mod_revision`. (Stores written before this layout
//! keep values in `kv` too: a `kv` row with a value is used as it is.)

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
        let mut kv = self.get_meta(key)?;
        if let Some(kv) = kv.as_mut() {
            self.fill_values(std::slice::from_mut(kv))?;
        }
        Ok(kv)
    }

    /// The current version of `key` without its value (unless an older store kept it there).
    fn get_meta(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        let v =
            self.engine
                .db()
                .get_cf_opt(self.engine.cf(cf::KV), self.keys.kv(key), &self.opts())?;
        v.map(|b| decode_kv(key, &b)).transpose()
    }

    /// Reads the values of key-values read from `kv` or `hist` (which hold none) from `vals`
    /// at (`mod_revision`, key), in one batched lookup. A version written before `vals`
    /// existed has its value in its `hist` row (or, older still, in `kv`, and then it is
    /// already filled in).
    fn fill_values(&self, kvs: &mut [KeyValue]) -> Result<()> {
        let wanted: Vec<usize> = (0..kvs.len()).filter(|&i| needs_value(&kvs[i])).collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let val_keys: Vec<Vec<u8>> = wanted
            .iter()
            .map(|&i| self.keys.val(kvs[i].mod_revision, &kvs[i].key))
            .collect();
        let found = self.engine.db().batched_multi_get_cf_opt(
            self.engine.cf(cf::vals(self.keys.shard())),
            &val_keys,
            false,
            &self.opts(),
        );
        let mut older = Vec::new();
        for (&i, got) in wanted.iter().zip(found) {
            match got? {
                Some(v) => kvs[i].value = v.to_vec(),
                None => older.push(i),
            }
        }
        if older.is_empty() {
            return Ok(());
        }
        let wanted = older;
        let hist_keys: Vec<Vec<u8>> = wanted
            .iter()
            .map(|&i| self.keys.hist(&kvs[i].key, kvs[i].mod_revision))
            .collect();
        let found = self.engine.db().batched_multi_get_cf_opt(
            self.engine.cf(cf::HIST),
            &hist_keys,
            false,
            &self.opts(),
        );
        for (&i, got) in wanted.iter().zip(found) {
            let b = got?.ok_or_else(|| {
                StoreError::Internal(format!(
                    "no history row for the current version of {:?} at {}",
                    String::from_utf8_lossy(&kvs[i].key),
                    kvs[i].mod_revision
                ))
            })?;
            kvs[i].value = KeyValue::decode(b.as_ref())?.value;
        }
        Ok(())
    }

    /// Calls `f` for every current key-value in `range`, in key order, until it returns false.
    pub fn scan_current(&self, range: &KeyRange, f: impl FnMut(KeyValue) -> bool) -> Result<()> {
        self.scan_current_opt(range, true, f)
    }

    /// [`Self::scan_current`]; without `values`, the key-values come without their values
    /// (for keys-only and count-only ranges, which then read `kv` alone).
    pub fn scan_current_opt(
        &self,
        range: &KeyRange,
        values: bool,
        mut f: impl FnMut(KeyValue) -> bool,
    ) -> Result<()> {
        if let KeyRange::Single(k) = range {
            let kv = if values {
                self.get(k)?
            } else {
                self.get_meta(k)?
            };
            if let Some(kv) = kv {
                f(kv);
            }
            return Ok(());
        }
        /// Values are fetched for this many keys at a time.
        const CHUNK: usize = 128;
        let mut chunk: Vec<KeyValue> = Vec::with_capacity(CHUNK);
        // Hands the chunk to `f`; false once `f` asked to stop.
        let mut drain = |chunk: &mut Vec<KeyValue>| -> Result<bool> {
            if values {
                self.fill_values(chunk)?;
            }
            for kv in chunk.drain(..) {
                if !f(kv) {
                    return Ok(false);
                }
            }
            Ok(true)
        };
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
            chunk.push(decode_kv(user, &v)?);
            if chunk.len() == CHUNK && !drain(&mut chunk)? {
                return Ok(());
            }
        }
        drain(&mut chunk)?;
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
        // Values are fetched for this many keys at a time.
        const CHUNK: usize = 128;
        let mut chunk: Vec<KeyValue> = Vec::with_capacity(CHUNK);
        // Hands the chunk to `f`; false once `f` asked to stop.
        let mut drain = |chunk: &mut Vec<KeyValue>| -> Result<bool> {
            self.fill_values(chunk)?;
            for kv in chunk.drain(..) {
                if !f(kv) {
                    return Ok(false);
                }
            }
            Ok(true)
        };
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
            if kv.version != 0 {
                chunk.push(kv);
                if chunk.len() == CHUNK && !drain(&mut chunk)? {
                    return Ok(());
                }
            }
        }
        drain(&mut chunk)?;
        Ok(())
    }

    /// The version of `key` at exactly revision `rev` (a tombstone has version 0), if kept.
    pub fn version_at(&self, key: &[u8], rev: i64) -> Result<Option<KeyValue>> {
        let v = self.engine.db().get_cf_opt(
            self.engine.cf(cf::HIST),
            self.keys.hist(key, rev),
            &self.opts(),
        )?;
        let mut kv = v.map(|b| decode_kv(key, &b)).transpose()?;
        if let Some(kv) = kv.as_mut() {
            self.fill_values(std::slice::from_mut(kv))?;
        }
        Ok(kv)
    }

    /// The newest live version of `key` strictly before revision `rev`.
    pub fn version_before(&self, key: &[u8], rev: i64) -> Result<Option<KeyValue>> {
        let from = self.keys.hist(key, rev - 1);
        let prefix = self.keys.hist_key_prefix(key);
        if let Some(item) = self.iter_from(cf::HIST, &from).next() {
            let (k, v) = item?;
            if k.starts_with(&prefix) {
                let mut kv = decode_kv(key, &v)?;
                if kv.version == 0 {
                    return Ok(None);
                }
                self.fill_values(std::slice::from_mut(&mut kv))?;
                return Ok(Some(kv));
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
            self.scan_current_opt(&range, !(r.keys_only || r.count_only), collect)?;
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

/// Whether `kv` (read from `kv` or `hist`) still needs its value from `vals`.
fn needs_value(kv: &KeyValue) -> bool {
    kv.value.is_empty() && kv.version != 0
}

/// Encodes a key-value without its key (which the column family key carries), value included
/// (as `hist` rows were before `vals`).
#[cfg(test)]
pub(crate) fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    let mut buf = Vec::with_capacity(kv.value.len() + 32);
    encode_stored(kv, &kv.value, &mut buf);
    buf
}

/// Encodes a version of a key for `kv` and `hist`: its metadata only, the value being in
/// `vals` at (`mod_revision`, key).
pub(crate) fn encode_kv_meta(kv: &KeyValue) -> Vec<u8> {
    let mut buf = Vec::with_capacity(32);
    encode_stored(kv, &[], &mut buf);
    buf
}

/// Encodes `kv` as a `mvccpb.KeyValue` without its key and with `value` (the bytes prost would
/// write for that message), without cloning the key-value first.
fn encode_stored(kv: &KeyValue, value: &[u8], buf: &mut Vec<u8>) {
    use prost::encoding::{encode_key, encode_varint, int64, WireType};
    if kv.create_revision != 0 {
        int64::encode(2, &kv.create_revision, buf);
    }
    if kv.mod_revision != 0 {
        int64::encode(3, &kv.mod_revision, buf);
    }
    if kv.version != 0 {
        int64::encode(4, &kv.version, buf);
    }
    if !value.is_empty() {
        encode_key(5, WireType::LengthDelimited, buf);
        encode_varint(value.len() as u64, buf);
        buf.extend_from_slice(value);
    }
    if kv.lease != 0 {
        int64::encode(6, &kv.lease, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_encodings_are_prost_encodings_without_the_key() {
        for kv in [
            KeyValue::default(),
            KeyValue {
                key: b"/k".to_vec(),
                create_revision: 5,
                mod_revision: 300,
                version: 2,
                value: vec![7; 3000],
                lease: -1,
            },
            KeyValue {
                key: b"/t".to_vec(),
                mod_revision: i64::MAX,
                ..Default::default()
            },
        ] {
            let without_key = KeyValue {
                key: Vec::new(),
                ..kv.clone()
            };
            assert_eq!(encode_kv(&kv), without_key.encode_to_vec());
            assert_eq!(decode_kv(&kv.key, &encode_kv(&kv)).unwrap(), kv);
            let meta = KeyValue {
                value: Vec::new(),
                ..without_key
            };
            assert_eq!(encode_kv_meta(&kv), meta.encode_to_vec());
        }
    }

    fn put(engine: &Engine, key: &str, value: &str) {
        let req = crate::proto::etcdserverpb::PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        };
        let cmd = crate::types::Command::Put(req.encode_to_vec().into());
        crate::mvcc::apply_local(engine, 0, &cmd).unwrap();
    }

    fn value_of(kv: Option<KeyValue>) -> Option<String> {
        kv.map(|kv| String::from_utf8(kv.value).unwrap())
    }

    /// Values are read from `vals`; a store written before `vals` existed kept them in `hist`
    /// rows, and those still read (current, historical, previous versions), compact, and live
    /// next to new versions.
    #[test]
    fn values_come_from_vals_or_from_hist_rows_of_older_stores() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let keys = Keys::new(0);
        put(&engine, "a", "a1"); // rev 2
        put(&engine, "a", "a2"); // rev 3
        put(&engine, "b", "b1"); // rev 4
        let db = engine.db();
        let vals: Vec<_> = db
            .iterator_cf(engine.cf(cf::vals(0)), rocksdb::IteratorMode::Start)
            .map(Result::unwrap)
            .collect();
        assert_eq!(vals.len(), 3, "one vals row per put");
        let reader = Reader::new(&engine, 0);
        assert_eq!(value_of(reader.get(b"a").unwrap()).as_deref(), Some("a2"));
        assert_eq!(
            value_of(reader.version_at(b"a", 2).unwrap()).as_deref(),
            Some("a1")
        );

        // Rewrite the rows as an older store had them: values in `hist`, no `vals`.
        for (k, v) in &vals {
            let rev = i64::from_be_bytes(k[4..12].try_into().unwrap());
            let key = &k[12..];
            let hk = keys.hist(key, rev);
            let mut kv =
                decode_kv(key, &db.get_cf(engine.cf(cf::HIST), &hk).unwrap().unwrap()).unwrap();
            assert!(kv.value.is_empty(), "hist rows carry no value");
            kv.value = v.to_vec();
            db.put_cf(engine.cf(cf::HIST), &hk, encode_kv(&kv)).unwrap();
            db.delete_cf(engine.cf(cf::vals(0)), k).unwrap();
        }
        put(&engine, "a", "a3"); // rev 5, in `vals`
        let reader = Reader::new(&engine, 0);
        assert_eq!(value_of(reader.get(b"a").unwrap()).as_deref(), Some("a3"));
        assert_eq!(value_of(reader.get(b"b").unwrap()).as_deref(), Some("b1"));
        assert_eq!(
            value_of(reader.version_at(b"a", 3).unwrap()).as_deref(),
            Some("a2")
        );
        assert_eq!(
            value_of(reader.version_before(b"a", 5).unwrap()).as_deref(),
            Some("a2")
        );
        let mut at3 = Vec::new();
        reader
            .scan_at(
                &KeyRange::Span {
                    start: b"a".to_vec(),
                    end: None,
                },
                3,
                |kv| {
                    at3.push((kv.key.clone(), String::from_utf8(kv.value).unwrap()));
                    true
                },
            )
            .unwrap();
        assert_eq!(at3, vec![(b"a".to_vec(), "a2".to_string())]);

        // Compacting at 5 drops a1 and a2 (old rows) and keeps b1 and a3.
        let req = crate::proto::etcdserverpb::CompactionRequest {
            revision: 5,
            ..Default::default()
        };
        let cmd = crate::types::Command::Compact(req.encode_to_vec().into());
        crate::mvcc::apply_local(&engine, 0, &cmd).unwrap();
        let reader = Reader::new(&engine, 0);
        assert_eq!(reader.version_at(b"a", 3).unwrap(), None);
        assert_eq!(value_of(reader.get(b"a").unwrap()).as_deref(), Some("a3"));
        assert_eq!(value_of(reader.get(b"b").unwrap()).as_deref(), Some("b1"));
    }

    /// Compaction removes the values of the versions it drops from `vals`.
    #[test]
    fn compaction_removes_the_values_of_dropped_versions() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        for v in ["x1", "x2", "x3"] {
            put(&engine, "x", v); // revs 2, 3, 4
        }
        let req = crate::proto::etcdserverpb::CompactionRequest {
            revision: 4,
            ..Default::default()
        };
        let cmd = crate::types::Command::Compact(req.encode_to_vec().into());
        crate::mvcc::apply_local(&engine, 0, &cmd).unwrap();
        let left: Vec<Vec<u8>> = engine
            .db()
            .iterator_cf(engine.cf(cf::vals(0)), rocksdb::IteratorMode::Start)
            .map(|r| r.unwrap().1.to_vec())
            .collect();
        assert_eq!(left, vec![b"x3".to_vec()]);
        let reader = Reader::new(&engine, 0);
        assert_eq!(value_of(reader.get(b"x").unwrap()).as_deref(), Some("x3"));
    }
}
