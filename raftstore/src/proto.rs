//! Generated protobuf types: etcd's v3 API (`etcdserverpb`, `mvccpb`) and Navarch's peer frame.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// etcd's key-value message types (`mvccpb.KeyValue`, `mvccpb.Event`).
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd's v3 RPC services and messages, with etcd's package, names and field numbers.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// Navarch's store-to-store frame service.
pub mod peer {
    tonic::include_proto!("navarch.peer");
}
