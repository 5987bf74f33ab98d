//! Conformance cases: create, get, update, delete and their preconditions.

use std::sync::Arc;

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;

use crate::storage::{ReadRevision, Storage, StorageError};

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

/// Create sets both revisions; a second create is `AlreadyExists`; `Latest` sees the write.
pub async fn create_then_get(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let k = format!("{p}obj");
    let before = s.current_revision(&p).await?;
    let o = s.create(&k, b("v1")).await.context("create")?;
    ensure!(o.key == k, "create returned key {}", o.key);
    ensure!(o.value == b("v1"), "create returned value {:?}", o.value);
    ensure!(
        o.mod_revision > before && o.create_revision == o.mod_revision,
        "create revisions {}/{} (store was at {before})",
        o.create_revision,
        o.mod_revision
    );
    let got = s.get(&k, ReadRevision::Latest).await?;
    ensure!(
        got.as_ref() == Some(&o),
        "get after create: {got:?}, wanted {o:?}"
    );
    match s.create(&k, b("v2")).await {
        Err(StorageError::AlreadyExists { key }) => ensure!(key == k, "AlreadyExists names {key}"),
        other => bail!("second create: expected AlreadyExists, got {other:?}"),
    }
    let got = s.get(&k, ReadRevision::Latest).await?;
    ensure!(
        got.as_ref() == Some(&o),
        "failed create changed the object: {got:?}"
    );
    let missing = s.get(&format!("{p}missing"), ReadRevision::Latest).await?;
    ensure!(missing.is_none(), "get of a missing key: {missing:?}");
    let now = s.current_revision(&p).await?;
    ensure!(
        now >= o.mod_revision,
        "current revision {now} < write {}",
        o.mod_revision
    );
    Ok(())
}

/// Update needs the current `mod_revision`; `Conflict` names the actual one; `NotFound` if gone.
pub async fn update_preconditions(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let k = format!("{p}obj");
    let o = s.create(&k, b("v1")).await?;
    let u = s
        .update(&k, b("v2"), o.mod_revision)
        .await
        .context("update")?;
    ensure!(
        u.mod_revision > o.mod_revision,
        "update revision {} <= {}",
        u.mod_revision,
        o.mod_revision
    );
    ensure!(
        u.create_revision == o.create_revision,
        "update changed create_revision: {u:?}"
    );
    ensure!(u.value == b("v2"), "update returned {:?}", u.value);
    match s.update(&k, b("v3"), o.mod_revision).await {
        Err(StorageError::Conflict {
            key,
            expected,
            actual,
        }) => {
            ensure!(
                key == k && expected == o.mod_revision,
                "Conflict for {key} expected {expected}"
            );
            ensure!(
                actual == Some(u.mod_revision),
                "Conflict reports actual {actual:?}, wanted {}",
                u.mod_revision
            );
        }
        other => bail!("stale update: expected Conflict, got {other:?}"),
    }
    match s
        .update(&format!("{p}missing"), b("x"), u.mod_revision)
        .await
    {
        Err(StorageError::NotFound { .. }) => {}
        other => bail!("update of a missing key: expected NotFound, got {other:?}"),
    }
    match s.update(&format!("{p}missing"), b("x"), 0).await {
        Err(StorageError::NotFound { .. }) => {}
        other => bail!("update of a missing key at revision 0: expected NotFound, got {other:?}"),
    }
    let got = s.get(&k, ReadRevision::Latest).await?;
    ensure!(
        got.as_ref() == Some(&u),
        "get after update: {got:?}, wanted {u:?}"
    );
    Ok(())
}

/// Delete with and without a precondition; the result carries the deletion revision.
pub async fn delete_preconditions(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let k = format!("{p}obj");
    let o = s.create(&k, b("v1")).await?;
    match s.delete(&k, Some(o.mod_revision + 1000)).await {
        Err(StorageError::Conflict { actual, .. }) => {
            ensure!(
                actual == Some(o.mod_revision),
                "Conflict reports actual {actual:?}"
            )
        }
        other => bail!("delete with a wrong revision: expected Conflict, got {other:?}"),
    }
    let d = s.delete(&k, Some(o.mod_revision)).await.context("delete")?;
    ensure!(
        d.mod_revision > o.mod_revision,
        "deletion revision {} <= {}",
        d.mod_revision,
        o.mod_revision
    );
    ensure!(
        d.value == o.value && d.create_revision == o.create_revision && d.key == k,
        "deleted object {d:?}"
    );
    let got = s.get(&k, ReadRevision::Latest).await?;
    ensure!(got.is_none(), "get after delete: {got:?}");
    match s.delete(&k, None).await {
        Err(StorageError::NotFound { .. }) => {}
        other => bail!("second delete: expected NotFound, got {other:?}"),
    }
    match s.delete(&k, Some(d.mod_revision)).await {
        Err(StorageError::NotFound { .. }) => {}
        other => bail!("delete of a gone key with a revision: expected NotFound, got {other:?}"),
    }
    let o2 = s.create(&k, b("v2")).await.context("re-create")?;
    ensure!(
        o2.create_revision > d.mod_revision,
        "re-create kept an old create_revision: {o2:?}"
    );
    let d2 = s.delete(&k, None).await.context("unconditional delete")?;
    ensure!(
        d2.value == b("v2") && d2.mod_revision > o2.mod_revision,
        "unconditional delete returned {d2:?}"
    );
    Ok(())
}

/// Values are opaque bytes: every byte value and the empty value survive a round trip.
pub async fn binary_and_empty_values(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let all: Bytes = (0..=255u8).collect::<Vec<u8>>().into();
    let a = s.create(&format!("{p}binary"), all.clone()).await?;
    let e = s.create(&format!("{p}empty"), Bytes::new()).await?;
    let got = s.get(&a.key, ReadRevision::Latest).await?;
    ensure!(
        got.map(|o| o.value) == Some(all.clone()),
        "binary value changed"
    );
    let got = s.get(&e.key, ReadRevision::Latest).await?;
    ensure!(
        got.map(|o| o.value) == Some(Bytes::new()),
        "empty value changed (or the key is missing)"
    );
    let page = s.list(&p, &Default::default()).await?;
    let values: Vec<&Bytes> = page.items.iter().map(|o| &o.value).collect();
    ensure!(
        values == vec![&all, &Bytes::new()],
        "list values {values:?}"
    );
    Ok(())
}

/// A value over the store's request limit (etcd: 1.5 MiB) is `TooLarge` and writes nothing.
pub async fn too_large_values(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let k = format!("{p}big");
    let big = Bytes::from(vec![b'x'; 3 << 20]);
    match s.create(&k, big.clone()).await {
        Err(StorageError::TooLarge { .. }) => {}
        other => bail!(
            "3 MiB create: expected TooLarge, got {:?}",
            other.map(|o| o.mod_revision)
        ),
    }
    ensure!(
        s.get(&k, ReadRevision::Latest).await?.is_none(),
        "a refused create left a key"
    );
    let o = s.create(&k, b("small")).await?;
    match s.update(&k, big, o.mod_revision).await {
        Err(StorageError::TooLarge { .. }) => {}
        other => bail!(
            "3 MiB update: expected TooLarge, got {:?}",
            other.map(|o| o.mod_revision)
        ),
    }
    Ok(())
}

/// Of many concurrent creates of one key exactly one succeeds.
pub async fn concurrent_creates_one_wins(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    let k = format!("{p}contended");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let k = k.clone();
            tokio::spawn(async move { s.create(&k, Bytes::from(format!("writer-{i}"))).await })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await? {
            Ok(o) => winners.push(o),
            Err(StorageError::AlreadyExists { .. }) => {}
            Err(e) => bail!("concurrent create failed: {e}"),
        }
    }
    ensure!(winners.len() == 1, "{} creates succeeded", winners.len());
    let got = s.get(&k, ReadRevision::Latest).await?;
    ensure!(
        got.as_ref() == winners.first(),
        "stored {got:?}, winner {:?}",
        winners.first()
    );
    Ok(())
}

/// Read-modify-write loops with `update(expected)` never lose an increment.
pub async fn concurrent_cas_updates(s: Arc<dyn Storage>, p: String) -> anyhow::Result<()> {
    const WRITERS: usize = 4;
    const EACH: usize = 5;
    let k = format!("{p}counter");
    s.create(&k, b("0")).await?;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let s = s.clone();
            let k = k.clone();
            tokio::spawn(async move {
                let mut done = 0;
                let mut attempts = 0;
                while done < EACH {
                    attempts += 1;
                    ensure!(attempts < 500, "too many conflicts");
                    let cur = s
                        .get(&k, ReadRevision::Latest)
                        .await?
                        .context("counter vanished")?;
                    let n: u64 = std::str::from_utf8(&cur.value)?.parse()?;
                    match s
                        .update(&k, Bytes::from((n + 1).to_string()), cur.mod_revision)
                        .await
                    {
                        Ok(_) => done += 1,
                        Err(StorageError::Conflict { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let end = s
        .get(&k, ReadRevision::Latest)
        .await?
        .context("counter vanished")?;
    let want = (WRITERS * EACH).to_string();
    ensure!(
        end.value == want.as_bytes(),
        "counter is {:?}, wanted {want}",
        end.value
    );
    Ok(())
}
