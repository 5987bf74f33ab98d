//! Bad input gets etcd's gRPC code and message, stores nothing, and the store keeps serving.

use std::time::Duration;

use navarch_raftstore::proto::etcdserverpb::{
    request_op, watch_request, CompactionRequest, DeleteRangeRequest, LeaseRevokeRequest,
    PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest,
};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::support::{Client, Cluster};

fn expect_err<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, msg: &str) {
    let e = r.expect_err("request must be rejected");
    assert_eq!(e.code(), code, "wrong code for {msg:?}: {e:?}");
    assert!(
        e.message().contains(msg),
        "message {:?} does not contain {msg:?}",
        e.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_the_store_keeps_serving() {
    let mut c = Cluster::start(1, &["--max-request-bytes", "65536"]);
    let mut cl = Client::connect_eventually(&c.nodes[0].client_addr).await;
    c.wait_leader(Duration::from_secs(20)).await;
    let rev0 = cl.put("/bad/ok", "v").await.unwrap();

    // Over the size limit (configurable; 1.5 MiB by default).
    let big = PutRequest {
        key: b"/bad/big".to_vec(),
        value: vec![b'x'; 100_000],
        ..Default::default()
    };
    expect_err(
        cl.kv.put(big).await,
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );
    // Far over it: refused by the transport before decoding, still a clean gRPC error.
    let huge = PutRequest {
        key: b"/bad/huge".to_vec(),
        value: vec![b'x'; 4 << 20],
        ..Default::default()
    };
    let e = cl.kv.put(huge).await.expect_err("huge request rejected");
    assert!(
        matches!(
            e.code(),
            Code::InvalidArgument | Code::ResourceExhausted | Code::OutOfRange
        ),
        "{e:?}"
    );

    // Empty key.
    expect_err(
        cl.kv.put(PutRequest::default()).await,
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );
    expect_err(
        cl.kv.range(RangeRequest::default()).await,
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );

    // Inverted range.
    let inv = RangeRequest {
        key: b"/z".to_vec(),
        range_end: b"/a".to_vec(),
        ..Default::default()
    };
    expect_err(
        cl.kv.range(inv).await,
        Code::InvalidArgument,
        "range end must be greater than key",
    );
    let inv = DeleteRangeRequest {
        key: b"/z".to_vec(),
        range_end: b"/a".to_vec(),
        ..Default::default()
    };
    expect_err(
        cl.kv.delete_range(inv).await,
        Code::InvalidArgument,
        "range end must be greater than key",
    );

    // Unknown lease.
    let p = PutRequest {
        key: b"/bad/l".to_vec(),
        value: b"v".to_vec(),
        lease: 12345,
        ..Default::default()
    };
    expect_err(
        cl.kv.put(p).await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    expect_err(
        cl.lease
            .lease_revoke(LeaseRevokeRequest { id: 12345 })
            .await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );

    // ignore_value on a missing key, and with a value.
    let p = PutRequest {
        key: b"/bad/missing".to_vec(),
        ignore_value: true,
        ..Default::default()
    };
    expect_err(
        cl.kv.put(p).await,
        Code::InvalidArgument,
        "etcdserver: key not found",
    );
    let p = PutRequest {
        key: b"/bad/ok".to_vec(),
        value: b"x".to_vec(),
        ignore_value: true,
        ..Default::default()
    };
    expect_err(
        cl.kv.put(p).await,
        Code::InvalidArgument,
        "etcdserver: value is provided",
    );

    // Txn writing one key twice.
    let put = |k: &str| RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: k.as_bytes().to_vec(),
            ..Default::default()
        })),
    };
    let t = TxnRequest {
        success: vec![put("/bad/d"), put("/bad/d")],
        ..Default::default()
    };
    expect_err(
        cl.kv.txn(t).await,
        Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    );

    // Future and compacted revisions.
    let r = RangeRequest {
        key: b"/bad/ok".to_vec(),
        revision: rev0 + 1000,
        ..Default::default()
    };
    expect_err(
        cl.kv.range(r).await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );
    let rev1 = cl.put("/bad/ok", "v2").await.unwrap();
    cl.kv
        .compact(CompactionRequest {
            revision: rev1,
            physical: true,
        })
        .await
        .unwrap();
    let r = RangeRequest {
        key: b"/bad/ok".to_vec(),
        revision: rev0,
        ..Default::default()
    };
    expect_err(
        cl.kv.range(r).await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    expect_err(
        cl.kv
            .compact(CompactionRequest {
                revision: rev0,
                physical: false,
            })
            .await,
        Code::OutOfRange,
        "required revision has been compacted",
    );

    // Watch on a compacted revision: created, then cancelled with the compact revision.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b"/bad/ok".to_vec(),
                start_revision: rev0,
                ..Default::default()
            },
        )),
    })
    .await
    .unwrap();
    let mut stream = cl
        .watch
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut cancelled = None;
    while let Some(m) = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("watch answer")
    {
        let m = m.unwrap();
        if m.canceled {
            cancelled = Some(m);
            break;
        }
    }
    let m = cancelled.expect("watch cancelled");
    assert_eq!(m.compact_revision, rev1);
    assert!(m.cancel_reason.contains("compacted"), "{}", m.cancel_reason);
    drop(tx);

    // Nothing bad was stored, and the store still serves.
    for k in ["/bad/big", "/bad/huge", "/bad/l", "/bad/missing", "/bad/d"] {
        assert_eq!(cl.get(k).await.unwrap().0, None, "{k} must not exist");
    }
    let r = cl.put("/bad/after", "fine").await.unwrap();
    assert!(r > rev1);
    assert_eq!(
        cl.get("/bad/after").await.unwrap().0.as_deref(),
        Some("fine")
    );
    assert_eq!(cl.get("/bad/ok").await.unwrap().0.as_deref(), Some("v2"));

    // SIGTERM stops the store cleanly (exit status 0, RocksDB closed before exit).
    let status = c.nodes[0].terminate();
    assert!(
        status.success(),
        "store exited with {status:?} after SIGTERM\n{}",
        c.logs()
    );
}
