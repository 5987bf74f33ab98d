//! Per-shard status and placement controls on the client port (HTTP/1.1 or HTTP/2):
//! - `GET /shards`: each shard's leader, term, applied index, revision, size (`navarch store
//!   status` prints it);
//! - `POST /shards/transfer?shard=N&to=M`: move the leadership of shard N to member M;
//! - `POST /drain?on=true|false`: start or stop draining this member (it hands off every shard
//!   leadership and takes none);
//! - `POST /fault/partition?peers=HOST:PORT,...`: drop this member's traffic to those peers
//!   (empty `peers` heals) — for fault drills and tests;
//! - `GET /members`, `POST /members/add?id=N&peer=HOST:PORT[&learner=true]`,
//!   `POST /members/remove?id=N`, `POST /members/promote?id=N` (`navarch store member ...`).

use openraft::async_runtime::WatchReceiver;
use serde::{Deserialize, Serialize};

use crate::node::StoreNode;

/// One shard as seen by one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardStatus {
    /// Shard id.
    pub id: u32,
    /// Shard name.
    pub name: String,
    /// Owned key prefix (empty for the default shard).
    pub prefix: String,
    /// Current leader's member id (0 if none).
    pub leader: u64,
    /// Raft term.
    pub term: u64,
    /// Last applied log index on this member.
    pub applied_index: u64,
    /// Last log index purged on this member (0 if none): the log up to it was dropped
    /// because a snapshot covers it.
    #[serde(default)]
    pub purged_index: u64,
    /// Shard revision on this member.
    pub revision: i64,
    /// Approximate bytes on disk.
    pub size_bytes: u64,
    /// Voting members.
    pub voters: Vec<u64>,
    /// Non-voting members (learners).
    pub learners: Vec<u64>,
}

/// What `/shards` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The answering member.
    pub member: u64,
    /// Its name.
    pub name: String,
    /// Whether it drains.
    pub draining: bool,
    /// Every shard.
    pub shards: Vec<ShardStatus>,
}

/// The status of every shard on `node`.
pub fn node_status(node: &StoreNode) -> NodeStatus {
    let shards = node
        .shards
        .iter()
        .map(|s| {
            let m = s.raft.metrics().borrow_watched().clone();
            let membership = m.membership_config.membership();
            let voters: Vec<u64> = membership.voter_ids().collect();
            let learners: Vec<u64> = membership.learner_ids().collect();
            let spec = &node.cfg.shards.shards()[s.id as usize];
            ShardStatus {
                id: s.id,
                name: spec.name.clone(),
                prefix: String::from_utf8_lossy(&spec.prefix).into_owned(),
                leader: m.current_leader.unwrap_or(0),
                term: m.current_term,
                applied_index: m.last_applied.as_ref().map_or(0, |l| l.index),
                purged_index: m.purged.as_ref().map_or(0, |l| l.index),
                revision: s.hub.revision(),
                size_bytes: node.engine.approximate_shard_size(s.id),
                voters,
                learners,
            }
        })
        .collect();
    NodeStatus {
        member: node.cfg.id,
        name: node.cfg.name.clone(),
        draining: node.draining.load(std::sync::atomic::Ordering::SeqCst),
        shards,
    }
}

/// [`node_status`] as JSON.
pub fn shards_json(node: &StoreNode) -> String {
    serde_json::to_string_pretty(&node_status(node))
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `POST /shards/transfer?shard=N&to=M`.
pub async fn transfer(node: &StoreNode, query: &str) -> Result<String, (u16, String)> {
    let bad = |m: String| (400, m);
    let shard: u32 = query_param(query, "shard")
        .ok_or_else(|| bad("missing shard=N".into()))?
        .parse()
        .map_err(|e| bad(format!("bad shard: {e}")))?;
    let to: u64 = query_param(query, "to")
        .ok_or_else(|| bad("missing to=MEMBER".into()))?
        .parse()
        .map_err(|e| bad(format!("bad member id: {e}")))?;
    if shard as usize >= node.shards.len() {
        return Err(bad(format!("no shard {shard}")));
    }
    let voters: Vec<u64> = node
        .shard(shard)
        .raft
        .metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    if !voters.contains(&to) {
        return Err(bad(format!("member {to} is not a voter of shard {shard}")));
    }
    crate::placement::transfer_leader(node, shard, to)
        .await
        .map_err(|e| (503, e.to_string()))?;
    Ok(format!("{{\"shard\":{shard},\"to\":{to}}}"))
}

/// `POST /drain?on=true|false`.
pub fn drain(node: &StoreNode, query: &str) -> Result<String, (u16, String)> {
    let on = match query_param(query, "on").unwrap_or("true") {
        "true" | "1" => true,
        "false" | "0" => false,
        other => return Err((400, format!("bad on={other}: true or false"))),
    };
    node.draining.store(on, std::sync::atomic::Ordering::SeqCst);
    tracing::info!(draining = on, "placement: drain flag set");
    Ok(format!("{{\"member\":{},\"draining\":{on}}}", node.cfg.id))
}

/// `GET /members`.
pub fn members_json(node: &StoreNode) -> String {
    serde_json::to_string_pretty(&crate::membership::list(node))
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn member_id(query: &str) -> Result<u64, (u16, String)> {
    query_param(query, "id")
        .ok_or_else(|| (400, "missing id=N".to_string()))?
        .parse()
        .map_err(|e| (400, format!("bad member id: {e}")))
}

fn store_error(e: crate::StoreError) -> (u16, String) {
    let code = match e.code() {
        tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument => 400,
        tonic::Code::Unavailable => 503,
        _ => 500,
    };
    (code, e.to_string())
}

/// `POST /members/{add,remove,promote}?...`.
pub async fn member_change(
    node: &std::sync::Arc<StoreNode>,
    op: &str,
    query: &str,
) -> Result<String, (u16, String)> {
    let id = member_id(query)?;
    match op {
        "add" => {
            let peer = query_param(query, "peer")
                .ok_or_else(|| (400, "missing peer=HOST:PORT".to_string()))?
                .to_string();
            if peer.parse::<std::net::SocketAddr>().is_err() {
                return Err((400, format!("bad peer address {peer:?}: want IP:PORT")));
            }
            let learner = query_param(query, "learner") == Some("true");
            crate::membership::add(node, id, peer, !learner)
                .await
                .map_err(store_error)?;
        }
        "remove" => crate::membership::remove(node, id)
            .await
            .map_err(store_error)?,
        "promote" => crate::membership::promote(node, id)
            .await
            .map_err(store_error)?,
        other => return Err((404, format!("no member operation {other:?}"))),
    }
    Ok(members_json(node))
}

/// `POST /fault/partition?peers=A,B` (empty heals).
pub fn partition(node: &StoreNode, query: &str) -> Result<String, (u16, String)> {
    let peers: Vec<String> = query_param(query, "peers")
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    node.transport.fault().set_blocked(peers);
    let blocked = node.transport.fault().blocked();
    tracing::warn!(?blocked, "fault filter: peer traffic blocked");
    Ok(serde_json::json!({ "member": node.cfg.id, "blocked": blocked }).to_string())
}
