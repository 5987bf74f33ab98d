//! Snapshot files: build on one engine, install on another, ingestion order, crash recovery.

use std::collections::BTreeSet;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::RaftSnapshotBuilder;
use prost::Message;

use super::*;
use crate::mvcc::apply_local;
use crate::proto::etcdserverpb::{DeleteRangeRequest, PutRequest};
use crate::state_machine::StateMachineStore;
use crate::types::Command;
use crate::watch::WatchHub;

const SHARD: u32 = 2;
const OTHER: u32 = 3;

fn put(engine: &Engine, shard: u32, key: &str, value: &str, lease: i64) {
    let req = PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        lease,
        ..Default::default()
    };
    apply_local(engine, shard, &Command::Put(req.encode_to_vec().into())).unwrap();
}

fn delete(engine: &Engine, shard: u32, key: &str) {
    let req = DeleteRangeRequest {
        key: key.as_bytes().to_vec(),
        ..Default::default()
    };
    apply_local(
        engine,
        shard,
        &Command::DeleteRange(req.encode_to_vec().into()),
    )
    .unwrap();
}

fn grant(engine: &Engine, shard: u32, id: i64) {
    apply_local(engine, shard, &Command::LeaseGrant { id, ttl: 60 }).unwrap();
}

/// Every row of `shard` in every state-machine column family, as (cf, key, value).
fn rows(engine: &Engine, shard: u32) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let keys = Keys::new(shard);
    let mut out = Vec::new();
    for name in cf::STATE_MACHINE {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(keys.upper());
        for item in engine.db().iterator_cf_opt(
            engine.cf(cf::of_shard(name, shard)),
            ro,
            rocksdb::IteratorMode::From(&keys.prefix(), rocksdb::Direction::Forward),
        ) {
            let (k, v) = item.unwrap();
            out.push((name, k.to_vec(), v.to_vec()));
        }
    }
    out
}

/// A shard with a few thousand keys, history (overwrites, deletions) and leases.
fn fill(engine: &Engine, shard: u32, tag: &str, n: usize) {
    grant(engine, shard, 7);
    grant(engine, shard, 8);
    for i in 0..n {
        let lease = if i % 10 == 0 { 7 } else { 0 };
        put(
            engine,
            shard,
            &format!("/k/{i:05}"),
            &format!("{tag}{i}"),
            lease,
        );
    }
    for i in (0..n).step_by(3) {
        put(
            engine,
            shard,
            &format!("/k/{i:05}"),
            &format!("{tag}{i}b"),
            0,
        );
    }
    for i in (0..n).step_by(7) {
        delete(engine, shard, &format!("/k/{i:05}"));
    }
    put(engine, shard, &format!("/{tag}/only-here"), "x", 8);
}

fn log_id(index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(3, 1, index)
}

fn membership() -> StoredMembership {
    let m = openraft::Membership::new_with_defaults(vec![BTreeSet::from([1, 2, 3])], []);
    StoredMembership::new(Some(log_id(5)), m)
}

/// Records an applied log id and a membership, as applying entries would.
fn set_applied(engine: &Engine, shard: u32, index: u64) {
    let keys = Keys::new(shard);
    let mut b = WriteBatch::default();
    b.put_cf(
        engine.cf(cf::META),
        keys.named(meta::APPLIED),
        encode(&log_id(index)).unwrap(),
    );
    b.put_cf(
        engine.cf(cf::META),
        keys.named(meta::MEMBERSHIP),
        encode(&membership()).unwrap(),
    );
    engine.write(b, false).unwrap();
}

fn store(engine: &Engine, shard: u32) -> StateMachineStore {
    let hub = Arc::new(WatchHub::new(1, 16));
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    StateMachineStore::new(engine.clone(), shard, hub, tx)
}

fn dirs_under(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_snapshot_equals_the_source_shard_and_leaves_other_shards_alone() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Engine::open(a_dir.path()).unwrap();
    let b = Engine::open(b_dir.path()).unwrap();
    fill(&a, SHARD, "src", 3000);
    set_applied(&a, SHARD, 9000);
    // Rows only in A's other shard must not travel; B's own rows of the shard must vanish.
    fill(&a, OTHER, "a-other", 50);
    fill(&b, SHARD, "stale", 500);
    put(&b, SHARD, "/zzz/stale-only", "y", 0);
    set_applied(&b, SHARD, 10);
    fill(&b, OTHER, "b-other", 400);
    let b_other = rows(&b, OTHER);
    let want = rows(&a, SHARD);
    assert!(
        want.len() > 6000,
        "the source shard has {} rows",
        want.len()
    );
    for name in cf::STATE_MACHINE {
        assert!(
            want.iter().any(|(c, _, _)| *c == name),
            "the source shard has rows in {name}"
        );
    }
    assert_ne!(rows(&b, SHARD), want);

    let snap = store(&a, SHARD).build_snapshot().await.unwrap();
    assert_eq!(snap.meta.last_log_id, Some(log_id(9000)));
    assert_eq!(snap.meta.last_membership, membership());
    let files = snap.snapshot.clone();
    // Building writes nothing: the files appear when the snapshot is first needed, with the
    // rows as they were at the build, not the ones written since.
    assert!(files.files().is_empty(), "files written at build");
    assert!(!files.dir().exists(), "snapshot directory made at build");
    put(&a, SHARD, "/k/00001", "overwritten after the build", 0);
    put(&a, SHARD, "/after-build", "new after the build", 0);
    assert_ne!(rows(&a, SHARD), want);
    let written = tokio::task::spawn_blocking({
        let files = files.clone();
        move || files.materialize().map(<[_]>::len)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(written, cf::STATE_MACHINE.len());
    assert_eq!(files.files().len(), cf::STATE_MACHINE.len());
    assert!(files
        .dir()
        .starts_with(a.snapshot_dir().join(SHARD.to_string())));
    assert!(files.total_bytes() > 0);

    let mut sm_b = store(&b, SHARD);
    sm_b.install_snapshot(&snap.meta, snap.snapshot.clone())
        .await
        .unwrap();
    assert_eq!(rows(&b, SHARD), want, "shard rows after install");
    assert_eq!(rows(&b, OTHER), b_other, "the other shard is untouched");
    assert_eq!(
        sm_b.applied_state().await.unwrap(),
        (Some(log_id(9000)), membership())
    );
    let cur = sm_b.get_current_snapshot().await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&cur.snapshot, &files));
    assert!(b
        .db()
        .get_cf(b.cf(cf::RAFT_META), Keys::new(SHARD).named(INSTALLING))
        .unwrap()
        .is_none());

    // The same again after a restart (the range deletion and the ingested files are durable).
    drop((sm_b, cur));
    drop(b);
    let b = Engine::open(b_dir.path()).unwrap();
    assert_eq!(rows(&b, SHARD), want, "shard rows after reopening");
    assert_eq!(rows(&b, OTHER), b_other);
    assert_eq!(
        dirs_under(&b.snapshot_dir()),
        0,
        "leftovers removed at open"
    );

    // The files go when the last handle goes, not before.
    let dir = files.dir().to_path_buf();
    drop(snap);
    assert!(dir.is_dir(), "a handle still holds the snapshot");
    drop(files);
    assert!(
        !dir.exists(),
        "the last handle removes the snapshot's directory"
    );
}

#[test]
fn ingested_rows_survive_the_range_deletion_before_them() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let keys = Keys::new(SHARD);
    let kv = engine.cf(cf::KV);
    for k in [&b"a"[..], b"b", b"c"] {
        engine.db().put_cf(kv, keys.kv(k), b"old").unwrap();
    }
    let sst = dir.path().join("x.sst");
    let opts = Options::default();
    let mut w = SstFileWriter::create(&opts);
    w.open(&sst).unwrap();
    w.put(keys.kv(b"b"), b"new").unwrap();
    w.put(keys.kv(b"d"), b"new").unwrap();
    w.finish().unwrap();

    let mut b = WriteBatch::default();
    b.delete_range_cf(kv, keys.prefix().to_vec(), keys.upper());
    engine.write(b, true).unwrap();
    let mut io = IngestExternalFileOptions::default();
    io.set_move_files(false);
    engine
        .db()
        .ingest_external_file_cf_opts(kv, &io, vec![&sst])
        .unwrap();
    let get = |e: &Engine, k: &[u8]| e.db().get_cf(e.cf(cf::KV), keys.kv(k)).unwrap();
    assert_eq!(get(&engine, b"a"), None);
    assert_eq!(get(&engine, b"b").as_deref(), Some(&b"new"[..]));
    assert_eq!(get(&engine, b"c"), None);
    assert_eq!(get(&engine, b"d").as_deref(), Some(&b"new"[..]));
    assert!(
        sst.exists(),
        "ingestion copies; the snapshot keeps its file"
    );
    drop(engine);
    let engine = Engine::open(dir.path()).unwrap();
    assert_eq!(get(&engine, b"a"), None, "after reopening");
    assert_eq!(get(&engine, b"b").as_deref(), Some(&b"new"[..]));
    assert_eq!(get(&engine, b"c"), None);
    assert_eq!(get(&engine, b"d").as_deref(), Some(&b"new"[..]));
}

#[test]
fn an_install_interrupted_by_a_crash_is_finished_when_the_engine_opens() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Engine::open(a_dir.path()).unwrap();
    let b = Engine::open(b_dir.path()).unwrap();
    fill(&a, SHARD, "src", 1000);
    set_applied(&a, SHARD, 4000);
    fill(&b, SHARD, "stale", 300);
    set_applied(&b, SHARD, 10);
    fill(&b, OTHER, "b-other", 100);
    let want = rows(&a, SHARD);
    let b_other = rows(&b, OTHER);
    let (built, applied, last_membership) = build(&a, SHARD).unwrap();
    built.materialize().unwrap();
    let meta = SnapshotMeta {
        last_log_id: applied,
        last_membership,
    };
    // The received copy, in B's snapshot directory (as the inbox leaves it).
    let dir = b.snapshot_dir().join(SHARD.to_string()).join("received");
    fs::create_dir_all(&dir).unwrap();
    for f in built.files() {
        fs::copy(built.path(f), dir.join(format!("{}.sst", f.cf))).unwrap();
    }
    let files = SnapshotFiles::open_dir(dir.clone()).unwrap();
    assert_eq!(files.files(), built.files());

    // The install's first steps: marker and range deletion, then only the first two files
    // ingested; then the process dies (the handle is leaked, as a crash would).
    files.keep.store(true, Ordering::SeqCst);
    let keys = Keys::new(SHARD);
    let mut batch = WriteBatch::default();
    let marker = InstallMarker {
        dir: dir.clone(),
        meta: meta.clone(),
    };
    batch.put_cf(
        b.cf(cf::RAFT_META),
        keys.named(INSTALLING),
        encode(&marker).unwrap(),
    );
    for name in cf::STATE_MACHINE {
        batch.delete_range_cf(
            b.cf(cf::of_shard(name, SHARD)),
            keys.prefix().to_vec(),
            keys.upper(),
        );
    }
    b.write(batch, true).unwrap();
    let partial = SnapshotFiles::written(dir.clone(), files.files()[..2].to_vec());
    partial.keep.store(true, Ordering::SeqCst);
    ingest(&b, SHARD, &partial).unwrap();
    drop(partial);
    drop(files);
    assert!(dir.is_dir());
    let half = rows(&b, SHARD);
    assert!(
        !half.is_empty() && half != want,
        "the shard is half-installed"
    );
    // Stale files of an earlier run are removed too.
    let stale = b.snapshot_dir().join(STAGING).join("9-old");
    fs::create_dir_all(&stale).unwrap();
    drop(b);

    let b = Engine::open(b_dir.path()).unwrap();
    assert_eq!(rows(&b, SHARD), want, "the install was finished at open");
    assert_eq!(rows(&b, OTHER), b_other);
    let mut sm = store(&b, SHARD);
    let state = futures::executor::block_on(sm.applied_state()).unwrap();
    assert_eq!(state, (applied, meta.last_membership.clone()));
    assert!(b
        .db()
        .get_cf(b.cf(cf::RAFT_META), keys.named(INSTALLING))
        .unwrap()
        .is_none());
    assert!(!dir.exists() && !stale.exists());
}

#[test]
fn an_interrupted_install_whose_files_are_gone_stops_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let marker = InstallMarker {
        dir: dir.path().join("nowhere"),
        meta: SnapshotMeta {
            last_log_id: Some(log_id(3)),
            last_membership: membership(),
        },
    };
    engine
        .db()
        .put_cf(
            engine.cf(cf::RAFT_META),
            Keys::new(SHARD).named(INSTALLING),
            encode(&marker).unwrap(),
        )
        .unwrap();
    drop(engine);
    let err = Engine::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("nowhere"), "{err}");
}

fn chunk(id: &str, files: &[SnapshotFile], file: usize, offset: u64, data: &[u8]) -> Chunk {
    Chunk {
        id: id.into(),
        files: files.to_vec(),
        file,
        offset,
        data: Bytes::copy_from_slice(data),
    }
}

#[tokio::test]
async fn the_inbox_writes_chunks_in_order_into_files_and_cleans_up_what_it_drops() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let inbox = SnapshotInbox::default();
    let files = vec![
        SnapshotFile {
            cf: cf::KV.into(),
            size: 5,
        },
        SnapshotFile {
            cf: cf::META.into(),
            size: 3,
        },
    ];
    let staging = engine.snapshot_dir().join(STAGING);
    let next = |r: Result<Received, String>| match r.unwrap() {
        Received::Next { file, offset } => (file, offset),
        Received::Complete(_) => panic!("complete too early"),
    };
    assert_eq!(
        next(
            inbox
                .accept(&engine, 1, chunk("s1", &files, 0, 0, b"abc"))
                .await
        ),
        (0, 3)
    );
    // Out of order: refused, and the transfer (with its staging files) is dropped.
    assert!(inbox
        .accept(&engine, 1, chunk("s1", &files, 0, 4, b"e"))
        .await
        .is_err());
    assert_eq!(dirs_under(&staging), 0);
    assert!(inbox
        .accept(&engine, 1, chunk("s1", &files, 0, 3, b"de"))
        .await
        .is_err());
    // A restart at offset 0 begins again; a new snapshot id replaces an unfinished one.
    next(
        inbox
            .accept(&engine, 1, chunk("s1", &files, 0, 0, b"ab"))
            .await,
    );
    next(
        inbox
            .accept(&engine, 1, chunk("s2", &files, 0, 0, b"ab"))
            .await,
    );
    assert_eq!(dirs_under(&staging), 1);
    assert!(inbox
        .accept(&engine, 1, chunk("s2", &files, 0, 2, b"cdefg"))
        .await
        .is_err());
    next(
        inbox
            .accept(&engine, 1, chunk("s2", &files, 0, 0, b"ab"))
            .await,
    );
    assert_eq!(
        next(
            inbox
                .accept(&engine, 1, chunk("s2", &files, 0, 2, b"cde"))
                .await
        ),
        (1, 0)
    );
    let done = match inbox
        .accept(&engine, 1, chunk("s2", &files, 1, 0, b"xyz"))
        .await
        .unwrap()
    {
        Received::Complete(f) => f,
        Received::Next { .. } => panic!("not complete"),
    };
    assert_eq!(done.files(), &files[..]);
    assert_eq!(fs::read(done.dir().join("kv.sst")).unwrap(), b"abcde");
    assert_eq!(fs::read(done.dir().join("meta.sst")).unwrap(), b"xyz");
    assert_eq!(&done.read_chunk(0, 1, 3).unwrap()[..], b"bcd");
    assert_eq!(&done.read_chunk(0, 3, 10).unwrap()[..], b"de");
    assert_eq!(dirs_under(&staging), 0, "staging is empty once complete");
    assert!(done.dir().starts_with(engine.snapshot_dir().join("1")));

    // A manifest naming something other than a state-machine column family is refused.
    let bad = vec![SnapshotFile {
        cf: "../../etc".into(),
        size: 1,
    }];
    assert!(inbox
        .accept(&engine, 1, chunk("s3", &bad, 0, 0, b"x"))
        .await
        .is_err());
    // An empty snapshot (no files) completes with its only chunk.
    assert!(matches!(
        inbox.accept(&engine, 1, chunk("s4", &[], 0, 0, b"")).await,
        Ok(Received::Complete(_))
    ));
}
