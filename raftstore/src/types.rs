//! Raft type configuration and the commands replicated through the log.
//!
//! A [`Command`] carries an etcd request in its protobuf encoding, so the state machine applies
//! exactly what the client sent, and the log stays compact.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Raft node id (etcd member id in the API).
pub type NodeId = u64;

/// Where a store node can be reached by its peers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `host:port` of the node's peer (Raft) listener.
    pub peer_addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.peer_addr)
    }
}

/// One state-machine command. Every command is applied atomically with the applied log id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// `etcdserverpb.PutRequest`, protobuf-encoded.
    Put(Bytes),
    /// `etcdserverpb.DeleteRangeRequest`, protobuf-encoded.
    DeleteRange(Bytes),
    /// `etcdserverpb.TxnRequest`, protobuf-encoded.
    Txn(Bytes),
    /// `etcdserverpb.CompactionRequest`, protobuf-encoded.
    Compact(Bytes),
    /// Create a lease (the id is chosen before proposing, so replicas agree).
    LeaseGrant {
        /// Lease id (> 0).
        id: i64,
        /// Granted TTL in seconds.
        ttl: i64,
    },
    /// Revoke a lease and delete its keys (client revoke or expiry detected by the leader).
    LeaseRevoke {
        /// Lease id.
        id: i64,
    },
    /// Record the remaining TTL of leases, so a new leader does not restart them at full TTL.
    LeaseCheckpoint {
        /// `(lease id, remaining seconds)`; 0 means "full TTL".
        leases: Vec<(i64, i64)>,
    },
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Put(b) => write!(f, "Put({} bytes)", b.len()),
            Command::DeleteRange(b) => write!(f, "DeleteRange({} bytes)", b.len()),
            Command::Txn(b) => write!(f, "Txn({} bytes)", b.len()),
            Command::Compact(b) => write!(f, "Compact({} bytes)", b.len()),
            Command::LeaseGrant { id, ttl } => write!(f, "LeaseGrant({id:x}, ttl={ttl})"),
            Command::LeaseRevoke { id } => write!(f, "LeaseRevoke({id:x})"),
            Command::LeaseCheckpoint { leases } => write!(f, "LeaseCheckpoint({})", leases.len()),
        }
    }
}

/// What applying a [`Command`] produced: the protobuf-encoded etcd response, or the etcd error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResponse(pub Result<Bytes, StoreError>);

openraft::declare_raft_types!(
    /// Navarch's Raft type configuration.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = NodeInfo,
);

/// The Raft handle of a store node.
pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachineStore>;
/// A log id in this configuration.
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A log entry in this configuration.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// A stored membership in this configuration.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// A vote in this configuration.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;

/// Encodes a value for the log, the state machine's metadata and the peer protocol
/// (MessagePack with field names, so optional/defaulted fields round-trip).
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(v).map_err(|e| StoreError::Internal(format!("encode: {e}")))
}

/// Decodes a value written by [`encode`].
pub fn decode<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice(b).map_err(|e| StoreError::Internal(format!("decode: {e}")))
}
