//! Membership changes, applied to every shard's Raft group: add a member (learner first, then
//! voter once it has caught up), promote, remove, list.
//!
//! ```text
//! member add N ─► every shard's leader: add_learner(N) (non-blocking)
//!              └─► promoter task: every shard: once N's matched index is close to the leader's
//!                  log, change_membership(AddVoterIds{N})
//! member remove N ─► every shard's leader: change_membership(RemoveVoters{N} | RemoveNodes{N})
//! ```
//! The new member starts with `--initial-cluster-state existing` (it never bootstraps) and
//! catches up by log replication or, when the log has been purged, by snapshot. Clients are
//! never interrupted: a learner does not count towards quorum until it is promoted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::network::{PeerRequest, PeerResponse};
use crate::node::{Shard, StoreNode};
use crate::types::{NodeId, NodeInfo};

/// A learner is promoted once its matched log index is within this many entries of the
/// leader's last index.
const CAUGHT_UP_SLACK: u64 = 100;

/// How long `member add` keeps trying to promote the new member before leaving it a learner
/// (`member promote` retries).
const PROMOTE_DEADLINE: Duration = Duration::from_secs(600);

/// One member as `member list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Member id.
    pub id: NodeId,
    /// Peer address.
    pub peer_addr: String,
    /// Whether it is a voter in every shard.
    pub voter: bool,
    /// Shards in which it is only a learner.
    pub learner_in: Vec<u32>,
}

/// The members of the cluster (as the default shard's membership lists them), with their role
/// in every shard.
pub fn list(node: &StoreNode) -> Vec<MemberInfo> {
    let mut out: BTreeMap<NodeId, MemberInfo> = BTreeMap::new();
    for shard in &node.shards {
        let m = shard.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        for (id, info) in membership.nodes() {
            let e = out.entry(*id).or_insert_with(|| MemberInfo {
                id: *id,
                peer_addr: info.peer_addr.clone(),
                voter: true,
                learner_in: Vec::new(),
            });
            if !voters.contains(id) {
                e.voter = false;
                e.learner_in.push(shard.id);
            }
        }
    }
    out.into_values().collect()
}

/// Leader side of a membership request on one shard.
pub async fn on_leader_request(shard: &Shard, req: PeerRequest) -> PeerResponse {
    let raft = &shard.raft;
    if !raft.is_leader() {
        return PeerResponse::Error(StoreError::NoLeader);
    }
    let done = |r: std::result::Result<(), String>| match r {
        Ok(()) => PeerResponse::Done,
        // Leadership moved while the change was in flight: the caller retries on the new leader.
        Err(e) if e.contains("has to forward request") => PeerResponse::Error(StoreError::NoLeader),
        Err(e) => PeerResponse::Error(StoreError::Membership(e)),
    };
    match req {
        PeerRequest::AddLearner { id, peer_addr } => {
            let members = raft.metrics().borrow_watched().membership_config.clone();
            if let Some(n) = members.membership().get_node(&id) {
                if n.peer_addr != peer_addr {
                    return done(Err(format!(
                        "member {id} exists with peer address {}",
                        n.peer_addr
                    )));
                }
                return PeerResponse::Done;
            }
            done(
                raft.add_learner(id, NodeInfo { peer_addr }, false)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            )
        }
        PeerRequest::PromoteVoter { id } => {
            let m = raft.metrics().borrow_watched().clone();
            let membership = m.membership_config.membership();
            if membership.voter_ids().any(|v| v == id) {
                return PeerResponse::Done;
            }
            if membership.get_node(&id).is_none() {
                return done(Err(format!("member {id} is not in the cluster")));
            }
            let last = m.last_log_index.unwrap_or(0);
            // A learner that never answered has no matched log id: promoting it would make a
            // dead node a voter (and could cost the quorum).
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).cloned().flatten())
                .map(|l| l.index);
            match matched {
                Some(i) if i + CAUGHT_UP_SLACK >= last => {}
                Some(i) => {
                    return done(Err(format!(
                        "member {id} has not caught up yet (matched {i} of {last})"
                    )))
                }
                None => {
                    return done(Err(format!(
                        "member {id} has not caught up yet (it has not answered replication)"
                    )))
                }
            }
            done(
                raft.change_membership(ChangeMembers::AddVoterIds([id].into()), false)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            )
        }
        PeerRequest::RemoveMember { id } => {
            let m = raft.metrics().borrow_watched().clone();
            let membership = m.membership_config.membership();
            let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
            let change = if voters.contains(&id) {
                if voters.len() == 1 {
                    return done(Err("cannot remove the last voter".into()));
                }
                ChangeMembers::RemoveVoters([id].into())
            } else if membership.get_node(&id).is_some() {
                ChangeMembers::RemoveNodes([id].into())
            } else {
                return PeerResponse::Done;
            };
            done(
                raft.change_membership(change, false)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            )
        }
        other => done(Err(format!("not a membership request: {other:?}"))),
    }
}

/// Runs a membership request on the leader of every shard (default shard last for removals,
/// first for additions, so `member list` reflects a complete change).
async fn on_every_shard(node: &StoreNode, req: PeerRequest) -> Result<()> {
    let mut ids: Vec<u32> = node.shards.iter().map(|s| s.id).collect();
    if matches!(req, PeerRequest::RemoveMember { .. }) {
        ids.reverse();
    }
    for shard in ids {
        match node.on_leader(shard, req.clone()).await? {
            PeerResponse::Done => {}
            other => return Err(StoreError::Internal(format!("unexpected {other:?}"))),
        }
    }
    Ok(())
}

/// The next free member id (one above the highest known).
pub fn next_id(node: &StoreNode) -> NodeId {
    list(node).iter().map(|m| m.id).max().unwrap_or(0) + 1
}

/// Adds member `id` at `peer_addr` as a learner of every shard and, with `promote`, promotes it
/// to voter in the background once it has caught up.
pub async fn add(
    node: &Arc<StoreNode>,
    id: NodeId,
    peer_addr: String,
    auto_promote: bool,
) -> Result<()> {
    if id == 0 {
        return Err(StoreError::Membership("member id must be > 0".into()));
    }
    on_every_shard(node, PeerRequest::AddLearner { id, peer_addr }).await?;
    if !auto_promote {
        return Ok(());
    }
    let node = node.clone();
    tokio::spawn(async move {
        let deadline = Instant::now() + PROMOTE_DEADLINE;
        loop {
            match promote(&node, id).await {
                Ok(()) => {
                    tracing::info!(member = id, "member promoted to voter in every shard");
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(member = id, error = %e, "member not promoted yet");
                }
                Err(e) => {
                    tracing::warn!(member = id, error = %e, "gave up promoting; run `member promote`");
                    return;
                }
            }
            tokio::select! {
                _ = node.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    });
    Ok(())
}

/// Promotes learner `id` to voter in every shard where it has caught up; an error names the
/// first shard where it could not.
pub async fn promote(node: &StoreNode, id: NodeId) -> Result<()> {
    on_every_shard(node, PeerRequest::PromoteVoter { id }).await
}

/// Removes member `id` from every shard.
pub async fn remove(node: &StoreNode, id: NodeId) -> Result<()> {
    let known = list(node).iter().any(|m| m.id == id);
    if !known {
        return Err(StoreError::Membership(format!("member {id} not found")));
    }
    on_every_shard(node, PeerRequest::RemoveMember { id }).await
}
