//! Store-to-store traffic: Raft RPCs, forwarded client writes, ReadIndex and lease calls.
//!
//! ```text
//! openraft ─► PeerConnection (RaftNetworkV2) ─┐
//! StoreNode (forwarding) ─────────────────────┴─► PeerTransportKind
//!     ├─ GrpcTransport ─► peer's gRPC PeerService ─┐
//!     └─ QuicTransport ─► peer's QuicServer ───────┴─► StoreNode::on_peer
//! ```
//! The transport is a trait; [`GrpcTransport`] carries frames over gRPC (the default) and
//! [`QuicTransport`] over QUIC with mutual TLS (see [`crate::certs`]). Callers only see
//! [`PeerTransport`]; `NodeConfig::peer_transport` ([`PeerTransportConfig`]) picks one.

mod append;
pub mod grpc;
pub mod quic;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::StreamAppendResult;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::TypeConfigExt;
use openraft::RaftNetworkV2;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::shard::{ShardId, DEFAULT_SHARD};
use crate::snapshot::SnapshotFile;
use crate::types::{decode, Command, CommandResponse, NodeId, NodeInfo, TypeConfig, Vote};

pub use grpc::GrpcTransport;
pub use quic::{
    serve_quic, PeerHandler, QuicError, QuicServer, QuicTransport, StreamHandler, PEER_ALPN,
};

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
    /// One chunk of a snapshot's files (see [`crate::snapshot`]); the receiver acknowledges
    /// each chunk before the next is sent (back-pressure), and installs the snapshot when the
    /// last byte of the last file arrives. A chunk at offset 0 of file 0 starts a transfer.
    SnapshotChunk {
        /// Leader's vote.
        vote: Vote,
        /// Snapshot metadata (its last log id identifies the transfer at the receiver).
        meta: SnapshotMeta,
        /// Every file of the snapshot, in order.
        files: Vec<SnapshotFile>,
        /// Index into `files` of this chunk's file.
        file: u32,
        /// Byte offset of this chunk in that file.
        offset: u64,
        /// The bytes (MessagePack `bin`, not an array of integers).
        data: bytes::Bytes,
    },
    /// A client write forwarded to the leader.
    Propose(Command),
    /// Client writes of several shards, all led by the receiver, forwarded in one request
    /// (never wrapped in [`PeerRequest::ToShard`]); answered with
    /// [`PeerResponse::ProposedMany`].
    ProposeMany(Vec<(ShardId, Command)>),
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
    /// Add a member as a learner of the shard (answered by the shard's leader).
    AddLearner {
        /// Member id.
        id: NodeId,
        /// Its peer address.
        peer_addr: String,
    },
    /// Promote a caught-up learner of the shard to voter (answered by the shard's leader).
    PromoteVoter {
        /// Member id.
        id: NodeId,
    },
    /// Remove a member from the shard (answered by the shard's leader).
    RemoveMember {
        /// Member id.
        id: NodeId,
    },
    /// openraft's leader-transfer message (the old leader tells the chosen node to campaign).
    RaftTransferLeader(TransferLeaderRequest<TypeConfig>),
    /// Hand the leadership of the shard to member `to` (answered by the current leader).
    TransferLeader {
        /// The new leader.
        to: NodeId,
    },
    /// Over QUIC: turns this stream into a pipelined replication stream of the shard (inside
    /// [`PeerRequest::ToShard`]). Every later frame on it is an AppendEntries request, each
    /// answered in order by a [`StreamAppendReply`] frame; either side ends it by finishing
    /// or resetting its half. (gRPC has a method of its own for this.)
    AppendStream,
    /// A request for the Raft group of one shard (requests without this wrapper go to the
    /// default shard).
    ToShard {
        /// The shard.
        shard: ShardId,
        /// The request.
        req: Box<PeerRequest>,
    },
}

impl PeerRequest {
    /// `req` addressed to `shard` (the default shard needs no wrapper).
    pub fn to_shard(shard: ShardId, req: PeerRequest) -> Self {
        if shard == DEFAULT_SHARD {
            req
        } else {
            PeerRequest::ToShard {
                shard,
                req: Box::new(req),
            }
        }
    }

    /// The shard whose replication stream this request opens, if it is an
    /// [`PeerRequest::AppendStream`].
    pub fn append_stream_shard(&self) -> Option<ShardId> {
        match self {
            PeerRequest::AppendStream => Some(DEFAULT_SHARD),
            PeerRequest::ToShard { shard, req } if matches!(**req, PeerRequest::AppendStream) => {
                Some(*shard)
            }
            _ => None,
        }
    }

    /// The target shard and the request itself.
    pub fn into_shard(self) -> (ShardId, PeerRequest) {
        match self {
            PeerRequest::ToShard { shard, req } => (shard, *req),
            req => (DEFAULT_SHARD, req),
        }
    }

    /// About how many bytes this request encodes to, so the buffer is allocated once
    /// (growing a megabyte-sized frame by doubling cost copies and fresh pages).
    pub fn size_hint(&self) -> usize {
        match self {
            PeerRequest::AppendEntries(r) => append_size_hint(r),
            PeerRequest::SnapshotChunk { data, files, .. } => 4096 + data.len() + 64 * files.len(),
            PeerRequest::Propose(cmd) => 64 + cmd.encoded_size_hint(),
            PeerRequest::ProposeMany(cmds) => {
                64 + cmds
                    .iter()
                    .map(|(_, cmd)| 8 + cmd.encoded_size_hint())
                    .sum::<usize>()
            }
            PeerRequest::ToShard { req, .. } => 16 + req.size_hint(),
            _ => 256,
        }
    }

    /// Whether this is bulk data (a snapshot) that should yield to other traffic.
    pub fn is_bulk(&self) -> bool {
        match self {
            PeerRequest::SnapshotChunk { .. } => true,
            PeerRequest::ToShard { req, .. } => req.is_bulk(),
            _ => false,
        }
    }
}

/// About how many bytes an AppendEntries request encodes to.
fn append_size_hint(r: &AppendEntriesRequest<TypeConfig>) -> usize {
    256 + r
        .entries
        .iter()
        .map(crate::types::entry_size_hint)
        .sum::<usize>()
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
    /// The outcome of each write of a [`PeerRequest::ProposeMany`], in order:
    /// [`StoreError::NoLeader`] for one means the receiver did not lead its shard and
    /// proposed nothing, so it may be sent again.
    ProposedMany(Vec<Result<bytes::Bytes, StoreError>>),
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
        /// Whether the member is draining (hands off shard leaderships, takes none).
        #[serde(default)]
        draining: bool,
    },
    /// Done (no payload).
    Done,
    /// A snapshot chunk was stored; send the next one from this file and offset.
    ChunkAccepted {
        /// Index of the file to continue with.
        file: u32,
        /// Bytes of that file received so far.
        next_offset: u64,
    },
    /// Answer to [`PeerRequest::RaftTransferLeader`].
    RaftTransferLeader(TransferLeaderResponse<TypeConfig>),
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

    /// Whether [`PeerTransport::open_stream`] is supported (pipelined replication); without
    /// it openraft sends one AppendEntries at a time.
    fn supports_streams(&self) -> bool {
        false
    }

    /// Opens an ordered bidirectional stream of frames to `addr` for the Raft group of `shard`
    /// (one stream per shard, so shards never queue behind each other): the peer answers every
    /// frame, in order, on the returned stream.
    fn open_stream(
        &self,
        addr: &str,
        shard: ShardId,
        frames: BoxStream<'static, Vec<u8>>,
    ) -> BoxFuture<'static, Result<FrameStream, TransportError>> {
        let _ = shard;
        drop(frames);
        let addr = addr.to_string();
        Box::pin(async move {
            Err(TransportError::Unreachable {
                addr,
                reason: "this transport has no frame streams".into(),
            })
        })
    }
}

/// Answers of a frame stream.
pub type FrameStream = BoxStream<'static, Result<Vec<u8>, TransportError>>;

/// What a peer sends back for each AppendEntries of a replication stream.
pub type StreamAppendReply = Result<StreamAppendResult<TypeConfig>, String>;

/// HTTP/2 stream window for peer traffic: Raft batches are megabytes, and the default 64 KiB
/// window would cost a round trip per 64 KiB.
pub const PEER_STREAM_WINDOW: u32 = 16 << 20;
/// HTTP/2 connection window for peer traffic.
pub const PEER_CONN_WINDOW: u32 = 64 << 20;

/// Largest frame a peer accepts.
pub const MAX_PEER_FRAME: usize = 1 << 30;

/// Which transport a node uses for its peers (every member of a cluster must use the same).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PeerTransportConfig {
    /// gRPC over TCP on the peer address (no TLS).
    #[default]
    Grpc,
    /// QUIC over UDP on the peer address's `host:port`, with mutual TLS.
    Quic {
        /// Directory holding the cluster CA and this node's certificate (layout in
        /// [`crate::certs`]).
        certs_dir: PathBuf,
    },
}

/// A fault filter (for tests and drills): calls to blocked peer addresses fail at once as
/// unreachable, as if a firewall dropped them. Set on every member of both sides to partition
/// a cluster (`POST /fault/partition?peers=HOST:PORT,...` on the client port).
#[derive(Clone, Default, Debug)]
pub struct FaultFilter(Arc<parking_lot::RwLock<std::collections::HashSet<String>>>);

impl FaultFilter {
    /// Replaces the set of blocked peer addresses (empty heals).
    pub fn set_blocked(&self, addrs: impl IntoIterator<Item = String>) {
        *self.0.write() = addrs.into_iter().collect();
    }

    /// The blocked peer addresses.
    pub fn blocked(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.read().iter().cloned().collect();
        v.sort();
        v
    }

    /// `Err(Unreachable)` if `addr` is blocked.
    pub fn check(&self, addr: &str) -> Result<(), TransportError> {
        if self.0.read().contains(addr) {
            Err(TransportError::Unreachable {
                addr: addr.into(),
                reason: "blocked by the fault filter (partition)".into(),
            })
        } else {
            Ok(())
        }
    }
}

/// The node's peer transport: one of the implementations, chosen at start.
pub enum PeerTransportKind {
    /// gRPC over TCP.
    Grpc(GrpcTransport),
    /// QUIC over UDP with mutual TLS.
    Quic(QuicTransport),
}

impl PeerTransportKind {
    /// Closes the transport's outgoing connections (QUIC: tells peers at once instead of
    /// letting them time out).
    pub async fn close(&self) {
        if let PeerTransportKind::Quic(q) = self {
            q.close().await;
        }
    }

    /// Publishes the transport's per-peer statistics as metrics (QUIC: see
    /// [`QuicTransport::record_peer_metrics`]; gRPC keeps none).
    pub fn record_peer_metrics(&self) {
        if let PeerTransportKind::Quic(q) = self {
            q.record_peer_metrics();
        }
    }

    /// The transport's fault filter.
    pub fn fault(&self) -> &FaultFilter {
        match self {
            PeerTransportKind::Grpc(t) => &t.fault,
            PeerTransportKind::Quic(t) => t.fault(),
        }
    }

    /// A short name for logs (`grpc` or `quic`).
    pub fn name(&self) -> &'static str {
        match self {
            PeerTransportKind::Grpc(_) => "grpc",
            PeerTransportKind::Quic(_) => "quic",
        }
    }
}

impl PeerTransport for PeerTransportKind {
    async fn call(
        &self,
        addr: &str,
        req: &PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, TransportError> {
        match self {
            PeerTransportKind::Grpc(t) => t.call(addr, req, timeout).await,
            PeerTransportKind::Quic(t) => t.call(addr, req, timeout).await,
        }
    }

    fn supports_streams(&self) -> bool {
        match self {
            PeerTransportKind::Grpc(t) => t.supports_streams(),
            PeerTransportKind::Quic(t) => t.supports_streams(),
        }
    }

    fn open_stream(
        &self,
        addr: &str,
        shard: ShardId,
        frames: BoxStream<'static, Vec<u8>>,
    ) -> BoxFuture<'static, Result<FrameStream, TransportError>> {
        match self {
            PeerTransportKind::Grpc(t) => t.open_stream(addr, shard, frames),
            PeerTransportKind::Quic(t) => t.open_stream(addr, shard, frames),
        }
    }
}

/// Creates openraft network clients of one shard's Raft group on top of a shared transport.
pub struct PeerNetworkFactory<T: PeerTransport> {
    transport: Arc<T>,
    shard: ShardId,
    commit_linger: Duration,
    writes: Option<Arc<crate::propose_batch::ProposalBatcher>>,
}

impl<T: PeerTransport> PeerNetworkFactory<T> {
    /// A factory for `shard` over `transport` (commit linger: [`DEFAULT_COMMIT_LINGER`]).
    pub fn new(transport: Arc<T>, shard: ShardId) -> Self {
        Self {
            transport,
            shard,
            commit_linger: DEFAULT_COMMIT_LINGER,
            writes: None,
        }
    }

    /// How long an AppendEntries that carries only a new commit index waits for new entries
    /// to carry it instead (zero: it never waits), and the shard's write queue: it waits only
    /// while writes are queued there, i.e. while a next batch is on its way (without a queue,
    /// always); see `network::append::carry_commits`.
    pub fn with_commit_linger(
        mut self,
        linger: Duration,
        writes: Option<Arc<crate::propose_batch::ProposalBatcher>>,
    ) -> Self {
        self.commit_linger = linger;
        self.writes = writes;
        self
    }
}

impl<T: PeerTransport> RaftNetworkFactory<TypeConfig> for PeerNetworkFactory<T> {
    type Network = PeerConnection<T>;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Self::Network {
        PeerConnection {
            target,
            addr: node.peer_addr.clone(),
            transport: self.transport.clone(),
            shard: self.shard,
            commit_linger: self.commit_linger,
            writes: self.writes.clone(),
        }
    }
}

/// Runs a blocking read of a snapshot's files off the runtime; its error is openraft's
/// snapshot read error.
async fn read_snapshot_blocking<T: Send + 'static>(
    read: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StreamingError<TypeConfig>> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|e| {
            StreamingError::StorageError(openraft::StorageError::read_snapshot(
                None,
                TypeConfig::err_from_error(&e),
            ))
        })
}

/// The shortest wait for a follower's answer to an AppendEntries, before the replication
/// stream is given up as broken. openraft offers only its heartbeat interval (100 ms by
/// default): a follower busy with a large append and its fsync answers later than that under
/// load, and every such timeout made openraft drop the stream, with all its pipelined
/// requests, and send them again (tens of times a second in a 3 KiB put benchmark, with
/// p99.9 latencies of 300–500 ms). Liveness is the heartbeats' job: they keep their own
/// timeout, and a dead peer's connection fails on its own.
pub const MIN_APPEND_ANSWER_WAIT: Duration = Duration::from_secs(1);

/// Default [`PeerNetworkFactory::with_commit_linger`]: one tick of Tokio's timer.
pub const DEFAULT_COMMIT_LINGER: Duration = Duration::from_millis(1);

/// openraft's view of one peer.
pub struct PeerConnection<T: PeerTransport> {
    target: NodeId,
    addr: String,
    transport: Arc<T>,
    shard: ShardId,
    commit_linger: Duration,
    /// The shard's write queue (see [`PeerNetworkFactory::with_commit_linger`]).
    writes: Option<Arc<crate::propose_batch::ProposalBatcher>>,
}

impl<T: PeerTransport> PeerConnection<T> {
    async fn rpc(
        &self,
        req: PeerRequest,
        option: &RPCOption,
    ) -> Result<PeerResponse, RPCError<TypeConfig>> {
        let req = PeerRequest::to_shard(self.shard, req);
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
        let option = RPCOption::new(option.hard_ttl().max(MIN_APPEND_ANSWER_WAIT));
        match self.rpc(PeerRequest::AppendEntries(rpc), &option).await? {
            PeerResponse::AppendEntries(r) => Ok(r),
            r => Err(self.unexpected(r)),
        }
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> openraft::base::BoxFuture<
        's,
        Result<
            openraft::base::BoxStream<
                's,
                Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>,
            >,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>>
            + openraft::OptionalSend
            + Unpin
            + 'static,
    {
        if !self.transport.supports_streams() {
            return append::append_one_at_a_time(self, input, option);
        }
        let transport = self.transport.clone();
        let addr = self.addr.clone();
        let shard = self.shard;
        let input = append::carry_commits(input, self.commit_linger, self.writes.clone());
        Box::pin(async move {
            let outstanding = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let sent = outstanding.clone();
            let frames = input
                .filter_map(move |req| {
                    let frame = crate::types::encode_sized(&req, append_size_hint(&req)).ok();
                    if frame.is_some() {
                        sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    futures::future::ready(frame)
                })
                .boxed();
            let answers = transport
                .open_stream(&addr, shard, frames)
                .await
                .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
            // A request waiting longer than this for its answer means the peer stopped making
            // progress; an idle stream (nothing outstanding) may wait forever.
            let idle = option.soft_ttl().max(MIN_APPEND_ANSWER_WAIT);
            let out = futures::stream::unfold(
                (answers, outstanding, false),
                move |(mut answers, outstanding, done)| async move {
                    if done {
                        return None;
                    }
                    // Waits in rounds of `idle`: a round that began with a request outstanding
                    // and saw no answer fails the stream; a round that began idle starts
                    // another (a request sent during it gets a whole round).
                    let next = loop {
                        let waiting = outstanding.load(std::sync::atomic::Ordering::SeqCst) > 0;
                        match tokio::time::timeout(idle, answers.next()).await {
                            Ok(n) => break n,
                            Err(_) if waiting => {
                                let e = TransportError::Timeout {
                                    addr: String::new(),
                                    timeout: idle,
                                };
                                return Some((
                                    Err(RPCError::Network(NetworkError::new(&e))),
                                    (answers, outstanding, true),
                                ));
                            }
                            Err(_) => continue,
                        }
                    };
                    let item = match next? {
                        Err(e) => Err(RPCError::Unreachable(Unreachable::new(&e))),
                        Ok(bytes) => {
                            outstanding.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                            match decode::<StreamAppendReply>(&bytes) {
                                Ok(Ok(r)) => Ok(r),
                                Ok(Err(fatal)) => Err(RPCError::Network(NetworkError::new(
                                    &StoreError::Internal(fatal),
                                ))),
                                Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
                            }
                        }
                    };
                    let stop = item.is_err();
                    Some((item, (answers, outstanding, stop)))
                },
            );
            Ok(out.boxed())
        })
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .rpc(PeerRequest::RaftTransferLeader(req), &option)
            .await?
        {
            PeerResponse::RaftTransferLeader(r) => Ok(r),
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
        let files = snapshot.snapshot;
        let meta = snapshot.meta;
        // Each chunk gets its own deadline, so a large snapshot never times out as a whole;
        // the next chunk is read from disk and sent only after the previous one is
        // acknowledged, so neither side holds more than a chunk in memory.
        let timeout = option.hard_ttl().max(SNAPSHOT_CHUNK_TIMEOUT);
        let send = async {
            // A built snapshot's files are written when it is first sent.
            let manifest = {
                let files = files.clone();
                read_snapshot_blocking(move || files.materialize().map(<[_]>::to_vec)).await?
            };
            let (mut file, mut offset) = (0usize, 0u64);
            loop {
                let data = if file < manifest.len() {
                    let files = files.clone();
                    read_snapshot_blocking(move || {
                        files.read_chunk(file, offset, SNAPSHOT_CHUNK_BYTES)
                    })
                    .await?
                } else {
                    // A snapshot without files (an empty shard) still takes one chunk.
                    bytes::Bytes::new()
                };
                let req = PeerRequest::to_shard(
                    self.shard,
                    PeerRequest::SnapshotChunk {
                        vote,
                        meta: meta.clone(),
                        files: manifest.clone(),
                        file: file as u32,
                        offset,
                        data,
                    },
                );
                match self.transport.call(&self.addr, &req, timeout).await {
                    Ok(PeerResponse::ChunkAccepted {
                        file: f,
                        next_offset,
                    }) if manifest
                        .get(f as usize)
                        .is_some_and(|m| next_offset < m.size) =>
                    {
                        (file, offset) = (f as usize, next_offset);
                    }
                    Ok(PeerResponse::Snapshot(s)) => return Ok(s),
                    Ok(other) => {
                        let e = StoreError::Internal(format!(
                            "peer {} answered {other:?}",
                            self.target
                        ));
                        return Err(StreamingError::Network(NetworkError::new(&e)));
                    }
                    Err(e @ TransportError::Unreachable { .. }) => {
                        return Err(StreamingError::Unreachable(Unreachable::new(&e)))
                    }
                    Err(e) => return Err(StreamingError::Network(NetworkError::new(&e))),
                }
            }
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            r = send => r,
        }
    }
}

/// Bytes per snapshot chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 4 << 20;
/// Deadline of one snapshot chunk (not of the whole snapshot).
pub const SNAPSHOT_CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests;
