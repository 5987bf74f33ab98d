//! Conformance cases: watches (order, exactly-once, resume, sub-prefixes, progress).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use futures::StreamExt;

use super::{next_event, next_item, WATCH_ITEM_TIMEOUT};
use crate::storage::{EventKind, Revision, Storage, WatchEvent, WatchItem, WatchStream};

fn summary(e: &WatchEvent) -> (EventKind, String, Revision) {
    (e.kind, e.object.key.clone(), e.object.mod_revision)
}

/// Writes a marker under `prefix` and checks that it is the watch's next event: proves that
/// nothing unexpected came before it.
async fn expect_marker_next(
    s: &Arc<dyn Storage>,
    w: &mut WatchStream,
    prefix: &str,
) -> anyhow::Result<()> {
    let m = s
        .create(&format!("{prefix}zz-marker"), Bytes::from_static(b"m"))
        .await?;
    let e = next_event(w).await.context("waiting for the marker")?;
    ensure!(
        summary(&e) == (EventKind::Added, m.key.clone(), m.mod_revision),
        "expected the marker, got {:?}",
        summary(&e)
    );
    Ok(())
}

/// Every change after the start revision, once, in order, with the right kind, values and
/// revisions; nothing outside the prefix.
pub async fn watch_reports_every_change(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let start = s.current_revision(&p).await?;
    let mut w = s.watch(&p, start).await.context("watch")?;
    let a = format!("{p}a");
    let c1 = s.create(&a, Bytes::from_static(b"a1")).await?;
    // A sibling prefix that shares the case prefix's bytes but not its slash.
    let outside = format!("{}-outside/x", p.trim_end_matches('/'));
    s.create(&outside, Bytes::from_static(b"o")).await?;
    let u1 = s
        .update(&a, Bytes::from_static(b"a2"), c1.mod_revision)
        .await?;
    let c2 = s
        .create(&format!("{p}b"), Bytes::from_static(b"b1"))
        .await?;
    let d1 = s.delete(&a, None).await?;
    let e = next_event(&mut w).await?;
    ensure!(
        e.kind == EventKind::Added && e.object == c1 && e.prev_value.is_none(),
        "1st event {e:?}"
    );
    let e = next_event(&mut w).await?;
    ensure!(
        e.kind == EventKind::Modified && e.object == u1,
        "2nd event {e:?}"
    );
    ensure!(
        e.prev_value.as_deref() == Some(&b"a1"[..]),
        "2nd event prev_value {:?}",
        e.prev_value
    );
    let e = next_event(&mut w).await?;
    ensure!(
        e.kind == EventKind::Added && e.object == c2,
        "3rd event {e:?}"
    );
    let e = next_event(&mut w).await?;
    ensure!(
        e.kind == EventKind::Deleted && e.object == d1,
        "4th event {e:?}, deleted {d1:?}"
    );
    ensure!(
        e.object.value.as_ref() == b"a2",
        "a deletion carries the last value, got {:?}",
        e.object.value
    );
    ensure!(
        e.prev_value.as_deref() == Some(&b"a2"[..]),
        "deletion prev_value {:?}",
        e.prev_value
    );
    expect_marker_next(&s, &mut w, &p).await?;
    let _ = s.delete(&outside, None).await;
    Ok(())
}

/// A watch from a past revision replays exactly the changes after it (changes made after the
/// implementation first served the prefix: a cache replays only what it saw).
pub async fn watch_from_past_revision(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    // A cache's history starts when it first serves the prefix: touch it before writing.
    s.list(&p, &Default::default()).await?;
    let mut revs = Vec::new();
    for i in 0..6 {
        revs.push(
            s.create(&format!("{p}k{i}"), Bytes::from(format!("{i}")))
                .await?
                .mod_revision,
        );
    }
    let mut w = s.watch(&p, revs[2]).await.context("watch from the past")?;
    for (i, want) in revs.iter().enumerate().skip(3) {
        let e = next_event(&mut w).await?;
        ensure!(
            summary(&e) == (EventKind::Added, format!("{p}k{i}"), *want),
            "replayed {:?}, wanted k{i} at {want}",
            summary(&e)
        );
    }
    expect_marker_next(&s, &mut w, &p).await?;
    Ok(())
}

/// A watch of a sub-prefix sees only that sub-prefix.
pub async fn watch_sub_prefix(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let start = s.current_revision(&p).await?;
    let ns1 = format!("{p}ns1/");
    let mut w = s.watch(&ns1, start).await?;
    s.create(&format!("{p}ns2/x"), Bytes::from_static(b"2"))
        .await?;
    s.create(&format!("{p}ns10/x"), Bytes::from_static(b"10"))
        .await?;
    let mine = s
        .create(&format!("{ns1}x"), Bytes::from_static(b"1"))
        .await?;
    let e = next_event(&mut w).await?;
    ensure!(e.object == mine, "sub-prefix watch got {:?}", summary(&e));
    expect_marker_next(&s, &mut w, &ns1).await?;
    Ok(())
}

/// After `request_progress`, an idle watch reports progress at or past the last change.
pub async fn watch_progress(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let start = s.current_revision(&p).await?;
    let mut w = s.watch(&p, start).await?;
    let o = s
        .create(&format!("{p}obj"), Bytes::from_static(b"v"))
        .await?;
    let e = next_event(&mut w).await?;
    ensure!(e.object == o, "event {e:?}");
    let deadline = Instant::now() + WATCH_ITEM_TIMEOUT;
    while Instant::now() < deadline {
        s.request_progress(&p).await?;
        match tokio::time::timeout(Duration::from_millis(500), w.next()).await {
            Err(_) => continue,
            Ok(None) => bail!("watch ended"),
            Ok(Some(Err(e))) => bail!("watch failed: {e}"),
            Ok(Some(Ok(WatchItem::Event(e)))) => bail!("unexpected event {:?}", summary(&e)),
            Ok(Some(Ok(WatchItem::Progress(r)))) => {
                ensure!(
                    r >= o.mod_revision,
                    "progress {r} before the delivered event {}",
                    o.mod_revision
                );
                // Progress is a promise: what follows is newer.
                let o2 = s
                    .create(&format!("{p}obj2"), Bytes::from_static(b"v"))
                    .await?;
                loop {
                    match next_item(&mut w).await? {
                        WatchItem::Progress(r2) => {
                            ensure!(r2 >= r, "progress went back from {r} to {r2}")
                        }
                        WatchItem::Event(e) => {
                            ensure!(
                                e.object == o2 && e.object.mod_revision > r,
                                "after progress {r}: {:?}",
                                summary(&e)
                            );
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
    bail!("no progress notification within {WATCH_ITEM_TIMEOUT:?}")
}

/// Delete and re-create of one key: Added, Deleted, Added with a new create revision.
pub async fn watch_delete_and_recreate(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let start = s.current_revision(&p).await?;
    let mut w = s.watch(&p, start).await?;
    let k = format!("{p}obj");
    let c1 = s.create(&k, Bytes::from_static(b"1")).await?;
    let d = s.delete(&k, Some(c1.mod_revision)).await?;
    let c2 = s.create(&k, Bytes::from_static(b"2")).await?;
    let got = [
        next_event(&mut w).await?,
        next_event(&mut w).await?,
        next_event(&mut w).await?,
    ];
    let kinds: Vec<EventKind> = got.iter().map(|e| e.kind).collect();
    ensure!(
        kinds == vec![EventKind::Added, EventKind::Deleted, EventKind::Added],
        "kinds {kinds:?}"
    );
    ensure!(
        got[0].object == c1 && got[1].object == d && got[2].object == c2,
        "events {got:?}"
    );
    ensure!(
        got[2].prev_value.is_none(),
        "a re-create has no previous value"
    );
    ensure!(
        c2.create_revision > c1.create_revision,
        "re-create kept the create revision"
    );
    Ok(())
}
