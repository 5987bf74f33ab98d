//! One etcd watch per `Storage::watch`: its own gRPC stream, one watcher on it.
//!
//! ```text
//! open: Create{[prefix, prefix_end), start_revision = after + 1, prev_kv, progress_notify}
//!       ─► wait for `created` ─► register the request sender (for `request_progress`)
//! read: events ─► Added (create_rev == mod_rev) | Modified | Deleted (object = prev_kv at the
//!       deletion revision); empty responses ─► Progress(header.revision);
//!       canceled with compact_revision ─► Expired; canceled otherwise / stream end ─► Unavailable
//! ```
//! The stream checks what the store sends: revisions never go backwards and no event arrives at
//! or below a revision already reported as progress; a violation ends the stream with `Internal`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

use super::{map_status, prefix_end, to_object, Endpoints, ErrCtx, EtcdStorage};
use crate::etcdpb::etcdserverpb::{
    watch_client::WatchClient, watch_request::RequestUnion, WatchCreateRequest,
    WatchProgressRequest, WatchRequest, WatchResponse,
};
use crate::etcdpb::mvccpb::{event::EventType, Event};
use crate::storage::{
    EventKind, Result, Revision, StorageError, StoredObject, WatchEvent, WatchItem, WatchStream,
};

/// Requests queued towards one watch stream (create + progress requests).
const REQUEST_QUEUE: usize = 4;

/// A `WatchProgressRequest`.
pub(super) fn progress_request() -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    }
}

/// Opens a watch on `prefix` for changes after `after`, on the pinned endpoint or, when it is
/// unreachable, the next ones.
pub(super) async fn open(s: &EtcdStorage, prefix: &str, after: Revision) -> Result<WatchStream> {
    let ctx = ErrCtx {
        revision: after,
        ..ErrCtx::key(prefix)
    };
    let started = Instant::now();
    let mut last = StorageError::Unavailable("no endpoint tried".into());
    for _ in 0..s.endpoints.channels.len() {
        let (idx, client) = s.endpoints.watch();
        match open_on(s, client, prefix, after, ctx).await {
            Ok((inbound, tx, first)) => {
                metrics::histogram!(
                    "apiserver_storage_request_duration_seconds", "operation" => "watch"
                )
                .record(started.elapsed().as_secs_f64());
                let mut state = WatchState {
                    inbound,
                    _requests: tx.clone(),
                    _alive: s.register_watch(prefix, tx),
                    endpoints: s.endpoints.clone(),
                    endpoint: idx,
                    after,
                    last_event: after,
                    last_progress: after,
                    buf: VecDeque::new(),
                    done: false,
                };
                if !first.created {
                    // Not the acknowledgement: treat it as the first ordinary response.
                    state.on_response(first);
                } else if first.canceled {
                    return Err(cancel_error(&first, after));
                }
                return Ok(Box::pin(futures::stream::unfold(state, next_item)));
            }
            Err(e) => {
                let unavailable = matches!(e, StorageError::Unavailable(_));
                if unavailable {
                    s.endpoints.failed(idx);
                }
                last = e;
                if !unavailable {
                    break;
                }
            }
        }
    }
    Err(last)
}

type Opened = (
    Streaming<WatchResponse>,
    mpsc::Sender<WatchRequest>,
    WatchResponse,
);

/// Opens the gRPC stream on one endpoint, sends the create and waits for its answer.
async fn open_on(
    s: &EtcdStorage,
    mut client: WatchClient<Channel>,
    prefix: &str,
    after: Revision,
    ctx: ErrCtx<'_>,
) -> Result<Opened> {
    let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix),
            start_revision: after.saturating_add(1).max(1),
            progress_notify: true,
            prev_kv: true,
            ..Default::default()
        })),
    };
    tx.send(create)
        .await
        .map_err(|_| StorageError::Internal("watch request queue closed".into()))?;
    let timeout = s.cfg.request_timeout;
    let opened = tokio::time::timeout(timeout, async {
        let mut inbound = client
            .watch(ReceiverStream::new(rx))
            .await
            .map_err(|st| map_status(&st, ctx))?
            .into_inner();
        // The first response acknowledges the create (or refuses it).
        let first = inbound
            .message()
            .await
            .map_err(|st| map_status(&st, ctx))?
            .ok_or_else(|| {
                StorageError::Unavailable(format!("watch of {prefix}: stream closed"))
            })?;
        Ok::<_, StorageError>((inbound, first))
    })
    .await
    .map_err(|_| {
        StorageError::Unavailable(format!("watch of {prefix}: not created within {timeout:?}"))
    })??;
    Ok((opened.0, tx, opened.1))
}

struct WatchState {
    inbound: Streaming<WatchResponse>,
    /// Keeps the request side open (closing it would end the watch).
    _requests: mpsc::Sender<WatchRequest>,
    /// Registration token for `request_progress`.
    _alive: Arc<()>,
    /// The endpoints, to move on from this one if it fails.
    endpoints: Arc<Endpoints>,
    endpoint: usize,
    after: Revision,
    last_event: Revision,
    last_progress: Revision,
    buf: VecDeque<Result<WatchItem>>,
    done: bool,
}

async fn next_item(mut st: WatchState) -> Option<(Result<WatchItem>, WatchState)> {
    loop {
        if let Some(item) = st.buf.pop_front() {
            return Some((item, st));
        }
        if st.done {
            return None;
        }
        match st.inbound.message().await {
            Ok(Some(resp)) => st.on_response(resp),
            Ok(None) => {
                st.endpoints.failed(st.endpoint);
                st.fail(StorageError::Unavailable(
                    "watch stream closed by the store".into(),
                ));
            }
            Err(status) => {
                let ctx = ErrCtx {
                    revision: st.last_event.max(st.last_progress),
                    ..ErrCtx::key("")
                };
                st.fail(match map_status(&status, ctx) {
                    // Any transport failure mid-watch is retryable from the last revision.
                    StorageError::Internal(m) => StorageError::Unavailable(m),
                    e => e,
                });
                st.endpoints.failed(st.endpoint);
            }
        }
    }
}

fn cancel_error(resp: &WatchResponse, requested: Revision) -> StorageError {
    if resp.compact_revision > 0 {
        StorageError::Expired {
            requested,
            oldest: resp.compact_revision,
        }
    } else {
        StorageError::Unavailable(format!(
            "watch canceled by the store: {}",
            resp.cancel_reason
        ))
    }
}

impl WatchState {
    fn fail(&mut self, e: StorageError) {
        self.buf.push_back(Err(e));
        self.done = true;
    }

    fn on_response(&mut self, resp: WatchResponse) {
        if resp.canceled {
            let e = cancel_error(&resp, self.last_event.max(self.last_progress));
            self.fail(e);
            return;
        }
        if resp.created {
            return;
        }
        if resp.events.is_empty() {
            let rev = resp.header.as_ref().map_or(0, |h| h.revision);
            // Progress at the last event's revision is news too: nothing else is coming there.
            if rev >= self.last_event && rev > self.last_progress {
                self.last_progress = rev;
                self.buf.push_back(Ok(WatchItem::Progress(rev)));
            }
            return;
        }
        for ev in resp.events {
            match to_event(ev) {
                Ok(ev) => {
                    let rev = ev.object.mod_revision;
                    if rev <= self.after {
                        continue;
                    }
                    if rev < self.last_event || rev <= self.last_progress {
                        self.fail(StorageError::Internal(format!(
                            "store sent an event at revision {rev} after revision {}",
                            self.last_event.max(self.last_progress)
                        )));
                        return;
                    }
                    self.last_event = rev;
                    self.buf.push_back(Ok(WatchItem::Event(ev)));
                }
                Err(e) => {
                    self.fail(e);
                    return;
                }
            }
        }
    }
}

/// An etcd event as a storage event.
fn to_event(ev: Event) -> Result<WatchEvent> {
    let kv = ev
        .kv
        .ok_or_else(|| StorageError::Internal("watch event without a key-value".into()))?;
    if ev.r#type == EventType::Delete as i32 {
        let rev = kv.mod_revision;
        let key = String::from_utf8(kv.key)
            .map_err(|e| StorageError::Internal(format!("store sent a non-UTF-8 key: {e}")))?;
        let (value, create_revision) = ev
            .prev_kv
            .map(|p| (Bytes::from(p.value), p.create_revision))
            .unwrap_or_default();
        return Ok(WatchEvent {
            kind: EventKind::Deleted,
            prev_value: Some(value.clone()),
            object: StoredObject {
                key,
                value,
                mod_revision: rev,
                create_revision,
            },
        });
    }
    let object = to_object(kv)?;
    let kind = if object.create_revision == object.mod_revision {
        EventKind::Added
    } else {
        EventKind::Modified
    };
    Ok(WatchEvent {
        kind,
        object,
        prev_value: match kind {
            EventKind::Added => None,
            _ => ev.prev_kv.map(|p| Bytes::from(p.value)),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcdpb::mvccpb::KeyValue;

    fn kv(key: &str, value: &str, create: i64, modr: i64) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            create_revision: create,
            mod_revision: modr,
            ..Default::default()
        }
    }

    #[test]
    fn puts_are_added_or_modified_by_revisions() {
        let added = to_event(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv("/a", "1", 5, 5)),
            prev_kv: None,
        })
        .unwrap();
        assert_eq!(added.kind, EventKind::Added);
        assert_eq!(added.prev_value, None);
        let modified = to_event(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv("/a", "2", 5, 6)),
            prev_kv: Some(kv("/a", "1", 5, 5)),
        })
        .unwrap();
        assert_eq!(modified.kind, EventKind::Modified);
        assert_eq!(modified.prev_value.as_deref(), Some(&b"1"[..]));
    }

    #[test]
    fn deletes_carry_the_last_state_at_the_deletion_revision() {
        let ev = to_event(Event {
            r#type: EventType::Delete as i32,
            kv: Some(kv("/a", "", 0, 9)),
            prev_kv: Some(kv("/a", "2", 5, 6)),
        })
        .unwrap();
        assert_eq!(ev.kind, EventKind::Deleted);
        assert_eq!(ev.object.value.as_ref(), b"2");
        assert_eq!(ev.object.mod_revision, 9);
        assert_eq!(ev.object.create_revision, 5);
    }

    #[test]
    fn canceled_with_compaction_is_expired() {
        let resp = WatchResponse {
            canceled: true,
            compact_revision: 40,
            ..Default::default()
        };
        assert_eq!(
            cancel_error(&resp, 3),
            StorageError::Expired {
                requested: 3,
                oldest: 40
            }
        );
        let other = WatchResponse {
            canceled: true,
            cancel_reason: "slow".into(),
            ..Default::default()
        };
        assert!(matches!(
            cancel_error(&other, 3),
            StorageError::Unavailable(_)
        ));
    }
}
