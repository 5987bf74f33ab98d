//! Kubernetes REST client for Navarch: one [`Client`] over several apiserver endpoints.
//!
//! ```text
//! Api<K> (typed paths, JSON)  ──▶ Client::send ──▶ pick endpoint (sticky or round-robin)
//!                                      │            ├─ connection refused / reset ─▶ mark down, next endpoint
//!                                      │            ├─ 503 (replica draining)     ─▶ mark down, next endpoint
//!                                      │            └─ 429 (overloaded)           ─▶ wait Retry-After, retry
//! Watcher<K> ──▶ Client::open_stream ──┘ stream ends or breaks ─▶ reopen from the last resourceVersion
//! ```
//!
//! Apiserver replicas are stateless and share one store, so any replica can serve any request
//! and a resourceVersion from one is valid on all of them. The client keeps using one endpoint
//! ([`Balance::Sticky`], like a client behind a TCP balancer) or spreads requests over all of
//! them ([`Balance::RoundRobin`]); an endpoint that fails is skipped for
//! [`ClientConfig::down_for`]. A request is retried on another endpoint when it certainly did not
//! reach the server (the connection could not be opened) or when it is idempotent (GET, HEAD,
//! PUT — which carries its resourceVersion precondition — and DELETE). A [`Watcher`] resumes on
//! another endpoint from the last resourceVersion it delivered (bookmarks included), so a
//! replica dying mid-watch costs neither a missed nor a repeated event.
//!
//! Plain HTTP only for now (the development setup and loopback benchmarks); TLS apiservers are
//! reached through a TCP balancer (see `deploy/haproxy`).

mod api;
mod watch;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

pub use api::{Api, ListParams};
pub use watch::{WatchEvent, Watcher};

/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(2);

/// How a [`Client`] chooses the endpoint for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Keep using one endpoint until it fails, then move to the next (what a client behind a
    /// TCP balancer sees).
    #[default]
    Sticky,
    /// Send each request to the next endpoint in turn (spreads load over replicas).
    RoundRobin,
}

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Apiserver base URLs (`http://127.0.0.1:6443`, or `HOST:PORT` meaning plain HTTP).
    pub endpoints: Vec<String>,
    /// Endpoint choice.
    pub balance: Balance,
    /// Deadline of one attempt of a non-streaming request, body included.
    pub request_timeout: Duration,
    /// Deadline for opening a connection.
    pub connect_timeout: Duration,
    /// How long an endpoint that failed is skipped (unless every endpoint is down).
    pub down_for: Duration,
    /// Attempts per request over all endpoints (at least one per endpoint is made).
    pub max_attempts: usize,
    /// Speak HTTP/2 without TLS (prior knowledge); many requests and watches then share one
    /// connection per endpoint. HTTP/1.1 otherwise.
    pub http2: bool,
    /// How long a [`Watcher`] keeps trying to reopen its stream before it gives up.
    pub watch_retry_for: Duration,
}

impl ClientConfig {
    /// Defaults for the given endpoints.
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            balance: Balance::Sticky,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
            down_for: Duration::from_secs(2),
            max_attempts: 6,
            http2: false,
            watch_retry_for: Duration::from_secs(30),
        }
    }
}

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An endpoint is not a usable URL.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The request could not be completed on any endpoint.
    #[error("request failed on every endpoint after {attempts} attempts; last error: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: usize,
        /// The last failure.
        last: String,
    },
    /// The server answered with a non-success status (a Kubernetes `Status`).
    #[error("{code} {reason}: {message}")]
    Api {
        /// HTTP status code.
        code: u16,
        /// `Status.reason` (`NotFound`, `Conflict`, ...).
        reason: String,
        /// `Status.message`.
        message: String,
    },
    /// The watch's resourceVersion is too old (410 Gone): list again, then watch from the list.
    #[error("watch expired: {0}")]
    Expired(String),
    /// A response body could not be decoded.
    #[error("cannot decode response: {0}")]
    Decode(String),
}

impl Error {
    /// The HTTP status code, when the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            Error::Api { code, .. } => Some(*code),
            Error::Expired(_) => Some(410),
            _ => None,
        }
    }

    /// Builds [`Error::Api`] from a non-success response (its body is a `Status` when the
    /// server is a Kubernetes apiserver).
    fn from_response(status: StatusCode, body: &[u8]) -> Self {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        Error::Api {
            code: status.as_u16(),
            reason: text("reason").unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("Unknown")
                    .replace(' ', "")
            }),
            message: text("message")
                .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect()),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One request: method, path with query, optional body.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Path and query (`/api/v1/namespaces/default/pods?limit=500`).
    pub path: String,
    /// Body and its content type.
    pub body: Option<(Bytes, &'static str)>,
}

impl Request {
    /// A GET of `path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            body: None,
        }
    }

    /// A request with a JSON body.
    pub fn json(method: Method, path: impl Into<String>, body: Bytes) -> Self {
        Self {
            method,
            path: path.into(),
            body: Some((body, "application/json")),
        }
    }

    /// Whether repeating the request after it may have reached the server is harmless.
    fn idempotent(&self) -> bool {
        matches!(
            self.method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE
        )
    }
}

/// A complete (non-streaming) response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// Index of the endpoint that answered.
    pub endpoint: usize,
}

impl Response {
    /// The body decoded as JSON when the status is a success, else [`Error::Api`].
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        if !self.status.is_success() {
            return Err(Error::from_response(self.status, &self.body));
        }
        serde_json::from_slice(&self.body).map_err(|e| Error::Decode(e.to_string()))
    }
}

struct Endpoint {
    /// `scheme://authority` with no trailing slash.
    base: String,
    /// Until when the endpoint is skipped, as an offset from [`Inner::epoch`] in ms (0 = up).
    down_until_ms: std::sync::atomic::AtomicU64,
}

struct Inner {
    cfg: ClientConfig,
    endpoints: Vec<Endpoint>,
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    /// The sticky endpoint, or the round-robin counter.
    cursor: AtomicUsize,
    epoch: Instant,
}

/// A Kubernetes REST client over several apiserver endpoints (cheap to clone).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.cfg.endpoints)
            .field("balance", &self.inner.cfg.balance)
            .finish()
    }
}

/// Normalizes `HOST:PORT` or `http://HOST:PORT[/]` to `http://HOST:PORT`.
fn parse_endpoint(raw: &str) -> Result<String> {
    let invalid = |reason: &str| Error::InvalidEndpoint {
        endpoint: raw.to_string(),
        reason: reason.to_string(),
    };
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    let uri: Uri = with_scheme.parse().map_err(|e| invalid(&format!("{e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(invalid(
                "https is not supported by this client yet; reach TLS apiservers through a TCP balancer",
            ))
        }
        _ => return Err(invalid("scheme must be http")),
    }
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(invalid("a path prefix is not supported"));
    }
    Ok(format!("http://{authority}"))
}

impl Client {
    /// A client over `cfg.endpoints` (at least one).
    pub fn new(cfg: ClientConfig) -> Result<Self> {
        if cfg.endpoints.is_empty() {
            return Err(Error::InvalidEndpoint {
                endpoint: String::new(),
                reason: "no endpoints given".into(),
            });
        }
        let endpoints = cfg
            .endpoints
            .iter()
            .map(|e| {
                Ok(Endpoint {
                    base: parse_endpoint(e)?,
                    down_until_ms: 0.into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(cfg.connect_timeout));
        conn.set_keepalive(Some(Duration::from_secs(30)));
        let mut builder = hyper_util::client::legacy::Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_only(cfg.http2);
        if cfg.http2 {
            builder
                .http2_keep_alive_interval(Duration::from_secs(30))
                .http2_keep_alive_while_idle(true);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                http: builder.build(conn),
                endpoints,
                cursor: AtomicUsize::new(0),
                epoch: Instant::now(),
                cfg,
            }),
        })
    }

    /// A client over one endpoint with default settings.
    pub fn single(endpoint: &str) -> Result<Self> {
        Self::new(ClientConfig::new([endpoint]))
    }

    /// The normalized endpoint URLs, in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.inner
            .endpoints
            .iter()
            .map(|e| e.base.clone())
            .collect()
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64 + 1
    }

    fn is_down(&self, i: usize) -> bool {
        self.inner.endpoints[i]
            .down_until_ms
            .load(Ordering::Relaxed)
            > self.now_ms()
    }

    /// Skips endpoint `i` for a while and moves a sticky client off it.
    fn mark_down(&self, i: usize, why: &str) {
        let inner = &self.inner;
        let until = self.now_ms() + inner.cfg.down_for.as_millis() as u64;
        inner.endpoints[i]
            .down_until_ms
            .store(until, Ordering::Relaxed);
        if inner.cfg.balance == Balance::Sticky {
            let next = (i + 1) % inner.endpoints.len();
            let _ = inner
                .cursor
                .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
        }
        tracing::debug!(endpoint = %inner.endpoints[i].base, why, "endpoint marked down");
    }

    /// The endpoint for attempt `attempt` of a request that started at `start`: endpoints
    /// marked down are skipped unless every one is down.
    fn choose(&self, start: usize, attempt: usize) -> usize {
        let n = self.inner.endpoints.len();
        let first = (start + attempt) % n;
        (0..n)
            .map(|k| (first + k) % n)
            .find(|&i| !self.is_down(i))
            .unwrap_or(first)
    }

    fn start_index(&self) -> usize {
        let n = self.inner.endpoints.len();
        match self.inner.cfg.balance {
            Balance::Sticky => self.inner.cursor.load(Ordering::Relaxed) % n,
            Balance::RoundRobin => self.inner.cursor.fetch_add(1, Ordering::Relaxed) % n,
        }
    }

    fn build(&self, endpoint: usize, req: &Request, accept: &str) -> http::Request<Full<Bytes>> {
        let uri = format!("{}{}", self.inner.endpoints[endpoint].base, req.path);
        let mut b = http::Request::builder()
            .method(req.method.clone())
            .uri(uri)
            .header(http::header::ACCEPT, accept)
            .header(http::header::USER_AGENT, "navarch-client");
        let body = match &req.body {
            Some((bytes, ct)) => {
                b = b.header(http::header::CONTENT_TYPE, *ct);
                Full::new(bytes.clone())
            }
            None => Full::new(Bytes::new()),
        };
        b.body(body).expect("request parts are valid")
    }

    /// Sends `req` and returns the response head with its streaming body, failing over as the
    /// module documentation describes. `timeout` bounds each attempt up to the response head.
    async fn dispatch(
        &self,
        req: &Request,
        accept: &str,
        timeout: Duration,
    ) -> Result<(http::Response<Incoming>, usize)> {
        let n = self.inner.endpoints.len();
        let attempts = self.inner.cfg.max_attempts.max(n);
        let start = self.start_index();
        let mut last = String::from("no attempt made");
        for attempt in 0..attempts {
            let i = self.choose(start, attempt);
            let sent =
                tokio::time::timeout(timeout, self.inner.http.request(self.build(i, req, accept)))
                    .await;
            match sent {
                Ok(Ok(resp)) => {
                    let status = resp.status();
                    if status == StatusCode::SERVICE_UNAVAILABLE && attempt + 1 < attempts {
                        // A replica that is shutting down or not ready: another one can serve.
                        self.mark_down(i, "503");
                        last = format!("{}: 503 Service Unavailable", self.inner.endpoints[i].base);
                        continue;
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS && attempt + 1 < attempts {
                        let wait = retry_after(resp.headers()).min(MAX_RETRY_AFTER);
                        last = format!("{}: 429 Too Many Requests", self.inner.endpoints[i].base);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Ok((resp, i));
                }
                Ok(Err(e)) => {
                    let connect = e.is_connect();
                    last = format!("{}: {e:?}", self.inner.endpoints[i].base);
                    self.mark_down(i, if connect { "connect" } else { "transport" });
                    if !connect && !req.idempotent() {
                        return Err(Error::Unavailable {
                            attempts: attempt + 1,
                            last: format!(
                                "{last} (not retried: a {} may have reached the server)",
                                req.method
                            ),
                        });
                    }
                }
                Err(_) => {
                    last = format!(
                        "{}: no response within {timeout:?}",
                        self.inner.endpoints[i].base
                    );
                    self.mark_down(i, "timeout");
                    if !req.idempotent() {
                        return Err(Error::Unavailable {
                            attempts: attempt + 1,
                            last,
                        });
                    }
                }
            }
            // Every endpoint failed once: back off a little before the next round.
            if (attempt + 1) % n == 0 {
                tokio::time::sleep(Duration::from_millis(50 << (attempt / n).min(4))).await;
            }
        }
        Err(Error::Unavailable { attempts, last })
    }

    /// Sends a request and reads the whole response (any status; see [`Response::json`]).
    pub async fn send(&self, req: &Request) -> Result<Response> {
        let timeout = self.inner.cfg.request_timeout;
        // The body is read within the same deadline; a body cut short is retried like a
        // transport error when the request is idempotent.
        let attempts = if req.idempotent() { 2 } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            let (resp, endpoint) = self.dispatch(req, "application/json", timeout).await?;
            let (parts, body) = resp.into_parts();
            match tokio::time::timeout(timeout, body.collect()).await {
                Ok(Ok(b)) => {
                    return Ok(Response {
                        status: parts.status,
                        headers: parts.headers,
                        body: b.to_bytes(),
                        endpoint,
                    })
                }
                Ok(Err(e)) => {
                    self.mark_down(endpoint, "body");
                    last = Some(format!(
                        "{}: body: {e}",
                        self.inner.endpoints[endpoint].base
                    ));
                }
                Err(_) => {
                    self.mark_down(endpoint, "body timeout");
                    last = Some(format!(
                        "{}: body not read within {timeout:?}",
                        self.inner.endpoints[endpoint].base
                    ));
                }
            }
        }
        Err(Error::Unavailable {
            attempts,
            last: last.unwrap_or_default(),
        })
    }

    /// Opens a streaming GET (a watch): the response head must be a success.
    pub(crate) async fn open_stream(&self, path: &str) -> Result<(Incoming, usize)> {
        let req = Request::get(path);
        let (resp, endpoint) = self
            .dispatch(&req, "application/json", self.inner.cfg.request_timeout)
            .await?;
        if resp.status().is_success() {
            return Ok((resp.into_body(), endpoint));
        }
        let status = resp.status();
        let body = tokio::time::timeout(self.inner.cfg.request_timeout, resp.into_body().collect())
            .await
            .ok()
            .and_then(|r| r.ok())
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Err(Error::from_response(status, &body))
    }

    pub(crate) fn endpoint_failed(&self, i: usize, why: &str) {
        self.mark_down(i, why);
    }

    /// Sends a request and decodes a successful JSON answer.
    pub async fn request_json<T: DeserializeOwned>(&self, req: &Request) -> Result<T> {
        self.send(req).await?.json()
    }
}

/// The `Retry-After` delay (seconds), 1 s when absent or unreadable.
fn retry_after(h: &HeaderMap) -> Duration {
    h.get(http::header::RETRY_AFTER)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalized_and_bad_ones_rejected() {
        assert_eq!(
            parse_endpoint("127.0.0.1:6443").unwrap(),
            "http://127.0.0.1:6443"
        );
        assert_eq!(
            parse_endpoint("http://localhost:80/").unwrap(),
            "http://localhost:80"
        );
        for bad in ["https://a:1", "ftp://a:1", "http://a:1/prefix", "http://"] {
            assert!(
                matches!(parse_endpoint(bad), Err(Error::InvalidEndpoint { .. })),
                "{bad} accepted"
            );
        }
        assert!(Client::new(ClientConfig::new(Vec::<String>::new())).is_err());
    }

    #[test]
    fn status_bodies_become_api_errors() {
        let body =
            br#"{"kind":"Status","code":404,"reason":"NotFound","message":"pods \"x\" not found"}"#;
        let e = Error::from_response(StatusCode::NOT_FOUND, body);
        assert_eq!(e.code(), Some(404));
        assert_eq!(e.to_string(), "404 NotFound: pods \"x\" not found");
        let e = Error::from_response(StatusCode::BAD_GATEWAY, b"upstream gone");
        assert_eq!(e.to_string(), "502 BadGateway: upstream gone");
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), Duration::from_secs(1));
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_down_endpoint_is_skipped_and_a_sticky_client_moves_on() {
        let c = Client::new(ClientConfig::new([
            "127.0.0.1:1",
            "127.0.0.1:2",
            "127.0.0.1:3",
        ]))
        .unwrap();
        assert_eq!(c.start_index(), 0);
        c.mark_down(0, "test");
        assert_eq!(
            c.start_index(),
            1,
            "sticky cursor moved past the failed endpoint"
        );
        assert_eq!(c.choose(0, 0), 1, "down endpoint skipped");
        c.mark_down(1, "test");
        c.mark_down(2, "test");
        assert_eq!(c.choose(0, 1), 1, "all down: try them in turn anyway");
    }
}
