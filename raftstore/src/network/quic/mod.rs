//! [`PeerTransport`] over QUIC (quinn) with mutual TLS, and the server side that answers it.
//!
//! ```text
//! call(addr, req) ─► cached Connection to addr (dialled on a miss or after it closed,
//!                    server name `navarch-peer`, client certificate of this node)
//!                 ─► open_bi ─► [u32 BE length][MessagePack PeerRequest] ─► finish
//!                              QuicServer::serve ─► accept_bi ─► handler(req) (on_peer)
//!                 ◄─ [u32 BE length][MessagePack PeerResponse] ◄─ finish
//! ```
//!
//! One connection per peer address and one bidirectional stream per call, so a snapshot
//! streaming on one call never holds up another call's heartbeat (QUIC streams do not block
//! each other; snapshot streams also get a lower send priority). Frames are capped at
//! [`MAX_PEER_FRAME`], and the whole call (dial, send, handler, response) is bounded by its
//! timeout. Both sides require a certificate issued by the cluster CA (see [`crate::certs`]).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use parking_lot::Mutex;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{
    ConnectionError, Endpoint, ReadError, ReadExactError, RecvStream, SendStream, VarInt,
    WriteError,
};
use tokio_util::sync::CancellationToken;

use super::{
    FaultFilter, FrameStream, PeerRequest, PeerResponse, PeerTransport, TransportError,
    MAX_PEER_FRAME,
};
use crate::certs::{CertError, PeerTls, PEER_SERVER_NAME};
use crate::shard::ShardId;
use crate::types::{decode, encode, encode_sized};

/// ALPN protocol id of the peer protocol over QUIC.
pub const PEER_ALPN: &[u8] = b"navarch-peer/1";

/// Keep-alive on idle peer connections (well under [`IDLE_TIMEOUT_MS`]).
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// A connection (or handshake) with no traffic for this long is closed.
const IDLE_TIMEOUT_MS: u32 = 5_000;
/// Concurrent calls (streams) one connection admits.
const MAX_CONCURRENT_CALLS: u32 = 1024;
/// How long shutdown waits for connections to close cleanly.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Application close code: orderly shutdown.
const CODE_SHUTDOWN: u32 = 0;
/// Stream reset code: the server could not read or decode the request frame.
const CODE_BAD_REQUEST: u32 = 1;
/// Stream reset code: the server could not encode its response within the frame cap.
const CODE_BAD_RESPONSE: u32 = 2;
/// Stream reset code: the fault filter blocked the peer while a replication stream was open.
const CODE_BLOCKED: u32 = 3;

/// Errors setting up a QUIC endpoint.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    /// The TLS material could not be used.
    #[error("peer TLS material: {0}")]
    Tls(#[from] CertError),
    /// rustls produced a configuration QUIC cannot use.
    #[error("QUIC crypto configuration: {0}")]
    Crypto(String),
    /// The UDP socket could not be bound.
    #[error("bind QUIC endpoint on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// The largest UDP payload path-MTU discovery may probe for. Peers usually sit on one LAN or
/// host (jumbo frames, loopback's 64 KiB MTU), where QUIC's default bound of 1,452 bytes
/// splits every 3 KiB value into three packets, each a syscall and a decryption; discovery
/// (with black-hole detection) settles on what the path really carries.
const MTU_UPPER_BOUND: u16 = 65_527;

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MTU_UPPER_BOUND);
    t.mtu_discovery_config(Some(mtu));
    t.max_concurrent_bidi_streams(VarInt::from_u32(MAX_CONCURRENT_CALLS))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(Some(VarInt::from_u32(IDLE_TIMEOUT_MS).into()));
    Arc::new(t)
}

/// Why reading or writing a frame failed.
#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("frame of {0} bytes exceeds the {MAX_PEER_FRAME}-byte cap")]
    TooLarge(usize),
    #[error("stream ended in the middle of a frame")]
    Truncated,
    #[error("stream reset by peer (code {0})")]
    Reset(VarInt),
    #[error("peer stopped reading (code {0})")]
    Stopped(VarInt),
    #[error("connection lost: {0}")]
    ConnectionLost(ConnectionError),
    #[error("{0}")]
    Other(String),
}

impl From<ReadExactError> for FrameError {
    fn from(e: ReadExactError) -> Self {
        match e {
            ReadExactError::FinishedEarly(_) => FrameError::Truncated,
            ReadExactError::ReadError(ReadError::Reset(code)) => FrameError::Reset(code),
            ReadExactError::ReadError(ReadError::ConnectionLost(c)) => {
                FrameError::ConnectionLost(c)
            }
            ReadExactError::ReadError(other) => FrameError::Other(other.to_string()),
        }
    }
}

impl From<WriteError> for FrameError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Stopped(code) => FrameError::Stopped(code),
            WriteError::ConnectionLost(c) => FrameError::ConnectionLost(c),
            other => FrameError::Other(other.to_string()),
        }
    }
}

impl FrameError {
    fn into_transport(self, addr: &str) -> TransportError {
        match self {
            FrameError::ConnectionLost(e) => unreachable(addr, e),
            other => TransportError::BadFrame {
                addr: addr.into(),
                reason: other.to_string(),
            },
        }
    }
}

/// Reads one length-prefixed frame, refusing lengths over the cap before allocating.
async fn read_frame(recv: &mut RecvStream) -> Result<Vec<u8>, FrameError> {
    read_frame_or_end(recv).await?.ok_or(FrameError::Truncated)
}

/// Reads one length-prefixed frame, or `None` if the stream was finished where a frame would
/// begin (the end of a replication stream).
async fn read_frame_or_end(recv: &mut RecvStream) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        r => r?,
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_PEER_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    // Filled chunk by chunk as the stream delivers it: no zeroing of a buffer that is
    // overwritten at once (frames carry Raft entries of up to megabytes).
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        match recv.read_chunk(len - buf.len(), true).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) => return Err(FrameError::Truncated),
            Err(e) => return Err(ReadExactError::ReadError(e).into()),
        }
    }
    Ok(Some(buf))
}

/// Writes one length-prefixed frame and finishes the stream.
async fn write_frame(send: &mut SendStream, payload: &[u8]) -> Result<(), FrameError> {
    write_frame_open(send, payload).await?;
    send.finish().map_err(|e| FrameError::Other(e.to_string()))
}

/// Writes one length-prefixed frame, leaving the stream open for more.
async fn write_frame_open(send: &mut SendStream, payload: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l as usize <= MAX_PEER_FRAME)
        .ok_or(FrameError::TooLarge(payload.len()))?;
    send.write_all(&len.to_be_bytes()).await?;
    send.write_all(payload).await?;
    Ok(())
}

fn unreachable(addr: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::Unreachable {
        addr: addr.into(),
        reason: e.to_string(),
    }
}

/// One peer's cached connection; the async lock makes concurrent callers share one dial.
type PeerSlot = Arc<tokio::sync::Mutex<Option<quinn::Connection>>>;

struct ClientInner {
    tls: Arc<PeerTls>,
    config: quinn::ClientConfig,
    /// Client endpoints, created on first use: `[IPv4, IPv6]`.
    endpoints: Mutex<[Option<Endpoint>; 2]>,
    peers: Mutex<HashMap<String, PeerSlot>>,
    /// Per peer: the connection (`stable_id`) and counter values last published as metrics.
    published: Mutex<HashMap<String, (usize, PeerCounts)>>,
}

/// The connection statistics published as counters, in [`PEER_COUNTERS`] order.
type PeerCounts = [u64; 6];

/// Counter names of [`QuicTransport::record_peer_metrics`].
const PEER_COUNTERS: [&str; 6] = [
    "navarch_store_peer_datagrams_sent_total",
    "navarch_store_peer_datagrams_received_total",
    "navarch_store_peer_bytes_sent_total",
    "navarch_store_peer_bytes_received_total",
    "navarch_store_peer_lost_packets_total",
    "navarch_store_peer_ack_frames_sent_total",
];

/// What a peer's counters grew by since `last` was published: the whole of `now` when the
/// connection is another one than last time (a re-dialled connection counts from zero).
fn peer_count_growth(last: Option<&(usize, PeerCounts)>, id: usize, now: PeerCounts) -> PeerCounts {
    match last {
        Some((last_id, last)) if *last_id == id => {
            std::array::from_fn(|i| now[i].saturating_sub(last[i]))
        }
        _ => now,
    }
}

/// [`PeerTransport`] over QUIC with mutual TLS: one cached connection per peer address
/// (re-dialled once it has closed), one bidirectional stream per call.
#[derive(Clone)]
pub struct QuicTransport {
    inner: Arc<ClientInner>,
    fault: FaultFilter,
    streams: bool,
}

impl QuicTransport {
    /// A transport presenting `tls`'s certificate and trusting only its CA.
    pub fn new(tls: Arc<PeerTls>) -> Result<Self, QuicError> {
        let mut crypto = tls.client_config()?;
        crypto.alpn_protocols = vec![PEER_ALPN.to_vec()];
        let crypto =
            QuicClientConfig::try_from(crypto).map_err(|e| QuicError::Crypto(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(transport_config());
        Ok(Self {
            inner: Arc::new(ClientInner {
                tls,
                config,
                endpoints: Mutex::new([None, None]),
                peers: Mutex::default(),
                published: Mutex::default(),
            }),
            fault: FaultFilter::default(),
            streams: false,
        })
    }

    /// Whether Raft replication uses pipelined streams ([`PeerRequest::AppendStream`]) or
    /// one AppendEntries call at a time (a transport's own default; a node takes
    /// `NodeConfig::peer_streams`, on by default).
    pub fn with_streams(mut self, on: bool) -> Self {
        self.streams = on;
        self
    }

    /// Blocked peers (fault injection).
    pub fn fault(&self) -> &FaultFilter {
        &self.fault
    }

    /// The TLS material (the node's server side uses the same).
    pub fn tls(&self) -> &Arc<PeerTls> {
        &self.inner.tls
    }

    /// Closes every outgoing connection and waits (briefly) until peers were told.
    pub async fn close(&self) {
        let endpoints: Vec<Endpoint> = self
            .inner
            .endpoints
            .lock()
            .iter()
            .flatten()
            .cloned()
            .collect();
        for e in &endpoints {
            e.close(VarInt::from_u32(CODE_SHUTDOWN), b"shutting down");
        }
        for e in &endpoints {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, e.wait_idle()).await;
        }
    }

    fn endpoint(&self, remote: &SocketAddr) -> std::io::Result<Endpoint> {
        let mut g = self.inner.endpoints.lock();
        let (slot, bind): (usize, SocketAddr) = if remote.is_ipv4() {
            (0, (Ipv4Addr::UNSPECIFIED, 0).into())
        } else {
            (1, (Ipv6Addr::UNSPECIFIED, 0).into())
        };
        if let Some(e) = &g[slot] {
            return Ok(e.clone());
        }
        let mut e = Endpoint::client(bind)?;
        e.set_default_client_config(self.inner.config.clone());
        g[slot] = Some(e.clone());
        Ok(e)
    }

    /// Statistics of the live connections this node dialled, by peer address, with each
    /// connection's `stable_id` (a connection being dialled at this moment is skipped).
    pub fn peer_stats(&self) -> Vec<(String, usize, quinn::ConnectionStats)> {
        let slots: Vec<(String, PeerSlot)> = self
            .inner
            .peers
            .lock()
            .iter()
            .map(|(addr, slot)| (addr.clone(), Arc::clone(slot)))
            .collect();
        slots
            .into_iter()
            .filter_map(|(addr, slot)| {
                let cached = slot.try_lock().ok()?;
                let conn = cached.as_ref().filter(|c| c.close_reason().is_none())?;
                Some((addr, conn.stable_id(), conn.stats()))
            })
            .collect()
    }

    /// Publishes [`Self::peer_stats`] as metrics labelled by peer address: round-trip time,
    /// congestion window, datagrams and bytes sent and received, packets lost, and
    /// acknowledgement frames sent (most ride in packets that carry data; the rest are
    /// datagrams of their own). A re-dialled connection's counts add to the peer's counters.
    /// A peer no longer dialled keeps its last values.
    pub fn record_peer_metrics(&self) {
        let mut published = self.inner.published.lock();
        for (peer, id, s) in self.peer_stats() {
            let l = [("peer", peer.clone())];
            metrics::gauge!("navarch_store_peer_rtt_seconds", &l).set(s.path.rtt.as_secs_f64());
            metrics::gauge!("navarch_store_peer_congestion_window_bytes", &l)
                .set(s.path.cwnd as f64);
            let now = [
                s.udp_tx.datagrams,
                s.udp_rx.datagrams,
                s.udp_tx.bytes,
                s.udp_rx.bytes,
                s.path.lost_packets,
                s.frame_tx.acks,
            ];
            let growth = peer_count_growth(published.get(&peer), id, now);
            for (name, n) in PEER_COUNTERS.into_iter().zip(growth) {
                metrics::counter!(name, &l).increment(n);
            }
            published.insert(peer, (id, now));
        }
    }

    /// The live connection to `addr`, dialling it if there is none.
    async fn connection(&self, addr: &str) -> Result<quinn::Connection, TransportError> {
        let slot = self
            .inner
            .peers
            .lock()
            .entry(addr.to_string())
            .or_default()
            .clone();
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
            tracing::debug!(peer = addr, reason = ?c.close_reason(), "peer connection closed; redialling");
        }
        *cached = None;
        let remote = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| unreachable(addr, format!("resolve: {e}")))?
            .next()
            .ok_or_else(|| unreachable(addr, "resolves to no address"))?;
        let endpoint = self
            .endpoint(&remote)
            .map_err(|e| unreachable(addr, format!("client endpoint: {e}")))?;
        let conn = endpoint
            .connect(remote, PEER_SERVER_NAME)
            .map_err(|e| unreachable(addr, e))?
            .await
            .map_err(|e| unreachable(addr, format!("handshake: {e}")))?;
        *cached = Some(conn.clone());
        Ok(conn)
    }

    async fn call_inner(
        &self,
        addr: &str,
        req: &PeerRequest,
    ) -> Result<PeerResponse, TransportError> {
        let payload = encode_sized(req, req.size_hint()).map_err(|e| TransportError::BadFrame {
            addr: addr.into(),
            reason: e.to_string(),
        })?;
        let conn = self.connection(addr).await?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| unreachable(addr, e))?;
        if req.is_bulk() {
            // Bulk data yields to heartbeats and votes on the same connection.
            let _ = send.set_priority(-1);
        }
        write_frame(&mut send, &payload)
            .await
            .map_err(|e| e.into_transport(addr))?;
        let resp = read_frame(&mut recv)
            .await
            .map_err(|e| e.into_transport(addr))?;
        decode(&resp).map_err(|e| TransportError::BadFrame {
            addr: addr.into(),
            reason: e.to_string(),
        })
    }
}

impl PeerTransport for QuicTransport {
    async fn call(
        &self,
        addr: &str,
        req: &PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, TransportError> {
        self.fault.check(addr)?;
        // Dropping the streams on timeout resets them; the connection stays usable.
        match tokio::time::timeout(timeout, self.call_inner(addr, req)).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout {
                addr: addr.into(),
                timeout,
            }),
        }
    }

    fn supports_streams(&self) -> bool {
        self.streams
    }

    fn open_stream(
        &self,
        addr: &str,
        shard: ShardId,
        frames: BoxStream<'static, Vec<u8>>,
    ) -> BoxFuture<'static, Result<FrameStream, TransportError>> {
        Box::pin(
            self.clone()
                .open_append_stream(addr.to_string(), shard, frames),
        )
    }
}

impl QuicTransport {
    /// The replication stream of `open_stream` on a stream of the cached connection.
    async fn open_append_stream(
        self,
        addr: String,
        shard: ShardId,
        frames: BoxStream<'static, Vec<u8>>,
    ) -> Result<FrameStream, TransportError> {
        self.fault.check(&addr)?;
        let head =
            encode(&PeerRequest::to_shard(shard, PeerRequest::AppendStream)).map_err(|e| {
                TransportError::BadFrame {
                    addr: addr.clone(),
                    reason: e.to_string(),
                }
            })?;
        let conn = self.connection(&addr).await?;
        let (mut send, recv) = conn.open_bi().await.map_err(|e| unreachable(&addr, e))?;
        write_frame_open(&mut send, &head)
            .await
            .map_err(|e| e.into_transport(&addr))?;
        // Requests leave as openraft makes them, while answers come back: the pipeline. The
        // fault filter is checked per frame, so a partition cuts an open stream too.
        let fault = self.fault.clone();
        let to = addr.clone();
        tokio::spawn(async move {
            let mut frames = frames;
            while let Some(frame) = frames.next().await {
                if fault.check(&to).is_err() {
                    let _ = send.reset(VarInt::from_u32(CODE_BLOCKED));
                    return;
                }
                if let Err(e) = write_frame_open(&mut send, &frame).await {
                    tracing::debug!(peer = %to, error = %e, "replication stream send ended");
                    return;
                }
            }
            let _ = send.finish();
        });
        let fault = self.fault.clone();
        let answers = futures::stream::unfold(Some((recv, addr, fault)), |state| async move {
            let (mut recv, addr, fault) = state?;
            // A blocked peer's stream ends in `Unreachable`, however it ended.
            let answer = match read_frame_or_end(&mut recv).await {
                Ok(None) => Err(fault.check(&addr).err()?),
                Ok(Some(frame)) => fault.check(&addr).map(|()| frame),
                Err(e) => Err(fault
                    .check(&addr)
                    .err()
                    .unwrap_or_else(|| e.into_transport(&addr))),
            };
            // After an error the stream ends.
            let next = answer.is_ok().then_some((recv, addr, fault));
            Some((answer, next))
        });
        Ok(answers.boxed())
    }
}

/// Answers one peer request (a node passes its `on_peer`).
pub type PeerHandler = Arc<dyn Fn(PeerRequest) -> BoxFuture<'static, PeerResponse> + Send + Sync>;

/// Serves a replication stream of a shard: request frames in, answer frames out (a node
/// passes its `append_stream`); `Err` refuses the stream (an unknown shard).
pub type StreamHandler = Arc<
    dyn Fn(ShardId, BoxStream<'static, Vec<u8>>) -> Result<BoxStream<'static, Vec<u8>>, String>
        + Send
        + Sync,
>;

/// The server side: a QUIC endpoint that requires client certificates of the cluster CA and
/// answers every stream's request frame through a [`PeerHandler`].
pub struct QuicServer {
    endpoint: Endpoint,
    accepted: Arc<AtomicU64>,
    streams: Option<StreamHandler>,
}

impl QuicServer {
    /// Binds the UDP socket at `addr` with `tls`'s certificate.
    pub fn bind(addr: SocketAddr, tls: &PeerTls) -> Result<Self, QuicError> {
        let mut crypto = tls.server_config()?;
        crypto.alpn_protocols = vec![PEER_ALPN.to_vec()];
        let crypto =
            QuicServerConfig::try_from(crypto).map_err(|e| QuicError::Crypto(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(transport_config());
        let endpoint =
            Endpoint::server(config, addr).map_err(|source| QuicError::Bind { addr, source })?;
        Ok(Self {
            endpoint,
            accepted: Arc::default(),
            streams: None,
        })
    }

    /// Serves replication streams ([`PeerRequest::AppendStream`]) with `handler`; without
    /// one they are refused (reset), as by a member of a version without them.
    pub fn with_streams(mut self, handler: StreamHandler) -> Self {
        self.streams = Some(handler);
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Connections that completed the mutual-TLS handshake so far.
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Accepts connections and streams until `shutdown` is cancelled, then closes every
    /// connection and waits (briefly) for peers to be told.
    pub async fn serve(&self, handler: PeerHandler, shutdown: CancellationToken) {
        loop {
            let incoming = tokio::select! {
                _ = shutdown.cancelled() => break,
                i = self.endpoint.accept() => match i {
                    Some(i) => i,
                    None => break,
                },
            };
            tokio::spawn(serve_connection(
                incoming,
                handler.clone(),
                self.streams.clone(),
                shutdown.clone(),
                self.accepted.clone(),
            ));
        }
        self.endpoint
            .close(VarInt::from_u32(CODE_SHUTDOWN), b"shutting down");
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, self.endpoint.wait_idle()).await;
    }
}

/// Binds `addr` and serves peers with `handler` until `shutdown` is cancelled.
pub async fn serve_quic(
    addr: SocketAddr,
    tls: &PeerTls,
    handler: PeerHandler,
    shutdown: CancellationToken,
) -> Result<(), QuicError> {
    QuicServer::bind(addr, tls)?.serve(handler, shutdown).await;
    Ok(())
}

async fn serve_connection(
    incoming: quinn::Incoming,
    handler: PeerHandler,
    streams: Option<StreamHandler>,
    shutdown: CancellationToken,
    accepted: Arc<AtomicU64>,
) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%remote, error = %e, "peer QUIC handshake failed");
            return;
        }
    };
    accepted.fetch_add(1, Ordering::Relaxed);
    loop {
        let (send, recv) = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = conn.accept_bi() => match s {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%remote, error = %e, "peer connection ended");
                    return;
                }
            },
        };
        tokio::spawn(serve_stream(send, recv, handler.clone(), streams.clone()));
    }
}

async fn serve_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    handler: PeerHandler,
    streams: Option<StreamHandler>,
) {
    let req = match read_frame(&mut recv).await {
        Ok(b) => match decode::<PeerRequest>(&b) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable peer request");
                let _ = send.reset(VarInt::from_u32(CODE_BAD_REQUEST));
                return;
            }
        },
        Err(e) => {
            tracing::debug!(error = %e, "bad peer request frame");
            let _ = send.reset(VarInt::from_u32(CODE_BAD_REQUEST));
            return;
        }
    };
    if let Some(shard) = req.append_stream_shard() {
        match streams {
            Some(streams) => serve_append_stream(send, recv, shard, &streams).await,
            None => {
                let _ = send.reset(VarInt::from_u32(CODE_BAD_REQUEST));
            }
        }
        return;
    }
    let resp = handler(req).await;
    let payload = match encode(&resp) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "unencodable peer response");
            let _ = send.reset(VarInt::from_u32(CODE_BAD_RESPONSE));
            return;
        }
    };
    match write_frame(&mut send, &payload).await {
        Ok(()) => {}
        Err(e @ FrameError::TooLarge(_)) => {
            tracing::warn!(error = %e, "peer response too large");
            let _ = send.reset(VarInt::from_u32(CODE_BAD_RESPONSE));
        }
        // The caller gave up (timeout) or went away.
        Err(e) => tracing::debug!(error = %e, "peer response not delivered"),
    }
}

/// The server half of a replication stream: request frames until the client finishes (or
/// a bad frame), each answer written as it comes.
async fn serve_append_stream(
    mut send: SendStream,
    recv: RecvStream,
    shard: ShardId,
    streams: &StreamHandler,
) {
    let frames = futures::stream::unfold(recv, |mut recv| async move {
        match read_frame_or_end(&mut recv).await {
            Ok(Some(frame)) => Some((frame, recv)),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(error = %e, "replication stream receive ended");
                None
            }
        }
    })
    .boxed();
    let mut answers = match streams(shard, frames) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(shard, error = %e, "replication stream refused");
            let _ = send.reset(VarInt::from_u32(CODE_BAD_REQUEST));
            return;
        }
    };
    while let Some(answer) = answers.next().await {
        if let Err(e) = write_frame_open(&mut send, &answer).await {
            tracing::debug!(error = %e, "replication stream answer not delivered");
            return;
        }
    }
    let _ = send.finish();
}

#[cfg(test)]
mod tests;
