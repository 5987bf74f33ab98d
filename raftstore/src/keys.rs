//! Key layout in RocksDB. Every key starts with a 4-byte shard id so several Raft groups can
//! share one database.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `raft_log` | (unused: Raft entries live in `crate::raft_log` segment files) | |
//! | `raft_meta` | shard, name | vote / last purged log id / committed |
//! | `kv` | shard, user key | current `mvccpb.KeyValue` (key field empty) |
//! | `hist` | shard, escaped user key, !revision (BE) | `KeyValue` at that revision without its value; version 0 = tombstone (rows written before `vals` existed carry the value) |
//! | `vals-N` | shard, revision (BE), user key | the value the key got at that revision (`N` = shard mod 8) |
//! | `events` | shard, revision (BE), sub-revision (BE u32) | user key |
//! | `meta` | shard, name | revision, compact revision, applied log id, membership |
//! | `lease` | shard, lease id (BE) | encoded `LeaseRecord` |
//! | `lease_keys` | shard, lease id (BE), user key | empty |
//!
//! The escaped key encoding (`0x00` → `0x00 0xFF`, terminator `0x00 0x01`) keeps user-key order
//! in `hist`, and the inverted revision puts the newest version of a key first.
//!
//! Values live in `vals-N`, ordered by revision, one column family per shard (shards share
//! one only beyond 8): a put appends after every older value of its shard, so each flushed
//! file lies past every older one and compaction moves it down whole instead of rewriting
//! values among older versions of the same keys, as it had to while they sat in `hist` (where
//! each new revision lands between old rows). Were the shards' values in one column family,
//! every flushed file would span all shards' key ranges and overlap everything below it.
//! `hist` and `kv` hold small rows only.

/// Column family names.
pub mod cf {
    /// Raft log entries of stores written before the segment-file log
    /// ([`crate::raft_log`]); still opened (RocksDB opens every existing column family), no
    /// longer written.
    pub const RAFT_LOG: &str = "raft_log";
    /// Raft vote and log metadata.
    pub const RAFT_META: &str = "raft_meta";
    /// Current key-values.
    pub const KV: &str = "kv";
    /// MVCC history.
    pub const HIST: &str = "hist";
    /// Values by revision: the name snapshots give the `vals-N` column family of a shard
    /// (see [`vals`]).
    pub const VALS: &str = "vals";
    /// The column families of values, one per shard modulo their number.
    pub const VALS_FAMILIES: [&str; 8] = [
        "vals-0", "vals-1", "vals-2", "vals-3", "vals-4", "vals-5", "vals-6", "vals-7",
    ];

    /// The column family holding `shard`'s values.
    pub fn vals(shard: u32) -> &'static str {
        VALS_FAMILIES[shard as usize % VALS_FAMILIES.len()]
    }

    /// The column family holding the rows of state-machine family `name` for `shard`.
    pub fn of_shard(name: &str, shard: u32) -> &str {
        if name == VALS {
            vals(shard)
        } else {
            name
        }
    }
    /// Revision → key index for watch replay.
    pub const EVENTS: &str = "events";
    /// State-machine metadata.
    pub const META: &str = "meta";
    /// Lease table.
    pub const LEASE: &str = "lease";
    /// Lease → attached keys.
    pub const LEASE_KEYS: &str = "lease_keys";
    /// Every column family.
    pub const ALL: [&str; 16] = [
        RAFT_LOG, RAFT_META, KV, HIST, EVENTS, META, LEASE, LEASE_KEYS, "vals-0", "vals-1",
        "vals-2", "vals-3", "vals-4", "vals-5", "vals-6", "vals-7",
    ];
    /// The column families that make up the state machine (snapshotted together; `VALS`
    /// stands for the shard's `vals-N`, see [`of_shard`]).
    pub const STATE_MACHINE: [&str; 7] = [KV, HIST, EVENTS, META, LEASE, LEASE_KEYS, VALS];
}

/// Key builder for one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    shard: u32,
}

impl Keys {
    /// Keys of `shard`.
    pub fn new(shard: u32) -> Self {
        Self { shard }
    }

    /// The shard.
    pub fn shard(&self) -> u32 {
        self.shard
    }

    /// The 4-byte prefix of every key of this shard.
    pub fn prefix(&self) -> [u8; 4] {
        self.shard.to_be_bytes()
    }

    /// The first key after every key of this shard.
    pub fn upper(&self) -> Vec<u8> {
        (u64::from(self.shard) + 1).to_be_bytes()[4..].to_vec()
    }

    fn with(&self, extra: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + extra);
        v.extend_from_slice(&self.prefix());
        v
    }

    /// Named metadata key (`raft_meta`, `meta`).
    pub fn named(&self, name: &str) -> Vec<u8> {
        let mut v = self.with(name.len());
        v.extend_from_slice(name.as_bytes());
        v
    }

    /// `kv` key.
    pub fn kv(&self, key: &[u8]) -> Vec<u8> {
        let mut v = self.with(key.len());
        v.extend_from_slice(key);
        v
    }

    /// `hist` key of `key` at `rev`.
    pub fn hist(&self, key: &[u8], rev: i64) -> Vec<u8> {
        let mut v = self.hist_key_prefix(key);
        v.extend_from_slice(&(!(rev as u64)).to_be_bytes());
        v
    }

    /// `hist` prefix shared by every version of `key` (escaped key plus terminator).
    pub fn hist_key_prefix(&self, key: &[u8]) -> Vec<u8> {
        let mut v = self.with(key.len() + 10);
        escape_into(key, &mut v);
        v.extend_from_slice(&[0x00, 0x01]);
        v
    }

    /// Lower bound in `hist` for user keys `>= key` (escaped key without terminator).
    pub fn hist_bound(&self, key: &[u8]) -> Vec<u8> {
        let mut v = self.with(key.len() + 2);
        escape_into(key, &mut v);
        v
    }

    /// Splits a `hist` key into (user key, revision).
    pub fn parse_hist(&self, k: &[u8]) -> Option<(Vec<u8>, i64)> {
        let body = k.get(4..)?;
        let (key, rest) = unescape(body)?;
        if rest.len() != 8 {
            return None;
        }
        Some((key, (!be_u64(rest)) as i64))
    }

    /// `vals` key of the value `key` got at `rev`.
    pub fn val(&self, rev: i64, key: &[u8]) -> Vec<u8> {
        let mut v = self.with(8 + key.len());
        v.extend_from_slice(&(rev as u64).to_be_bytes());
        v.extend_from_slice(key);
        v
    }

    /// `events` key.
    pub fn event(&self, rev: i64, sub: u32) -> Vec<u8> {
        let mut v = self.with(12);
        v.extend_from_slice(&(rev as u64).to_be_bytes());
        v.extend_from_slice(&sub.to_be_bytes());
        v
    }

    /// (revision, sub-revision) of an `events` key.
    pub fn parse_event(&self, k: &[u8]) -> (i64, u32) {
        (
            be_u64(&k[4..12]) as i64,
            u32::from_be_bytes([k[12], k[13], k[14], k[15]]),
        )
    }

    /// `lease` key.
    pub fn lease(&self, id: i64) -> Vec<u8> {
        let mut v = self.with(8);
        v.extend_from_slice(&(id as u64).to_be_bytes());
        v
    }

    /// Lease id of a `lease` key.
    pub fn parse_lease(&self, k: &[u8]) -> i64 {
        be_u64(&k[4..12]) as i64
    }

    /// `lease_keys` key.
    pub fn lease_key(&self, id: i64, key: &[u8]) -> Vec<u8> {
        let mut v = self.lease(id);
        v.extend_from_slice(key);
        v
    }
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn escape_into(key: &[u8], out: &mut Vec<u8>) {
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
}

/// Reads one escaped key; returns it and the bytes after its terminator.
fn unescape(b: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == 0 {
            match b.get(i + 1)? {
                0xFF => out.push(0),
                0x01 => return Some((out, &b[i + 2..])),
                _ => return None,
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    None
}

/// The etcd `range_end` of a prefix: the prefix with its last byte below 0xFF incremented and
/// everything after it dropped; empty when no such key exists (the prefix is all 0xFF), which
/// here means "unbounded".
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

/// The etcd range `[key, range_end)` decoded: `range_end` empty = the single key,
/// `"\0"` = every key `>= key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    /// Exactly one key.
    Single(Vec<u8>),
    /// `[start, end)`; `end == None` means unbounded.
    Span {
        /// Inclusive start.
        start: Vec<u8>,
        /// Exclusive end, or unbounded.
        end: Option<Vec<u8>>,
    },
}

impl KeyRange {
    /// Builds the range of an etcd request.
    pub fn new(key: &[u8], range_end: &[u8]) -> Self {
        if range_end.is_empty() {
            KeyRange::Single(key.to_vec())
        } else if range_end == [0] {
            KeyRange::Span {
                start: key.to_vec(),
                end: None,
            }
        } else {
            KeyRange::Span {
                start: key.to_vec(),
                end: Some(range_end.to_vec()),
            }
        }
    }

    /// Whether `key` is in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Single(k) => k.as_slice() == key,
            KeyRange::Span { start, end } => {
                key >= start.as_slice() && end.as_ref().is_none_or(|e| key < e.as_slice())
            }
        }
    }

    /// Whether the range is inverted (`range_end` before `key`) and so can match nothing.
    pub fn is_inverted(&self) -> bool {
        matches!(self, KeyRange::Span { start, end: Some(e) } if e < start)
    }

    /// The inclusive start key.
    pub fn start(&self) -> &[u8] {
        match self {
            KeyRange::Single(k) => k,
            KeyRange::Span { start, .. } => start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_of_eight_shards_has_its_own_vals_family_and_all_are_opened() {
        let fams: std::collections::BTreeSet<&str> = (0..8).map(cf::vals).collect();
        assert_eq!(fams.len(), 8);
        assert!(fams.iter().all(|f| cf::ALL.contains(f)));
        assert_eq!(cf::vals(9), cf::vals(1));
        assert_eq!(cf::of_shard(cf::VALS, 3), "vals-3");
        assert_eq!(cf::of_shard(cf::HIST, 3), cf::HIST);
        assert!(
            !cf::ALL.contains(&cf::VALS),
            "`vals` names no column family itself"
        );
    }

    #[test]
    fn val_keys_sort_by_revision_whatever_the_key() {
        let k = Keys::new(3);
        let mut ks = [
            k.val(300, b"a"),
            k.val(2, b"zzz"),
            k.val(256, b"b"),
            k.val(2, b"y"),
        ];
        ks.sort();
        assert_eq!(
            ks,
            [
                k.val(2, b"y"),
                k.val(2, b"zzz"),
                k.val(256, b"b"),
                k.val(300, b"a")
            ]
        );
        assert!(ks.iter().all(|v| v.starts_with(&k.prefix())));
        assert!(Keys::new(4).val(0, b"") > k.val(i64::MAX, b"\xff"));
    }

    #[test]
    fn hist_keys_sort_by_user_key_then_newest_revision() {
        let k = Keys::new(7);
        let mut ks = [
            k.hist(b"a", 1),
            k.hist(b"a", 9),
            k.hist(b"a\0", 3),
            k.hist(b"ab", 2),
            k.hist(b"", 5),
        ];
        ks.sort();
        let parsed: Vec<_> = ks.iter().map(|x| k.parse_hist(x).unwrap()).collect();
        assert_eq!(
            parsed,
            vec![
                (b"".to_vec(), 5),
                (b"a".to_vec(), 9),
                (b"a".to_vec(), 1),
                (b"a\0".to_vec(), 3),
                (b"ab".to_vec(), 2)
            ]
        );
    }

    #[test]
    fn hist_bounds_bracket_the_range() {
        let k = Keys::new(0);
        let lo = k.hist_bound(b"b");
        let hi = k.hist_bound(b"c");
        assert!(k.hist(b"a\xff", 1) < lo);
        assert!(k.hist(b"b", 1) >= lo && k.hist(b"b", 1) < hi);
        assert!(k.hist(b"bzzz", 1) < hi);
        assert!(k.hist(b"c", 1) >= hi);
    }

    #[test]
    fn shard_prefixes_do_not_overlap() {
        let a = Keys::new(1);
        let b = Keys::new(2);
        assert!(a.kv(&[0xff; 10]) < a.upper());
        assert!(b.kv(b"") >= a.upper());
        assert_eq!(a.upper(), b.prefix().to_vec());
    }

    #[test]
    fn key_range_semantics_match_etcd() {
        assert!(KeyRange::new(b"a", b"").contains(b"a"));
        assert!(!KeyRange::new(b"a", b"").contains(b"ab"));
        assert!(KeyRange::new(b"a", b"\0").contains(b"zzz"));
        assert!(!KeyRange::new(b"b", b"\0").contains(b"a"));
        assert!(KeyRange::new(b"a", b"b").contains(b"azz"));
        assert!(!KeyRange::new(b"a", b"b").contains(b"b"));
        assert!(KeyRange::new(b"b", b"a").is_inverted());
    }
}
