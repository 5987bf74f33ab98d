//! [`PeerTransport`] over gRPC (HTTP/2 on TCP): the default peer transport.
//!
//! ```text
//! call(addr, req) ─► cached tonic Channel to addr ─► navarch.peer.Peer/Call(PeerFrame)
//!                                                     └─► peer's PeerService ─► on_peer
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;

use super::{
    FaultFilter, FrameStream, PeerRequest, PeerResponse, PeerTransport, TransportError,
    MAX_PEER_FRAME, PEER_CONN_WINDOW, PEER_STREAM_WINDOW,
};
use crate::proto::peer::peer_client::PeerClient;
use crate::proto::peer::PeerFrame;
use crate::shard::ShardId;
use crate::types::{decode, encode_sized};

/// gRPC metadata key naming the shard of a replication stream.
pub const SHARD_HEADER: &str = "navarch-shard";

/// [`PeerTransport`] over gRPC (HTTP/2), one lazily connected channel per peer.
#[derive(Clone, Default)]
pub struct GrpcTransport {
    channels: Arc<Mutex<HashMap<String, PeerClient<tonic::transport::Channel>>>>,
    /// Blocked peers (fault injection).
    pub fault: FaultFilter,
}

impl GrpcTransport {
    fn client(&self, addr: &str) -> Result<PeerClient<tonic::transport::Channel>, TransportError> {
        let mut g = self.channels.lock();
        if let Some(c) = g.get(addr) {
            return Ok(c.clone());
        }
        let ep = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| TransportError::Unreachable {
                addr: addr.into(),
                reason: e.to_string(),
            })?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(PEER_STREAM_WINDOW))
            .initial_connection_window_size(Some(PEER_CONN_WINDOW))
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(5));
        let c = PeerClient::new(ep.connect_lazy())
            .max_decoding_message_size(MAX_PEER_FRAME)
            .max_encoding_message_size(MAX_PEER_FRAME);
        g.insert(addr.to_string(), c.clone());
        Ok(c)
    }
}

impl PeerTransport for GrpcTransport {
    async fn call(
        &self,
        addr: &str,
        req: &PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, TransportError> {
        self.fault.check(addr)?;
        let payload = encode_sized(req, req.size_hint()).map_err(|e| TransportError::BadFrame {
            addr: addr.into(),
            reason: e.to_string(),
        })?;
        let mut client = self.client(addr)?;
        let mut request = tonic::Request::new(PeerFrame { payload });
        request.set_timeout(timeout);
        let fut = client.call(request);
        let resp = match tokio::time::timeout(timeout, fut).await {
            Err(_) => {
                return Err(TransportError::Timeout {
                    addr: addr.into(),
                    timeout,
                })
            }
            Ok(Err(status)) => {
                return Err(TransportError::Unreachable {
                    addr: addr.into(),
                    reason: status.message().to_string(),
                })
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        decode(&resp.payload).map_err(|e| TransportError::BadFrame {
            addr: addr.into(),
            reason: e.to_string(),
        })
    }

    fn supports_streams(&self) -> bool {
        true
    }

    fn open_stream(
        &self,
        addr: &str,
        shard: ShardId,
        frames: BoxStream<'static, Vec<u8>>,
    ) -> BoxFuture<'static, Result<FrameStream, TransportError>> {
        let client = self.fault.check(addr).and_then(|()| self.client(addr));
        let addr = addr.to_string();
        // tonic needs a Sync request stream: feed it through a channel.
        let (tx, rx) = tokio::sync::mpsc::channel::<PeerFrame>(64);
        tokio::spawn(async move {
            let mut frames = frames;
            while let Some(f) = frames.next().await {
                if tx.send(to_frame(f)).await.is_err() {
                    break;
                }
            }
        });
        Box::pin(async move {
            let mut client = client?;
            let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
            request
                .metadata_mut()
                .insert(SHARD_HEADER, tonic::metadata::MetadataValue::from(shard));
            let resp = client
                .stream(request)
                .await
                .map_err(|s| unreachable(s, &addr))?
                .into_inner();
            Ok(answers(resp, addr))
        })
    }
}

fn to_frame(payload: Vec<u8>) -> PeerFrame {
    PeerFrame { payload }
}

fn unreachable(s: tonic::Status, addr: &str) -> TransportError {
    TransportError::Unreachable {
        addr: addr.into(),
        reason: s.message().to_string(),
    }
}

fn answers(resp: tonic::Streaming<PeerFrame>, addr: String) -> FrameStream {
    resp.map(move |r| r.map(|f| f.payload).map_err(|s| unreachable(s, &addr)))
        .boxed()
}
