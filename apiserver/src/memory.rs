//! An in-memory [`Storage`] test double: one global revision counter, full event history.
//!
//! Used by the HTTP layer's unit tests and by the hidden `--storage memory` development flag.
//! It keeps every event forever (until [`MemoryStorage::compact`]), so it is not meant for
//! production traffic; it exists so the HTTP layer can be exercised without a store.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::storage::{
    EventKind, ListOptions, ListPage, ReadRevision, Result, Revision, Storage, StorageError,
    StoredObject, WatchEvent, WatchItem, WatchStream,
};

#[derive(Default)]
struct State {
    revision: Revision,
    /// Revisions at or below this are compacted (watches from them get `Expired`).
    compacted: Revision,
    objects: BTreeMap<String, StoredObject>,
    history: Vec<WatchEvent>,
}

/// An in-memory storage (test double).
pub struct MemoryStorage {
    state: Mutex<State>,
    events: broadcast::Sender<WatchEvent>,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStorage {
    /// An empty storage at revision 1.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            state: Mutex::new(State {
                revision: 1,
                ..State::default()
            }),
            events,
        }
    }

    /// A shared empty storage.
    pub fn shared() -> Arc<dyn Storage> {
        Arc::new(Self::new())
    }

    /// Forgets history up to and including `revision`.
    pub fn compact(&self, revision: Revision) {
        let mut st = self.state.lock();
        st.compacted = st.compacted.max(revision);
        st.history.retain(|e| e.object.mod_revision > revision);
    }

    fn record(&self, st: &mut State, ev: WatchEvent) {
        st.history.push(ev.clone());
        let _ = self.events.send(ev);
    }
}

fn check_exact(st: &State, revision: ReadRevision) -> Result<()> {
    match revision {
        ReadRevision::Exact(r) if r <= st.compacted => Err(StorageError::Expired {
            requested: r,
            oldest: st.compacted + 1,
        }),
        ReadRevision::NotOlderThan(r) if r > st.revision => Err(StorageError::Timeout(r)),
        _ => Ok(()),
    }
}

/// The object stored at `key` as of revision `at` (replaying history backwards).
fn object_at(st: &State, key: &str, at: Revision) -> Option<StoredObject> {
    let mut cur = st.objects.get(key).cloned();
    for ev in st.history.iter().rev() {
        if ev.object.mod_revision <= at {
            break;
        }
        if ev.object.key != key {
            continue;
        }
        cur = match ev.kind {
            EventKind::Added => None,
            EventKind::Modified | EventKind::Deleted => {
                ev.prev_value.as_ref().map(|v| StoredObject {
                    key: key.to_string(),
                    value: v.clone(),
                    mod_revision: 0,
                    create_revision: ev.object.create_revision,
                })
            }
        };
    }
    cur
}

/// Keys that existed at some point after revision `at` or exist now (for a historic list).
fn snapshot_at(st: &State, prefix: &str, at: Revision) -> BTreeMap<String, StoredObject> {
    if at >= st.revision {
        return st
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    let mut keys: Vec<String> = st
        .objects
        .range(prefix.to_string()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, _)| k.clone())
        .collect();
    keys.extend(
        st.history
            .iter()
            .filter(|e| e.object.key.starts_with(prefix))
            .map(|e| e.object.key.clone()),
    );
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| object_at(st, &k, at).map(|o| (k, o)))
        .collect()
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &str, revision: ReadRevision) -> Result<Option<StoredObject>> {
        let st = self.state.lock();
        check_exact(&st, revision)?;
        match revision {
            ReadRevision::Exact(r) => Ok(object_at(&st, key, r)),
            _ => Ok(st.objects.get(key).cloned()),
        }
    }

    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListPage> {
        let st = self.state.lock();
        check_exact(&st, opts.revision)?;
        let at = match opts.revision {
            ReadRevision::Exact(r) => r,
            _ => st.revision,
        };
        let snapshot = snapshot_at(&st, prefix, at);
        let mut items: Vec<StoredObject> = snapshot
            .into_iter()
            .filter(|(k, _)| opts.start_after.as_ref().is_none_or(|s| k > s))
            .map(|(_, v)| v)
            .collect();
        let total = items.len();
        let mut next_key = None;
        let mut remaining = None;
        if let Some(limit) = opts.limit {
            if limit > 0 && total > limit {
                items.truncate(limit);
                next_key = items.last().map(|o| o.key.clone());
                remaining = Some((total - limit) as i64);
            }
        }
        Ok(ListPage {
            items,
            revision: at,
            next_key,
            remaining,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<StoredObject> {
        let mut st = self.state.lock();
        if st.objects.contains_key(key) {
            return Err(StorageError::AlreadyExists {
                key: key.to_string(),
            });
        }
        st.revision += 1;
        let obj = StoredObject {
            key: key.to_string(),
            value,
            mod_revision: st.revision,
            create_revision: st.revision,
        };
        st.objects.insert(key.to_string(), obj.clone());
        let ev = WatchEvent {
            kind: EventKind::Added,
            object: obj.clone(),
            prev_value: None,
        };
        self.record(&mut st, ev);
        Ok(obj)
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<StoredObject> {
        let mut st = self.state.lock();
        let Some(old) = st.objects.get(key).cloned() else {
            return Err(StorageError::NotFound {
                key: key.to_string(),
            });
        };
        if old.mod_revision != expected {
            return Err(StorageError::Conflict {
                key: key.to_string(),
                expected,
                actual: Some(old.mod_revision),
            });
        }
        st.revision += 1;
        let obj = StoredObject {
            key: key.to_string(),
            value,
            mod_revision: st.revision,
            create_revision: old.create_revision,
        };
        st.objects.insert(key.to_string(), obj.clone());
        let ev = WatchEvent {
            kind: EventKind::Modified,
            object: obj.clone(),
            prev_value: Some(old.value),
        };
        self.record(&mut st, ev);
        Ok(obj)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<StoredObject> {
        let mut st = self.state.lock();
        let Some(old) = st.objects.get(key).cloned() else {
            return Err(StorageError::NotFound {
                key: key.to_string(),
            });
        };
        if let Some(e) = expected {
            if old.mod_revision != e {
                return Err(StorageError::Conflict {
                    key: key.to_string(),
                    expected: e,
                    actual: Some(old.mod_revision),
                });
            }
        }
        st.revision += 1;
        st.objects.remove(key);
        let obj = StoredObject {
            mod_revision: st.revision,
            ..old.clone()
        };
        let ev = WatchEvent {
            kind: EventKind::Deleted,
            object: obj.clone(),
            prev_value: Some(old.value),
        };
        self.record(&mut st, ev);
        Ok(obj)
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let (backlog, rx) = {
            let st = self.state.lock();
            if after < st.compacted {
                return Err(StorageError::Expired {
                    requested: after,
                    oldest: st.compacted,
                });
            }
            let backlog: Vec<WatchEvent> = st
                .history
                .iter()
                .filter(|e| e.object.mod_revision > after && e.object.key.starts_with(prefix))
                .cloned()
                .collect();
            (backlog, self.events.subscribe())
        };
        let last = backlog.last().map_or(after, |e| e.object.mod_revision);
        let prefix = prefix.to_string();
        let head = futures::stream::iter(backlog.into_iter().map(|e| Ok(WatchItem::Event(e))));
        let tail = futures::stream::unfold((rx, last), move |(mut rx, last)| {
            let prefix = prefix.clone();
            async move {
                loop {
                    match rx.recv().await {
                        Ok(ev)
                            if ev.object.mod_revision > last
                                && ev.object.key.starts_with(&prefix) =>
                        {
                            let rev = ev.object.mod_revision;
                            return Some((Ok(WatchItem::Event(ev)), (rx, rev)));
                        }
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            return Some((
                                Err(StorageError::Expired {
                                    requested: last,
                                    oldest: last + 1,
                                }),
                                (rx, i64::MAX),
                            ));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(Box::pin(futures::StreamExt::chain(head, tail)))
    }

    async fn current_revision(&self, _prefix: &str) -> Result<Revision> {
        Ok(self.state.lock().revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn crud_and_history() {
        let s = MemoryStorage::new();
        let a = s.create("/r/a", Bytes::from_static(b"1")).await.unwrap();
        assert!(matches!(
            s.create("/r/a", Bytes::from_static(b"x")).await,
            Err(StorageError::AlreadyExists { .. })
        ));
        let a2 = s
            .update("/r/a", Bytes::from_static(b"2"), a.mod_revision)
            .await
            .unwrap();
        assert!(matches!(
            s.update("/r/a", Bytes::from_static(b"3"), a.mod_revision)
                .await,
            Err(StorageError::Conflict { .. })
        ));
        s.create("/r/b", Bytes::from_static(b"b")).await.unwrap();
        // A list at the first revision sees the old value and not b.
        let page = s
            .list(
                "/r/",
                &ListOptions {
                    revision: ReadRevision::Exact(a.mod_revision),
                    ..ListOptions::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].value, Bytes::from_static(b"1"));
        let mut w = s.watch("/r/", a.mod_revision).await.unwrap();
        let first = w.next().await.unwrap().unwrap();
        match first {
            WatchItem::Event(e) => {
                assert_eq!(e.kind, EventKind::Modified);
                assert_eq!(e.object.mod_revision, a2.mod_revision);
            }
            other => panic!("unexpected {other:?}"),
        }
        s.delete("/r/a", None).await.unwrap();
        let _b = w.next().await.unwrap().unwrap();
        match w.next().await.unwrap().unwrap() {
            WatchItem::Event(e) => assert_eq!(e.kind, EventKind::Deleted),
            other => panic!("unexpected {other:?}"),
        }
        s.compact(a2.mod_revision);
        assert!(matches!(
            s.watch("/r/", a.mod_revision).await,
            Err(StorageError::Expired { .. })
        ));
    }
}
