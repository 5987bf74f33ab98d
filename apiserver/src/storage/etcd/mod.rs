//! `EtcdStorage`: the [`Storage`] trait over the etcd v3 gRPC API (Navarch's store or a real etcd).
//!
//! ```text
//! create  Txn( create_revision(key) == 0            ? Put            : Range ) → AlreadyExists
//! update  Txn( mod_revision(key) == expected ∧ live ? Put(prev_kv)   : Range ) → Conflict | NotFound
//! delete  Txn( mod_revision(key) == expected | live ? Delete(prev_kv): Range ) → Conflict | NotFound
//! list    Range [start, prefix_end) limit L at revision R ("more" → next_key, "count" → remaining)
//! watch   Watch(create: [prefix, prefix_end), start_revision = after + 1, prev_kv, progress_notify)
//! ```
//!
//! Several endpoints: requests go to one pinned endpoint (like etcd's clientv3); when it is
//! unreachable the client moves to the next one. Reads are retried on the next endpoint; writes
//! only when the request provably never left (a failed connect), since a write that timed out
//! may have been applied. Every request has an explicit deadline, and its latency is recorded in
//! `apiserver_storage_request_duration_seconds{operation}`.

pub mod compactor;
mod watch;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::{
    ListOptions, ListPage, ReadRevision, Result, Revision, Storage, StorageError, StoredObject,
    WatchStream,
};
use crate::etcdpb::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    kv_client::KvClient,
    maintenance_client::MaintenanceClient,
    request_op::Request as Op,
    response_op::Response as OpResponse,
    watch_client::WatchClient,
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, StatusRequest, TxnRequest, TxnResponse, WatchRequest,
};
use crate::etcdpb::mvccpb::KeyValue;

/// etcd's default `--max-request-bytes` (1.5 MiB).
pub const DEFAULT_MAX_VALUE_BYTES: usize = 3 * 512 * 1024;
/// Largest response the client decodes (a big list).
const MAX_RESPONSE_BYTES: usize = 512 << 20;

/// How to reach the store.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// Endpoints, `host:port` or `http://host:port`; requests are balanced over them.
    pub endpoints: Vec<String>,
    /// How long dialing one endpoint may take.
    pub connect_timeout: Duration,
    /// Deadline of one unary request (and of opening a watch).
    pub request_timeout: Duration,
    /// HTTP/2 keep-alive ping interval (detects a store that vanished under an idle watch).
    pub keep_alive_interval: Duration,
    /// Values larger than this are refused with `TooLarge` without asking the store.
    pub max_value_bytes: usize,
}

impl EtcdConfig {
    /// Defaults for `endpoints`: 5 s connect, 10 s requests, 10 s keep-alive, 1.5 MiB values.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            keep_alive_interval: Duration::from_secs(10),
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

/// A watch stream's request side, kept so `request_progress` can reach it.
struct OpenWatch {
    prefix: String,
    requests: mpsc::Sender<WatchRequest>,
    alive: Weak<()>,
}

/// The store's endpoints and the one requests currently go to.
struct Endpoints {
    channels: Vec<Channel>,
    current: AtomicUsize,
}

impl Endpoints {
    /// The pinned endpoint: its index and channel.
    fn pick(&self) -> (usize, Channel) {
        let i = self.current.load(Ordering::Relaxed) % self.channels.len();
        (i, self.channels[i].clone())
    }

    /// Endpoint `i` failed: move on to the next one (unless another request already did).
    fn failed(&self, i: usize) {
        let next = (i + 1) % self.channels.len();
        let _ = self
            .current
            .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn watch(&self) -> (usize, WatchClient<Channel>) {
        let (i, ch) = self.pick();
        (
            i,
            WatchClient::new(ch).max_decoding_message_size(MAX_RESPONSE_BYTES),
        )
    }
}

/// Whether a request is safe to send twice.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads: retry on the next endpoint whenever this one is unavailable.
    Idempotent,
    /// Writes: retry only when the request never reached a store.
    UnsentOnly,
}

/// Whether a failed request never reached the store (the connection could not be made).
fn never_sent(s: &Status) -> bool {
    s.code() == Code::Unavailable && s.message().contains("connect")
}

/// [`Storage`] over etcd v3 gRPC.
pub struct EtcdStorage {
    endpoints: Arc<Endpoints>,
    cfg: EtcdConfig,
    watches: Mutex<Vec<OpenWatch>>,
    /// Whether the store orders progress after events ([`progress_ordered_in`] of the version
    /// its Maintenance.Status reports), asked once.
    progress_ordered: tokio::sync::OnceCell<bool>,
}

/// Whether an etcd of `version` sends a watch progress notification for revision R only
/// after every event ≤ R: etcd#15220 was fixed in 3.4.31 and 3.5.13 (and every 3.6). A
/// version that does not parse is taken as fixed.
pub fn progress_ordered_in(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u64>().ok());
    let (Some(Some(major)), Some(Some(minor)), Some(Some(patch))) =
        (parts.next(), parts.next(), parts.next())
    else {
        return true;
    };
    match (major, minor) {
        (3, 4) => patch >= 31,
        (3, 5) => patch >= 13,
        (3, m) if m < 4 => false,
        _ => true,
    }
}

impl EtcdStorage {
    /// Builds the client without dialing; connections are made on first use (and re-made after
    /// failures). Fails only on an invalid endpoint list.
    pub fn connect_lazy(cfg: EtcdConfig) -> Result<Self> {
        if cfg.endpoints.is_empty() {
            return Err(StorageError::Internal("no store endpoints given".into()));
        }
        let mut endpoints: Vec<Endpoint> = Vec::with_capacity(cfg.endpoints.len());
        for e in &cfg.endpoints {
            let url = if e.contains("://") {
                e.clone()
            } else {
                format!("http://{e}")
            };
            let ep = Endpoint::from_shared(url)
                .map_err(|err| StorageError::Internal(format!("invalid endpoint {e}: {err}")))?
                .connect_timeout(cfg.connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(cfg.keep_alive_interval)
                .keep_alive_timeout(cfg.keep_alive_interval)
                .keep_alive_while_idle(true);
            endpoints.push(ep);
        }
        Ok(Self {
            endpoints: Arc::new(Endpoints {
                channels: endpoints.iter().map(Endpoint::connect_lazy).collect(),
                current: AtomicUsize::new(0),
            }),
            cfg,
            watches: Mutex::new(Vec::new()),
            progress_ordered: tokio::sync::OnceCell::new(),
        })
    }

    /// Builds the client and checks that the store answers (one linearizable read).
    pub async fn connect(cfg: EtcdConfig) -> Result<Self> {
        let s = Self::connect_lazy(cfg)?;
        s.current_revision("/").await?;
        Ok(s)
    }

    /// The configuration.
    pub fn config(&self) -> &EtcdConfig {
        &self.cfg
    }

    /// Runs one request with the deadline on the pinned endpoint, failing over to the next
    /// endpoints as `retry` allows; records its latency; maps its error.
    async fn call<T, F, Fut>(
        &self,
        op: &'static str,
        ctx: ErrCtx<'_>,
        retry: Retry,
        mut request: F,
    ) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let started = Instant::now();
        let mut last = StorageError::Unavailable("no endpoint tried".into());
        for _ in 0..self.endpoints.channels.len() {
            let (i, channel) = self.endpoints.pick();
            match tokio::time::timeout(self.cfg.request_timeout, request(channel)).await {
                Ok(Ok(resp)) => {
                    metrics::histogram!(
                        "apiserver_storage_request_duration_seconds", "operation" => op
                    )
                    .record(started.elapsed().as_secs_f64());
                    return Ok(resp.into_inner());
                }
                Ok(Err(status)) => {
                    let unavailable = status.code() == Code::Unavailable;
                    if unavailable {
                        self.endpoints.failed(i);
                    }
                    last = map_status(&status, ctx);
                    let again = unavailable && (retry == Retry::Idempotent || never_sent(&status));
                    if !again {
                        break;
                    }
                }
                Err(_) => {
                    self.endpoints.failed(i);
                    last = StorageError::Unavailable(format!(
                        "{op} of {}: no answer from the store within {:?}",
                        ctx.key, self.cfg.request_timeout
                    ));
                    // A write that timed out may have been applied: only reads go again.
                    if retry != Retry::Idempotent {
                        break;
                    }
                }
            }
        }
        metrics::histogram!("apiserver_storage_request_duration_seconds", "operation" => op)
            .record(started.elapsed().as_secs_f64());
        Err(last)
    }

    async fn range(
        &self,
        op: &'static str,
        ctx: ErrCtx<'_>,
        req: RangeRequest,
    ) -> Result<RangeResponse> {
        self.call(op, ctx, Retry::Idempotent, |ch| {
            let req = req.clone();
            async move {
                KvClient::new(ch)
                    .max_decoding_message_size(MAX_RESPONSE_BYTES)
                    .range(req)
                    .await
            }
        })
        .await
    }

    async fn txn(&self, op: &'static str, ctx: ErrCtx<'_>, req: TxnRequest) -> Result<TxnResponse> {
        self.call(op, ctx, Retry::UnsentOnly, |ch| {
            let req = req.clone();
            async move {
                KvClient::new(ch)
                    .max_decoding_message_size(MAX_RESPONSE_BYTES)
                    .txn(req)
                    .await
            }
        })
        .await
    }

    fn check_size(&self, key: &str, value: &Bytes) -> Result<()> {
        let size = key.len() + value.len();
        if size > self.cfg.max_value_bytes {
            return Err(StorageError::TooLarge {
                key: key.to_string(),
                size,
            });
        }
        Ok(())
    }

    /// Registers a watch stream's request sender for `request_progress`.
    fn register_watch(&self, prefix: &str, requests: mpsc::Sender<WatchRequest>) -> Arc<()> {
        let alive = Arc::new(());
        let mut w = self.watches.lock();
        w.retain(|o| o.alive.strong_count() > 0);
        w.push(OpenWatch {
            prefix: prefix.to_string(),
            requests,
            alive: Arc::downgrade(&alive),
        });
        alive
    }
}

/// What an error message needs to know about the request.
#[derive(Clone, Copy)]
struct ErrCtx<'a> {
    key: &'a str,
    revision: Revision,
    size: usize,
}

impl<'a> ErrCtx<'a> {
    fn key(key: &'a str) -> Self {
        Self {
            key,
            revision: 0,
            size: 0,
        }
    }
}

/// Maps a gRPC status to the storage error (the one place etcd errors are interpreted).
fn map_status(s: &Status, ctx: ErrCtx<'_>) -> StorageError {
    let msg = s.message();
    if msg.contains("required revision has been compacted") {
        return StorageError::Expired {
            requested: ctx.revision,
            oldest: 0,
        };
    }
    if msg.contains("required revision is a future revision") {
        return StorageError::Timeout(ctx.revision);
    }
    if msg.contains("request is too large")
        || msg.contains("message length too large")
        || msg.contains("larger than max")
        || s.code() == Code::ResourceExhausted
    {
        return StorageError::TooLarge {
            key: ctx.key.to_string(),
            size: ctx.size,
        };
    }
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
            StorageError::Unavailable(format!("{:?}: {msg}", s.code()))
        }
        // tonic reports a connection that broke mid-request (the store was killed) as
        // `Unknown: transport error`; grpc-go, which Kubernetes sees, says `Unavailable:
        // transport is closing`. Either way the store may come back: unavailable.
        Code::Unknown if transport_broke(msg) => {
            StorageError::Unavailable(format!("{:?}: {msg}", s.code()))
        }
        code => StorageError::Internal(format!("{code:?}: {msg}")),
    }
}

/// Whether an `Unknown` status is tonic's report of a broken connection rather than an error
/// the store sent.
fn transport_broke(msg: &str) -> bool {
    [
        "transport error",
        "connection reset",
        "broken pipe",
        "connection closed",
    ]
    .iter()
    .any(|m| msg.contains(m))
}

/// The first key after every key starting with `prefix` (etcd's prefix range end).
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff (or the prefix was empty): the range runs to the end of the keyspace.
    vec![0]
}

fn header_rev(h: &Option<ResponseHeader>) -> Revision {
    h.as_ref().map_or(0, |h| h.revision)
}

/// A store key-value as a stored object.
pub(crate) fn to_object(kv: KeyValue) -> Result<StoredObject> {
    let key = String::from_utf8(kv.key)
        .map_err(|e| StorageError::Internal(format!("store returned a non-UTF-8 key: {e}")))?;
    Ok(StoredObject {
        key,
        value: Bytes::from(kv.value),
        mod_revision: kv.mod_revision,
        create_revision: kv.create_revision,
    })
}

fn compare(key: &str, target: CompareTarget, result: CompareResult, value: TargetUnion) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.as_bytes().to_vec(),
        range_end: Vec::new(),
        target_union: Some(value),
    }
}

fn range_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

/// The key-value a failed txn's `Range` found, if any.
fn failed_range_kv(resp: TxnResponse) -> Option<KeyValue> {
    resp.responses
        .into_iter()
        .find_map(|r| match r.response {
            Some(OpResponse::ResponseRange(rr)) => Some(rr.kvs),
            _ => None,
        })
        .and_then(|kvs| kvs.into_iter().next())
}

/// Which store revision a read asks for, and whether it may be served by one member alone.
fn read_params(rev: ReadRevision) -> (Revision, bool) {
    match rev {
        ReadRevision::Latest | ReadRevision::NotOlderThan(_) => (0, false),
        ReadRevision::Any => (0, true),
        ReadRevision::Exact(r) => (r.max(0), false),
    }
}

/// `NotOlderThan(r)` read at `actual` < `r`: the store has not reached `r`.
fn check_not_older(rev: ReadRevision, actual: Revision) -> Result<()> {
    match rev {
        ReadRevision::NotOlderThan(r) if actual < r => Err(StorageError::Timeout(r)),
        _ => Ok(()),
    }
}

fn requested_rev(rev: ReadRevision) -> Revision {
    match rev {
        ReadRevision::Exact(r) | ReadRevision::NotOlderThan(r) => r,
        ReadRevision::Latest | ReadRevision::Any => 0,
    }
}

#[async_trait]
impl Storage for EtcdStorage {
    async fn get(&self, key: &str, revision: ReadRevision) -> Result<Option<StoredObject>> {
        let (rev, serializable) = read_params(revision);
        let ctx = ErrCtx {
            revision: requested_rev(revision),
            ..ErrCtx::key(key)
        };
        let req = RangeRequest {
            key: key.as_bytes().to_vec(),
            revision: rev,
            serializable,
            ..Default::default()
        };
        let resp = self.range("get", ctx, req).await?;
        check_not_older(revision, header_rev(&resp.header))?;
        resp.kvs.into_iter().next().map(to_object).transpose()
    }

    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListPage> {
        let (rev, serializable) = read_params(opts.revision);
        let ctx = ErrCtx {
            revision: requested_rev(opts.revision),
            ..ErrCtx::key(prefix)
        };
        let start = match &opts.start_after {
            Some(after) => {
                let mut k = after.as_bytes().to_vec();
                k.push(0);
                k
            }
            None => prefix.as_bytes().to_vec(),
        };
        let limit = opts.limit.filter(|l| *l > 0).map_or(0, |l| l as i64);
        let req = RangeRequest {
            key: start,
            range_end: prefix_end(prefix),
            limit,
            revision: rev,
            serializable,
            ..Default::default()
        };
        let resp = self.range("list", ctx, req).await?;
        let current = header_rev(&resp.header);
        check_not_older(opts.revision, current)?;
        let items = resp
            .kvs
            .into_iter()
            .map(to_object)
            .collect::<Result<Vec<_>>>()?;
        let next_key = if resp.more {
            items.last().map(|o| o.key.clone())
        } else {
            None
        };
        let remaining = next_key
            .as_ref()
            .map(|_| (resp.count - items.len() as i64).max(0));
        Ok(ListPage {
            items,
            revision: if rev > 0 { rev } else { current },
            next_key,
            remaining,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<StoredObject> {
        self.check_size(key, &value)?;
        let ctx = ErrCtx {
            size: key.len() + value.len(),
            ..ErrCtx::key(key)
        };
        let req = TxnRequest {
            compare: vec![compare(
                key,
                CompareTarget::Create,
                CompareResult::Equal,
                TargetUnion::CreateRevision(0),
            )],
            success: vec![RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: key.as_bytes().to_vec(),
                    value: value.to_vec(),
                    ..Default::default()
                })),
            }],
            failure: vec![range_op(key)],
        };
        let resp = self.txn("create", ctx, req).await?;
        if !resp.succeeded {
            return Err(StorageError::AlreadyExists {
                key: key.to_string(),
            });
        }
        let rev = header_rev(&resp.header);
        Ok(StoredObject {
            key: key.to_string(),
            value,
            mod_revision: rev,
            create_revision: rev,
        })
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<StoredObject> {
        self.check_size(key, &value)?;
        let ctx = ErrCtx {
            size: key.len() + value.len(),
            ..ErrCtx::key(key)
        };
        let req = TxnRequest {
            compare: vec![
                compare(
                    key,
                    CompareTarget::Mod,
                    CompareResult::Equal,
                    TargetUnion::ModRevision(expected),
                ),
                compare(
                    key,
                    CompareTarget::Create,
                    CompareResult::Greater,
                    TargetUnion::CreateRevision(0),
                ),
            ],
            success: vec![RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: key.as_bytes().to_vec(),
                    value: value.to_vec(),
                    prev_kv: true,
                    ..Default::default()
                })),
            }],
            failure: vec![range_op(key)],
        };
        let resp = self.txn("update", ctx, req).await?;
        let rev = header_rev(&resp.header);
        if !resp.succeeded {
            return Err(match failed_range_kv(resp) {
                None => StorageError::NotFound {
                    key: key.to_string(),
                },
                Some(kv) => StorageError::Conflict {
                    key: key.to_string(),
                    expected,
                    actual: Some(kv.mod_revision),
                },
            });
        }
        let create_revision = resp
            .responses
            .into_iter()
            .find_map(|r| match r.response {
                Some(OpResponse::ResponsePut(p)) => p.prev_kv.map(|kv| kv.create_revision),
                _ => None,
            })
            .unwrap_or(rev);
        Ok(StoredObject {
            key: key.to_string(),
            value,
            mod_revision: rev,
            create_revision,
        })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<StoredObject> {
        let cmp = match expected {
            Some(r) => compare(
                key,
                CompareTarget::Mod,
                CompareResult::Equal,
                TargetUnion::ModRevision(r),
            ),
            None => compare(
                key,
                CompareTarget::Create,
                CompareResult::Greater,
                TargetUnion::CreateRevision(0),
            ),
        };
        let req = TxnRequest {
            compare: vec![cmp],
            success: vec![RequestOp {
                request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                    key: key.as_bytes().to_vec(),
                    prev_kv: true,
                    ..Default::default()
                })),
            }],
            failure: vec![range_op(key)],
        };
        let resp = self.txn("delete", ErrCtx::key(key), req).await?;
        let rev = header_rev(&resp.header);
        if !resp.succeeded {
            return Err(match (failed_range_kv(resp), expected) {
                (Some(kv), Some(e)) => StorageError::Conflict {
                    key: key.to_string(),
                    expected: e,
                    actual: Some(kv.mod_revision),
                },
                _ => StorageError::NotFound {
                    key: key.to_string(),
                },
            });
        }
        let prev = resp
            .responses
            .into_iter()
            .find_map(|r| match r.response {
                Some(OpResponse::ResponseDeleteRange(d)) => d.prev_kvs.into_iter().next(),
                _ => None,
            })
            .ok_or_else(|| {
                StorageError::Internal(format!("delete of {key} returned no previous value"))
            })?;
        let mut obj = to_object(prev)?;
        obj.mod_revision = rev;
        Ok(obj)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        watch::open(self, prefix, after).await
    }

    async fn current_revision(&self, prefix: &str) -> Result<Revision> {
        let req = RangeRequest {
            key: prefix.as_bytes().to_vec(),
            limit: 1,
            keys_only: true,
            ..Default::default()
        };
        let resp = self
            .range("current_revision", ErrCtx::key(prefix), req)
            .await?;
        Ok(header_rev(&resp.header))
    }

    async fn progress_is_ordered(&self) -> Result<bool> {
        self.progress_ordered
            .get_or_try_init(|| async {
                let status = self
                    .call("status", ErrCtx::key(""), Retry::Idempotent, |ch| async move {
                        MaintenanceClient::new(ch).status(StatusRequest {}).await
                    })
                    .await?;
                let ordered = progress_ordered_in(&status.version);
                if !ordered {
                    tracing::warn!(
                        version = %status.version,
                        "this etcd can send watch progress ahead of events (etcd#15220, fixed \
                         in 3.4.31/3.5.13): consistent reads go to etcd, not the watch cache"
                    );
                }
                Ok(ordered)
            })
            .await
            .copied()
    }

    async fn request_progress(&self, prefix: &str) -> Result<()> {
        let targets: Vec<mpsc::Sender<WatchRequest>> = {
            let mut w = self.watches.lock();
            w.retain(|o| o.alive.strong_count() > 0);
            w.iter()
                .filter(|o| o.prefix.starts_with(prefix))
                .map(|o| o.requests.clone())
                .collect()
        };
        for t in targets {
            // Best effort: a full request queue already has a progress request in it.
            let _ = t.try_send(watch::progress_request());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_ordering_follows_the_etcd_15220_fix() {
        for (v, ordered) in [
            ("3.4.23", false),
            ("3.4.30", false),
            ("3.4.31", true),
            ("3.5.12", false),
            ("3.5.13", true),
            ("3.6.0", true),
            ("3.3.27", false),
            ("v3.5.21", true),
            ("unknown", true),
        ] {
            assert_eq!(progress_ordered_in(v), ordered, "{v}");
        }
    }

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end("/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }

    #[test]
    fn statuses_map_to_storage_errors() {
        let ctx = ErrCtx {
            key: "/k",
            revision: 7,
            size: 9,
        };
        let compacted =
            Status::out_of_range("etcdserver: mvcc: required revision has been compacted");
        assert_eq!(
            map_status(&compacted, ctx),
            StorageError::Expired {
                requested: 7,
                oldest: 0
            }
        );
        let future =
            Status::out_of_range("etcdserver: mvcc: required revision is a future revision");
        assert_eq!(map_status(&future, ctx), StorageError::Timeout(7));
        let big = Status::invalid_argument("etcdserver: request is too large");
        assert_eq!(
            map_status(&big, ctx),
            StorageError::TooLarge {
                key: "/k".into(),
                size: 9
            }
        );
        assert!(matches!(
            map_status(&Status::unavailable("etcdserver: no leader"), ctx),
            StorageError::Unavailable(_)
        ));
        assert!(matches!(
            map_status(&Status::internal("boom"), ctx),
            StorageError::Internal(_)
        ));
        // A connection broken mid-request (store killed) is unavailability, not a bug.
        assert!(matches!(
            map_status(&Status::unknown("transport error"), ctx),
            StorageError::Unavailable(_)
        ));
        assert!(matches!(
            map_status(&Status::unknown("something else"), ctx),
            StorageError::Internal(_)
        ));
    }

    #[test]
    fn reads_choose_revision_and_serializability() {
        assert_eq!(read_params(ReadRevision::Latest), (0, false));
        assert_eq!(read_params(ReadRevision::Any), (0, true));
        assert_eq!(read_params(ReadRevision::NotOlderThan(5)), (0, false));
        assert_eq!(read_params(ReadRevision::Exact(5)), (5, false));
        assert_eq!(
            check_not_older(ReadRevision::NotOlderThan(10), 9),
            Err(StorageError::Timeout(10))
        );
        assert_eq!(check_not_older(ReadRevision::NotOlderThan(10), 10), Ok(()));
    }
}
