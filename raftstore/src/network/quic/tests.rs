//! Tests of the QUIC peer transport: calls, certificates, deadlines, redials, bad frames and
//! replication streams, against a real endpoint on loopback.

use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use bytes::Bytes;

use super::*;
use crate::certs::{generate_ca, issue_node_cert, ClusterCa};
use crate::types::{Command, CommandResponse};

fn node_tls(ca: &ClusterCa, id: u64) -> Arc<PeerTls> {
    let n = issue_node_cert(ca, id, &["127.0.0.1".into()]).unwrap();
    Arc::new(PeerTls::from_pem(ca.cert_pem(), &n.cert_pem, &n.key_pem).unwrap())
}

/// Echoes proposals, answers `LeaseTimeToLive { id }` with `id` (id 1 waits for `gate`,
/// id 99 never answers), counts requests.
fn test_handler(gate: tokio::sync::watch::Receiver<bool>, seen: Arc<AtomicUsize>) -> PeerHandler {
    Arc::new(move |req| -> BoxFuture<'static, PeerResponse> {
        let mut gate = gate.clone();
        let seen = seen.clone();
        Box::pin(async move {
            seen.fetch_add(1, Ordering::SeqCst);
            match req {
                PeerRequest::Propose(Command::Put(b)) => {
                    PeerResponse::Proposed(CommandResponse::One(Ok(b)))
                }
                PeerRequest::LeaseTimeToLive { id: 99 } => std::future::pending().await,
                PeerRequest::LeaseTimeToLive { id } => {
                    if id == 1 {
                        let _ = gate.wait_for(|open| *open).await;
                    }
                    PeerResponse::LeaseTtl {
                        remaining: id,
                        granted: id,
                    }
                }
                _ => PeerResponse::Info {
                    client_addr: "c".into(),
                    name: "n".into(),
                    draining: false,
                },
            }
        })
    })
}

struct Harness {
    server: Arc<QuicServer>,
    addr: String,
    seen: Arc<AtomicUsize>,
    gate: tokio::sync::watch::Sender<bool>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start_server(tls: &PeerTls, at: SocketAddr) -> Harness {
    try_start_server(tls, at).unwrap()
}

fn try_start_server(tls: &PeerTls, at: SocketAddr) -> Result<Harness, QuicError> {
    // Replication streams of shard N answer each frame with N and the frame; shard 9 is
    // unknown.
    let streams: StreamHandler = Arc::new(|shard, frames| {
        if shard == 9 {
            return Err("no shard 9 here".into());
        }
        Ok(frames
            .map(move |mut f| {
                f.insert(0, shard as u8);
                f
            })
            .boxed())
    });
    let server = Arc::new(QuicServer::bind(at, tls)?.with_streams(streams));
    let addr = server.local_addr().unwrap().to_string();
    let (gate, gate_rx) = tokio::sync::watch::channel(false);
    let seen = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (server, handler, stop) = (
            server.clone(),
            test_handler(gate_rx, seen.clone()),
            stop.clone(),
        );
        async move { server.serve(handler, stop).await }
    });
    Ok(Harness {
        server,
        addr,
        seen,
        gate,
        stop,
        task,
    })
}

fn loopback() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn frames_round_trip_including_large_ones() {
    let ca = generate_ca().unwrap();
    let h = start_server(&node_tls(&ca, 1), loopback());
    let client = QuicTransport::new(node_tls(&ca, 2)).unwrap();
    match client.call(&h.addr, &PeerRequest::Info, T).await.unwrap() {
        PeerResponse::Info { name, .. } => assert_eq!(name, "n"),
        other => panic!("unexpected {other:?}"),
    }
    // 8 MiB: many QUIC packets and flow-control windows.
    let big = Bytes::from((0..8u32 << 20).map(|i| i as u8).collect::<Vec<u8>>());
    let req = PeerRequest::Propose(Command::Put(big.clone()));
    match client.call(&h.addr, &req, T).await.unwrap() {
        PeerResponse::Proposed(CommandResponse::One(Ok(b))) => assert!(b == big),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(h.seen.load(Ordering::SeqCst), 2);
    assert_eq!(h.server.connections_accepted(), 1, "one cached connection");
    client.close().await;
    h.stop.cancel();
    tokio::time::timeout(T, h.task).await.unwrap().unwrap();
}

#[tokio::test]
async fn peer_stats_describe_each_dialled_connection() {
    let ca = generate_ca().unwrap();
    let h = start_server(&node_tls(&ca, 1), loopback());
    let client = QuicTransport::new(node_tls(&ca, 2)).unwrap();
    assert!(client.peer_stats().is_empty(), "nothing dialled yet");
    for _ in 0..3 {
        client.call(&h.addr, &PeerRequest::Info, T).await.unwrap();
    }
    let stats = client.peer_stats();
    assert_eq!(stats.len(), 1, "one connection: {stats:?}");
    let (peer, _, s) = &stats[0];
    assert_eq!(peer, &h.addr);
    assert!(
        s.udp_tx.datagrams >= 3,
        "datagrams sent: {}",
        s.udp_tx.datagrams
    );
    assert!(
        s.udp_rx.datagrams >= 3,
        "datagrams received: {}",
        s.udp_rx.datagrams
    );
    assert!(!s.path.rtt.is_zero());
    client.close().await;
    assert!(
        client.peer_stats().is_empty(),
        "a closed connection is not reported"
    );
    h.stop.cancel();
    tokio::time::timeout(T, h.task).await.unwrap().unwrap();
}

#[test]
fn a_peer_counter_grows_by_the_difference_and_restarts_with_a_new_connection() {
    let now = [10, 20, 300, 400, 1, 5];
    assert_eq!(
        super::peer_count_growth(None, 7, now),
        now,
        "first publication"
    );
    let last = (7, [4, 20, 100, 399, 1, 2]);
    assert_eq!(
        super::peer_count_growth(Some(&last), 7, now),
        [6, 0, 200, 1, 0, 3],
        "same connection"
    );
    // Re-dialled: the new connection counts from zero, even where it is past the old one.
    let redialled = [2, 30, 50, 500, 0, 1];
    assert_eq!(
        super::peer_count_growth(Some(&last), 8, redialled),
        redialled
    );
}

#[tokio::test]
async fn a_client_or_server_of_another_ca_is_rejected() {
    let ca = generate_ca().unwrap();
    let other = generate_ca().unwrap();
    let h = start_server(&node_tls(&ca, 1), loopback());
    // Client certificate from another CA: the server refuses the handshake.
    let intruder = QuicTransport::new(node_tls(&other, 2)).unwrap();
    let err = intruder
        .call(&h.addr, &PeerRequest::Info, T)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    // Server certificate from another CA: the client refuses it.
    let h2 = start_server(&node_tls(&other, 3), loopback());
    let client = QuicTransport::new(node_tls(&ca, 2)).unwrap();
    let err = client
        .call(&h2.addr, &PeerRequest::Info, T)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    assert_eq!(h.seen.load(Ordering::SeqCst), 0);
    assert_eq!(h2.seen.load(Ordering::SeqCst), 0);
    assert_eq!(h.server.connections_accepted(), 0);
    // The legitimate client still gets through to its own cluster's server.
    client.call(&h.addr, &PeerRequest::Info, T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_a_connection_without_blocking_each_other() {
    let ca = generate_ca().unwrap();
    let h = start_server(&node_tls(&ca, 1), loopback());
    let client = QuicTransport::new(node_tls(&ca, 2)).unwrap();
    // A call the handler holds until the gate opens...
    let slow = tokio::spawn({
        let (c, a) = (client.clone(), h.addr.clone());
        async move { c.call(&a, &PeerRequest::LeaseTimeToLive { id: 1 }, T).await }
    });
    // ...does not hold up 64 concurrent calls on the same connection.
    let calls = (2..66).map(|id| {
        let (c, a) = (client.clone(), h.addr.clone());
        async move {
            (
                id,
                c.call(&a, &PeerRequest::LeaseTimeToLive { id }, T).await,
            )
        }
    });
    for (id, r) in futures::future::join_all(calls).await {
        match r.unwrap() {
            PeerResponse::LeaseTtl { remaining, .. } => assert_eq!(remaining, id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(!slow.is_finished(), "the gated call answered early");
    h.gate.send_replace(true);
    match tokio::time::timeout(T, slow)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        PeerResponse::LeaseTtl { remaining, .. } => assert_eq!(remaining, 1),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(h.server.connections_accepted(), 1);
}

#[tokio::test]
async fn a_call_past_its_deadline_times_out_and_the_connection_survives() {
    let ca = generate_ca().unwrap();
    let h = start_server(&node_tls(&ca, 1), loopback());
    let client = QuicTransport::new(node_tls(&ca, 2)).unwrap();
    let start = Instant::now();
    let timeout = Duration::from_millis(300);
    let err = client
        .call(&h.addr, &PeerRequest::LeaseTimeToLive { id: 99 }, timeout)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    client.call(&h.addr, &PeerRequest::Info, T).await.unwrap();
    assert_eq!(h.server.connections_accepted(), 1);
    // Nobody listening: a bounded failure, not a hang.
    let dead = {
        let s = std::net::UdpSocket::bind(loopback()).unwrap();
        s.local_addr().unwrap().to_string()
    };
    let err = client
        .call(&dead, &PeerRequest::Info, timeout)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Timeout { .. } | TransportError::Unreachable { .. }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn the_client_redials_after_the_server_restarts() {
    let ca = generate_ca().unwrap();
    let tls = node_tls(&ca, 1);
    let h = start_server(&tls, loopback());
    let client = QuicTransport::new(node_tls(&ca, 2)).unwrap();
    client.call(&h.addr, &PeerRequest::Info, T).await.unwrap();
    let at: SocketAddr = h.addr.parse().unwrap();
    h.stop.cancel();
    tokio::time::timeout(T, h.task).await.unwrap().unwrap();
    drop(h.server);
    // Same address again (the old socket may take a moment to be released).
    let deadline = Instant::now() + T;
    let h2 = loop {
        match try_start_server(&tls, at) {
            Ok(h) => break h,
            Err(e) => assert!(Instant::now() < deadline, "rebind {at}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let deadline = Instant::now() + T;
    loop {
        match client
            .call(&h2.addr, &PeerRequest::Info, Duration::from_secs(2))
            .await
        {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "no redial: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h2.server.connections_accepted(), 1);
}

#[tokio::test]
async fn oversized_and_garbage_frames_are_refused() {
    let ca = generate_ca().unwrap();
    let h = start_server(&node_tls(&ca, 1), loopback());
    let client = QuicTransport::new(node_tls(&ca, 2)).unwrap();
    let conn = client.connection(&h.addr).await.unwrap();
    // A length over the cap: the server resets the stream without reading on.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    send.finish().unwrap();
    let err = read_frame(&mut recv).await.unwrap_err();
    assert!(matches!(err, FrameError::Reset(_)), "{err}");
    // A well-formed frame that is not a PeerRequest.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    write_frame(&mut send, b"\xc1garbage").await.unwrap();
    let err = read_frame(&mut recv).await.unwrap_err();
    assert!(matches!(err, FrameError::Reset(_)), "{err}");
    assert_eq!(h.seen.load(Ordering::SeqCst), 0);
    // The connection is still good for real calls.
    client.call(&h.addr, &PeerRequest::Info, T).await.unwrap();
}

/// A replication stream carries many frames both ways on one QUIC stream: sent without
/// waiting for answers, answered in order by the shard the stream was opened for.
#[tokio::test]
async fn a_replication_stream_pipelines_frames_to_its_shard_in_order() {
    let ca = generate_ca().unwrap();
    let h = start_server(&node_tls(&ca, 1), loopback());
    let client = QuicTransport::new(node_tls(&ca, 2)).unwrap();
    assert!(!client.supports_streams(), "off by default");
    let client = client.with_streams(true);
    assert!(client.supports_streams());
    let frames: Vec<Vec<u8>> = (0..200u32)
        .map(|i| {
            // A few frames of a megabyte among small ones.
            let len = if i % 50 == 7 { 1 << 20 } else { 16 };
            let mut f = vec![(i % 251) as u8; len];
            f[..4].copy_from_slice(&i.to_be_bytes());
            f
        })
        .collect();
    let answers = client
        .open_stream(&h.addr, 3, futures::stream::iter(frames.clone()).boxed())
        .await
        .unwrap();
    let answers: Vec<Vec<u8>> = tokio::time::timeout(T, answers.collect::<Vec<_>>())
        .await
        .unwrap()
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        answers.len(),
        frames.len(),
        "every frame answered, then the end"
    );
    for (a, f) in answers.iter().zip(&frames) {
        assert_eq!(a[0], 3, "answered by shard 3");
        assert!(a[1..] == f[..], "answers in order");
    }
    // Streams and calls share the one connection.
    client.call(&h.addr, &PeerRequest::Info, T).await.unwrap();
    assert_eq!(h.server.connections_accepted(), 1);
    assert_eq!(h.seen.load(Ordering::SeqCst), 1, "a stream is not a call");
}

/// A stream to a shard the server does not have fails at its first answer; the
/// connection stays good.
#[tokio::test]
async fn a_replication_stream_to_an_unknown_shard_fails() {
    let ca = generate_ca().unwrap();
    let h = start_server(&node_tls(&ca, 1), loopback());
    let client = QuicTransport::new(node_tls(&ca, 2)).unwrap();
    let mut answers = client
        .open_stream(&h.addr, 9, futures::stream::iter(vec![vec![1u8]]).boxed())
        .await
        .unwrap();
    let first = tokio::time::timeout(T, answers.next()).await.unwrap();
    assert!(matches!(first, Some(Err(_))), "{first:?}");
    assert!(tokio::time::timeout(T, answers.next())
        .await
        .unwrap()
        .is_none());
    client.call(&h.addr, &PeerRequest::Info, T).await.unwrap();
}

/// Blocking the peer in the fault filter cuts a stream that is already open: the next
/// answer is an error and the stream ends, as with a partition.
#[tokio::test]
async fn the_fault_filter_cuts_an_open_replication_stream() {
    let ca = generate_ca().unwrap();
    let h = start_server(&node_tls(&ca, 1), loopback());
    let client = QuicTransport::new(node_tls(&ca, 2)).unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let mut answers = client
        .open_stream(
            &h.addr,
            1,
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed(),
        )
        .await
        .unwrap();
    tx.send(vec![1]).unwrap();
    let first = tokio::time::timeout(T, answers.next()).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), vec![1, 1]);
    client.fault().set_blocked([h.addr.clone()]);
    tx.send(vec![2]).unwrap();
    let next = tokio::time::timeout(T, answers.next()).await.unwrap();
    assert!(
        matches!(next, Some(Err(TransportError::Unreachable { .. }))),
        "{next:?}"
    );
    assert!(tokio::time::timeout(T, answers.next())
        .await
        .unwrap()
        .is_none());
    // Healed: a new stream works.
    client.fault().set_blocked(Vec::<String>::new());
    let answers = client
        .open_stream(&h.addr, 1, futures::stream::iter(vec![vec![3u8]]).boxed())
        .await
        .unwrap();
    let all: Vec<_> = tokio::time::timeout(T, answers.collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].as_ref().unwrap(), &vec![1, 3]);
}
