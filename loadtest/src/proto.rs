//! Generated etcd v3 client types (`etcdserverpb`, `mvccpb`), compiled by
//! `build.rs` from `raftstore/proto` with the server side left out.

/// etcd's `mvccpb` package: `KeyValue` and `Event`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd's `etcdserverpb` package: request/response messages and the
/// `KV`, `Watch`, `Lease`, `Cluster` and `Maintenance` clients.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}
