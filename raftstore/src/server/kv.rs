//! etcd `KV` service: Range, Put, DeleteRange, Txn, Compact.

use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};

use super::{check_size, observe};
use crate::error::StoreError;
use crate::mvcc::{check_txn, checked_range};
use crate::node::StoreNode;
use crate::proto::etcdserverpb::kv_server::Kv;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};
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

    fn fix(&self, h: &mut Option<ResponseHeader>) {
        let rev = h.as_ref().map_or(0, |h| h.revision);
        *h = Some(self.node.header(rev));
    }

    async fn write<R: Message + Default>(&self, cmd: Command) -> Result<R, Status> {
        let bytes = self.node.propose(cmd).await?;
        Ok(R::decode(bytes.as_ref()).map_err(StoreError::from)?)
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        observe("Range", async {
            let r = req.into_inner();
            check_size(&self.node, &r)?;
            checked_range(&r.key, &r.range_end)?;
            if !r.serializable {
                self.node.read_barrier().await?;
            }
            let node = self.node.clone();
            let mut resp = tokio::task::spawn_blocking(move || node.reader().range(&r))
                .await
                .map_err(|e| Status::internal(e.to_string()))??;
            self.fix(&mut resp.header);
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
            let mut resp: PutResponse = self.write(Command::Put(r.encode_to_vec().into())).await?;
            self.fix(&mut resp.header);
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
            let mut resp: DeleteRangeResponse = self
                .write(Command::DeleteRange(r.encode_to_vec().into()))
                .await?;
            self.fix(&mut resp.header);
            Ok(Response::new(resp))
        })
        .await
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        observe("Txn", async {
            let r = req.into_inner();
            check_size(&self.node, &r)?;
            check_txn(&r)?;
            let mut resp: TxnResponse = self.write(Command::Txn(r.encode_to_vec().into())).await?;
            self.fix(&mut resp.header);
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
            let mut resp: CompactionResponse = self
                .write(Command::Compact(r.encode_to_vec().into()))
                .await?;
            self.fix(&mut resp.header);
            Ok(Response::new(resp))
        })
        .await
    }
}
