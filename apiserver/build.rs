//! Build script: compiles the etcd v3 protos shared with `raftstore` into a
//! client-only tonic module, so the apiserver speaks plain etcd v3 and
//! works against any etcd endpoint (Navarch's store or a real etcd).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PROTOS: [&str; 2] = [
        "../raftstore/proto/etcdserverpb/rpc.proto",
        "../raftstore/proto/mvccpb/kv.proto",
    ];
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_protos(&PROTOS, &["../raftstore/proto"])?;
    Ok(())
}
