//! The pure state of one prefix's watch cache: objects, the event ring, the watchers.
//!
//! ```text
//! reset(list@R)  ─► objects := list, rev := R, ring := [], window (R, R]; every watcher Expired
//! apply(events)  ─► objects updated, ring += events (oldest evicted, window start moves up),
//!                   each matching watcher gets each event with try_send: full ⇒ Expired
//! progress(R)    ─► rev := R; every watcher gets Progress(rev) (skipped when its queue is full)
//! register(p, a) ─► a < window start ⇒ Expired; else backlog = ring events > a under p
//! ```
//! Everything here runs under the cache's lock and never awaits.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::storage::{
    EventKind, ListPage, Revision, StorageError, StoredObject, WatchEvent, WatchItem,
};

/// How a watcher ended, read by its stream once its channel is closed.
#[derive(Default)]
pub(super) struct WatcherEnd(Mutex<Option<StorageError>>);

impl WatcherEnd {
    pub(super) fn set(&self, e: StorageError) {
        let mut g = self.0.lock();
        if g.is_none() {
            *g = Some(e);
        }
    }

    pub(super) fn take(&self) -> Option<StorageError> {
        self.0.lock().take()
    }
}

struct Watcher {
    prefix: String,
    /// Only events after this revision are delivered.
    after: Revision,
    /// The last revision handed to this watcher.
    sent: Revision,
    /// The last progress revision handed to this watcher.
    progress_sent: Revision,
    tx: mpsc::Sender<WatchItem>,
    end: Arc<WatcherEnd>,
}

/// A new watcher: what it must replay from the ring, then its live channel.
pub(super) struct Registration {
    pub(super) backlog: Vec<WatchItem>,
    pub(super) rx: mpsc::Receiver<WatchItem>,
    pub(super) end: Arc<WatcherEnd>,
}

/// One prefix's cached state.
pub(super) struct CacheState {
    objects: BTreeMap<String, StoredObject>,
    /// Every change up to this revision is applied (0: not listed yet).
    rev: Revision,
    /// The highest revision reported by a progress notification.
    progress_rev: Revision,
    ring: VecDeque<WatchEvent>,
    ring_capacity: usize,
    /// The ring holds every event after this revision.
    window_start: Revision,
    watchers: Vec<Watcher>,
    watcher_buffer: usize,
}

/// Why `apply` refused events.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct OutOfOrder {
    pub(super) event_rev: Revision,
    pub(super) cache_rev: Revision,
}

impl CacheState {
    /// An empty, not yet listed state.
    pub(super) fn new(ring_capacity: usize, watcher_buffer: usize) -> Self {
        Self {
            objects: BTreeMap::new(),
            rev: 0,
            progress_rev: 0,
            ring: VecDeque::new(),
            ring_capacity: ring_capacity.max(1),
            window_start: 0,
            watchers: Vec::new(),
            watcher_buffer: watcher_buffer.max(1),
        }
    }

    /// The revision the state is at (0 before the first list).
    pub(super) fn revision(&self) -> Revision {
        self.rev
    }

    /// The oldest revision a watch may start after.
    #[cfg(test)]
    pub(super) fn window_start(&self) -> Revision {
        self.window_start
    }

    /// Number of live watchers.
    pub(super) fn watcher_count(&self) -> usize {
        self.watchers.len()
    }

    /// Replaces the state with a fresh list at `rev`; every watcher is ended with `Expired`
    /// (the changes between its position and `rev` are unknown).
    pub(super) fn reset(&mut self, items: Vec<StoredObject>, rev: Revision) {
        self.objects = items.into_iter().map(|o| (o.key.clone(), o)).collect();
        self.rev = rev;
        self.progress_rev = rev;
        self.ring.clear();
        self.window_start = rev;
        for w in self.watchers.drain(..) {
            metrics::counter!("apiserver_watch_cache_watchers_expired_total", "reason" => "relist")
                .increment(1);
            w.end.set(StorageError::Expired {
                requested: w.sent,
                oldest: rev,
            });
        }
    }

    /// Applies events of revisions after the state's revision, in order, and fans them out.
    pub(super) fn apply(&mut self, events: Vec<WatchEvent>) -> Result<(), OutOfOrder> {
        for ev in events {
            let r = ev.object.mod_revision;
            // Several events may share a revision (one txn), but never one already reported
            // complete by a progress notification.
            if r < self.rev || r <= self.progress_rev {
                return Err(OutOfOrder {
                    event_rev: r,
                    cache_rev: self.rev.max(self.progress_rev),
                });
            }
            match ev.kind {
                EventKind::Deleted => {
                    self.objects.remove(&ev.object.key);
                }
                EventKind::Added | EventKind::Modified => {
                    self.objects
                        .insert(ev.object.key.clone(), ev.object.clone());
                }
            }
            self.rev = r;
            self.fan_out(&ev);
            self.ring.push_back(ev);
            while self.ring.len() > self.ring_capacity {
                if let Some(old) = self.ring.pop_front() {
                    self.window_start = old.object.mod_revision;
                }
            }
        }
        Ok(())
    }

    fn fan_out(&mut self, ev: &WatchEvent) {
        let r = ev.object.mod_revision;
        let window_start = self.window_start;
        self.watchers.retain_mut(|w| {
            if r <= w.after || !ev.object.key.starts_with(&w.prefix) {
                return !w.tx.is_closed();
            }
            match w.tx.try_send(WatchItem::Event(ev.clone())) {
                Ok(()) => {
                    w.sent = r;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!(
                        "apiserver_watch_cache_watchers_expired_total", "reason" => "slow"
                    )
                    .increment(1);
                    w.end.set(StorageError::Expired {
                        requested: w.sent,
                        oldest: window_start.max(w.sent),
                    });
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Records that every change up to `rev` has been applied; tells every watcher.
    pub(super) fn progress(&mut self, rev: Revision) {
        if rev > self.rev {
            self.rev = rev;
        }
        self.progress_rev = self.progress_rev.max(rev);
        let at = self.rev;
        self.watchers.retain_mut(|w| {
            if at < w.after || at < w.sent || at <= w.progress_sent {
                return !w.tx.is_closed();
            }
            match w.tx.try_send(WatchItem::Progress(at)) {
                Ok(()) => {
                    w.sent = at;
                    w.progress_sent = at;
                    true
                }
                // A bookmark is advisory: a full queue skips it (the next event decides).
                Err(mpsc::error::TrySendError::Full(_)) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Ends every watcher with `e` (the cache is stopping).
    pub(super) fn end_all(&mut self, e: StorageError) {
        for w in self.watchers.drain(..) {
            w.end.set(e.clone());
        }
    }

    /// A new watcher of `prefix` for changes after `after`.
    pub(super) fn register(
        &mut self,
        prefix: &str,
        after: Revision,
    ) -> Result<Registration, StorageError> {
        if after < self.window_start {
            return Err(StorageError::Expired {
                requested: after,
                oldest: self.window_start,
            });
        }
        let backlog: Vec<WatchItem> = self
            .ring
            .iter()
            .filter(|e| e.object.mod_revision > after && e.object.key.starts_with(prefix))
            .cloned()
            .map(WatchItem::Event)
            .collect();
        let sent = backlog.last().map_or(after, |i| match i {
            WatchItem::Event(e) => e.object.mod_revision,
            WatchItem::Progress(r) => *r,
        });
        let (tx, rx) = mpsc::channel(self.watcher_buffer);
        let end = Arc::new(WatcherEnd::default());
        self.watchers.retain(|w| !w.tx.is_closed());
        self.watchers.push(Watcher {
            prefix: prefix.to_string(),
            after,
            sent,
            progress_sent: 0,
            tx,
            end: end.clone(),
        });
        Ok(Registration { backlog, rx, end })
    }

    /// One object.
    pub(super) fn get(&self, key: &str) -> Option<StoredObject> {
        self.objects.get(key).cloned()
    }

    /// One page of the objects under `prefix`, at the state's revision.
    pub(super) fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> ListPage {
        let lower = match start_after {
            Some(k) if k >= prefix => Bound::Excluded(k.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        let mut iter = self
            .objects
            .range::<String, _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, o)| o);
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let items: Vec<StoredObject> = iter.by_ref().take(limit).cloned().collect();
        let rest = iter.count();
        let next_key = (rest > 0)
            .then(|| items.last().map(|o| o.key.clone()))
            .flatten();
        ListPage {
            items,
            revision: self.rev,
            remaining: next_key.as_ref().map(|_| rest as i64),
            next_key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn obj(key: &str, v: &str, create: Revision, modr: Revision) -> StoredObject {
        StoredObject {
            key: key.into(),
            value: Bytes::from(v.to_string()),
            mod_revision: modr,
            create_revision: create,
        }
    }

    fn added(key: &str, rev: Revision) -> WatchEvent {
        WatchEvent {
            kind: EventKind::Added,
            object: obj(key, "v", rev, rev),
            prev_value: None,
        }
    }

    fn drain(rx: &mut mpsc::Receiver<WatchItem>) -> Vec<WatchItem> {
        let mut out = Vec::new();
        while let Ok(i) = rx.try_recv() {
            out.push(i);
        }
        out
    }

    fn event_revs(items: &[WatchItem]) -> Vec<Revision> {
        items
            .iter()
            .filter_map(|i| match i {
                WatchItem::Event(e) => Some(e.object.mod_revision),
                WatchItem::Progress(_) => None,
            })
            .collect()
    }

    #[test]
    fn list_pages_in_key_order_within_the_prefix() {
        let mut s = CacheState::new(10, 10);
        s.reset(
            vec![
                obj("/a/1", "x", 2, 2),
                obj("/a/2", "x", 3, 3),
                obj("/a/3", "x", 4, 4),
                obj("/b/1", "x", 5, 5),
            ],
            5,
        );
        let p1 = s.list("/a/", None, Some(2));
        assert_eq!(p1.items.len(), 2);
        assert_eq!(p1.next_key.as_deref(), Some("/a/2"));
        assert_eq!(p1.remaining, Some(1));
        let p2 = s.list("/a/", p1.next_key.as_deref(), Some(2));
        assert_eq!(p2.items.len(), 1);
        assert_eq!(p2.items[0].key, "/a/3");
        assert_eq!(p2.next_key, None);
        assert_eq!(s.list("/", None, None).items.len(), 4);
        assert_eq!(p2.revision, 5);
    }

    #[test]
    fn ring_eviction_moves_the_window_and_old_watches_expire() {
        let mut s = CacheState::new(3, 10);
        s.reset(Vec::new(), 10);
        s.apply((11..=15).map(|r| added(&format!("/a/{r}"), r)).collect())
            .unwrap();
        assert_eq!(s.window_start(), 12);
        assert!(matches!(
            s.register("/a/", 11),
            Err(StorageError::Expired {
                requested: 11,
                oldest: 12
            })
        ));
        let reg = s.register("/a/", 12).unwrap();
        assert_eq!(event_revs(&reg.backlog), vec![13, 14, 15]);
    }

    #[test]
    fn slow_watcher_expires_and_others_keep_receiving() {
        let mut s = CacheState::new(100, 2);
        s.reset(Vec::new(), 1);
        let mut fast = s.register("/a/", 1).unwrap();
        let slow = s.register("/a/", 1).unwrap();
        let mut got = Vec::new();
        for r in 2..=6 {
            s.apply(vec![added(&format!("/a/{r}"), r)]).unwrap();
            got.extend(drain(&mut fast.rx));
        }
        assert_eq!(event_revs(&got), vec![2, 3, 4, 5, 6]);
        assert_eq!(s.watcher_count(), 1);
        assert!(matches!(
            slow.end.take(),
            Some(StorageError::Expired { requested: 3, .. })
        ));
    }

    #[test]
    fn watchers_see_only_their_prefix_and_later_revisions() {
        let mut s = CacheState::new(100, 100);
        s.reset(Vec::new(), 1);
        let mut w = s.register("/a/x/", 3).unwrap();
        s.apply(vec![
            added("/a/x/1", 2),
            added("/a/y/1", 3),
            added("/a/x/2", 4),
        ])
        .unwrap();
        assert_eq!(event_revs(&drain(&mut w.rx)), vec![4]);
    }

    #[test]
    fn progress_reaches_watchers_and_later_old_events_are_refused() {
        let mut s = CacheState::new(100, 100);
        s.reset(Vec::new(), 1);
        let mut w = s.register("/a/", 1).unwrap();
        s.progress(7);
        assert_eq!(drain(&mut w.rx), vec![WatchItem::Progress(7)]);
        assert_eq!(s.revision(), 7);
        assert_eq!(
            s.apply(vec![added("/a/1", 7)]),
            Err(OutOfOrder {
                event_rev: 7,
                cache_rev: 7
            })
        );
    }

    #[test]
    fn reset_expires_every_watcher() {
        let mut s = CacheState::new(100, 100);
        s.reset(Vec::new(), 1);
        let w = s.register("/a/", 1).unwrap();
        s.reset(vec![obj("/a/1", "x", 9, 9)], 9);
        assert_eq!(s.watcher_count(), 0);
        assert!(matches!(
            w.end.take(),
            Some(StorageError::Expired { oldest: 9, .. })
        ));
        assert_eq!(s.get("/a/1").map(|o| o.mod_revision), Some(9));
    }
}
