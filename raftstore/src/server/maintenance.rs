//! etcd `Maintenance` (Status, Alarm, Defragment) and `Cluster` (MemberList) services.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use openraft::async_runtime::WatchReceiver;
use tonic::{Request, Response, Status};

use crate::membership;
use crate::network::{PeerRequest, PeerResponse, PeerTransport};
use crate::node::StoreNode;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::*;
use crate::shard::DEFAULT_SHARD;

/// Version reported by Status: the etcd API level we implement. Its watch sends a progress
/// notification for revision R only after every event ≤ R, as etcd does from 3.4.31 on
/// (etcd#15220), and clients such as a watch cache decide by this version whether to trust
/// progress notifications for consistent reads.
pub const ETCD_API_VERSION: &str = "3.4.31";

/// The Maintenance service of a store node.
pub struct MaintenanceService {
    node: Arc<StoreNode>,
}

impl MaintenanceService {
    /// Serves `node`.
    pub fn new(node: Arc<StoreNode>) -> Self {
        Self { node }
    }
}

const NOT_YET: &str = "not implemented by navarch yet";

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, _req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        Ok(Response::new(AlarmResponse {
            header: Some(
                self.node
                    .header(DEFAULT_SHARD, self.node.shard(DEFAULT_SHARD).hub.revision()),
            ),
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let m = self
            .node
            .shard(DEFAULT_SHARD)
            .raft
            .metrics()
            .borrow_watched()
            .clone();
        let size = self.node.engine.approximate_size() as i64;
        let voter = m
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == self.node.cfg.id);
        Ok(Response::new(StatusResponse {
            header: Some(
                self.node
                    .header(DEFAULT_SHARD, self.node.shard(DEFAULT_SHARD).hub.revision()),
            ),
            version: ETCD_API_VERSION.into(),
            db_size: size,
            leader: m.current_leader.unwrap_or(0),
            raft_index: m.last_log_index.unwrap_or(0),
            raft_term: m.current_term,
            raft_applied_index: m.last_applied.as_ref().map_or(0, |l| l.index),
            errors: Vec::new(),
            db_size_in_use: size,
            is_learner: !voter,
        }))
    }

    async fn defragment(
        &self,
        _req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Ok(Response::new(DefragmentResponse {
            header: Some(
                self.node
                    .header(DEFAULT_SHARD, self.node.shard(DEFAULT_SHARD).hub.revision()),
            ),
        }))
    }

    async fn hash(&self, _req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    async fn hash_kv(
        &self,
        _req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

    async fn snapshot(
        &self,
        _req: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    async fn move_leader(
        &self,
        _req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }
}

/// The Cluster service of a store node.
pub struct ClusterService {
    node: Arc<StoreNode>,
}

impl ClusterService {
    /// Serves `node`.
    pub fn new(node: Arc<StoreNode>) -> Self {
        Self { node }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        r: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let r = r.into_inner();
        let Some(url) = r.peer_ur_ls.first() else {
            return Err(Status::invalid_argument("etcdserver: no peer URL given"));
        };
        let addr = url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        if addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(Status::invalid_argument(format!(
                "etcdserver: peer URL {url:?} is not HOST:PORT"
            )));
        }
        if let Some(m) = membership::list(&self.node)
            .into_iter()
            .find(|m| m.peer_addr == addr)
        {
            return Err(Status::failed_precondition(format!(
                "etcdserver: Peer URLs already exists (member {})",
                m.id
            )));
        }
        let id = membership::next_id(&self.node);
        membership::add(&self.node, id, addr, !r.is_learner).await?;
        let members = self.members().await;
        let member = members.iter().find(|m| m.id == id).cloned();
        Ok(Response::new(MemberAddResponse {
            header: Some(self.header()),
            member,
            members,
        }))
    }

    async fn member_remove(
        &self,
        r: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let id = r.into_inner().id;
        membership::remove(&self.node, id).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.header()),
            members: self.members().await,
        }))
    }

    async fn member_update(
        &self,
        _r: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(Status::unimplemented(NOT_YET))
    }

    async fn member_promote(
        &self,
        r: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let id = r.into_inner().id;
        membership::promote(&self.node, id).await?;
        Ok(Response::new(MemberPromoteResponse {
            header: Some(self.header()),
            members: self.members().await,
        }))
    }

    async fn member_list(
        &self,
        _r: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(MemberListResponse {
            header: Some(self.header()),
            members: self.members().await,
        }))
    }
}

impl ClusterService {
    fn header(&self) -> ResponseHeader {
        self.node
            .header(DEFAULT_SHARD, self.node.shard(DEFAULT_SHARD).hub.revision())
    }

    /// Every member (a learner in any shard is reported as a learner), with the client
    /// address each running member reports.
    async fn members(&self) -> Vec<Member> {
        let mut members = Vec::new();
        for info in membership::list(&self.node) {
            let id = info.id;
            let (client, name) = if id == self.node.cfg.id {
                (
                    self.node.cfg.client_addr.clone(),
                    self.node.cfg.name.clone(),
                )
            } else {
                match self
                    .node
                    .transport
                    .call(
                        &info.peer_addr,
                        &PeerRequest::Info,
                        Duration::from_millis(500),
                    )
                    .await
                {
                    Ok(PeerResponse::Info {
                        client_addr, name, ..
                    }) => (client_addr, name),
                    _ => (String::new(), String::new()),
                }
            };
            members.push(Member {
                id,
                name,
                peer_ur_ls: vec![format!("http://{}", info.peer_addr)],
                client_ur_ls: if client.is_empty() {
                    vec![]
                } else {
                    vec![format!("http://{client}")]
                },
                is_learner: !info.voter,
            });
        }
        members
    }
}
