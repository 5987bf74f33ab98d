//! etcd `Lease` service: grant, revoke, keep-alive stream, time-to-live, list.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::observe;
use crate::error::StoreError;
use crate::keys::Keys;
use crate::network::{PeerRequest, PeerResponse};
use crate::node::{StoreNode, DEFAULT_SHARD};
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::types::Command;

/// The Lease service of a store node.
pub struct LeaseService {
    node: Arc<StoreNode>,
}

impl LeaseService {
    /// Serves `node`.
    pub fn new(node: Arc<StoreNode>) -> Self {
        Self { node }
    }

    /// A header of the default shard (the lease authority) at its current revision.
    fn header(&self) -> crate::proto::etcdserverpb::ResponseHeader {
        let rev = self.node.shard(DEFAULT_SHARD).hub.revision();
        self.node.header(DEFAULT_SHARD, rev)
    }
}

async fn keep_alive(node: &StoreNode, id: i64) -> Result<LeaseKeepAliveResponse, StoreError> {
    let ttl = match node
        .on_leader(DEFAULT_SHARD, PeerRequest::LeaseKeepAlive { id })
        .await
    {
        Ok(PeerResponse::LeaseTtl { granted, .. }) => granted,
        // etcd answers a keep-alive of an unknown lease with TTL 0.
        Err(StoreError::LeaseNotFound) => 0,
        Ok(other) => return Err(StoreError::Internal(format!("unexpected {other:?}"))),
        Err(e) => return Err(e),
    };
    let rev = node.shard(DEFAULT_SHARD).hub.revision();
    Ok(LeaseKeepAliveResponse {
        header: Some(node.header(DEFAULT_SHARD, rev)),
        id,
        ttl,
    })
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        observe("LeaseGrant", async {
            let r = req.into_inner();
            let id = if r.id != 0 {
                r.id
            } else {
                rand::random::<i64>().abs().max(1)
            };
            let ttl = self.node.lessor.effective_ttl(r.ttl);
            let bytes = self
                .node
                .propose_all(Command::LeaseGrant { id, ttl })
                .await?;
            let mut resp = LeaseGrantResponse::decode(bytes.as_ref()).map_err(StoreError::from)?;
            resp.header = Some(self.header());
            Ok(Response::new(resp))
        })
        .await
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        observe("LeaseRevoke", async {
            let id = req.into_inner().id;
            let bytes = self.node.propose_all(Command::LeaseRevoke { id }).await?;
            let mut resp = LeaseRevokeResponse::decode(bytes.as_ref()).map_err(StoreError::from)?;
            let rev = resp.header.as_ref().map_or(0, |h| h.revision);
            resp.header = Some(self.node.header(DEFAULT_SHARD, rev));
            Ok(Response::new(resp))
        })
        .await
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let node = self.node.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = node.shutdown.cancelled() => return,
                    m = inbound.message() => m,
                };
                let r = match msg {
                    Ok(Some(r)) => r,
                    Ok(None) | Err(_) => return,
                };
                let resp = keep_alive(&node, r.id).await.map_err(Status::from);
                let failed = resp.is_err();
                if tx.send(resp).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        observe("LeaseTimeToLive", async {
            let r = req.into_inner();
            let (remaining, granted) = match self
                .node
                .on_leader(DEFAULT_SHARD, PeerRequest::LeaseTimeToLive { id: r.id })
                .await?
            {
                PeerResponse::LeaseTtl { remaining, granted } => (remaining, granted),
                other => return Err(StoreError::Internal(format!("unexpected {other:?}")).into()),
            };
            let mut keys = Vec::new();
            if r.keys && remaining >= 0 {
                // Attached keys live in the shards that own them.
                for shard in &self.node.shards {
                    self.node.read_barrier(shard.id).await?;
                    keys.extend(crate::mvcc::lease_keys(
                        &self.node.engine,
                        Keys::new(shard.id),
                        r.id,
                    )?);
                }
            }
            Ok(Response::new(LeaseTimeToLiveResponse {
                header: Some(self.header()),
                id: r.id,
                ttl: remaining,
                granted_ttl: granted,
                keys,
            }))
        })
        .await
    }

    async fn lease_leases(
        &self,
        _req: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        observe("LeaseLeases", async {
            self.node.read_barrier(DEFAULT_SHARD).await?;
            let leases = crate::mvcc::lease_table(&self.node.engine, Keys::new(DEFAULT_SHARD))?
                .into_iter()
                .map(|l| LeaseStatus { id: l.id })
                .collect();
            Ok(Response::new(LeaseLeasesResponse {
                header: Some(self.header()),
                leases,
            }))
        })
        .await
    }
}
