//! etcd `KV` service: Range, Put, DeleteRange, Txn, Compact.
//!
//! Every request is routed by its keys to one shard ([`crate::shard::ShardMap`]); a range or
//! txn whose keys span shards is refused with `InvalidArgument` naming them. Compact applies to
//! every shard that has reached the requested revision (revisions are per shard).

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};

use super::{check_size, observe};
use crate::error::StoreError;
use crate::mvcc::{check_txn, checked_range};
use crate::node::StoreNode;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::request_op::Request as Op;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use crate::shard::{ShardId, DEFAULT_SHARD};
use crate::types::Command;

/// The KV service of a store node.
pub struct KvService {
    node: Arc<StoreNode>,
}

impl KvService {
    /// Serves `node`.
    pub fn new(node: Arc<StoreNode>) -> Self {
        Self { node }
    }

    fn fix(&self, shard: ShardId, h: &mut Option<ResponseHeader>) {
        let rev = h.as_ref().map_or(0, |h| h.revision);
        *h = Some(self.node.header(shard, rev));
    }

    async fn write<R: Message + Default>(&self, shard: ShardId, cmd: Command) -> Result<R, Status> {
        let bytes = self.node.propose(shard, cmd).await?;
        Ok(R::decode(bytes.as_ref()).map_err(StoreError::from)?)
    }

    /// The one shard every key of a txn (compares and operations, nested txns included)
    /// belongs to.
    fn txn_shard(&self, t: &TxnRequest) -> Result<ShardId, StoreError> {
        let mut ranges: Vec<(&[u8], &[u8])> = Vec::new();
        collect_txn_ranges(t, &mut ranges);
        let mut shard = None;
        let mut all = std::collections::BTreeSet::new();
        for (key, end) in ranges {
            let s = self.node.route(key, end)?;
            all.insert(s);
            shard.get_or_insert(s);
        }
        if all.len() > 1 {
            let names: Vec<String> = all
                .iter()
                .map(|id| self.node.cfg.shards.shards()[*id as usize].to_string())
                .collect();
            return Err(StoreError::CrossShard(names.join(", ")));
        }
        Ok(shard.unwrap_or(DEFAULT_SHARD))
    }
}

fn collect_txn_ranges<'a>(t: &'a TxnRequest, out: &mut Vec<(&'a [u8], &'a [u8])>) {
    for c in &t.compare {
        out.push((&c.key, &c.range_end));
    }
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(Op::RequestRange(r)) => out.push((&r.key, &r.range_end)),
            Some(Op::RequestPut(r)) => out.push((&r.key, &[])),
            Some(Op::RequestDeleteRange(r)) => out.push((&r.key, &r.range_end)),
            Some(Op::RequestTxn(t)) => collect_txn_ranges(t, out),
            None => {}
        }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        observe("Range", async {
            let r = req.into_inner();
            check_size(&self.node, &r)?;
            checked_range(&r.key, &r.range_end)?;
            let shard = self.node.route(&r.key, &r.range_end)?;
            if !r.serializable {
                self.node.read_barrier(shard).await?;
            }
            let node = self.node.clone();
            let mut resp = tokio::task::spawn_blocking(move || node.reader(shard).range(&r))
                .await
                .map_err(|e| Status::internal(e.to_string()))??;
            self.fix(shard, &mut resp.header);
            Ok(Response::new(resp))
        })
        .await
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        observe("Put", async {
            let r = req.into_inner();
            check_size(&self.node, &r)?;
            if r.key.is_empty() {
                return Err(StoreError::EmptyKey.into());
            }
            let shard = self.node.cfg.shards.shard_of(&r.key);
            let mut resp: PutResponse = self
                .write(shard, Command::Put(r.encode_to_vec().into()))
                .await?;
            self.fix(shard, &mut resp.header);
            Ok(Response::new(resp))
        })
        .await
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        observe("DeleteRange", async {
            let r = req.into_inner();
            check_size(&self.node, &r)?;
            checked_range(&r.key, &r.range_end)?;
            let shard = self.node.route(&r.key, &r.range_end)?;
            let mut resp: DeleteRangeResponse = self
                .write(shard, Command::DeleteRange(r.encode_to_vec().into()))
                .await?;
            self.fix(shard, &mut resp.header);
            Ok(Response::new(resp))
        })
        .await
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        observe("Txn", async {
            let r = req.into_inner();
            check_size(&self.node, &r)?;
            check_txn(&r)?;
            let shard = self.txn_shard(&r)?;
            let cmd = Command::Txn(r.encode_to_vec().into());
            let mut resp: TxnResponse = if reads_history(&r) {
                // A historical read inside a txn must see every revision before it in RocksDB,
                // which a batch's earlier commands are not yet: such a txn travels alone.
                let bytes = self.node.propose_alone(shard, cmd).await?;
                TxnResponse::decode(bytes.as_ref()).map_err(StoreError::from)?
            } else {
                self.write(shard, cmd).await?
            };
            self.fix(shard, &mut resp.header);
            Ok(Response::new(resp))
        })
        .await
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        observe("Compact", async {
            let r = req.into_inner();
            // Revisions are per shard: compact every shard that has reached the revision.
            let eligible: Vec<ShardId> = self
                .node
                .shards
                .iter()
                .filter(|s| s.hub.revision() >= r.revision)
                .map(|s| s.id)
                .collect();
            if eligible.is_empty() {
                return Err(StoreError::FutureRev.into());
            }
            let cmd = Command::Compact(r.encode_to_vec().into());
            let calls = eligible
                .iter()
                .map(|s| self.write::<CompactionResponse>(*s, cmd.clone()));
            let results = futures::future::join_all(calls).await;
            let mut answer = None;
            let mut error = None;
            for (shard, res) in eligible.iter().zip(results) {
                match res {
                    Ok(mut resp) => {
                        self.fix(*shard, &mut resp.header);
                        if answer.is_none() || *shard == DEFAULT_SHARD {
                            answer = Some(resp);
                        }
                    }
                    Err(e) => {
                        error.get_or_insert(e);
                    }
                }
            }
            match (error, answer) {
                (Some(e), _) => Err(e),
                (None, Some(resp)) => Ok(Response::new(resp)),
                (None, None) => Err(StoreError::Internal("no shard answered".into()).into()),
            }
        })
        .await
    }
}

/// Whether a txn (nested ones included) reads at a past revision.
fn reads_history(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .any(|op| match &op.request {
            Some(Op::RequestRange(r)) => r.revision != 0,
            Some(Op::RequestTxn(n)) => reads_history(n),
            _ => false,
        })
}
