//! Conformance cases: lists, pagination at one snapshot, and read revisions.

use std::sync::Arc;

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;

use crate::storage::{ListOptions, ListPage, ReadRevision, Storage, StorageError, StoredObject};

fn keys(items: &[StoredObject]) -> Vec<String> {
    items.iter().map(|o| o.key.clone()).collect()
}

async fn create_all(s: &Arc<dyn Storage>, names: &[String]) -> anyhow::Result<Vec<StoredObject>> {
    let mut out = Vec::new();
    for n in names {
        out.push(s.create(n, Bytes::from(format!("value of {n}"))).await?);
    }
    Ok(out)
}

/// Every page of a list, later pages at `Exact(first.revision)`.
async fn list_paged(
    s: &Arc<dyn Storage>,
    prefix: &str,
    limit: usize,
    first_revision: ReadRevision,
) -> anyhow::Result<(Vec<ListPage>, Vec<StoredObject>)> {
    let mut opts = ListOptions {
        revision: first_revision,
        limit: Some(limit),
        start_after: None,
    };
    let mut pages = Vec::new();
    let mut items = Vec::new();
    for _ in 0..1000 {
        let page = s.list(prefix, &opts).await.context("list page")?;
        ensure!(
            page.items.len() <= limit,
            "page of {} items with limit {limit}",
            page.items.len()
        );
        if let Some(first) = pages.first() {
            let first: &ListPage = first;
            ensure!(
                page.revision == first.revision,
                "page at {} after a first page at {}",
                page.revision,
                first.revision
            );
        }
        items.extend(page.items.iter().cloned());
        let next = page.next_key.clone();
        let rev = page.revision;
        pages.push(page);
        match next {
            Some(k) => {
                opts.revision = ReadRevision::Exact(rev);
                opts.start_after = Some(k);
            }
            None => return Ok((pages, items)),
        }
    }
    bail!("list of {prefix} did not end after 1000 pages")
}

/// A list returns exactly the keys under its prefix, in key order, at a revision ≥ the writes.
pub async fn list_prefix_boundaries(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let names: Vec<String> = ["a/2", "a/1", "a/3", "ab/1", "b/1", "a0"]
        .iter()
        .map(|n| format!("{p}{n}"))
        .collect();
    let objs = create_all(&s, &names).await?;
    let last = objs.iter().map(|o| o.mod_revision).max().unwrap_or(0);
    let page = s.list(&format!("{p}a/"), &ListOptions::default()).await?;
    ensure!(
        keys(&page.items) == vec![format!("{p}a/1"), format!("{p}a/2"), format!("{p}a/3")],
        "list a/: {:?}",
        keys(&page.items)
    );
    ensure!(
        page.revision >= last,
        "list revision {} < last write {last}",
        page.revision
    );
    ensure!(
        page.next_key.is_none(),
        "unlimited list has next_key {:?}",
        page.next_key
    );
    let all = s.list(&p, &ListOptions::default()).await?;
    let mut sorted = names.clone();
    sorted.sort();
    ensure!(
        keys(&all.items) == sorted,
        "list of the case prefix: {:?}",
        keys(&all.items)
    );
    for o in &all.items {
        let made = objs
            .iter()
            .find(|m| m.key == o.key)
            .context("listed an unknown key")?;
        ensure!(o == made, "listed {o:?}, created {made:?}");
    }
    let empty = s.list(&format!("{p}zz/"), &ListOptions::default()).await?;
    ensure!(
        empty.items.is_empty(),
        "empty prefix listed {:?}",
        keys(&empty.items)
    );
    ensure!(
        empty.revision >= last,
        "empty list at revision {} < {last}",
        empty.revision
    );
    Ok(())
}

/// Pages chain through `next_key` and together equal the unpaged list.
pub async fn list_pagination(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let names: Vec<String> = (0..7).map(|i| format!("{p}item-{i:02}")).collect();
    create_all(&s, &names).await?;
    let (pages, items) = list_paged(&s, &p, 3, ReadRevision::Latest).await?;
    ensure!(
        pages.len() == 3,
        "7 items in pages of 3 gave {} pages",
        pages.len()
    );
    ensure!(keys(&items) == names, "paged keys {:?}", keys(&items));
    if let Some(r) = pages[0].remaining {
        ensure!(r == 4, "first page says {r} remain, 4 do");
    }
    if let Some(r) = pages[1].remaining {
        ensure!(r == 1, "second page says {r} remain, 1 does");
    }
    let last = &pages[2];
    ensure!(
        last.next_key.is_none() && last.remaining.unwrap_or(0) == 0,
        "last page: next {:?}, remaining {:?}",
        last.next_key,
        last.remaining
    );
    let exact = s
        .list(
            &p,
            &ListOptions {
                limit: Some(7),
                ..Default::default()
            },
        )
        .await?;
    ensure!(
        exact.next_key.is_none(),
        "a limit equal to the count still set next_key {:?}",
        exact.next_key
    );
    Ok(())
}

/// Later pages read at the first page's revision see neither later writes nor later deletes.
pub async fn list_pages_keep_their_snapshot(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let names: Vec<String> = (0..6).map(|i| format!("{p}item-{i}")).collect();
    let objs = create_all(&s, &names).await?;
    let first = s
        .list(
            &p,
            &ListOptions {
                limit: Some(2),
                ..Default::default()
            },
        )
        .await?;
    ensure!(
        keys(&first.items) == names[..2].to_vec(),
        "first page {:?}",
        keys(&first.items)
    );
    let next = first
        .next_key
        .clone()
        .context("first page has no next_key")?;
    // Writes after the first page: delete, update and create inside the rest of the list.
    s.delete(&names[3], None).await?;
    s.update(
        &names[4],
        Bytes::from_static(b"changed"),
        objs[4].mod_revision,
    )
    .await?;
    s.create(&format!("{p}item-9"), Bytes::from_static(b"new"))
        .await?;
    let mut opts = ListOptions {
        revision: ReadRevision::Exact(first.revision),
        limit: Some(2),
        start_after: Some(next),
    };
    let mut rest = Vec::new();
    for _ in 0..10 {
        let page = s.list(&p, &opts).await.context("later page")?;
        ensure!(
            page.revision == first.revision,
            "later page at {}, first at {}",
            page.revision,
            first.revision
        );
        rest.extend(page.items);
        match page.next_key {
            Some(k) => opts.start_after = Some(k),
            None => break,
        }
    }
    ensure!(
        keys(&rest) == names[2..].to_vec(),
        "later pages {:?}, wanted the snapshot {:?}",
        keys(&rest),
        names[2..].to_vec()
    );
    for (got, want) in rest.iter().zip(&objs[2..]) {
        ensure!(
            got == want,
            "later page holds {got:?}, the snapshot {want:?}"
        );
    }
    let now = s.list(&p, &ListOptions::default()).await?;
    let want: Vec<String> = [0, 1, 2, 4, 5]
        .iter()
        .map(|i| names[*i].clone())
        .chain([format!("{p}item-9")])
        .collect();
    ensure!(
        keys(&now.items) == want,
        "latest list {:?}",
        keys(&now.items)
    );
    Ok(())
}

/// `Exact` reads the past, `NotOlderThan` a state at least that new, `Any` something.
pub async fn read_revisions(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let k = format!("{p}obj");
    let o = s.create(&k, Bytes::from_static(b"v1")).await?;
    let u = s
        .update(&k, Bytes::from_static(b"v2"), o.mod_revision)
        .await?;
    let old = s.get(&k, ReadRevision::Exact(o.mod_revision)).await?;
    ensure!(
        old.as_ref() == Some(&o),
        "get at the create revision: {old:?}"
    );
    let before = s.get(&k, ReadRevision::Exact(o.mod_revision - 1)).await?;
    ensure!(before.is_none(), "get before the create: {before:?}");
    let new = s
        .get(&k, ReadRevision::NotOlderThan(u.mod_revision))
        .await?;
    ensure!(
        new.as_ref() == Some(&u),
        "get not older than the update: {new:?}"
    );
    s.get(&k, ReadRevision::Any).await.context("get Any")?;
    let page = s
        .list(
            &p,
            &ListOptions {
                revision: ReadRevision::Exact(o.mod_revision),
                ..Default::default()
            },
        )
        .await?;
    ensure!(
        page.items == vec![o.clone()] && page.revision == o.mod_revision,
        "list at the create revision: {page:?}"
    );
    let page = s
        .list(
            &p,
            &ListOptions {
                revision: ReadRevision::NotOlderThan(u.mod_revision),
                ..Default::default()
            },
        )
        .await?;
    ensure!(
        page.items == vec![u.clone()] && page.revision >= u.mod_revision,
        "list not older than the update: {page:?}"
    );
    let page = s
        .list(
            &p,
            &ListOptions {
                revision: ReadRevision::Any,
                ..Default::default()
            },
        )
        .await?;
    ensure!(page.items.len() <= 1, "list Any: {page:?}");
    Ok(())
}

/// Reads at a revision the store has not reached fail with `Timeout`.
pub async fn future_revisions_time_out(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let k = format!("{p}obj");
    s.create(&k, Bytes::from_static(b"v")).await?;
    let future = s.current_revision(&p).await? + 1_000_000;
    match s.get(&k, ReadRevision::NotOlderThan(future)).await {
        Err(StorageError::Timeout(r)) => ensure!(r == future, "Timeout({r}) for {future}"),
        other => bail!("get NotOlderThan(future): expected Timeout, got {other:?}"),
    }
    let opts = ListOptions {
        revision: ReadRevision::NotOlderThan(future),
        ..Default::default()
    };
    match s.list(&p, &opts).await {
        Err(StorageError::Timeout(_)) => {}
        other => bail!("list NotOlderThan(future): expected Timeout, got {other:?}"),
    }
    let opts = ListOptions {
        revision: ReadRevision::Exact(future),
        ..Default::default()
    };
    match s.list(&p, &opts).await {
        Err(StorageError::Timeout(_)) => {}
        other => bail!("list Exact(future): expected Timeout, got {other:?}"),
    }
    Ok(())
}
