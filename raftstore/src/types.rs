//! Raft type configuration and the commands replicated through the log.
//!
//! A [`Command`] carries an etcd request in its protobuf encoding, so the state machine applies
//! exactly what the client sent, and the log stays compact. Concurrent client writes travel as
//! one [`Command::Batch`] entry (group commit): one log entry, one fsync, one RocksDB write,
//! each request still its own revision with its own response.

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
    /// Several client writes (Put, DeleteRange, Txn) applied in order in one entry: each gets
    /// its own revision and response, a failed one leaves no trace, and the entry's effects
    /// reach RocksDB in one write.
    Batch(Vec<Command>),
}

impl Command {
    /// Whether this command may ride in a [`Command::Batch`] (client writes only: compaction
    /// and lease changes read the database directly and stay entries of their own).
    pub fn batchable(&self) -> bool {
        matches!(
            self,
            Command::Put(_) | Command::DeleteRange(_) | Command::Txn(_)
        )
    }

    /// Client requests in this command (a batch counts each of its commands).
    pub fn requests(&self) -> usize {
        match self {
            Command::Batch(cmds) => cmds.len(),
            _ => 1,
        }
    }

    /// About how many bytes this command encodes to (payload plus MessagePack framing).
    pub fn encoded_size_hint(&self) -> usize {
        self.payload_bytes() + 16 * self.requests() + 16
    }

    /// Approximate payload size in bytes.
    pub fn payload_bytes(&self) -> usize {
        match self {
            Command::Put(b) | Command::DeleteRange(b) | Command::Txn(b) | Command::Compact(b) => {
                b.len()
            }
            Command::LeaseGrant { .. } | Command::LeaseRevoke { .. } => 16,
            Command::LeaseCheckpoint { leases } => 16 * leases.len(),
            Command::Batch(cmds) => cmds.iter().map(Command::payload_bytes).sum(),
        }
    }
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
            Command::Batch(cmds) => write!(f, "Batch({})", cmds.len()),
        }
    }
}

/// What applying a [`Command`] produced: the protobuf-encoded etcd response, or the etcd error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// The outcome of a single command.
    One(Result<Bytes, StoreError>),
    /// The outcome of each command of a [`Command::Batch`], in order.
    Batch(Vec<Result<Bytes, StoreError>>),
}

impl CommandResponse {
    /// The outcome of a single command (a batch response here is a bug, reported as such).
    pub fn into_one(self) -> Result<Bytes, StoreError> {
        match self {
            CommandResponse::One(r) => r,
            CommandResponse::Batch(_) => Err(StoreError::Internal(
                "batch response to a single command".into(),
            )),
        }
    }

    /// The outcomes of a batch of `n` commands.
    pub fn into_batch(self, n: usize) -> Result<Vec<Result<Bytes, StoreError>>, StoreError> {
        match self {
            CommandResponse::Batch(v) if v.len() == n => Ok(v),
            CommandResponse::Batch(v) => Err(StoreError::Internal(format!(
                "{} responses to a batch of {n}",
                v.len()
            ))),
            // A batch refused as a whole (e.g. by a peer that is not leader) fails every command.
            CommandResponse::One(Err(e)) => Ok(vec![Err(e); n]),
            CommandResponse::One(Ok(_)) => {
                Err(StoreError::Internal("single response to a batch".into()))
            }
        }
    }
}

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

/// Like [`encode`], into a buffer of `capacity` bytes allocated up front (frames and log
/// entries of megabytes would otherwise grow by doubling: copies and fresh pages each time).
pub fn encode_sized<T: Serialize>(v: &T, capacity: usize) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::with_capacity(capacity);
    rmp_serde::encode::write_named(&mut buf, v)
        .map_err(|e| StoreError::Internal(format!("encode: {e}")))?;
    Ok(buf)
}

/// About how many bytes a log entry encodes to.
pub fn entry_size_hint(e: &Entry) -> usize {
    128 + match &e.payload {
        openraft::EntryPayload::Normal(cmd) => cmd.encoded_size_hint(),
        openraft::EntryPayload::Membership(_) => 512,
        openraft::EntryPayload::Blank => 0,
    }
}

/// Decodes a value written by [`encode`].
pub fn decode<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice(b).map_err(|e| StoreError::Internal(format!("decode: {e}")))
}
