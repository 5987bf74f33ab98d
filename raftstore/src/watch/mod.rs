//! Watch fan-out: applied revisions go to every watch stream with a watcher in range.
//!
//! ```text
//! apply ─► WatchHub::publish(rev, events) ─(try_send, never blocks)─► per-stream channel
//!                                                                 └─► stream task ─► client
//! ```
//! Each gRPC watch stream has one bounded channel. If it is full, the hub drops the stream's
//! subscription and marks it lagged; the stream then cancels its watchers with the revision to
//! resume from, so a slow client never stalls writes.
//!
//! # Correctness
//! `publish` sends and advances the hub revision under one lock, so a stream that reads
//! `revision()` and then drains its channel has received every event at or below it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::keys::KeyRange;
use crate::proto::mvccpb::Event;

/// Events of one revision.
#[derive(Debug, Clone)]
pub struct RevisionEvents {
    /// The revision.
    pub rev: i64,
    /// Every change of the revision, in sub-revision order.
    pub events: Arc<Vec<Event>>,
}

struct StreamSub {
    tx: mpsc::Sender<RevisionEvents>,
    watchers: HashMap<i64, KeyRange>,
    lagged: Arc<AtomicBool>,
}

struct Inner {
    rev: i64,
    next_stream: u64,
    streams: HashMap<u64, StreamSub>,
}

/// Fan-out of applied revisions to watch streams.
pub struct WatchHub {
    inner: Mutex<Inner>,
    buffer: usize,
}

/// A watch stream's subscription.
pub struct Subscription {
    /// Subscription id (to add and remove watchers).
    pub id: u64,
    /// Revisions with at least one event in range of one of the stream's watchers.
    pub rx: mpsc::Receiver<RevisionEvents>,
    /// Set when the hub dropped this subscription because its buffer overflowed or the store
    /// was replaced by a snapshot.
    pub lagged: Arc<AtomicBool>,
}

impl WatchHub {
    /// A hub at revision `rev` with `buffer` revisions of slack per stream.
    pub fn new(rev: i64, buffer: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                rev,
                next_stream: 1,
                streams: HashMap::new(),
            }),
            buffer: buffer.max(1),
        }
    }

    /// The last published revision.
    pub fn revision(&self) -> i64 {
        self.inner.lock().rev
    }

    /// Number of subscribed streams and watchers (for metrics).
    pub fn counts(&self) -> (usize, usize) {
        let g = self.inner.lock();
        (
            g.streams.len(),
            g.streams.values().map(|s| s.watchers.len()).sum(),
        )
    }

    /// Subscribes a new watch stream.
    pub fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::channel(self.buffer);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut g = self.inner.lock();
        let id = g.next_stream;
        g.next_stream += 1;
        g.streams.insert(
            id,
            StreamSub {
                tx,
                watchers: HashMap::new(),
                lagged: lagged.clone(),
            },
        );
        Subscription { id, rx, lagged }
    }

    /// Adds a watcher to a stream; returns the revision up to which the caller must replay
    /// from storage (later revisions arrive on the channel), or `None` if the subscription was
    /// dropped.
    pub fn add_watcher(&self, stream: u64, watch_id: i64, range: KeyRange) -> Option<i64> {
        let mut g = self.inner.lock();
        let rev = g.rev;
        let s = g.streams.get_mut(&stream)?;
        s.watchers.insert(watch_id, range);
        Some(rev)
    }

    /// Removes a watcher.
    pub fn remove_watcher(&self, stream: u64, watch_id: i64) {
        if let Some(s) = self.inner.lock().streams.get_mut(&stream) {
            s.watchers.remove(&watch_id);
        }
    }

    /// Drops a stream's subscription.
    pub fn unsubscribe(&self, stream: u64) {
        self.inner.lock().streams.remove(&stream);
    }

    /// Publishes the events of revision `rev` (called by apply, in revision order).
    pub fn publish(&self, rev: i64, events: Vec<Event>) {
        let msg = RevisionEvents {
            rev,
            events: Arc::new(events),
        };
        let mut g = self.inner.lock();
        g.rev = rev;
        let mut dropped = Vec::new();
        for (id, s) in &g.streams {
            let interested = s.watchers.values().any(|r| {
                msg.events
                    .iter()
                    .any(|e| e.kv.as_ref().is_some_and(|kv| r.contains(&kv.key)))
            });
            if !interested {
                continue;
            }
            if s.tx.try_send(msg.clone()).is_err() {
                s.lagged.store(true, Ordering::SeqCst);
                dropped.push(*id);
            }
        }
        for id in dropped {
            g.streams.remove(&id);
            metrics::counter!("navarch_store_watch_streams_lagged_total").increment(1);
        }
    }

    /// The store was replaced (snapshot installed): every stream must resume from storage.
    pub fn reset(&self, rev: i64) {
        let mut g = self.inner.lock();
        g.rev = rev;
        for (_, s) in g.streams.drain() {
            s.lagged.store(true, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mvccpb::KeyValue;

    fn put(key: &str, rev: i64) -> Event {
        Event {
            r#type: 0,
            kv: Some(KeyValue {
                key: key.as_bytes().to_vec(),
                mod_revision: rev,
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    #[test]
    fn only_streams_with_a_watcher_in_range_get_a_revision() {
        let hub = WatchHub::new(1, 8);
        let mut a = hub.subscribe();
        let mut b = hub.subscribe();
        assert_eq!(
            hub.add_watcher(a.id, 0, KeyRange::new(b"/a/", b"/a0")),
            Some(1)
        );
        hub.add_watcher(b.id, 0, KeyRange::new(b"/b", b""));
        hub.publish(2, vec![put("/a/x", 2)]);
        assert_eq!(a.rx.try_recv().unwrap().rev, 2);
        assert!(b.rx.try_recv().is_err());
        assert_eq!(hub.revision(), 2);
    }

    #[test]
    fn a_full_stream_is_dropped_and_marked_lagged_without_blocking() {
        let hub = WatchHub::new(1, 2);
        let s = hub.subscribe();
        hub.add_watcher(s.id, 0, KeyRange::new(b"k", b""));
        for rev in 2..10 {
            hub.publish(rev, vec![put("k", rev)]);
        }
        assert!(s.lagged.load(Ordering::SeqCst));
        assert_eq!(hub.counts().0, 0);
        assert_eq!(hub.revision(), 9);
        assert!(hub.add_watcher(s.id, 1, KeyRange::new(b"k", b"")).is_none());
    }
}
