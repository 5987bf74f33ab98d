//! A store node: one RocksDB, one Raft group per shard (each with its own watch hub and
//! revision sequence), the lessor, and the plumbing that lets any node serve any request
//! (writes and linearizable reads go through the shard's leader).
//!
//! ```text
//! request ─► ShardMap (by key) ─► shard S
//! client write ─► propose(S) ─► leader of S? client_write : forward Propose to it ─► response
//! linearizable read ─► read_barrier(S) ─► leader? ReadIndex : ask leader's ReadIndex, wait apply
//!                                      └─► local RocksDB snapshot read of S
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::async_runtime::WatchReceiver;
use openraft::error::ClientWriteError;
use openraft::{Config, ServerState, SnapshotPolicy};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::certs::PeerTls;
use crate::engine::Engine;
use crate::error::{Result, StoreError};
use crate::lease::Lessor;
use crate::log_store::{LogEngine, LogStore};
use crate::mvcc::Reader;
use crate::network::{
    GrpcTransport, PeerNetworkFactory, PeerRequest, PeerResponse, PeerTransport,
    PeerTransportConfig, PeerTransportKind, QuicTransport,
};
use crate::propose_batch::ProposalBatcher;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::read_batch::RoundError;
use crate::state_machine::StateMachineStore;
use crate::types::{Command, CommandResponse, NodeId, NodeInfo, Raft};
use crate::watch::WatchHub;

mod peer;

pub use crate::shard::DEFAULT_SHARD;
use crate::shard::{ShardId, ShardMap};

/// Settings of one store node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Member id (> 0).
    pub id: NodeId,
    /// Member name (for `member list`).
    pub name: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// etcd API listen address, `host:port`.
    pub client_addr: String,
    /// Peer listen address, `host:port`.
    pub peer_addr: String,
    /// Every initial member's peer address, by id (just this node for a single-node store).
    pub initial_cluster: BTreeMap<NodeId, String>,
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Raft election timeout (minimum; the maximum is twice this).
    pub election_timeout: Duration,
    /// Largest client request accepted (etcd's `--max-request-bytes`).
    pub max_request_bytes: usize,
    /// Interval of progress notifications to watchers that asked for them.
    pub watch_progress_interval: Duration,
    /// Revisions a watch stream may fall behind before it is cancelled as too slow.
    pub watch_buffer: usize,
    /// Take a snapshot (and purge the log) after this many applied entries.
    pub snapshot_entries: u64,
    /// Keep this much history per shard, compacting older revisions periodically (etcd's
    /// `--auto-compaction-retention` in periodic mode); zero keeps all history.
    pub auto_compaction_retention: Duration,
    /// Deadline of one client request.
    pub request_timeout: Duration,
    /// How often the leader checkpoints the remaining TTL of leases.
    pub lease_checkpoint_interval: Duration,
    /// Transport for peer traffic (default gRPC; QUIC with mutual TLS on request).
    pub peer_transport: PeerTransportConfig,
    /// How the keyspace is split into Raft groups (every member must use the same map).
    pub shards: ShardMap,
    /// Move shard leaderships so that each member leads about the same number of shards.
    pub balance_leaders: bool,
    /// Join an existing cluster (etcd's `--initial-cluster-state existing`): never bootstrap;
    /// wait to be added with `member add`.
    pub join_existing: bool,
    /// Client-write batches each shard keeps in flight (group commit: writes arriving while
    /// they are busy ride in the next batch).
    pub proposal_pipeline: usize,
    /// Forwarded-write batches this member keeps in flight to each member leading shards
    /// ([`DEFAULT_FORWARD_PIPELINE`]).
    pub forward_pipeline: usize,
    /// Times a busy shard's batcher yields to the runtime before taking its next batch, so
    /// that writes being received join it (0: take what is queued at once).
    pub proposal_yields: usize,
    /// How long a busy shard's batcher (or forwarder) waits for more writes before taking a
    /// small batch (zero: never); see `propose_batch::lingers`.
    pub proposal_linger: Duration,
    /// Forward client writes to other members per destination member (one batch carries the
    /// writes of every shard it leads, and joins the leader's own batches) rather than per
    /// shard (each of this member's shard batches becomes an entry of its own).
    pub forward_per_node: bool,
    /// QUIC peers: replicate over pipelined streams (`PeerRequest::AppendStream`) rather than
    /// one AppendEntries call at a time. On by default: with Nagle off on the client sockets
    /// they were 6–26% faster at 1, 64 and 256 clients and cost less CPU per put than a QUIC
    /// stream opened per call (docs/benchmarks.md, session 16). Every member must run a
    /// version that has them (a cluster of older members: off until all are upgraded).
    pub peer_streams: bool,
    /// How long a leader holds an AppendEntries that only tells a follower a new commit
    /// index, for the shard's next entries to carry it instead (zero: never), in both
    /// replication modes; see `network::append::carry_commits`.
    pub commit_linger: Duration,
}

/// Default [`NodeConfig::proposal_yields`]: enough for the requests a runtime has already
/// read to be handled (more changed nothing in the benchmark).
pub const DEFAULT_PROPOSAL_YIELDS: usize = 16;

/// Default [`NodeConfig::forward_pipeline`]. With one forward in flight, a forwarded write
/// waited on its member for the forward ahead of it, a whole Raft round on the leader, before
/// it could join the leader's shard queue. Two let it reach the leader while that round is
/// still running, so it rides in the leader's next batch: at 64 clients batches held 5.0–5.4
/// writes instead of 4.6–4.8, and puts were faster with less CPU each in five pairs of five
/// (docs/benchmarks.md, "Store, session 16"). More than two cost more forward calls than
/// they saved.
pub const DEFAULT_FORWARD_PIPELINE: usize = 2;

/// Default [`NodeConfig::proposal_linger`]: one tick of Tokio's timer. At 64 clients over the
/// default five shards it made batches 5.0 writes instead of 4.7 and forward requests 10%
/// fewer, for 10–18% more throughput; a lone client never lingers (docs/benchmarks.md,
/// "Store, session 14").
pub const DEFAULT_PROPOSAL_LINGER: Duration = Duration::from_millis(1);

impl NodeConfig {
    /// A single-node configuration with etcd-like defaults.
    pub fn single(data_dir: PathBuf, client_addr: &str, peer_addr: &str) -> Self {
        let mut initial_cluster = BTreeMap::new();
        initial_cluster.insert(1, peer_addr.to_string());
        Self {
            id: 1,
            name: "navarch-1".into(),
            data_dir,
            client_addr: client_addr.into(),
            peer_addr: peer_addr.into(),
            initial_cluster,
            heartbeat: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            max_request_bytes: 3 * 512 * 1024,
            watch_progress_interval: Duration::from_secs(600),
            watch_buffer: 4096,
            snapshot_entries: 100_000,
            auto_compaction_retention: Duration::ZERO,
            request_timeout: Duration::from_secs(7),
            lease_checkpoint_interval: Duration::from_secs(5),
            peer_transport: PeerTransportConfig::Grpc,
            shards: ShardMap::default(),
            balance_leaders: true,
            join_existing: false,
            proposal_pipeline: 1,
            forward_pipeline: DEFAULT_FORWARD_PIPELINE,
            proposal_yields: DEFAULT_PROPOSAL_YIELDS,
            proposal_linger: DEFAULT_PROPOSAL_LINGER,
            commit_linger: crate::network::DEFAULT_COMMIT_LINGER,
            forward_per_node: true,
            peer_streams: true,
        }
    }

    /// The smallest lease TTL granted (etcd: 1.5 × election timeout, rounded up to seconds).
    pub fn min_lease_ttl(&self) -> i64 {
        let ms = self.election_timeout.as_millis() as i64 * 3 / 2;
        ((ms + 999) / 1000).max(1)
    }
}

/// This node's replica of one shard.
pub struct Shard {
    /// Shard id.
    pub id: ShardId,
    /// The shard's Raft group.
    pub raft: Raft,
    /// Watch fan-out of the shard's revisions.
    pub hub: Arc<WatchHub>,
    /// Concurrent linearizable reads share ReadIndex rounds.
    pub reads: Arc<crate::read_batch::ReadBatcher>,
    /// Concurrent client writes share Raft entries.
    pub writes: Arc<ProposalBatcher>,
}

/// A running store node.
pub struct StoreNode {
    /// Its configuration.
    pub cfg: NodeConfig,
    /// Every shard's replica, indexed by shard id.
    pub shards: Vec<Shard>,
    /// The database shared by all shards.
    pub engine: Engine,
    /// Leader-side lease timers.
    pub lessor: Arc<Lessor>,
    /// Peer transport.
    pub transport: Arc<PeerTransportKind>,
    /// Cluster id reported in response headers.
    pub cluster_id: u64,
    /// Cancelled when the node shuts down.
    pub shutdown: CancellationToken,
    /// Set while this member drains: it hands off every shard leadership and takes none.
    pub draining: AtomicBool,
    /// Members known (from their answers to `Info`) to be draining.
    pub peers_draining: parking_lot::Mutex<BTreeSet<NodeId>>,
    /// Set when a shard's Raft stopped on a fatal error (e.g. its disk is full): the node then
    /// stops as a whole (fail-stop), so a supervisor restarts it once the cause is fixed.
    pub fatal: parking_lot::Mutex<Option<String>>,
    /// This node itself (for tasks that outlive a call, such as write batch flushers).
    me: std::sync::Weak<StoreNode>,
    /// Client writes forwarded to other members: per member id, its peer address and the
    /// batcher of the writes sent there.
    forwards: parking_lot::Mutex<std::collections::HashMap<NodeId, (String, Arc<ProposalBatcher>)>>,
    /// Snapshots being received, per shard (chunks go straight to files).
    snapshot_inbox: crate::snapshot::SnapshotInbox,
}

impl StoreNode {
    /// Opens storage, starts every shard's Raft group (bootstrapping the cluster on first
    /// start) and the lessor.
    pub async fn start(cfg: NodeConfig) -> Result<Arc<Self>> {
        let engine = Engine::open(&cfg.data_dir)?;
        let transport = Arc::new(peer_transport(&cfg)?);
        let raft_log = LogEngine::open(&cfg.data_dir.join("raft-log"))
            .map_err(|e| StoreError::Internal(format!("open raft log: {e}")))?;
        let (lease_tx, lease_rx) = mpsc::unbounded_channel();
        let hb = cfg.heartbeat.as_millis() as u64;
        let el = cfg.election_timeout.as_millis() as u64;
        let raft_cfg = Config {
            cluster_name: "navarch".into(),
            heartbeat_interval: hb,
            election_timeout_min: el,
            election_timeout_max: el * 2,
            install_snapshot_timeout: 60_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_entries),
            max_in_snapshot_log_to_keep: 1000,
            max_payload_entries: 1024,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StoreError::Internal(format!("raft config: {e}")))?;
        let raft_cfg = Arc::new(raft_cfg);
        let shutdown = CancellationToken::new();
        let mut shards = Vec::with_capacity(cfg.shards.len());
        for spec in cfg.shards.shards() {
            let id = spec.id;
            let rev = Reader::new(&engine, id).revision()?;
            let hub = Arc::new(WatchHub::new(rev, cfg.watch_buffer));
            let log = LogStore::new(engine.clone(), raft_log.clone(), id)
                .map_err(|e| StoreError::Internal(format!("open raft log (shard {id}): {e}")))?;
            // Only the default shard's lease notices drive the lessor: leases are administered
            // there and mirrored to the other shards (see crate::lease).
            let notices = if id == DEFAULT_SHARD {
                lease_tx.clone()
            } else {
                mpsc::unbounded_channel().0
            };
            let due = Arc::new(tokio::sync::Notify::new());
            let sm = StateMachineStore::new(engine.clone(), id, hub.clone(), notices)
                .snapshot_every(cfg.snapshot_entries, due.clone());
            let writes = Arc::new(
                ProposalBatcher::new(id, cfg.proposal_pipeline, cfg.proposal_yields)
                    .with_linger(cfg.proposal_linger),
            );
            let raft = Raft::new(
                cfg.id,
                raft_cfg.clone(),
                PeerNetworkFactory::new(transport.clone(), id)
                    .with_commit_linger(cfg.commit_linger, Some(Arc::clone(&writes))),
                log,
                sm,
            )
            .await
            .map_err(|e| StoreError::Internal(format!("raft start (shard {id}): {e}")))?;
            tokio::spawn(snapshot_when_due(raft.clone(), due, shutdown.clone()));
            shards.push(Shard {
                id,
                raft,
                hub,
                reads: Default::default(),
                writes,
            });
        }
        drop(lease_tx);
        let cluster_id = cluster_id(&cfg.initial_cluster);
        let node = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            lessor: Arc::new(Lessor::new(cfg.min_lease_ttl())),
            cfg,
            shards,
            engine,
            transport,
            cluster_id,
            shutdown,
            draining: AtomicBool::new(false),
            peers_draining: Default::default(),
            snapshot_inbox: Default::default(),
            fatal: Default::default(),
            forwards: Default::default(),
        });
        node.bootstrap().await?;
        tokio::spawn(watch_fatal(node.clone()));
        tokio::spawn(crate::lease::run_lessor(node.clone(), lease_rx));
        tokio::spawn(crate::compactor::run(node.clone()));
        if node.cfg.balance_leaders {
            tokio::spawn(crate::placement::run_balancer(node.clone()));
        }
        Ok(node)
    }

    /// This node's replica of shard `id` (the default shard for an unknown id; callers route
    /// through the shard map, so ids are always known).
    pub fn shard(&self, id: ShardId) -> &Shard {
        self.shards.get(id as usize).unwrap_or(&self.shards[0])
    }

    /// The shard owning every key of `[key, range_end)`, or `InvalidArgument` naming the
    /// shards the range spans.
    pub fn route(&self, key: &[u8], range_end: &[u8]) -> Result<ShardId> {
        self.cfg.shards.shard_of_range(key, range_end)
    }

    /// The lowest-id member of a new cluster initializes it; the others wait to be contacted.
    async fn bootstrap(&self) -> Result<()> {
        for shard in &self.shards {
            self.bootstrap_shard(shard).await?;
        }
        Ok(())
    }

    async fn bootstrap_shard(&self, shard: &Shard) -> Result<()> {
        let initialized = shard
            .raft
            .is_initialized()
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let first = self.cfg.initial_cluster.keys().next().copied();
        if !initialized && !self.cfg.join_existing && first == Some(self.cfg.id) {
            let members: BTreeMap<NodeId, NodeInfo> = self
                .cfg
                .initial_cluster
                .iter()
                .map(|(id, addr)| {
                    (
                        *id,
                        NodeInfo {
                            peer_addr: addr.clone(),
                        },
                    )
                })
                .collect();
            tracing::info!(shard = shard.id, ?members, "initializing new cluster");
            if let Err(e) = shard.raft.initialize(members).await {
                tracing::warn!(shard = shard.id, error = %e, "initialize");
            }
        }
        Ok(())
    }

    /// A response header of shard `shard` at `revision`.
    pub fn header(&self, shard: ShardId, revision: i64) -> ResponseHeader {
        let raft_term = self
            .shard(shard)
            .raft
            .metrics()
            .borrow_watched()
            .current_term;
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.cfg.id,
            revision,
            raft_term,
        }
    }

    /// A consistent view of shard `shard`'s local state.
    pub fn reader(&self, shard: ShardId) -> Reader<'_> {
        Reader::new(&self.engine, shard)
    }

    fn leader_addr(&self, shard: ShardId, leader: Option<NodeId>) -> Option<String> {
        let id = leader?;
        let metrics = self.shard(shard).raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.peer_addr.clone())
    }

    /// The current leader of `shard`, waiting up to the deadline for one to be elected.
    async fn wait_leader(&self, shard: ShardId, deadline: Instant) -> Result<(NodeId, String)> {
        let mut rx = self.shard(shard).raft.metrics();
        loop {
            let leader = rx.borrow_watched().current_leader;
            if leader == Some(self.cfg.id) {
                return Ok((self.cfg.id, self.cfg.peer_addr.clone()));
            }
            if let Some(addr) = self.leader_addr(shard, leader) {
                return Ok((leader.unwrap_or_default(), addr));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StoreError::NoLeader);
            }
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep(left.min(Duration::from_millis(50))) => {}
                _ = self.shutdown.cancelled() => return Err(StoreError::Stopped),
            }
        }
    }

    /// Replicates `cmd` in `shard` and returns the protobuf-encoded response once it is
    /// applied. Any node accepts writes: followers forward them to the shard's leader.
    /// Concurrent client writes ride together in [`Command::Batch`] entries.
    pub async fn propose(&self, shard: ShardId, cmd: Command) -> Result<Bytes> {
        if cmd.batchable() {
            if let Some(me) = self.me.upgrade() {
                let writes = match self.forwarder(shard) {
                    Some(forward) => forward,
                    None => Arc::clone(&self.shard(shard).writes),
                };
                return writes.propose(&me, shard, cmd).await;
            }
        }
        self.propose_entry(shard, cmd).await?.into_one()
    }

    /// The batcher of the writes this node forwards to `shard`'s leader, when another member
    /// leads it and forwarding per member is on (none while this node leads it or no leader
    /// is known). One batcher per member id; it is replaced if that member's address changed.
    fn forwarder(&self, shard: ShardId) -> Option<Arc<ProposalBatcher>> {
        if !self.cfg.forward_per_node {
            return None;
        }
        let metrics = self.shard(shard).raft.metrics();
        let m = metrics.borrow_watched();
        let id = m.current_leader.filter(|id| *id != self.cfg.id)?;
        let addr = &m.membership_config.membership().get_node(&id)?.peer_addr;
        let mut forwards = self.forwards.lock();
        if let Some((known, f)) = forwards.get(&id) {
            if known == addr {
                return Some(Arc::clone(f));
            }
        }
        let f = Arc::new(
            ProposalBatcher::to_node(addr, self.cfg.forward_pipeline, self.cfg.proposal_yields)
                .with_linger(self.cfg.proposal_linger),
        );
        // A new batcher: drop those of members no longer in the cluster (a flusher still
        // running keeps its own batcher alive until its writes are answered).
        let membership = m.membership_config.membership();
        forwards.retain(|known, _| membership.get_node(known).is_some());
        forwards.insert(id, (addr.clone(), Arc::clone(&f)));
        Some(f)
    }

    /// Sends client writes of shards the member at `addr` leads in one `ProposeMany` request;
    /// returns the writes with one outcome each. A write that member did not take (it no
    /// longer leads the shard) comes back as [`StoreError::NoLeader`], proposed nowhere: the
    /// caller proposes it again through its shard's own batcher.
    pub(crate) async fn forward_many(
        &self,
        addr: &str,
        cmds: Vec<(ShardId, Command)>,
    ) -> Result<(Vec<(ShardId, Command)>, Vec<Result<Bytes>>)> {
        let n = cmds.len();
        let req = PeerRequest::ProposeMany(cmds);
        let outcome = self
            .transport
            .call(addr, &req, self.cfg.request_timeout)
            .await;
        let PeerRequest::ProposeMany(cmds) = req else {
            unreachable!("built above")
        };
        match outcome {
            Ok(PeerResponse::ProposedMany(results)) if results.len() == n => Ok((cmds, results)),
            Ok(PeerResponse::ProposedMany(results)) => Err(StoreError::Internal(format!(
                "member {addr} answered {} of {n} forwarded writes",
                results.len()
            ))),
            Ok(PeerResponse::Error(e)) => Err(e),
            Ok(_) => Err(StoreError::Internal(format!(
                "member {addr} answered forwarded writes with another response"
            ))),
            // The writes may or may not have been applied.
            Err(_) => Err(StoreError::Timeout),
        }
    }

    /// Like [`Self::propose`], but `cmd` gets a Raft entry of its own (never batched).
    pub async fn propose_alone(&self, shard: ShardId, cmd: Command) -> Result<Bytes> {
        self.propose_entry(shard, cmd).await?.into_one()
    }

    /// Replicates a batch of client writes as one entry of `shard`; one outcome per command.
    pub(crate) async fn propose_batch(
        &self,
        shard: ShardId,
        cmds: Vec<Command>,
    ) -> Result<Vec<Result<Bytes>>> {
        let n = cmds.len();
        self.propose_entry(shard, Command::Batch(cmds))
            .await?
            .into_batch(n)
    }

    /// Replicates `cmd` as one entry of `shard` (through its leader) once it is applied.
    async fn propose_entry(&self, shard: ShardId, cmd: Command) -> Result<CommandResponse> {
        let deadline = Instant::now() + self.cfg.request_timeout;
        let raft = &self.shard(shard).raft;
        loop {
            let (leader, addr) = self.wait_leader(shard, deadline).await?;
            if leader == self.cfg.id {
                match raft.client_write(cmd.clone()).await {
                    Ok(r) => return Ok(r.data),
                    Err(e) => match e.into_api_error() {
                        Some(ClientWriteError::ForwardToLeader(_)) => {}
                        Some(ClientWriteError::LogEntryDiscarded(_)) => {
                            return Err(StoreError::LeaderChanged)
                        }
                        Some(other) => return Err(StoreError::Internal(other.to_string())),
                        None => return Err(StoreError::Stopped),
                    },
                }
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                let req = PeerRequest::to_shard(shard, PeerRequest::Propose(cmd.clone()));
                match self.transport.call(&addr, &req, left).await {
                    Ok(PeerResponse::Proposed(r)) => return Ok(r),
                    // The peer was not leader any more and appended nothing: safe to retry.
                    Ok(PeerResponse::Error(StoreError::NoLeader)) => {}
                    Ok(PeerResponse::Error(e)) => return Err(e),
                    Ok(other) => return Err(StoreError::Internal(format!("unexpected {other:?}"))),
                    // The request may or may not have been applied.
                    Err(_) => return Err(StoreError::Timeout),
                }
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until local state of `shard` reflects every write acknowledged before this call
    /// (ReadIndex).
    pub async fn read_barrier(&self, shard: ShardId) -> Result<()> {
        let deadline = Instant::now() + self.cfg.request_timeout;
        let raft = &self.shard(shard).raft;
        loop {
            let (leader, addr) = self.wait_leader(shard, deadline).await?;
            let index = if leader == self.cfg.id {
                match self.shard(shard).reads.read_index(raft).await {
                    Ok(_) => return Ok(()),
                    Err(RoundError::Stopped) => return Err(StoreError::Stopped),
                    Err(RoundError::NotLeader) => None,
                }
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                let req = PeerRequest::to_shard(shard, PeerRequest::ReadIndex);
                match self.transport.call(&addr, &req, left).await {
                    Ok(PeerResponse::ReadIndex(i)) => Some(i),
                    Ok(PeerResponse::Error(StoreError::NoLeader)) => None,
                    Ok(PeerResponse::Error(e)) => return Err(e),
                    Ok(_) | Err(_) => None,
                }
            };
            if let Some(i) = index {
                let left = deadline.saturating_duration_since(Instant::now());
                return raft
                    .wait(Some(left))
                    .applied_index_at_least(Some(i), "read index")
                    .await
                    .map(|_| ())
                    .map_err(|_| StoreError::Timeout);
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `req` on the leader of `shard` (locally or forwarded); lease requests go to the
    /// default shard, whose leader runs the lessor.
    pub async fn on_leader(&self, shard: ShardId, req: PeerRequest) -> Result<PeerResponse> {
        let deadline = Instant::now() + self.cfg.request_timeout;
        let req = PeerRequest::to_shard(shard, req);
        loop {
            let (leader, addr) = self.wait_leader(shard, deadline).await?;
            let resp = if leader == self.cfg.id {
                Box::pin(self.on_peer(req.clone())).await
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                self.transport
                    .call(&addr, &req, left)
                    .await
                    .unwrap_or(PeerResponse::Error(StoreError::NoLeader))
            };
            match resp {
                PeerResponse::Error(StoreError::NoLeader) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                PeerResponse::Error(e) => return Err(e),
                r => return Ok(r),
            }
        }
    }

    /// Members that must not lead shards now: this one if it drains, and peers that said so.
    pub fn draining(&self) -> BTreeSet<NodeId> {
        let mut set = self.peers_draining.lock().clone();
        if self.draining.load(Ordering::SeqCst) {
            set.insert(self.cfg.id);
        }
        set
    }

    /// Whether this node currently leads `shard`.
    pub fn is_leader(&self, shard: ShardId) -> bool {
        self.shard(shard).raft.metrics().borrow_watched().state == ServerState::Leader
    }

    /// Proposes `cmd` to every shard (lease grants and revokes are mirrored to all shards so
    /// that keys of any shard can be attached to a lease). Returns the default shard's answer;
    /// the first error otherwise.
    pub async fn propose_all(&self, cmd: Command) -> Result<Bytes> {
        let calls = self.shards.iter().map(|s| self.propose(s.id, cmd.clone()));
        let mut results = futures::future::join_all(calls).await.into_iter();
        let default = results
            .next()
            .unwrap_or(Err(StoreError::Internal("no shards".into())))?;
        for r in results {
            match r {
                // A mirror that never saw the lease (its grant failed half-way) has nothing
                // to revoke.
                Ok(_) | Err(StoreError::LeaseNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(default)
    }

    /// Stops Raft; in-flight watch streams end.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        for shard in &self.shards {
            if let Err(e) = shard.raft.shutdown().await {
                tracing::warn!(shard = shard.id, error = %e, "raft shutdown");
            }
        }
        if let Err(e) = self.engine.sync_wal() {
            tracing::warn!(error = %e, "final wal sync");
        }
        self.transport.close().await;
    }
}

/// Stops the node when any shard's Raft has stopped on a fatal error (storage I/O error such as
/// a full disk): a member that cannot persist must not keep serving half of its shards.
/// Builds a snapshot of one shard whenever its state machine says enough requests were
/// applied since the last one (see [`StateMachineStore::snapshot_every`]).
async fn snapshot_when_due(raft: Raft, due: Arc<tokio::sync::Notify>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = due.notified() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = raft.trigger().snapshot().await {
            tracing::debug!(error = %e, "snapshot trigger");
            return;
        }
    }
}

async fn watch_fatal(node: Arc<StoreNode>) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for shard in &node.shards {
            let state = shard.raft.metrics().borrow_watched().running_state.clone();
            if let Err(e) = state {
                let msg = format!("shard {} stopped: {e}", shard.id);
                tracing::error!(shard = shard.id, error = %e, "raft stopped on a fatal error; stopping this member (fail-stop)");
                *node.fatal.lock() = Some(msg);
                node.shutdown.cancel();
                return;
            }
        }
    }
}

/// Builds the configured peer transport (QUIC: loads the node's TLS material).
fn peer_transport(cfg: &NodeConfig) -> Result<PeerTransportKind> {
    Ok(match &cfg.peer_transport {
        PeerTransportConfig::Grpc => PeerTransportKind::Grpc(GrpcTransport::default()),
        PeerTransportConfig::Quic { certs_dir } => {
            let tls = PeerTls::load(certs_dir, cfg.id)
                .map_err(|e| StoreError::Internal(format!("peer TLS: {e}")))?;
            let t = QuicTransport::new(Arc::new(tls))
                .map_err(|e| StoreError::Internal(format!("QUIC transport: {e}")))?
                .with_streams(cfg.peer_streams);
            PeerTransportKind::Quic(t)
        }
    })
}

/// A stable cluster id derived from the initial membership (as etcd hashes its peer URLs).
fn cluster_id(members: &BTreeMap<NodeId, String>) -> u64 {
    // FNV-1a: stable across builds and platforms.
    let mut h: u64 = 0xcbf29ce484222325;
    for (id, addr) in members {
        for b in id.to_be_bytes().iter().chain(addr.as_bytes()) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}
