//! kube-apiserver's etcd compactor (`storage/etcd3/compact.go`), for stores that do not compact
//! themselves.
//!
//! ```text
//! every interval:  Txn( version(compact_rev_key) == t ? Put(compact_rev_key) : Get(compact_rev_key) )
//!   won  ─► Compact(rev seen last interval); t += 1; rev = this header's revision
//!   lost ─► another replica compacted this interval: t = the key's version (no compaction)
//! ```
//!
//! So history is kept for one to two intervals and several apiserver replicas compact once per
//! interval between them. A sharded Navarch store (which refuses a range over the whole
//! keyspace as spanning shards) compacts every shard itself (`--auto-compaction-retention`),
//! because one revision cannot be right for every shard; the compactor then stands down.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{ErrCtx, EtcdStorage, Retry};
use crate::etcdpb::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    kv_client::KvClient,
    request_op::Request as Op,
    response_op::Response as OpResponse,
    CompactionRequest, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use crate::storage::{Result, StorageError};

/// The key kube-apiserver keeps its compaction clock in (outside `/registry/`).
pub const COMPACT_REV_KEY: &str = "compact_rev_key";

impl EtcdStorage {
    /// One compactor round: `(t, rev)` from the previous round (`(0, 0)` at first) in, the next
    /// round's `(t, rev)` out.
    pub async fn compact_round(&self, t: i64, rev: i64) -> Result<(i64, i64)> {
        let key = COMPACT_REV_KEY.as_bytes().to_vec();
        let req = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Version as i32,
                key: key.clone(),
                target_union: Some(TargetUnion::Version(t)),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: key.clone(),
                    ..Default::default()
                })),
            }],
            failure: vec![RequestOp {
                request: Some(Op::RequestRange(RangeRequest {
                    key,
                    ..Default::default()
                })),
            }],
        };
        let resp = self
            .txn("compact", ErrCtx::key(COMPACT_REV_KEY), req)
            .await?;
        let current = resp.header.as_ref().map_or(0, |h| h.revision);
        if !resp.succeeded {
            let version = resp
                .responses
                .first()
                .and_then(|r| match &r.response {
                    Some(OpResponse::ResponseRange(rr)) => rr.kvs.first().map(|kv| kv.version),
                    _ => None,
                })
                .unwrap_or(0);
            return Ok((version, current));
        }
        if rev > 0 {
            let r = self
                .call(
                    "compact",
                    ErrCtx::key(COMPACT_REV_KEY),
                    Retry::UnsentOnly,
                    |ch| async move {
                        KvClient::new(ch)
                            .compact(CompactionRequest {
                                revision: rev,
                                physical: false,
                            })
                            .await
                    },
                )
                .await;
            match r {
                Ok(_) => {
                    metrics::counter!("apiserver_storage_compactions_total").increment(1);
                    tracing::info!(revision = rev, "compacted the store");
                }
                // Compacted further already (by an operator or the store): nothing to do.
                Err(StorageError::Expired { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((t + 1, current))
    }

    /// Whether the store refuses a range over the whole keyspace as spanning shards (a sharded
    /// Navarch store, which compacts itself).
    pub async fn is_sharded(&self) -> Result<bool> {
        let r = self
            .call(
                "probe",
                ErrCtx::key(""),
                Retry::Idempotent,
                |ch| async move {
                    KvClient::new(ch)
                        .range(RangeRequest {
                            key: vec![0],
                            range_end: vec![0],
                            count_only: true,
                            ..Default::default()
                        })
                        .await
                },
            )
            .await;
        match r {
            Ok(_) => Ok(false),
            Err(StorageError::Internal(m))
                if m.starts_with("InvalidArgument") && m.contains("shard") =>
            {
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }
}

/// Starts the compactor for `storage` every `interval` (zero: never); it ends when the storage
/// is dropped.
pub fn spawn(storage: &Arc<EtcdStorage>, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    let weak: Weak<EtcdStorage> = Arc::downgrade(storage);
    tokio::spawn(async move {
        let (mut t, mut rev) = (0i64, 0i64);
        let mut checked = false;
        loop {
            tokio::time::sleep(interval).await;
            let Some(s) = weak.upgrade() else { return };
            if !checked {
                match s.is_sharded().await {
                    Ok(true) => {
                        tracing::info!("the store is sharded and compacts itself; the apiserver's compactor stands down");
                        return;
                    }
                    Ok(false) => checked = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "compactor: cannot probe the store; retrying next interval");
                        continue;
                    }
                }
            }
            match s.compact_round(t, rev).await {
                Ok((nt, nr)) => (t, rev) = (nt, nr),
                Err(e) => {
                    tracing::warn!(error = %e, "compactor round failed; retrying next interval")
                }
            }
        }
    });
}
