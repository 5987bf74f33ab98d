//! The store's error type, with etcd's gRPC codes and messages.
//!
//! etcd clients match on the message text (`rpctypes`), so every variant's message is exactly
//! etcd's. The mapping to the wire lives in one place: `From<StoreError> for tonic::Status`.

use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

/// Errors the store reports to clients, peers and the Raft state machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StoreError {
    /// The request has no key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ignore_value` together with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` together with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A txn with more operations than allowed.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A txn that writes the same key twice.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// `range_end` sorts before `key`.
    #[error("etcdserver: range end must be greater than key (inverted range)")]
    InvertedRange,
    /// The revision asked for has been compacted.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted {
        /// The store's compaction revision.
        compact_revision: i64,
    },
    /// The revision asked for is in the future.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    /// No lease with that id.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A lease with that id exists.
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    /// TTL above etcd's maximum.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// The request is larger than `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// No leader is known (election in progress or no quorum).
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The request did not complete in time; it may or may not have been applied.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The leader changed while the request was in flight; it may or may not be applied.
    #[error("etcdserver: request timed out, possibly due to previous leader failure")]
    LeaderChanged,
    /// The node is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// A range, txn or watch whose keys belong to more than one shard (Raft group).
    #[error(
        "etcdserver: request spans several shards: {0}; each request must stay within one shard"
    )]
    CrossShard(String),
    /// A membership change that cannot be made (unknown member, not caught up, last voter).
    #[error("etcdserver: membership: {0}")]
    Membership(String),
    /// Storage or encoding failure (fatal for the node that reports it).
    #[error("etcdserver: internal error: {0}")]
    Internal(String),
}

impl StoreError {
    /// The gRPC code etcd uses for this error.
    pub fn code(&self) -> Code {
        use StoreError::*;
        match self {
            EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey
            | InvertedRange | RequestTooLarge | CrossShard(_) => Code::InvalidArgument,
            Compacted { .. } | FutureRev | LeaseTtlTooLarge => Code::OutOfRange,
            LeaseNotFound => Code::NotFound,
            LeaseExist | Membership(_) => Code::FailedPrecondition,
            NoLeader | Timeout | LeaderChanged | Stopped => Code::Unavailable,
            Internal(_) => Code::Internal,
        }
    }

    /// Whether retrying the same request later can succeed without any change.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::NoLeader | StoreError::Stopped)
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        Status::new(e.code(), e.to_string())
    }
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError::Internal(format!("rocksdb: {e}"))
    }
}

impl From<prost::DecodeError> for StoreError {
    fn from(e: prost::DecodeError) -> Self {
        StoreError::Internal(format!("protobuf decode: {e}"))
    }
}

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
