//! The watch cache's own guarantees, over a real `navarch store` and a real etcd 3.4: slow
//! watchers, freshness, timeouts, expiry and pagination while writes continue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use navarch_apiserver::storage::cache::CacheConfig;
use navarch_apiserver::storage::testing::{expect_watch_expired, next_event};
use navarch_apiserver::storage::{ListOptions, ReadRevision, Storage, StorageError, WatchItem};

use crate::support::{assert_cached, cache_over, test_cache_config, unique_prefix, Kind, Store};

/// A watcher that never reads is ended with `Expired`; the other watcher and the writes go on.
async fn slow_watcher_expires_without_blocking_others(kind: Kind) {
    let Some(store) = Store::start(kind).await else {
        return;
    };
    let cfg = CacheConfig {
        watcher_buffer: 8,
        ..test_cache_config()
    };
    let cache = cache_over(store.etcd_storage().await, cfg);
    let p = unique_prefix("slow");
    let start = cache.current_revision(&p).await.unwrap();
    let mut slow = cache.watch(&p, start).await.unwrap();
    let mut fast = cache.watch(&p, start).await.unwrap();
    assert_cached(&cache, &p);
    // The fast watcher hands each revision to the writer as it reads it, and the writer goes
    // on only once the previous write was seen: it keeps up however the machine's load
    // schedules its task (its buffer is as small as the slow one's).
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut revs = Vec::new();
        while revs.len() < 50 {
            match next_event(&mut fast).await {
                Ok(e) => {
                    revs.push(e.object.mod_revision);
                    let _ = seen_tx.send(e.object.mod_revision);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(revs)
    });
    let mut written = Vec::new();
    for i in 0..50 {
        let began = Instant::now();
        let o = cache
            .create(&format!("{p}obj-{i:02}"), Bytes::from_static(b"v"))
            .await
            .unwrap();
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "write {i} took {:?}",
            began.elapsed()
        );
        written.push(o.mod_revision);
        let seen = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("the fast watcher saw write {i} within 10 s"));
        if seen.is_none() {
            // The reader stopped: its error is reported below.
            break;
        }
    }
    let got = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("fast watcher done within 30 s")
        .unwrap()
        .expect("fast watcher saw every event");
    assert_eq!(got, written, "the fast watcher saw every write, in order");
    // The slow watcher: what was queued (at most the buffer), then Expired.
    let mut queued = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await {
            Ok(Some(Ok(WatchItem::Event(_)))) => queued += 1,
            Ok(Some(Ok(WatchItem::Progress(_)))) => {}
            Ok(Some(Err(StorageError::Expired { .. }))) => break,
            other => panic!("slow watcher: expected Expired, got {other:?}"),
        }
    }
    assert!(
        queued <= 8,
        "the slow watcher was handed {queued} events with a buffer of 8"
    );
}

/// A `Latest` read right after a write sees it, even when the cache's prefix saw no change
/// since (the cache asks the store for progress instead of waiting out its timeout).
async fn latest_read_waits_until_fresh(kind: Kind) {
    let Some(store) = Store::start(kind).await else {
        return;
    };
    let cfg = CacheConfig {
        consistent_read_timeout: Duration::from_secs(20),
        progress_interval: Duration::from_secs(3600),
        ..test_cache_config()
    };
    let cache = cache_over(store.etcd_storage().await, cfg);
    let p = unique_prefix("fresh");
    let other = unique_prefix("fresh-other");
    for i in 0..20 {
        let k = format!("{p}obj-{i}");
        let o = cache.create(&k, Bytes::from(format!("{i}"))).await.unwrap();
        let got = cache.get(&k, ReadRevision::Latest).await.unwrap();
        assert_eq!(got.as_ref(), Some(&o), "Latest get after create {i}");
        let u = cache
            .update(&k, Bytes::from_static(b"u"), o.mod_revision)
            .await
            .unwrap();
        let page = cache.list(&p, &ListOptions::default()).await.unwrap();
        assert!(
            page.revision >= u.mod_revision,
            "list at {} after a write at {}",
            page.revision,
            u.mod_revision
        );
        let listed = page.items.iter().find(|o| o.key == k);
        assert_eq!(listed, Some(&u), "Latest list after update {i}");
    }
    // Writes elsewhere move the store's revision past this prefix's last event.
    for i in 0..5 {
        cache
            .create(&format!("{other}x-{i}"), Bytes::new())
            .await
            .unwrap();
    }
    assert_cached(&cache, &p);
    let began = Instant::now();
    let page = cache.list(&p, &ListOptions::default()).await.unwrap();
    assert_eq!(page.items.len(), 20);
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "a consistent read took {:?}: progress was not requested",
        began.elapsed()
    );
    let now = cache.current_revision(&p).await.unwrap();
    assert!(
        page.revision >= now,
        "list at {} but the store was at {now} before",
        page.revision
    );
}

/// `NotOlderThan` a future revision waits (and succeeds once written), else times out.
async fn not_older_than_waits_then_times_out(kind: Kind) {
    let Some(store) = Store::start(kind).await else {
        return;
    };
    let cfg = CacheConfig {
        wait_timeout: Duration::from_secs(2),
        ..test_cache_config()
    };
    let cache = cache_over(store.etcd_storage().await, cfg);
    let p = unique_prefix("future");
    cache.create(&format!("{p}a"), Bytes::new()).await.unwrap();
    let cur = cache.current_revision(&p).await.unwrap();
    // One revision ahead: satisfied by the next write.
    let reader = {
        let cache = cache.clone();
        let p = p.clone();
        tokio::spawn(async move {
            let opts = ListOptions {
                revision: ReadRevision::NotOlderThan(cur + 1),
                ..Default::default()
            };
            cache.list(&p, &opts).await
        })
    };
    let b = cache.create(&format!("{p}b"), Bytes::new()).await.unwrap();
    let page = reader
        .await
        .unwrap()
        .expect("the read waited for the next write");
    assert!(
        page.revision >= b.mod_revision && page.items.len() == 2,
        "page {page:?}"
    );
    assert_cached(&cache, &p);
    // Far ahead: Timeout after roughly wait_timeout.
    let began = Instant::now();
    let r = cache
        .get(&format!("{p}a"), ReadRevision::NotOlderThan(cur + 1000))
        .await;
    assert_eq!(r, Err(StorageError::Timeout(cur + 1000)));
    assert!(
        began.elapsed() >= Duration::from_millis(1900),
        "gave up after {:?}",
        began.elapsed()
    );
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "waited {:?}",
        began.elapsed()
    );
}

/// A watch from before the ring, and reads of compacted revisions, are `Expired`.
async fn old_revisions_expire(kind: Kind) {
    let Some(store) = Store::start(kind).await else {
        return;
    };
    let cfg = CacheConfig {
        ring_capacity: 5,
        ..test_cache_config()
    };
    let direct = store.etcd_storage().await;
    let cache = cache_over(direct.clone(), cfg);
    let p = unique_prefix("expire");
    // Start the cache before the writes so that they pass through its ring.
    cache.list(&p, &ListOptions::default()).await.unwrap();
    assert_cached(&cache, &p);
    let mut revs = Vec::new();
    for i in 0..20 {
        revs.push(
            cache
                .create(&format!("{p}k{i:02}"), Bytes::new())
                .await
                .unwrap()
                .mod_revision,
        );
    }
    cache
        .get(&format!("{p}k19"), ReadRevision::Latest)
        .await
        .unwrap();
    expect_watch_expired(cache.as_ref(), &p, revs[0])
        .await
        .unwrap();
    // The last five events are still there.
    let mut w = cache.watch(&p, revs[14]).await.unwrap();
    for want in &revs[15..] {
        assert_eq!(next_event(&mut w).await.unwrap().object.mod_revision, *want);
    }
    drop(w);
    // Compaction: the store forgets, and so do Exact reads and watches from before it.
    store.compact(revs[10]).await;
    for s in [direct.as_ref(), cache.as_ref() as &dyn Storage] {
        match s
            .get(&format!("{p}k00"), ReadRevision::Exact(revs[5]))
            .await
        {
            Err(StorageError::Expired { .. }) => {}
            other => panic!("get at a compacted revision: {other:?}"),
        }
        let opts = ListOptions {
            revision: ReadRevision::Exact(revs[5]),
            ..Default::default()
        };
        match s.list(&p, &opts).await {
            Err(StorageError::Expired { .. }) => {}
            other => panic!("list at a compacted revision: {other:?}"),
        }
    }
    expect_watch_expired(direct.as_ref(), &p, revs[2])
        .await
        .unwrap();
    // The cache still serves what it has, after the compaction.
    let page = cache.list(&p, &ListOptions::default()).await.unwrap();
    assert_eq!(page.items.len(), 20);
}

/// Paging through the cache at one revision while writers change the prefix: the pages
/// together are exactly the snapshot at the first page's revision.
async fn pagination_at_a_fixed_revision_while_writing(kind: Kind) {
    let Some(store) = Store::start(kind).await else {
        return;
    };
    let direct = store.etcd_storage().await;
    let cache = cache_over(direct.clone(), test_cache_config());
    let p = unique_prefix("paging");
    for i in 0..60 {
        cache
            .create(&format!("{p}k{i:03}"), Bytes::from(format!("{i}")))
            .await
            .unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (cache, p, stop) = (cache.clone(), p.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 10_000 {
                let k = format!("{p}k{:03}", (n * 7) % 60);
                if let Ok(Some(o)) = cache.inner().get(&k, ReadRevision::Latest).await {
                    let _ = cache
                        .update(&k, Bytes::from(format!("w{n}")), o.mod_revision)
                        .await;
                }
                let _ = cache.create(&format!("{p}new{n:05}"), Bytes::new()).await;
                let _ = cache
                    .delete(&format!("{p}k{:03}", (n * 13) % 60), None)
                    .await;
                n += 1;
            }
            n
        })
    };
    let mut opts = ListOptions {
        revision: ReadRevision::Latest,
        limit: Some(7),
        start_after: None,
    };
    let mut items = Vec::new();
    let mut first_rev = None;
    for _ in 0..1000 {
        let page = cache.list(&p, &opts).await.unwrap();
        let rev = *first_rev.get_or_insert(page.revision);
        assert_eq!(
            page.revision, rev,
            "a later page moved off the first page's revision"
        );
        items.extend(page.items);
        match page.next_key {
            Some(k) => {
                opts = ListOptions {
                    revision: ReadRevision::Exact(rev),
                    limit: Some(7),
                    start_after: Some(k),
                };
            }
            None => break,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_cached(&cache, &p);
    let writes = writer.await.unwrap();
    let rev = first_rev.unwrap();
    let snapshot = direct
        .list(
            &p,
            &ListOptions {
                revision: ReadRevision::Exact(rev),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        items, snapshot.items,
        "pages differ from the snapshot at {rev} ({writes} writer rounds)"
    );
    let latest = direct.current_revision(&p).await.unwrap();
    assert!(
        writes > 0 && latest > rev,
        "the writer did not write during the list"
    );
}

/// Every case above, once per store.
macro_rules! per_store {
    ($($name:ident),* $(,)?) => {
        mod navarch_store {
            use crate::support::Kind;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(Kind::Navarch).await;
                }
            )*
        }
        mod etcd34 {
            use crate::support::Kind;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(Kind::Etcd).await;
                }
            )*
        }
    };
}

per_store!(
    slow_watcher_expires_without_blocking_others,
    latest_read_waits_until_fresh,
    not_older_than_waits_then_times_out,
    old_revisions_expire,
);

mod pagination {
    use crate::support::Kind;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn navarch_store() {
        super::pagination_at_a_fixed_revision_while_writing(Kind::Navarch).await;
    }

    /// etcd before 3.4.31/3.5.13 can send a progress notification ahead of the events of its
    /// revision (etcd issue 15220), so a cache could label a page one revision ahead; like
    /// Kubernetes, the cache sees that version (Debian's etcd is 3.4.23) in Maintenance.Status
    /// and sends consistent reads to etcd instead, so paging at a fixed revision holds here too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etcd34() {
        super::pagination_at_a_fixed_revision_while_writing(Kind::Etcd).await;
    }
}
