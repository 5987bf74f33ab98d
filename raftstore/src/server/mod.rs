//! The store's listeners: the etcd v3 gRPC API (plus `/metrics` and `/health` over HTTP/1.1 on
//! the same port, as etcd does) and the peer service: gRPC on the peer TCP port, or (when the
//! node's peer transport is QUIC) QUIC with mutual TLS on the same `host:port` over UDP.

mod kv;
mod lease;
mod maintenance;
pub mod status;
mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use openraft::async_runtime::WatchReceiver;
use prost::Message;
use tonic::{Request, Response, Status};

pub use kv::KvService;
pub use lease::LeaseService;
pub use maintenance::{ClusterService, MaintenanceService, ETCD_API_VERSION};
pub use watch::WatchService;

use crate::error::StoreError;
use crate::network::{
    PeerHandler, PeerRequest, PeerTransportKind, QuicServer, StreamHandler, MAX_PEER_FRAME,
};
use crate::node::StoreNode;
use crate::proto::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use crate::proto::peer::peer_server::{Peer, PeerServer};
use crate::proto::peer::PeerFrame;
use crate::types::{decode, encode};

/// gRPC's own framing allowance above the request limit (etcd adds the same 512 KiB).
const GRPC_OVERHEAD: usize = 512 * 1024;

/// HTTP/2 windows for client connections: a 1.5 MiB request or a large watch response must
/// not wait on window updates every 64 KiB.
const CLIENT_STREAM_WINDOW: u32 = 4 << 20;
const CLIENT_CONN_WINDOW: u32 = 16 << 20;

/// Rejects requests over the node's `max_request_bytes`.
pub(crate) fn check_size<M: Message>(node: &StoreNode, m: &M) -> Result<(), StoreError> {
    if m.encoded_len() > node.cfg.max_request_bytes {
        return Err(StoreError::RequestTooLarge);
    }
    Ok(())
}

/// Records count and latency of one API call.
pub(crate) async fn observe<T>(
    method: &'static str,
    f: impl Future<Output = Result<Response<T>, Status>>,
) -> Result<Response<T>, Status> {
    let start = Instant::now();
    let r = f.await;
    let code = match &r {
        Ok(_) => "OK",
        Err(s) => code_label(s.code()),
    };
    metrics::counter!("navarch_store_requests_total", "method" => method, "code" => code)
        .increment(1);
    metrics::histogram!("navarch_store_request_duration_seconds", "method" => method)
        .record(start.elapsed().as_secs_f64());
    r
}

/// A gRPC status code as the `code` label of `navarch_store_requests_total` (its `Debug` name),
/// without formatting a string for every request.
fn code_label(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "Ok",
        Cancelled => "Cancelled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// The process-wide Prometheus recorder.
pub fn prometheus() -> &'static PrometheusHandle {
    static H: OnceLock<PrometheusHandle> = OnceLock::new();
    H.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (several nodes in one test process).
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

struct PeerService {
    node: Arc<StoreNode>,
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn call(&self, req: Request<PeerFrame>) -> Result<Response<PeerFrame>, Status> {
        let req: PeerRequest = decode(&req.into_inner().payload)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let resp = self.node.on_peer(req).await;
        let payload = encode(&resp).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(PeerFrame { payload }))
    }
    type StreamStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<PeerFrame, Status>> + Send + 'static>>;

    async fn stream(
        &self,
        req: Request<tonic::Streaming<PeerFrame>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        use futures::StreamExt;
        let shard: crate::shard::ShardId = req
            .metadata()
            .get(crate::network::grpc::SHARD_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(crate::shard::DEFAULT_SHARD);
        // Frames until the first transport error; that ends the stream.
        let frames = req
            .into_inner()
            .scan((), |_, frame| {
                futures::future::ready(frame.ok().map(|f| f.payload))
            })
            .boxed();
        let answers = self
            .node
            .append_stream(shard, frames)
            .map_err(Status::not_found)?
            .map(|payload| Ok(PeerFrame { payload }));
        Ok(Response::new(Box::pin(answers)))
    }
}

fn update_gauges(node: &StoreNode) {
    let mut streams = 0;
    let mut watchers = 0;
    for shard in &node.shards {
        let m = shard.raft.metrics().borrow_watched().clone();
        let label = node.cfg.shards.name(shard.id).to_string();
        metrics::gauge!("navarch_store_raft_term", "shard" => label.clone())
            .set(m.current_term as f64);
        metrics::gauge!("navarch_store_is_leader", "shard" => label.clone())
            .set(if node.is_leader(shard.id) { 1.0 } else { 0.0 });
        metrics::gauge!("navarch_store_applied_index", "shard" => label.clone())
            .set(m.last_applied.as_ref().map_or(0, |l| l.index) as f64);
        metrics::gauge!("navarch_store_revision", "shard" => label)
            .set(shard.hub.revision() as f64);
        let (s, w) = shard.hub.counts();
        streams += s;
        watchers += w;
    }
    metrics::gauge!("navarch_store_hub_streams").set(streams as f64);
    metrics::gauge!("navarch_store_hub_watchers").set(watchers as f64);
    metrics::gauge!("navarch_store_db_size_bytes").set(node.engine.approximate_size() as f64);
    node.transport.record_peer_metrics();
}

/// Serves the etcd API on `client` and the peer service on `peer` until `shutdown` resolves.
pub async fn serve(
    node: Arc<StoreNode>,
    client: tokio::net::TcpListener,
    peer: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StoreError> {
    let handle = prometheus();
    let limit = node.cfg.max_request_bytes + GRPC_OVERHEAD;
    let token = node.shutdown.clone();
    let stop = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop.cancel();
    });

    let routes = tonic::service::Routes::new(
        KvServer::new(KvService::new(node.clone()))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(WatchServer::new(WatchService::new(node.clone())).max_decoding_message_size(limit))
    .add_service(LeaseServer::new(LeaseService::new(node.clone())))
    .add_service(ClusterServer::new(ClusterService::new(node.clone())))
    .add_service(MaintenanceServer::new(MaintenanceService::new(
        node.clone(),
    )));
    let health_node = node.clone();
    let http = routes
        .into_axum_router()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let body = handle.render();
                async move { body }
            }),
        )
        .route(
            "/health",
            axum::routing::get(move || {
                let ok = health_node
                    .shards
                    .iter()
                    .all(|s| s.raft.metrics().borrow_watched().current_leader.is_some());
                async move {
                    if ok {
                        (axum::http::StatusCode::OK, r#"{"health":"true"}"#)
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            r#"{"health":"false","reason":"no leader"}"#,
                        )
                    }
                }
            }),
        );

    let status_node = node.clone();
    let http = http.route(
        "/shards",
        axum::routing::get(move || {
            let body = crate::server::status::shards_json(&status_node);
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    let transfer_node = node.clone();
    let drain_node = node.clone();
    let http = http
        .route(
            "/shards/transfer",
            axum::routing::post(move |uri: axum::http::Uri| {
                let node = transfer_node.clone();
                async move { admin_reply(status::transfer(&node, uri.query().unwrap_or("")).await) }
            }),
        )
        .route(
            "/drain",
            axum::routing::post(move |uri: axum::http::Uri| {
                let node = drain_node.clone();
                async move { admin_reply(status::drain(&node, uri.query().unwrap_or(""))) }
            }),
        );
    let fault_node = node.clone();
    let http = http.route(
        "/fault/partition",
        axum::routing::post(move |uri: axum::http::Uri| {
            let node = fault_node.clone();
            async move { admin_reply(status::partition(&node, uri.query().unwrap_or(""))) }
        }),
    );
    let members_node = node.clone();
    let change_node = node.clone();
    let http = http
        .route(
            "/members",
            axum::routing::get(move || {
                let body = status::members_json(&members_node);
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        )
        .route(
            "/members/{op}",
            axum::routing::post(
                move |axum::extract::Path(op): axum::extract::Path<String>,
                      uri: axum::http::Uri| {
                    let node = change_node.clone();
                    async move {
                        admin_reply(
                            status::member_change(&node, &op, uri.query().unwrap_or("")).await,
                        )
                    }
                },
            ),
        );
    let gauges_node = node.clone();
    let gauges_stop = token.clone();
    tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = gauges_stop.cancelled() => return,
                _ = t.tick() => update_gauges(&gauges_node),
            }
        }
    });

    // QUIC peers: bound before anything serves, so a taken UDP port fails the start.
    let quic = match &*node.transport {
        PeerTransportKind::Quic(t) => {
            let addr = peer
                .local_addr()
                .map_err(|e| StoreError::Internal(format!("peer listener address: {e}")))?;
            let stream_node = node.clone();
            let streams: StreamHandler =
                Arc::new(move |shard, frames| stream_node.append_stream(shard, frames));
            let server = QuicServer::bind(addr, t.tls())
                .map_err(|e| StoreError::Internal(e.to_string()))?
                .with_streams(streams);
            tracing::info!(%addr, "QUIC peer endpoint listening (mutual TLS)");
            Some(server)
        }
        PeerTransportKind::Grpc(_) => None,
    };
    let grpc_peers = quic.is_none();
    let quic_node = node.clone();
    let handler: PeerHandler = Arc::new(
        move |req| -> futures::future::BoxFuture<'static, crate::network::PeerResponse> {
            let node = quic_node.clone();
            Box::pin(async move { node.on_peer(req).await })
        },
    );
    let quic_token = token.clone();
    let quic_server = async move {
        if let Some(s) = quic {
            s.serve(handler, quic_token).await;
        }
    };

    // With QUIC, peers are served only over mutual TLS: an open plaintext gRPC peer service
    // would let anyone who reaches the port bypass it, so the TCP peer listener is closed.
    let peer_service = PeerServer::new(PeerService { node: node.clone() })
        .max_decoding_message_size(MAX_PEER_FRAME)
        .max_encoding_message_size(MAX_PEER_FRAME);
    let peer_token = token.clone();
    let peer_server = async move {
        if !grpc_peers {
            drop(peer);
            return Ok(());
        }
        tonic::transport::Server::builder()
            .initial_stream_window_size(crate::network::PEER_STREAM_WINDOW)
            .initial_connection_window_size(crate::network::PEER_CONN_WINDOW)
            .add_service(peer_service)
            .serve_with_incoming_shutdown(incoming(peer), peer_token.cancelled_owned())
            .await
    };
    let client_server = tonic::transport::Server::builder()
        .initial_stream_window_size(CLIENT_STREAM_WINDOW)
        .initial_connection_window_size(CLIENT_CONN_WINDOW)
        .accept_http1(true)
        .add_routes(tonic::service::Routes::from(http))
        .serve_with_incoming_shutdown(incoming(client), token.clone().cancelled_owned());
    tracing::info!(
        client = %node.cfg.client_addr,
        peer = %node.cfg.peer_addr,
        id = node.cfg.id,
        peer_transport = node.transport.name(),
        "store serving"
    );
    let servers = async { tokio::join!(peer_server, client_server, quic_server) };
    tokio::pin!(servers);
    // Graceful shutdown waits for open streams, but peers' replication streams and clients'
    // watch streams only end when this node's Raft stops, which happens after `serve`
    // returns: bound the wait so SIGTERM always completes.
    let grace = async {
        token.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let (a, b, ()) = tokio::select! {
        r = &mut servers => r,
        _ = grace => {
            tracing::info!(grace = ?SHUTDOWN_GRACE, "closing the streams still open at shutdown");
            return Ok(());
        }
    };
    a.map_err(|e| StoreError::Internal(format!("peer server: {e}")))?;
    b.map_err(|e| StoreError::Internal(format!("client server: {e}")))?;
    Ok(())
}

/// How long a stopping node waits for open streams before closing them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

fn admin_reply(r: Result<String, (u16, String)>) -> (axum::http::StatusCode, String) {
    match r {
        Ok(body) => (axum::http::StatusCode::OK, body),
        Err((code, msg)) => (
            axum::http::StatusCode::from_u16(code)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            msg,
        ),
    }
}

/// The connections `listener` accepts, with Nagle's algorithm off. `Server::tcp_nodelay` only
/// reaches sockets tonic binds itself, not a listener handed to `serve_with_incoming`: without
/// this, a response whose headers left in one segment had its body held back until the
/// client's delayed ACK, 40 ms later (a lone client's forwarded writes stalled at p99).
fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Binds a listener, with a clear error naming the address.
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, StoreError> {
    let sa: SocketAddr = addr
        .parse()
        .map_err(|e| StoreError::Internal(format!("bad address {addr:?}: {e}")))?;
    tokio::net::TcpListener::bind(sa)
        .await
        .map_err(|e| StoreError::Internal(format!("bind {addr}: {e}")))
}

#[cfg(test)]
mod code_label_tests {
    /// Every code's label is the name it had when it was formatted per request.
    #[test]
    fn code_labels_are_the_debug_names() {
        for n in 0..=16 {
            let code = tonic::Code::from_i32(n);
            assert_eq!(super::code_label(code), format!("{code:?}"));
        }
    }
}

#[cfg(test)]
mod incoming_tests {
    use tokio_stream::StreamExt;

    /// Every connection the client and peer servers accept has Nagle's algorithm off.
    #[tokio::test]
    async fn accepted_connections_have_nodelay() {
        let listener = super::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = super::incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = tokio::time::timeout(std::time::Duration::from_secs(10), incoming.next())
            .await
            .expect("a connection within 10 s")
            .expect("the listener is open")
            .unwrap();
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY is off");
    }
}
