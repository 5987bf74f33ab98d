//! What a store node answers its peers: one-shot peer requests (`on_peer`: Raft RPCs,
//! forwarded writes and reads, snapshot chunks, membership and leadership calls) and
//! pipelined replication streams (`append_stream`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use openraft::async_runtime::WatchReceiver;
use openraft::error::ClientWriteError;
use openraft::ServerState;

use super::StoreNode;
use crate::error::StoreError;
use crate::network::{PeerRequest, PeerResponse};
use crate::shard::ShardId;
use crate::types::Command;

impl StoreNode {
    /// Answers a [`PeerRequest::ProposeMany`]: each write joins the batch of its shard here
    /// (with this node's own clients' writes) if this node leads the shard; otherwise its
    /// outcome is [`StoreError::NoLeader`] and nothing is proposed.
    async fn on_propose_many(&self, cmds: Vec<(ShardId, Command)>) -> PeerResponse {
        let Some(me) = self.me.upgrade() else {
            return PeerResponse::Error(StoreError::Stopped);
        };
        // Each write answers within this bound, well before the caller's transport timeout,
        // so a shard that has lost its leader here cannot turn the writes of every other
        // shard in this request (already applied) into timeouts at the caller.
        let bound = self.cfg.request_timeout.mul_f64(0.7);
        let writes = cmds.into_iter().map(|(shard, cmd)| {
            let me = Arc::clone(&me);
            let write = async move {
                let Some(replica) = me.shards.get(shard as usize) else {
                    return Err(StoreError::Internal(format!(
                        "no shard {shard} here (members must share one shard map)"
                    )));
                };
                if !cmd.batchable() {
                    return Err(StoreError::Internal("not a client write".into()));
                }
                if replica.raft.metrics().borrow_watched().state != ServerState::Leader {
                    return Err(StoreError::NoLeader);
                }
                let writes = Arc::clone(&replica.writes);
                writes.propose(&me, shard, cmd).await
            };
            async move {
                // Timed out: it may still be applied, as with any timeout.
                tokio::time::timeout(bound, write)
                    .await
                    .unwrap_or(Err(StoreError::Timeout))
            }
        });
        PeerResponse::ProposedMany(futures::future::join_all(writes).await)
    }

    /// Serves a pipelined replication stream of `shard` (gRPC `Peer/Stream`, or a QUIC stream
    /// opened with [`PeerRequest::AppendStream`]): each frame is an AppendEntries request,
    /// answered in order by a [`crate::network::StreamAppendReply`] frame. The stream ends at
    /// the first frame that does not decode.
    pub fn append_stream(
        &self,
        shard: crate::shard::ShardId,
        frames: futures::stream::BoxStream<'static, Vec<u8>>,
    ) -> std::result::Result<futures::stream::BoxStream<'static, Vec<u8>>, String> {
        use futures::StreamExt;
        let Some(replica) = self.shards.get(shard as usize) else {
            return Err(format!(
                "no shard {shard} here (members must share one shard map)"
            ));
        };
        metrics::counter!("navarch_store_replication_streams_served_total").increment(1);
        let requests = frames.scan((), |_, frame| {
            let req = crate::types::decode::<
                openraft::raft::AppendEntriesRequest<crate::types::TypeConfig>,
            >(&frame)
            .ok()
            .map(count_append);
            futures::future::ready(req)
        });
        let answers = replica
            .raft
            .clone()
            .stream_append(requests)
            .scan((), |_, r| {
                let reply: crate::network::StreamAppendReply = r.map_err(|fatal| fatal.to_string());
                futures::future::ready(crate::types::encode(&reply).ok())
            });
        Ok(answers.boxed())
    }

    /// Serves a request from a peer.
    pub async fn on_peer(&self, req: PeerRequest) -> PeerResponse {
        let fatal = |e: String| PeerResponse::Error(StoreError::Internal(e));
        let (shard, req) = req.into_shard();
        let Some(replica) = self.shards.get(shard as usize) else {
            return fatal(format!(
                "no shard {shard} here (members must share one shard map)"
            ));
        };
        let raft = &replica.raft;
        match req {
            PeerRequest::ToShard { .. } => fatal("nested shard request".into()),
            PeerRequest::AppendStream => {
                fatal("a replication stream opens a QUIC stream of its own".into())
            }
            // Node-level: each write names its shard.
            PeerRequest::ProposeMany(cmds) => self.on_propose_many(cmds).await,
            PeerRequest::TransferLeader { to } => {
                if !raft.is_leader() {
                    return PeerResponse::Error(StoreError::NoLeader);
                }
                match raft.trigger().transfer_leader(to).await {
                    Ok(()) => PeerResponse::Done,
                    Err(e) => fatal(e.to_string()),
                }
            }
            req @ (PeerRequest::AddLearner { .. }
            | PeerRequest::PromoteVoter { .. }
            | PeerRequest::RemoveMember { .. }) => {
                crate::membership::on_leader_request(replica, req).await
            }
            PeerRequest::RaftTransferLeader(r) => match raft.handle_transfer_leader(r).await {
                Ok(r) => PeerResponse::RaftTransferLeader(r),
                Err(e) => fatal(e.to_string()),
            },
            PeerRequest::AppendEntries(r) => match raft.append_entries(count_append(r)).await {
                Ok(r) => PeerResponse::AppendEntries(r),
                Err(e) => fatal(e.to_string()),
            },
            PeerRequest::Vote(r) => match raft.vote(r).await {
                Ok(r) => PeerResponse::Vote(r),
                Err(e) => fatal(e.to_string()),
            },
            PeerRequest::PreVote(r) => match raft.pre_vote(r).await {
                Ok(r) => PeerResponse::Vote(r),
                Err(e) => fatal(e.to_string()),
            },
            PeerRequest::SnapshotChunk {
                vote,
                meta,
                files,
                file,
                offset,
                data,
            } => {
                let len = data.len() as u64;
                let chunk = crate::snapshot::Chunk {
                    id: format!("{:?}", meta.last_log_id),
                    files,
                    file: file as usize,
                    offset,
                    data,
                };
                let received = self.snapshot_inbox.accept(&self.engine, shard, chunk).await;
                let received = match received {
                    Ok(r) => r,
                    Err(e) => return fatal(e),
                };
                metrics::counter!("navarch_store_snapshot_bytes_received_total").increment(len);
                let files = match received {
                    crate::snapshot::Received::Next { file, offset } => {
                        return PeerResponse::ChunkAccepted {
                            file: file as u32,
                            next_offset: offset,
                        }
                    }
                    crate::snapshot::Received::Complete(files) => files,
                };
                let snap = openraft::alias::SnapshotOf::<crate::types::TypeConfig, _> {
                    meta,
                    snapshot: files,
                };
                match raft.install_full_snapshot(vote, snap).await {
                    Ok(r) => PeerResponse::Snapshot(r),
                    Err(e) => fatal(e.to_string()),
                }
            }
            PeerRequest::Propose(cmd) => {
                if !raft.is_leader() {
                    return PeerResponse::Error(StoreError::NoLeader);
                }
                match raft.client_write(cmd).await {
                    Ok(r) => PeerResponse::Proposed(r.data),
                    Err(e) => match e.into_api_error() {
                        Some(ClientWriteError::ForwardToLeader(_)) => {
                            PeerResponse::Error(StoreError::NoLeader)
                        }
                        Some(ClientWriteError::LogEntryDiscarded(_)) => {
                            PeerResponse::Error(StoreError::LeaderChanged)
                        }
                        Some(other) => fatal(other.to_string()),
                        None => PeerResponse::Error(StoreError::Stopped),
                    },
                }
            }
            PeerRequest::ReadIndex => match self.shard(shard).reads.read_index(raft).await {
                Ok(index) => PeerResponse::ReadIndex(index),
                Err(_) => PeerResponse::Error(StoreError::NoLeader),
            },
            PeerRequest::LeaseKeepAlive { id } => {
                if !raft.is_leader() {
                    return PeerResponse::Error(StoreError::NoLeader);
                }
                match self.lessor.keep_alive(id) {
                    Ok(ttl) => PeerResponse::LeaseTtl {
                        remaining: ttl,
                        granted: ttl,
                    },
                    Err(e) => PeerResponse::Error(e),
                }
            }
            PeerRequest::LeaseTimeToLive { id } => {
                if !raft.is_leader() {
                    return PeerResponse::Error(StoreError::NoLeader);
                }
                let (remaining, granted) = self.lessor.time_to_live(id);
                PeerResponse::LeaseTtl { remaining, granted }
            }
            PeerRequest::Info => PeerResponse::Info {
                client_addr: self.cfg.client_addr.clone(),
                name: self.cfg.name.clone(),
                draining: self.draining.load(Ordering::SeqCst),
            },
        }
    }
}

/// Counts an AppendEntries request a follower receives, by what it carries: log entries
/// (`navarch_store_append_requests_total{kind="entries"}`), or none (`kind="empty"`: a
/// leader's commit-index update, or a heartbeat, ten a second per shard). Under load the empty
/// ones are the exchanges a round costs beyond the one carrying its entries.
fn count_append(
    r: openraft::raft::AppendEntriesRequest<crate::types::TypeConfig>,
) -> openraft::raft::AppendEntriesRequest<crate::types::TypeConfig> {
    let kind = if r.entries.is_empty() {
        "empty"
    } else {
        "entries"
    };
    metrics::counter!("navarch_store_append_requests_total", "kind" => kind).increment(1);
    r
}
