//! Store-to-store traffic: Raft RPCs, forwarded client writes, ReadIndex and lease calls.
//!
//! ```text
//! openraft ─► PeerConnection (RaftNetworkV2) ─┐
//! StoreNode (forwarding) ─────────────────────┴─► dyn PeerTransport ─► peer's PeerService
//!                                                                       └─► StoreNode::on_peer
//! ```
//! The transport is a trait; [`GrpcTransport`] carries frames over gRPC today, and the scale-out
//! work moves it onto QUIC without touching callers.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::RaftNetworkV2;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::proto::peer::peer_client::PeerClient;
use crate::proto::peer::PeerFrame;
use crate::types::{decode, encode, Command, CommandResponse, NodeId, NodeInfo, TypeConfig, Vote};

type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;

/// A request from one store node to another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Raft AppendEntries.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft RequestVote.
    Vote(VoteRequest<TypeConfig>),
    /// Raft pre-vote.
    PreVote(VoteRequest<TypeConfig>),
    /// A whole snapshot.
    Snapshot {
        /// Leader's vote.
        vote: Vote,
        /// Snapshot metadata.
        meta: SnapshotMeta,
        /// Snapshot payload.
        data: Vec<u8>,
    },
    /// A client write forwarded to the leader.
    Propose(Command),
    /// Ask the leader for a linearizable read point (ReadIndex); answered with a log index.
    ReadIndex,
    /// A lease keep-alive forwarded to the leader.
    LeaseKeepAlive {
        /// Lease id.
        id: i64,
    },
    /// A lease time-to-live query forwarded to the leader.
    LeaseTimeToLive {
        /// Lease id.
        id: i64,
    },
    /// Who are you (client address, name)?
    Info,
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    /// Raft AppendEntries response.
    AppendEntries(AppendEntriesResponse<TypeConfig>),
    /// Raft vote response.
    Vote(VoteResponse<TypeConfig>),
    /// Snapshot installed.
    Snapshot(SnapshotResponse<TypeConfig>),
    /// The applied result of a forwarded write.
    Proposed(CommandResponse),
    /// Read point: wait until this log index is applied, then read locally.
    ReadIndex(u64),
    /// Lease TTL: (remaining seconds or -1 if unknown lease, granted seconds).
    LeaseTtl {
        /// Remaining seconds; -1 if there is no such lease.
        remaining: i64,
        /// Granted TTL.
        granted: i64,
    },
    /// Node identity.
    Info {
        /// Client (etcd API) address.
        client_addr: String,
        /// Member name.
        name: String,
    },
    /// The peer could not serve the request.
    Error(StoreError),
}

/// Errors of the transport itself.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached.
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable {
        /// Peer address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The call did not complete in time.
    #[error("call to peer {addr} timed out after {timeout:?}")]
    Timeout {
        /// Peer address.
        addr: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The peer answered something we could not decode.
    #[error("bad frame from peer {addr}: {reason}")]
    BadFrame {
        /// Peer address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// Sends one request to a peer and returns its answer.
pub trait PeerTransport: Send + Sync + 'static {
    /// Calls `addr` with `req`, giving up after `timeout`.
    fn call(
        &self,
        addr: &str,
        req: &PeerRequest,
        timeout: Duration,
    ) -> impl Future<Output = Result<PeerResponse, TransportError>> + Send;
}

/// [`PeerTransport`] over gRPC (HTTP/2), one lazily connected channel per peer.
#[derive(Clone, Default)]
pub struct GrpcTransport {
    channels: Arc<Mutex<HashMap<String, PeerClient<tonic::transport::Channel>>>>,
}

/// Largest frame a peer accepts (snapshots travel whole for now).
pub const MAX_PEER_FRAME: usize = 1 << 30;

impl GrpcTransport {
    fn client(&self, addr: &str) -> Result<PeerClient<tonic::transport::Channel>, TransportError> {
        let mut g = self.channels.lock();
        if let Some(c) = g.get(addr) {
            return Ok(c.clone());
        }
        let ep = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| TransportError::Unreachable {
                addr: addr.into(),
                reason: e.to_string(),
            })?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5));
        let c = PeerClient::new(ep.connect_lazy())
            .max_decoding_message_size(MAX_PEER_FRAME)
            .max_encoding_message_size(MAX_PEER_FRAME);
        g.insert(addr.to_string(), c.clone());
        Ok(c)
    }
}

impl PeerTransport for GrpcTransport {
    async fn call(
        &self,
        addr: &str,
        req: &PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, TransportError> {
        let payload = encode(req).map_err(|e| TransportError::BadFrame {
            addr: addr.into(),
            reason: e.to_string(),
        })?;
        let mut client = self.client(addr)?;
        let mut request = tonic::Request::new(PeerFrame { payload });
        request.set_timeout(timeout);
        let fut = client.call(request);
        let resp = match tokio::time::timeout(timeout, fut).await {
            Err(_) => {
                return Err(TransportError::Timeout {
                    addr: addr.into(),
                    timeout,
                })
            }
            Ok(Err(status)) => {
                return Err(TransportError::Unreachable {
                    addr: addr.into(),
                    reason: status.message().to_string(),
                })
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        decode(&resp.payload).map_err(|e| TransportError::BadFrame {
            addr: addr.into(),
            reason: e.to_string(),
        })
    }
}

/// Creates openraft network clients on top of a transport.
pub struct PeerNetworkFactory<T: PeerTransport> {
    transport: Arc<T>,
}

impl<T: PeerTransport> PeerNetworkFactory<T> {
    /// A factory over `transport`.
    pub fn new(transport: Arc<T>) -> Self {
        Self { transport }
    }
}

impl<T: PeerTransport> RaftNetworkFactory<TypeConfig> for PeerNetworkFactory<T> {
    type Network = PeerConnection<T>;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        PeerConnection {
            target,
            addr: node.peer_addr.clone(),
            transport: self.transport.clone(),
        }
    }
}

/// openraft's view of one peer.
pub struct PeerConnection<T: PeerTransport> {
    target: NodeId,
    addr: String,
    transport: Arc<T>,
}

impl<T: PeerTransport> PeerConnection<T> {
    async fn rpc(
        &self,
        req: PeerRequest,
        option: &RPCOption,
    ) -> Result<PeerResponse, RPCError<TypeConfig>> {
        match self
            .transport
            .call(&self.addr, &req, option.hard_ttl())
            .await
        {
            Ok(PeerResponse::Error(e)) => Err(RPCError::Network(NetworkError::new(&e))),
            Ok(r) => Ok(r),
            Err(e @ TransportError::Unreachable { .. }) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    fn unexpected(&self, r: PeerResponse) -> RPCError<TypeConfig> {
        let e = StoreError::Internal(format!("peer {} answered {r:?}", self.target));
        RPCError::Network(NetworkError::new(&e))
    }
}

impl<T: PeerTransport> RaftNetworkV2<TypeConfig> for PeerConnection<T> {
    type SnapshotData = crate::state_machine::SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.rpc(PeerRequest::AppendEntries(rpc), &option).await? {
            PeerResponse::AppendEntries(r) => Ok(r),
            r => Err(self.unexpected(r)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.rpc(PeerRequest::Vote(rpc), &option).await? {
            PeerResponse::Vote(r) => Ok(r),
            r => Err(self.unexpected(r)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.rpc(PeerRequest::PreVote(rpc), &option).await? {
            PeerResponse::Vote(r) => Ok(r),
            r => Err(self.unexpected(r)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: openraft::alias::SnapshotOf<TypeConfig, Self::SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let req = PeerRequest::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        // A snapshot may be large: allow well beyond the heartbeat-scale RPC deadline.
        let timeout = option.hard_ttl().max(Duration::from_secs(60));
        let call = self.transport.call(&self.addr, &req, timeout);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            r = call => match r {
                Ok(PeerResponse::Snapshot(s)) => Ok(s),
                Ok(other) => {
                    let e = StoreError::Internal(format!("peer {} answered {other:?}", self.target));
                    Err(StreamingError::Network(NetworkError::new(&e)))
                }
                Err(e @ TransportError::Unreachable { .. }) => Err(StreamingError::Unreachable(Unreachable::new(&e))),
                Err(e) => Err(StreamingError::Network(NetworkError::new(&e))),
            },
        }
    }
}
