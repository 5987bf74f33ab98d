//! Placement of shard leaders: spread them evenly over the members, and move them on request
//! (an operator's leader transfer, or a member draining before maintenance).
//!
//! ```text
//! every few seconds, on each member:
//!   counts = leaders per member (from this member's view of every shard's metrics)
//!   if I lead more than ceil(shards / voters) shards: transfer one to the member leading fewest
//! ```
//! The decision ([`plan_transfer`]) is a pure function; the loop only feeds it metrics and
//! triggers openraft's leader transfer. A draining member (`drain`) gives away every shard it
//! leads and takes none.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;

use crate::error::{Result, StoreError};
use crate::network::{PeerRequest, PeerResponse, PeerTransport};
use crate::node::StoreNode;
use crate::shard::ShardId;
use crate::types::NodeId;

/// How often the balancer looks at the leader layout.
const BALANCE_INTERVAL: Duration = Duration::from_secs(2);

/// What a member sees of one shard: its leader and voters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardView {
    /// Shard id.
    pub shard: ShardId,
    /// Current leader, if known.
    pub leader: Option<NodeId>,
    /// Voting members.
    pub voters: BTreeSet<NodeId>,
}

/// The one leader transfer `me` should start now, if any: `(shard, new leader)`.
///
/// `draining` members lead nothing: every shard `me` leads while draining moves away, and no
/// shard moves to a draining member.
pub fn plan_transfer(
    me: NodeId,
    views: &[ShardView],
    draining: &BTreeSet<NodeId>,
) -> Option<(ShardId, NodeId)> {
    // Wait until every shard has a leader: transfers during elections only add churn.
    if views.iter().any(|v| v.leader.is_none()) {
        return None;
    }
    let voters: BTreeSet<NodeId> = views
        .iter()
        .flat_map(|v| v.voters.iter().copied())
        .collect();
    let eligible: Vec<NodeId> = voters
        .iter()
        .copied()
        .filter(|v| !draining.contains(v))
        .collect();
    if eligible.is_empty() {
        return None;
    }
    let mut counts: BTreeMap<NodeId, usize> = eligible.iter().map(|v| (*v, 0)).collect();
    for v in views {
        if let Some(l) = v.leader {
            *counts.entry(l).or_default() += 1;
        }
    }
    let mine: Vec<&ShardView> = views.iter().filter(|v| v.leader == Some(me)).collect();
    let target = views.len().div_ceil(eligible.len());
    let over = if draining.contains(&me) {
        !mine.is_empty()
    } else {
        mine.len() > target
    };
    if !over {
        return None;
    }
    // Move the highest-numbered shard first (the default shard, which runs the lessor, last).
    let shard = mine.iter().map(|v| v.shard).max()?;
    let view = views.iter().find(|v| v.shard == shard)?;
    let to = counts
        .iter()
        .filter(|(id, _)| **id != me && view.voters.contains(id))
        .min_by_key(|(id, c)| (**c, **id))
        .map(|(id, _)| *id)?;
    // Only worth it if the receiver ends up no worse than we are now.
    let to_count = counts.get(&to).copied().unwrap_or(0);
    if !draining.contains(&me) && to_count + 1 >= mine.len() {
        return None;
    }
    Some((shard, to))
}

/// This member's view of every shard.
pub fn views(node: &StoreNode) -> Vec<ShardView> {
    node.shards
        .iter()
        .map(|s| {
            let m = s.raft.metrics().borrow_watched().clone();
            ShardView {
                shard: s.id,
                leader: m.current_leader,
                voters: m.membership_config.membership().voter_ids().collect(),
            }
        })
        .collect()
}

/// Moves the leadership of `shard` to member `to` (asks the current leader, wherever it is).
pub async fn transfer_leader(node: &StoreNode, shard: ShardId, to: NodeId) -> Result<()> {
    if shard as usize >= node.shards.len() {
        return Err(StoreError::Internal(format!("no shard {shard}")));
    }
    match node
        .on_leader(shard, PeerRequest::TransferLeader { to })
        .await?
    {
        PeerResponse::Done => Ok(()),
        other => Err(StoreError::Internal(format!("unexpected {other:?}"))),
    }
}

/// Asks every other member whether it drains.
async fn refresh_peer_draining(node: &StoreNode) {
    let members: Vec<(NodeId, String)> = {
        let m = node.shard(crate::shard::DEFAULT_SHARD).raft.metrics();
        let m = m.borrow_watched();
        m.membership_config
            .membership()
            .nodes()
            .filter(|(id, _)| **id != node.cfg.id)
            .map(|(id, n)| (*id, n.peer_addr.clone()))
            .collect()
    };
    let mut draining = BTreeSet::new();
    for (id, addr) in members {
        let r = node
            .transport
            .call(&addr, &PeerRequest::Info, Duration::from_millis(500))
            .await;
        if let Ok(PeerResponse::Info { draining: true, .. }) = r {
            draining.insert(id);
        }
    }
    *node.peers_draining.lock() = draining;
}

/// Runs the balancer of `node` until shutdown.
pub async fn run_balancer(node: Arc<StoreNode>) {
    let mut tick = tokio::time::interval(BALANCE_INTERVAL);
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        refresh_peer_draining(&node).await;
        let draining = node.draining();
        let Some((shard, to)) = plan_transfer(node.cfg.id, &views(&node), &draining) else {
            continue;
        };
        let raft = &node.shard(shard).raft;
        // Only to a member that is replicating right now: handing leadership to a dead or
        // lagging member would leave the shard leaderless until the next election.
        let caught_up = {
            let m = raft.metrics().borrow_watched().clone();
            let last = m.last_log_index.unwrap_or(0);
            m.replication
                .as_ref()
                .and_then(|r| r.get(&to).cloned().flatten())
                .is_some_and(|l| l.index + 100 >= last)
        };
        if !caught_up {
            continue;
        }
        tracing::info!(shard, to, "placement: transferring shard leadership");
        if let Err(e) = raft.trigger().transfer_leader(to).await {
            tracing::warn!(shard, to, error = %e, "leader transfer");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(shard: ShardId, leader: NodeId) -> ShardView {
        ShardView {
            shard,
            leader: Some(leader),
            voters: [1, 2, 3].into_iter().collect(),
        }
    }

    #[test]
    fn an_overloaded_member_gives_a_shard_to_the_least_loaded() {
        let views: Vec<_> = (0..5).map(|s| view(s, 1)).collect();
        assert_eq!(plan_transfer(1, &views, &BTreeSet::new()), Some((4, 2)));
        // Others do nothing: they lead nothing.
        assert_eq!(plan_transfer(2, &views, &BTreeSet::new()), None);
    }

    #[test]
    fn a_balanced_layout_stays_put() {
        let views = vec![view(0, 1), view(1, 2), view(2, 3), view(3, 1), view(4, 2)];
        for me in 1..=3 {
            assert_eq!(plan_transfer(me, &views, &BTreeSet::new()), None);
        }
    }

    #[test]
    fn a_draining_member_hands_off_everything_and_receives_nothing() {
        let views = vec![view(0, 1), view(1, 2), view(2, 3)];
        let draining: BTreeSet<NodeId> = [1].into_iter().collect();
        assert_eq!(plan_transfer(1, &views, &draining), Some((0, 2)));
        let views = vec![view(0, 2), view(1, 2), view(2, 2), view(3, 3)];
        // 2 leads 3 of 4 with 2 eligible members (target 2): it gives one to 3, never to 1.
        assert_eq!(plan_transfer(2, &views, &draining), Some((2, 3)));
    }

    #[test]
    fn nothing_moves_during_an_election() {
        let mut views: Vec<_> = (0..5).map(|s| view(s, 1)).collect();
        views[3].leader = None;
        assert_eq!(plan_transfer(1, &views, &BTreeSet::new()), None);
    }
}
