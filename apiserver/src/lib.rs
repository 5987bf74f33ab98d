//! Stateless Kubernetes REST API over the etcd v3 API, served from a watch cache.
//!
//! ```text
//! HTTP (axum) ─► routes ─► negotiation + decode (JSON/YAML/protobuf) ─► handlers (one per verb)
//!             ─► registry strategies + navarch-api (defaulting, validation, patch, table)
//!             ─► storage::Storage (cache-backed ─► etcd-backed) ─► etcd v3 gRPC
//! ```

// `ApiError` carries a full Kubernetes Status (message, details, causes); errors are rare and
// returned straight to the client, so boxing them everywhere would cost clarity for nothing.
#![allow(clippy::result_large_err)]

pub mod config;
pub mod discovery;
pub mod handlers;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod negotiation;
pub mod objects;
pub mod openapi;
pub mod protobuf;
pub mod registry;
pub mod response;
pub mod routes;
pub mod server;
pub mod storage;
mod storage_backend;

pub use config::{kubeconfig, ApiserverArgs, Config, StorageKind};
pub use server::{run, serve};

/// Generated etcd v3 client stubs (client only), compiled from `raftstore/proto`.
#[allow(missing_docs, clippy::all)]
pub mod etcdpb {
    /// `mvccpb` (KeyValue, Event).
    pub mod mvccpb {
        tonic::include_proto!("mvccpb");
    }
    /// `etcdserverpb` (KV, Watch, Lease, Maintenance, Cluster clients).
    pub mod etcdserverpb {
        tonic::include_proto!("etcdserverpb");
    }
}
