//! WATCH: a chunked stream of JSON watch events, one per line, flushed per event.
//!
//! ```text
//! resourceVersion unset/0 ─► list (Latest/Any) ─► synthetic ADDED ─┐
//! sendInitialEvents=true  ─► list ─► ADDED… ─► BOOKMARK(initial-events-end)
//! resourceVersion=N       ──────────────────────────────────────────┴► storage.watch(prefix, rev)
//!    events ─► selector transitions (in → ADDED, out → DELETED) ─► JSON or one-row Table
//!    Progress / idle timer ─► BOOKMARK (allowWatchBookmarks=true)
//!    Expired ─► ERROR 410 Status, end      timeoutSeconds / shutdown / client gone ─► end
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use bytes::Bytes;
use futures::StreamExt;
use navarch_api::resources::ResourceInfo;
use navarch_api::status::ApiError;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::list::{read_revision, Selectors};
use super::{now, ResourceRequest};
use crate::metrics::WatcherGuard;
use crate::negotiation::{self, Output};
use crate::objects;
use crate::response::{storage_error, HandlerResult};
use crate::server::AppState;
use crate::storage::{
    EventKind, ListOptions, ReadRevision, Revision, StorageError, WatchItem, WatchStream,
};

/// The watch's settings, fixed when it starts.
struct WatchSpec {
    info: &'static ResourceInfo,
    selectors: Selectors,
    table: bool,
    bookmarks: bool,
    include: Option<String>,
}

/// Encodes events, remembering whether the Table columns were sent.
struct Encoder {
    spec: WatchSpec,
    headers_sent: bool,
}

impl Encoder {
    /// `{"type":KIND,"object":…}` from the stored bytes (see [`super::list::append_object`]).
    fn raw_event(
        info: &ResourceInfo,
        kind: &str,
        object: &crate::storage::StoredObject,
    ) -> Result<Bytes, ApiError> {
        let mut v = Vec::with_capacity(object.value.len() + 64);
        v.extend_from_slice(b"{\"type\":\"");
        v.extend_from_slice(kind.as_bytes());
        v.extend_from_slice(b"\",\"object\":");
        super::list::append_object(info, object, &mut v)?;
        v.extend_from_slice(b"}\n");
        Ok(Bytes::from(v))
    }

    fn line(event: &Value) -> Bytes {
        let mut v = serde_json::to_vec(event).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    }

    fn object_event(&mut self, kind: &'static str, obj: &Value) -> Bytes {
        let object = if self.spec.table {
            let mut t = crate::model::to_table(self.spec.info, &[obj], now());
            super::list::include_objects(
                &mut t,
                std::slice::from_ref(obj),
                self.spec.include.as_deref(),
            );
            if let Value::Object(m) = &mut t {
                let rv = objects::meta_str(obj, "resourceVersion").unwrap_or("");
                m.insert("metadata".into(), json!({"resourceVersion": rv}));
                if self.headers_sent {
                    m.remove("columnDefinitions");
                }
            }
            self.headers_sent = true;
            t
        } else {
            obj.clone()
        };
        Self::line(&json!({"type": kind, "object": object}))
    }

    fn bookmark(&self, rev: Revision, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        Self::line(&json!({"type": "BOOKMARK", "object": {
            "kind": self.spec.info.kind,
            "apiVersion": self.spec.info.api_version(),
            "metadata": meta,
        }}))
    }

    fn error(e: &ApiError) -> Bytes {
        Self::line(&json!({"type": "ERROR", "object": e.to_status()}))
    }
}

/// The watch duration: `timeoutSeconds`, else `min_request_timeout × [1, 2)`.
fn watch_timeout(req: &ResourceRequest) -> Result<Duration, ApiError> {
    if let Some(t) = req.param("timeoutSeconds").filter(|s| !s.is_empty()) {
        let secs: u64 = t
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?;
        return Ok(Duration::from_secs(secs.max(1)));
    }
    let min = req.state.config.min_request_timeout;
    let jitter = f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 256.0;
    Ok(min.mul_f64(1.0 + jitter))
}

/// `GET /…/{plural}?watch=true`.
pub async fn watch(req: ResourceRequest) -> HandlerResult {
    let info = req.info;
    let selectors = Selectors::from_request(&req)?;
    let table = negotiation::resource_output(req.header(header::ACCEPT)) == Output::Table;
    let bookmarks = req.flag("allowWatchBookmarks");
    let send_initial = match req.param("sendInitialEvents") {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(
                ApiError::bad_request(format!("invalid sendInitialEvents {other:?}")).into(),
            )
        }
    };
    if send_initial.is_some() && req.param("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::bad_request(
            "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan",
        )
        .into());
    }
    let timeout = watch_timeout(&req)?;
    let prefix = info.prefix(req.namespace.as_deref());
    let revision = if send_initial.is_some() {
        // resourceVersionMatch=NotOlderThan is required here, and allowed without a version.
        match req.param("resourceVersion").filter(|s| !s.is_empty()) {
            None => ReadRevision::Latest,
            Some("0") => ReadRevision::Any,
            Some(rv) => ReadRevision::NotOlderThan(objects::parse_rv(rv)?),
        }
    } else {
        read_revision(&req)?
    };
    let initial = match (send_initial, revision) {
        (Some(true), _) => true,
        (Some(false), _) => false,
        (None, ReadRevision::Latest | ReadRevision::Any) => true,
        (None, _) => false,
    };
    let (initial_objects, start) = if initial {
        let page = req
            .state
            .storage
            .list(
                &prefix,
                &ListOptions {
                    revision,
                    limit: None,
                    start_after: None,
                },
            )
            .await
            .map_err(|e| storage_error(info, "", e))?;
        let mut objs = Vec::new();
        for s in &page.items {
            let o = objects::from_stored(info, s)?;
            if selectors.matches(&o) {
                objs.push(o);
            }
        }
        (objs, page.revision)
    } else {
        let start = match revision {
            ReadRevision::NotOlderThan(r) | ReadRevision::Exact(r) => r,
            _ => 0,
        };
        (Vec::new(), start)
    };
    let stream = req.state.storage.watch(&prefix, start).await;
    let spec = WatchSpec {
        info,
        selectors,
        table,
        bookmarks,
        include: req.param("includeObject").map(str::to_string),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let state = req.state.clone();
    tokio::spawn(run_watch(
        state,
        spec,
        initial_objects,
        send_initial == Some(true),
        start,
        stream,
        timeout,
        tx,
    ));
    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;stream=watch"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

#[allow(clippy::too_many_arguments)]
async fn run_watch(
    state: Arc<AppState>,
    spec: WatchSpec,
    initial: Vec<Value>,
    initial_end_bookmark: bool,
    start: Revision,
    stream: Result<WatchStream, StorageError>,
    timeout: Duration,
    tx: mpsc::Sender<Bytes>,
) {
    let guard = WatcherGuard::new(spec.info.plural);
    let info = spec.info;
    let bookmark_every = state.config.bookmark_interval;
    let mut enc = Encoder {
        spec,
        headers_sent: false,
    };
    for obj in &initial {
        guard.sent("ADDED");
        if tx.send(enc.object_event("ADDED", obj)).await.is_err() {
            return;
        }
    }
    if initial_end_bookmark
        && enc.spec.bookmarks
        && tx.send(enc.bookmark(start, true)).await.is_err()
    {
        return;
    }
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(Encoder::error(&storage_error(info, "", e))).await;
            return;
        }
    };
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut idle = tokio::time::interval(bookmark_every);
    idle.tick().await;
    let mut last_rev = start;
    let mut last_bookmark = start;
    loop {
        let item = tokio::select! {
            _ = &mut deadline => return,
            _ = state.shutdown.cancelled() => return,
            _ = tx.closed() => return,
            _ = idle.tick() => {
                if enc.spec.bookmarks && last_rev > 0 {
                    if tx.send(enc.bookmark(last_rev, false)).await.is_err() {
                        return;
                    }
                    last_bookmark = last_rev;
                }
                continue;
            }
            item = stream.next() => item,
        };
        let line = match item {
            None => return,
            Some(Err(e)) => {
                let _ = tx.send(Encoder::error(&storage_error(info, "", e))).await;
                return;
            }
            Some(Ok(WatchItem::Progress(rev))) => {
                last_rev = last_rev.max(rev);
                if !enc.spec.bookmarks || rev <= last_bookmark {
                    continue;
                }
                last_bookmark = rev;
                enc.bookmark(rev, false)
            }
            Some(Ok(WatchItem::Event(ev))) => {
                last_rev = last_rev.max(ev.object.mod_revision);
                if enc.spec.selectors.is_empty() && !enc.spec.table {
                    // No selector to evaluate: the line is assembled from the stored bytes
                    // without decoding the object (the fan-out path for many watchers).
                    let kind = match ev.kind {
                        EventKind::Added => "ADDED",
                        EventKind::Modified => "MODIFIED",
                        EventKind::Deleted => "DELETED",
                    };
                    match Encoder::raw_event(info, kind, &ev.object) {
                        Ok(line) => {
                            guard.sent(kind);
                            if tx.send(line).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(key = %ev.object.key, error = %e.message, "undecodable object in watch");
                        }
                    }
                    continue;
                }
                let obj = match objects::from_stored(info, &ev.object) {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::warn!(key = %ev.object.key, error = %e, "undecodable object in watch");
                        continue;
                    }
                };
                let now_matches = enc.spec.selectors.matches(&obj);
                let before_matches = match (&ev.kind, &ev.prev_value) {
                    (EventKind::Modified, Some(prev)) => {
                        objects::from_bytes(info, prev, ev.object.mod_revision)
                            .map(|p| enc.spec.selectors.matches(&p))
                            .unwrap_or(false)
                    }
                    (EventKind::Modified, None) => now_matches,
                    _ => false,
                };
                let kind = match ev.kind {
                    EventKind::Added if now_matches => "ADDED",
                    EventKind::Deleted if now_matches => "DELETED",
                    EventKind::Modified if now_matches && before_matches => "MODIFIED",
                    EventKind::Modified if now_matches => "ADDED",
                    EventKind::Modified if before_matches => "DELETED",
                    _ => continue,
                };
                guard.sent(kind);
                enc.object_event(kind, &obj)
            }
        };
        if tx.send(line).await.is_err() {
            return;
        }
    }
}
