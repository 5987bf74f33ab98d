//! The replicated lease table: grant, revoke (deleting attached keys), checkpoint.

use serde::{Deserialize, Serialize};

use super::apply::{ApplyCtx, LeaseNotice};
use super::MAX_LEASE_TTL;
use crate::error::{Result, StoreError};
use crate::keys::{cf, Keys};
use crate::proto::etcdserverpb::{LeaseGrantResponse, LeaseRevokeResponse};
use crate::types::{decode, encode};

/// A lease as stored in the `lease` column family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Lease id.
    pub id: i64,
    /// Granted TTL in seconds.
    pub ttl: i64,
    /// Remaining TTL at the last checkpoint (0 = none, use the full TTL).
    pub remaining_ttl: i64,
}

impl<'a> ApplyCtx<'a> {
    pub(super) fn lease_exists(&self, id: i64) -> Result<bool> {
        Ok(self
            .engine
            .db()
            .get_cf(self.engine.cf(cf::LEASE), self.keys.lease(id))?
            .is_some())
    }

    pub(super) fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<LeaseGrantResponse> {
        if ttl > MAX_LEASE_TTL {
            return Err(StoreError::LeaseTtlTooLarge);
        }
        if id <= 0 {
            return Err(StoreError::LeaseNotFound);
        }
        if self.lease_exists(id)? {
            return Err(StoreError::LeaseExist);
        }
        let rec = LeaseRecord {
            id,
            ttl,
            remaining_ttl: 0,
        };
        self.stage_put(cf::LEASE, self.keys.lease(id), encode(&rec)?);
        self.lease_notices.push(LeaseNotice::Granted { id, ttl });
        Ok(LeaseGrantResponse {
            header: self.header(),
            id,
            ttl,
            error: String::new(),
        })
    }

    pub(super) fn lease_revoke(&mut self, id: i64) -> Result<LeaseRevokeResponse> {
        if !self.lease_exists(id)? {
            return Err(StoreError::LeaseNotFound);
        }
        for key in lease_keys(self.engine, self.keys, id)? {
            if let Some(prev) = self.get(&key)? {
                self.delete_key(prev);
            }
        }
        self.stage_delete_range(cf::LEASE_KEYS, self.keys.lease(id), self.keys.lease(id + 1));
        self.stage_delete(cf::LEASE, self.keys.lease(id));
        self.lease_notices.push(LeaseNotice::Revoked { id });
        Ok(LeaseRevokeResponse {
            header: self.header(),
        })
    }

    pub(super) fn lease_checkpoint(&mut self, leases: &[(i64, i64)]) -> Result<()> {
        for &(id, remaining) in leases {
            if let Some(mut rec) = read_lease(self.engine, self.keys, id)? {
                rec.remaining_ttl = remaining;
                self.stage_put(cf::LEASE, self.keys.lease(id), encode(&rec)?);
            }
        }
        Ok(())
    }
}

/// Reads one lease.
pub(crate) fn read_lease(
    engine: &crate::engine::Engine,
    keys: Keys,
    id: i64,
) -> Result<Option<LeaseRecord>> {
    engine
        .db()
        .get_cf(engine.cf(cf::LEASE), keys.lease(id))?
        .map(|b| decode(&b))
        .transpose()
}

/// Every lease of a shard.
pub(crate) fn all_leases(engine: &crate::engine::Engine, keys: Keys) -> Result<Vec<LeaseRecord>> {
    let mut out = Vec::new();
    let from = keys.prefix();
    for item in engine.db().iterator_cf(
        engine.cf(cf::LEASE),
        rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward),
    ) {
        let (k, v) = item?;
        if !k.starts_with(&keys.prefix()) {
            break;
        }
        out.push(decode(&v)?);
    }
    Ok(out)
}

/// The keys attached to a lease.
pub(crate) fn lease_keys(
    engine: &crate::engine::Engine,
    keys: Keys,
    id: i64,
) -> Result<Vec<Vec<u8>>> {
    let prefix = keys.lease(id);
    let mut out = Vec::new();
    for item in engine.db().iterator_cf(
        engine.cf(cf::LEASE_KEYS),
        rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward),
    ) {
        let (k, _) = item?;
        if !k.starts_with(&prefix) {
            break;
        }
        out.push(k[prefix.len()..].to_vec());
    }
    Ok(out)
}
