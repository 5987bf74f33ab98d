//! MVCC key-value storage with etcd's semantics, on RocksDB.
//!
//! ```text
//!  Range ──► Reader (RocksDB snapshot) ── kv (current) / hist (at revision) ──► RangeResponse
//!  Command ──► ApplyCtx: validate ─► compute on overlay ─► one WriteBatch ─► events + response
//! ```
//! One revision per Put/DeleteRange/Txn that changes something; `create_revision`,
//! `mod_revision`, `version` and tombstones exactly as etcd defines them.

mod apply;
#[cfg(test)]
mod batch_tests;
mod lease;
mod read;
mod txn;

pub use apply::{ApplyCache, ApplyCtx, ApplyOutput, LeaseNotice};
pub use lease::LeaseRecord;
pub(crate) use lease::{all_leases as lease_table, lease_keys};
pub(crate) use read::checked_range;
pub use read::Reader;
pub(crate) use txn::check_txn;

/// etcd's limit on operations in one txn (`--max-txn-ops` default).
pub const MAX_TXN_OPS: usize = 128;
/// etcd's maximum lease TTL in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Applies one command outside Raft and writes it (no fsync): for tests, tools and benchmarks
/// of the MVCC layer. Returns the encoded response and the revision after the command.
pub fn apply_local(
    engine: &crate::engine::Engine,
    shard: u32,
    cmd: &crate::types::Command,
) -> crate::error::Result<(bytes::Bytes, i64)> {
    let (resp, out) = ApplyCtx::new(engine, shard)?.apply(cmd)?;
    let rev = out.revision;
    engine.write(out.batch, false)?;
    Ok((resp, rev))
}

/// Names of state-machine metadata keys in the `meta` column family.
pub(crate) mod meta {
    /// Current revision (BE i64).
    pub const REV: &str = "rev";
    /// Compaction revision (BE i64).
    pub const COMPACT_REV: &str = "compact_rev";
    /// Last applied log id (encoded).
    pub const APPLIED: &str = "applied";
    /// Last membership (encoded).
    pub const MEMBERSHIP: &str = "membership";
}

pub(crate) fn i64_bytes(v: i64) -> [u8; 8] {
    v.to_be_bytes()
}

pub(crate) fn bytes_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}
