//! The shard map: which Raft group owns which part of the keyspace.
//!
//! ```text
//! key ─► longest shard prefix that is a prefix of key ─► that shard (else the default shard 0)
//! [key, end) ─► one shard iff every key of the range maps to it; otherwise InvalidArgument
//! ```
//! Shard 0 is the default shard ("everything else") and also holds the lease authority (see
//! [`crate::lease`]). Every member runs a replica of every shard; all shards of a node share
//! one RocksDB (the shard id prefixes every key, see [`crate::keys`]).

use std::fmt;

use crate::error::StoreError;
use crate::keys::prefix_end;

/// A shard (Raft group) id.
pub type ShardId = u32;

/// The default shard: keys no other shard claims; leases are administered here.
pub const DEFAULT_SHARD: ShardId = 0;

/// One shard: a name and the key prefix it owns (empty for the default shard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    /// Shard id (its index in the map).
    pub id: ShardId,
    /// Short name (`pods`, `events`, ..., `default`).
    pub name: String,
    /// Owned key prefix; empty for the default shard.
    pub prefix: Vec<u8>,
}

/// Every shard of the cluster. All members must be started with the same map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    shards: Vec<ShardSpec>,
}

impl Default for ShardMap {
    /// The Kubernetes layout: pods, events, leases and nodes (`minions`) each get their own
    /// Raft group; everything else lives in the default shard.
    fn default() -> Self {
        Self::parse("pods=/registry/pods/,events=/registry/events/,leases=/registry/leases/,nodes=/registry/minions/")
            .unwrap_or_else(|_| Self::single())
    }
}

impl ShardMap {
    /// One shard for the whole keyspace (a plain etcd).
    pub fn single() -> Self {
        Self {
            shards: vec![ShardSpec {
                id: DEFAULT_SHARD,
                name: "default".into(),
                prefix: Vec::new(),
            }],
        }
    }

    /// Parses `name=prefix,name=prefix,...` (the default shard is added first, implicitly).
    /// An empty string gives a single shard.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut map = Self::single();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, prefix) = part
                .split_once('=')
                .ok_or_else(|| format!("shard {part:?}: expected name=prefix"))?;
            let (name, prefix) = (name.trim(), prefix.trim());
            if name.is_empty() || prefix.is_empty() {
                return Err(format!("shard {part:?}: empty name or prefix"));
            }
            if map.shards.iter().any(|s| s.name == name) {
                return Err(format!("shard name {name:?} given twice"));
            }
            for s in &map.shards[1..] {
                let p = prefix.as_bytes();
                if s.prefix.starts_with(p) || p.starts_with(&s.prefix) {
                    return Err(format!(
                        "shard prefixes {prefix:?} and {:?} overlap",
                        String::from_utf8_lossy(&s.prefix)
                    ));
                }
            }
            let id = map.shards.len() as ShardId;
            map.shards.push(ShardSpec {
                id,
                name: name.to_string(),
                prefix: prefix.as_bytes().to_vec(),
            });
        }
        Ok(map)
    }

    /// Every shard, by id.
    pub fn shards(&self) -> &[ShardSpec] {
        &self.shards
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always false: there is at least the default shard.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The shard owning `key`.
    pub fn shard_of(&self, key: &[u8]) -> ShardId {
        self.shards[1..]
            .iter()
            .find(|s| key.starts_with(&s.prefix))
            .map_or(DEFAULT_SHARD, |s| s.id)
    }

    /// The shard owning every key of `[key, range_end)` (etcd range conventions: empty
    /// `range_end` = the single key; `"\0"` = every key ≥ `key`), or `InvalidArgument` naming
    /// the shards the range touches.
    pub fn shard_of_range(&self, key: &[u8], range_end: &[u8]) -> Result<ShardId, StoreError> {
        let first = self.shard_of(key);
        if range_end.is_empty() {
            return Ok(first);
        }
        let touched = self.shards_touched(key, range_end);
        if touched.len() == 1 {
            return Ok(touched[0]);
        }
        Err(StoreError::CrossShard(self.describe(&touched)))
    }

    /// The shards that own at least one key of `[key, range_end)` (non-empty `range_end`).
    fn shards_touched(&self, key: &[u8], range_end: &[u8]) -> Vec<ShardId> {
        let unbounded = range_end == [0];
        let below_end = |k: &[u8]| unbounded || k < range_end;
        let mut out = Vec::new();
        // A prefix shard is touched when its interval [prefix, prefix_end) meets the range.
        let mut covered_by_one = None;
        for s in &self.shards[1..] {
            let end = prefix_end(&s.prefix);
            let meets = below_end(&s.prefix) && (end.is_empty() || key < end.as_slice());
            if meets {
                out.push(s.id);
                let inside = key >= s.prefix.as_slice()
                    && !unbounded
                    && (end.is_empty() || range_end <= end.as_slice());
                if inside {
                    covered_by_one = Some(s.id);
                }
            }
        }
        if let Some(id) = covered_by_one {
            return vec![id];
        }
        // The default shard owns everything between the prefix intervals: touched unless the
        // range lies entirely inside prefix intervals.
        if !self.range_inside_prefixes(key, range_end) {
            out.insert(0, DEFAULT_SHARD);
        }
        out
    }

    /// Whether every key of `[key, range_end)` falls under some shard prefix.
    fn range_inside_prefixes(&self, key: &[u8], range_end: &[u8]) -> bool {
        if range_end == [0] {
            return false;
        }
        // Walk the prefix intervals in order from `key`; they must tile the range.
        let mut intervals: Vec<(Vec<u8>, Vec<u8>)> = self.shards[1..]
            .iter()
            .map(|s| (s.prefix.clone(), prefix_end(&s.prefix)))
            .collect();
        intervals.sort();
        let mut at = key.to_vec();
        for (start, end) in intervals {
            if end.as_slice() <= at.as_slice() && !end.is_empty() {
                continue;
            }
            if start.as_slice() > at.as_slice() {
                return false;
            }
            if end.is_empty() || end.as_slice() >= range_end {
                return true;
            }
            at = end;
        }
        false
    }

    fn describe(&self, ids: &[ShardId]) -> String {
        let names: Vec<String> = ids
            .iter()
            .map(|id| self.shards[*id as usize].to_string())
            .collect();
        names.join(", ")
    }

    /// The name of shard `id`.
    pub fn name(&self, id: ShardId) -> &str {
        self.shards
            .get(id as usize)
            .map_or("unknown", |s| s.name.as_str())
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "{} (everything else)", self.name)
        } else {
            write!(
                f,
                "{} ({})",
                self.name,
                String::from_utf8_lossy(&self.prefix)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_route_by_longest_owned_prefix() {
        let m = ShardMap::default();
        assert_eq!(m.len(), 5);
        assert_eq!(m.shard_of(b"/registry/pods/default/a"), 1);
        assert_eq!(m.shard_of(b"/registry/events/ns/e"), 2);
        assert_eq!(m.shard_of(b"/registry/leases/kube-node-lease/n1"), 3);
        assert_eq!(m.shard_of(b"/registry/minions/n1"), 4);
        assert_eq!(m.shard_of(b"/registry/podsx"), 0);
        assert_eq!(m.shard_of(b"foo"), 0);
        assert_eq!(m.shard_of(b""), 0);
    }

    #[test]
    fn a_prefix_range_inside_one_shard_is_accepted() {
        let m = ShardMap::default();
        let p = b"/registry/pods/default/";
        assert_eq!(m.shard_of_range(p, &prefix_end(p)).unwrap(), 1);
        let all_pods = b"/registry/pods/";
        assert_eq!(
            m.shard_of_range(all_pods, &prefix_end(all_pods)).unwrap(),
            1
        );
        let deploys = b"/registry/deployments/";
        assert_eq!(m.shard_of_range(deploys, &prefix_end(deploys)).unwrap(), 0);
        assert_eq!(m.shard_of_range(b"a", b"b").unwrap(), 0);
    }

    #[test]
    fn a_range_across_shards_is_refused_naming_them() {
        let m = ShardMap::default();
        let reg = b"/registry/";
        let e = m.shard_of_range(reg, &prefix_end(reg)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("default"), "{msg}");
        assert!(msg.contains("pods (/registry/pods/)"), "{msg}");
        assert!(msg.contains("nodes (/registry/minions/)"), "{msg}");
        // Everything from a key on.
        let e = m.shard_of_range(b"/registry/pods/a", &[0]).unwrap_err();
        assert!(e.to_string().contains("pods"), "{e}");
        // A range starting in the default shard and ending inside pods.
        assert!(m
            .shard_of_range(b"/registry/a", b"/registry/pods/b")
            .is_err());
    }

    #[test]
    fn a_single_shard_map_accepts_everything() {
        let m = ShardMap::single();
        assert_eq!(m.shard_of_range(b"", &[0]).unwrap(), 0);
        assert_eq!(m.shard_of_range(b"\0", &[0]).unwrap(), 0);
    }

    #[test]
    fn parse_rejects_overlaps_and_junk() {
        assert!(ShardMap::parse("a=/x/,b=/x/y/").is_err());
        assert!(ShardMap::parse("a").is_err());
        assert!(ShardMap::parse("a=/x/,a=/y/").is_err());
        assert_eq!(ShardMap::parse("").unwrap(), ShardMap::single());
        let m = ShardMap::parse("a=/x/, b=/y/").unwrap();
        assert_eq!(m.name(2), "b");
    }
}
