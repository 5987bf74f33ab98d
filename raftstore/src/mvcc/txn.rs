//! Txn: compares, then the success or failure branch, as one revision.

use std::collections::BTreeSet;

use super::apply::ApplyCtx;
use super::read::checked_range;
use super::MAX_TXN_OPS;
use crate::error::{Result, StoreError};
use crate::keys::KeyRange;
use crate::proto::etcdserverpb::{
    compare, request_op, response_op, Compare, RangeRequest, RangeResponse, RequestOp, ResponseOp,
    TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::KeyValue;

impl<'a> ApplyCtx<'a> {
    pub(super) fn txn(&mut self, t: &TxnRequest) -> Result<TxnResponse> {
        check_txn(t)?;
        self.check_txn_puts(t)?;
        self.exec_txn(t)
    }

    fn check_txn_puts(&self, t: &TxnRequest) -> Result<()> {
        for op in t.success.iter().chain(&t.failure) {
            match &op.request {
                Some(request_op::Request::RequestPut(p)) => self.check_put(p)?,
                Some(request_op::Request::RequestTxn(n)) => self.check_txn_puts(n)?,
                Some(request_op::Request::RequestRange(r)) => {
                    checked_range(&r.key, &r.range_end)?;
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    checked_range(&d.key, &d.range_end)?;
                }
                None => {}
            }
        }
        Ok(())
    }

    fn exec_txn(&mut self, t: &TxnRequest) -> Result<TxnResponse> {
        let mut succeeded = true;
        for c in &t.compare {
            if !self.compare(c)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded { &t.success } else { &t.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let resp = match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    response_op::Response::ResponseRange(self.txn_range(r)?)
                }
                Some(request_op::Request::RequestPut(p)) => {
                    response_op::Response::ResponsePut(self.put(p)?)
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    let range = checked_range(&d.key, &d.range_end)?;
                    response_op::Response::ResponseDeleteRange(
                        self.delete_range(&range, d.prev_kv)?,
                    )
                }
                Some(request_op::Request::RequestTxn(n)) => {
                    response_op::Response::ResponseTxn(self.exec_txn(n)?)
                }
                None => continue,
            };
            responses.push(ResponseOp {
                response: Some(resp),
            });
        }
        Ok(TxnResponse {
            header: self.header(),
            succeeded,
            responses,
        })
    }

    /// A range inside a txn sees the txn's earlier writes (etcd's write-txn read view).
    fn txn_range(&self, r: &RangeRequest) -> Result<RangeResponse> {
        if r.revision > 0 || self.overlay.is_empty() {
            let mut resp = self.reader.range(r)?;
            resp.header = self.header();
            return Ok(resp);
        }
        let range = checked_range(&r.key, &r.range_end)?;
        let all = self.scan(&range)?;
        let count = all.len() as i64;
        let mut kvs = super::read::shape_range_result(r, all);
        let more = r.limit > 0 && kvs.len() > r.limit as usize;
        if more {
            kvs.truncate(r.limit as usize);
        }
        if r.count_only {
            kvs.clear();
        }
        if r.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        Ok(RangeResponse {
            header: self.header(),
            kvs,
            more,
            count,
        })
    }

    /// Evaluates one compare (etcd's `applyCompare`): over a range, every key must match; a
    /// missing key compares as the zero key-value, except that a value compare fails.
    fn compare(&self, c: &Compare) -> Result<bool> {
        let range = if c.range_end.is_empty() {
            KeyRange::Single(c.key.clone())
        } else {
            KeyRange::new(&c.key, &c.range_end)
        };
        let kvs = self.scan(&range)?;
        let target =
            compare::CompareTarget::try_from(c.target).unwrap_or(compare::CompareTarget::Version);
        if kvs.is_empty() {
            if target == compare::CompareTarget::Value {
                return Ok(false);
            }
            return Ok(compare_kv(c, &KeyValue::default()));
        }
        Ok(kvs.iter().all(|kv| compare_kv(c, kv)))
    }
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    let ord = match (
        CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version),
        &c.target_union,
    ) {
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => {
            kv.value.as_slice().cmp(v.as_slice())
        }
        (CompareTarget::Value, _) => kv.value.as_slice().cmp(&[]),
        (CompareTarget::Version, Some(TargetUnion::Version(v))) => kv.version.cmp(v),
        (CompareTarget::Create, Some(TargetUnion::CreateRevision(v))) => kv.create_revision.cmp(v),
        (CompareTarget::Mod, Some(TargetUnion::ModRevision(v))) => kv.mod_revision.cmp(v),
        (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => kv.lease.cmp(v),
        // A target without its value compares against zero, as Go's zero value would.
        (CompareTarget::Version, _) => kv.version.cmp(&0),
        (CompareTarget::Create, _) => kv.create_revision.cmp(&0),
        (CompareTarget::Mod, _) => kv.mod_revision.cmp(&0),
        (CompareTarget::Lease, _) => kv.lease.cmp(&0),
    };
    match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => ord.is_eq(),
        CompareResult::NotEqual => ord.is_ne(),
        CompareResult::Greater => ord.is_gt(),
        CompareResult::Less => ord.is_lt(),
    }
}

/// etcd's `checkTxnRequest` + `checkIntervals`: op count, and no key written twice in a branch
/// (a put inside a deleted range counts as twice).
pub(crate) fn check_txn(t: &TxnRequest) -> Result<()> {
    if t.compare.len() > MAX_TXN_OPS
        || t.success.len() > MAX_TXN_OPS
        || t.failure.len() > MAX_TXN_OPS
    {
        return Err(StoreError::TooManyOps);
    }
    for c in &t.compare {
        if c.key.is_empty() {
            return Err(StoreError::EmptyKey);
        }
    }
    for branch in [&t.success, &t.failure] {
        let mut puts = BTreeSet::new();
        let mut dels = Vec::new();
        collect_writes(branch, &mut puts, &mut dels)?;
        for p in &puts {
            if dels.iter().any(|d: &KeyRange| d.contains(p)) {
                return Err(StoreError::DuplicateKey);
            }
        }
    }
    Ok(())
}

fn collect_writes(
    ops: &[RequestOp],
    puts: &mut BTreeSet<Vec<u8>>,
    dels: &mut Vec<KeyRange>,
) -> Result<()> {
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestPut(p)) => {
                if !puts.insert(p.key.clone()) {
                    return Err(StoreError::DuplicateKey);
                }
            }
            Some(request_op::Request::RequestDeleteRange(d)) => {
                dels.push(KeyRange::new(&d.key, &d.range_end));
            }
            Some(request_op::Request::RequestTxn(n)) => {
                check_txn(n)?;
                // A nested txn runs one of its branches; both are checked against ours.
                let mut seen = BTreeSet::new();
                for branch in [&n.success, &n.failure] {
                    let mut p = BTreeSet::new();
                    let mut d = Vec::new();
                    collect_writes(branch, &mut p, &mut d)?;
                    for k in p {
                        if puts.contains(&k) {
                            return Err(StoreError::DuplicateKey);
                        }
                        seen.insert(k);
                    }
                    dels.extend(d);
                }
                puts.extend(seen);
            }
            Some(request_op::Request::RequestRange(_)) | None => {}
        }
    }
    Ok(())
}
