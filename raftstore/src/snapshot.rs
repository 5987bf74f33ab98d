//! Shard snapshots as RocksDB SST files on disk: taken as one RocksDB snapshot, written out
//! only when a peer needs them, streamed file by file in chunks, installed by ingestion. No
//! snapshot is ever held in memory whole.
//!
//! ```text
//! build    pin thread: RocksDB snapshot ─► applied log id + membership   (SnapshotFiles, lazy:
//!          no file yet; the thread keeps the RocksDB snapshot until it is written or dropped)
//! write    (first send) per state-machine CF: iterator over the shard ─► SstFileWriter
//!          ─► <data>/snapshots/<shard>/<id>/<cf>.sst          (one SST per non-empty CF)
//! send     read 4 MiB of file i at offset o ─► PeerRequest::SnapshotChunk{files, file, offset}
//!          ─► ChunkAccepted{file, next_offset} ─► next chunk          (network::full_snapshot)
//! receive  chunks appended to <data>/snapshots/staging/<shard>-<id>/<cf>.sst (SnapshotInbox)
//!          ─► last byte: fsync, move to <data>/snapshots/<shard>/<id>/ ─► install_full_snapshot
//! install  marker "installing <dir>" + delete_range(shard) in every CF   (one synced batch)
//!          ─► ingest each CF's SST (a copy; the snapshot's files stay)
//!          ─► applied log id + membership, marker removed                (one synced batch)
//! ```
//!
//! A [`SnapshotFiles`] handle owns its directory: the directory is removed when the last
//! handle goes, so a replaced snapshot disappears from disk once no sender streams it any
//! more. Everything under `<data>/snapshots` is removed when the engine opens.
//!
//! Building is cheap on purpose, as etcd's is (its database file *is* the snapshot): the
//! state machine asks for a snapshot every `--snapshot-count` requests so that the Raft log
//! can be purged, and writing every row of the shard (its whole MVCC history) each time would
//! cost as much as the shard is large, again and again. A built snapshot holds a RocksDB
//! snapshot instead, in a thread of its own (the RocksDB handle borrows the database), and
//! writes the files only when a lagging or new member has to be sent it
//! ([`SnapshotFiles::materialize`]). Until then RocksDB keeps the row versions that snapshot
//! sees (at most one older version of each key overwritten since); they are released when
//! the snapshot is written out or replaced.
//!
//! # Correctness
//! - Ingested files get a sequence number above every write already in the database, so the
//!   keys of the snapshot survive the range deletion written just before them
//!   (`tests::ingested_rows_survive_the_range_deletion_before_them`).
//! - The marker lives in `raft_meta` (the install deletes the shard's range of `meta`) and is
//!   written, synced, before anything of the shard is deleted; its snapshot directory is kept
//!   until the marker is removed. If the process dies in between, [`recover`] (run by
//!   [`Engine::open`] before anything reads a shard) redoes the whole install from that
//!   directory: every step is idempotent.
//! - The range deletion and the final batch go through the WAL (synced); ingested files are
//!   durable once ingested. The state machine's own writes skip the WAL, and ingestion flushes
//!   the memtables it overlaps (all column families at once, as the engine uses atomic flush).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};

use bytes::Bytes;
use parking_lot::Mutex;
use rocksdb::{IngestExternalFileOptions, Options, ReadOptions, SstFileWriter, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::keys::{cf, Keys};
use crate::mvcc::meta;
use crate::types::{decode, encode, LogId, StoredMembership, TypeConfig};

type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;

/// Name of the install marker in `raft_meta`.
const INSTALLING: &str = "installing_snapshot";
/// Subdirectory of the snapshot directory holding snapshots being received.
const STAGING: &str = "staging";

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A name no other snapshot directory of this process has (the directory tree is emptied at
/// start, so names only need to be unique within one run).
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Fsyncs a directory, so the names created in it survive a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

fn remove_dir(dir: &Path) {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "remove snapshot directory"),
    }
}

/// One SST file of a snapshot: the rows of one column family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// The column family (the file is `<cf>.sst` in the snapshot's directory).
    pub cf: String,
    /// Size in bytes.
    pub size: u64,
}

/// A shard snapshot on disk: one SST file per non-empty state-machine column family, in
/// [`cf::STATE_MACHINE`] order. The directory is removed when the handle is dropped (share it
/// with [`SnapshotData`]).
#[derive(Debug)]
pub struct SnapshotFiles {
    dir: PathBuf,
    /// The files, once written (at once for a received snapshot, on first use for a built one).
    files: OnceLock<Vec<SnapshotFile>>,
    /// A built snapshot not yet written: asks its pin thread to write the files.
    pin: Mutex<Option<PinHandle>>,
    /// Set while an install depends on the directory (see the module's correctness notes).
    keep: AtomicBool,
}

/// The pin thread's reply to a write request: the files it wrote.
type WriteReply = mpsc::Sender<io::Result<Vec<SnapshotFile>>>;

/// The sending end to a pin thread; dropping it ends the thread, releases its snapshot and
/// waits for the thread to end. The thread holds a clone of the engine, so it may be the last
/// owner of the database: left running, it could close RocksDB while the process exits, which
/// RocksDB aborts on ("pthread lock: Invalid argument", rocksdb issue 11349). The wait is
/// short: a handle is only dropped when no write was asked of it (a write holds `&self` of its
/// [`SnapshotFiles`]), so the thread is idle or already done.
#[derive(Debug)]
struct PinHandle {
    requests: Option<mpsc::Sender<WriteReply>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PinHandle {
    fn send(&self, reply: WriteReply) -> Result<(), mpsc::SendError<WriteReply>> {
        match &self.requests {
            Some(tx) => tx.send(reply),
            None => Err(mpsc::SendError(reply)),
        }
    }
}

impl Drop for PinHandle {
    fn drop(&mut self) {
        // The thread's `recv` fails once the sender is gone, and it ends.
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The snapshot payload openraft passes around: a cheap handle on the files.
pub type SnapshotData = Arc<SnapshotFiles>;

impl SnapshotFiles {
    /// The snapshot's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files, in sending and ingestion order; empty for a built snapshot until
    /// [`SnapshotFiles::materialize`] wrote them.
    pub fn files(&self) -> &[SnapshotFile] {
        self.files.get().map_or(&[], Vec::as_slice)
    }

    /// Total size of the files in bytes (0 before they are written).
    pub fn total_bytes(&self) -> u64 {
        self.files().iter().map(|f| f.size).sum()
    }

    /// Writes a built snapshot's files if they are not written yet, and returns them
    /// (blocking; a failed write can be retried). Concurrent callers wait for one write.
    pub fn materialize(&self) -> io::Result<&[SnapshotFile]> {
        if let Some(f) = self.files.get() {
            return Ok(f);
        }
        let mut pin = self.pin.lock();
        if let Some(f) = self.files.get() {
            return Ok(f);
        }
        let gone = || io_err("snapshot source is gone");
        let (tx, rx) = mpsc::channel();
        pin.as_ref()
            .ok_or_else(gone)?
            .send(tx)
            .map_err(|_| gone())?;
        let files = rx.recv().map_err(|_| gone())??;
        // Written: the pin thread has ended and released its RocksDB snapshot.
        *pin = None;
        metrics::counter!("navarch_store_snapshots_written_total").increment(1);
        Ok(self.files.get_or_init(|| files))
    }

    fn path(&self, file: &SnapshotFile) -> PathBuf {
        self.dir.join(format!("{}.sst", file.cf))
    }

    /// Reads up to `max` bytes of file number `file` from `offset` (blocking).
    pub fn read_chunk(&self, file: usize, offset: u64, max: usize) -> io::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let f = self
            .files()
            .get(file)
            .ok_or_else(|| invalid(format!("snapshot has no file {file}")))?;
        let len = f.size.saturating_sub(offset).min(max as u64) as usize;
        let mut buf = vec![0u8; len];
        fs::File::open(self.path(f))?.read_exact_at(&mut buf, offset)?;
        Ok(buf.into())
    }

    /// The snapshot stored in `dir` (its `<cf>.sst` files).
    fn open_dir(dir: PathBuf) -> io::Result<Self> {
        let mut files = Vec::new();
        for name in cf::STATE_MACHINE {
            match fs::metadata(dir.join(format!("{name}.sst"))) {
                Ok(m) => files.push(SnapshotFile {
                    cf: name.to_string(),
                    size: m.len(),
                }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("snapshot directory {} is missing", dir.display()),
            ));
        }
        Ok(Self::written(dir, files))
    }

    fn written(dir: PathBuf, files: Vec<SnapshotFile>) -> Self {
        Self {
            dir,
            files: OnceLock::from(files),
            pin: Mutex::new(None),
            keep: AtomicBool::new(false),
        }
    }
}

impl Drop for SnapshotFiles {
    fn drop(&mut self) {
        if !self.keep.load(Ordering::SeqCst) {
            remove_dir(&self.dir);
        }
    }
}

/// Takes a snapshot of `shard`: one RocksDB snapshot, held by a thread of its own until the
/// files are written ([`SnapshotFiles::materialize`]) or the handle is dropped. Returns it with
/// the applied log id and membership it includes. Blocking, but reads only two rows.
pub(crate) fn build(
    engine: &Engine,
    shard: u32,
) -> io::Result<(SnapshotFiles, Option<LogId>, StoredMembership)> {
    let dir = engine
        .snapshot_dir()
        .join(shard.to_string())
        .join(unique_name());
    let (meta_tx, meta_rx) = mpsc::channel();
    let (write_tx, write_rx) = mpsc::channel::<WriteReply>();
    let (engine2, dir2) = (engine.clone(), dir.clone());
    let thread = std::thread::Builder::new()
        .name(format!("snapshot-pin-{shard}"))
        .spawn(move || pin_thread(&engine2, shard, &dir2, &meta_tx, &write_rx))?;
    // From here the handle ends the thread and waits for it, on every path.
    let pin = PinHandle {
        requests: Some(write_tx),
        thread: Some(thread),
    };
    let (applied, membership) = meta_rx
        .recv()
        .map_err(|_| io_err("snapshot pin thread ended"))??;
    let out = SnapshotFiles {
        dir,
        files: OnceLock::new(),
        pin: Mutex::new(Some(pin)),
        keep: AtomicBool::new(false),
    };
    Ok((out, applied, membership))
}

/// Holds one RocksDB snapshot of the database: sends the shard's applied log id and
/// membership as of it, then writes the files each time it is asked until a write succeeds
/// (or the handle is dropped), and ends, releasing the snapshot.
fn pin_thread(
    engine: &Engine,
    shard: u32,
    dir: &Path,
    meta_tx: &mpsc::Sender<io::Result<(Option<LogId>, StoredMembership)>>,
    write_rx: &mpsc::Receiver<WriteReply>,
) {
    let db = engine.db();
    let snap = db.snapshot();
    let keys = Keys::new(shard);
    let get = |name: &str| -> io::Result<Option<Vec<u8>>> {
        let mut ro = ReadOptions::default();
        ro.set_snapshot(&snap);
        db.get_cf_opt(engine.cf(cf::META), keys.named(name), &ro)
            .map_err(io_err)
    };
    let meta = (|| {
        let applied: Option<LogId> = get(meta::APPLIED)?
            .map(|b| decode(&b).map_err(io_err))
            .transpose()?;
        let membership: StoredMembership = get(meta::MEMBERSHIP)?
            .map(|b| decode(&b).map_err(io_err))
            .transpose()?
            .unwrap_or_default();
        Ok((applied, membership))
    })();
    let ok = meta.is_ok();
    if meta_tx.send(meta).is_err() || !ok {
        return;
    }
    while let Ok(reply) = write_rx.recv() {
        let written = write_files(engine, &keys, dir, &snap);
        if written.is_err() {
            remove_dir(dir);
        }
        let done = written.is_ok();
        let _ = reply.send(written);
        if done {
            return;
        }
    }
}

/// Writes every state-machine row of the shard as `snap` sees it into SST files in `dir`
/// (created here). Memory stays bounded: rows stream from the iterator to the file.
fn write_files(
    engine: &Engine,
    keys: &Keys,
    dir: &Path,
    snap: &rocksdb::SnapshotWithThreadMode<'_, rocksdb::DB>,
) -> io::Result<Vec<SnapshotFile>> {
    fs::create_dir_all(dir)?;
    let db = engine.db();
    let mut out = Vec::new();
    let mut opts = Options::default();
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let prefix = keys.prefix();
    for name in cf::STATE_MACHINE {
        let mut ro = ReadOptions::default();
        ro.set_snapshot(snap);
        ro.set_iterate_upper_bound(keys.upper());
        let path = dir.join(format!("{name}.sst"));
        // An SST file needs at least one entry: open it at the first row.
        let mut writer: Option<SstFileWriter<'_>> = None;
        for item in db.iterator_cf_opt(
            engine.cf(cf::of_shard(name, keys.shard())),
            ro,
            rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward),
        ) {
            let (k, v) = item.map_err(io_err)?;
            let w = match writer.as_mut() {
                Some(w) => w,
                None => {
                    let w = SstFileWriter::create(&opts);
                    w.open(&path).map_err(io_err)?;
                    writer.insert(w)
                }
            };
            w.put(&k, &v).map_err(io_err)?;
        }
        if let Some(mut w) = writer {
            w.finish().map_err(io_err)?;
            let size = fs::metadata(&path)?.len();
            out.push(SnapshotFile {
                cf: name.to_string(),
                size,
            });
        }
    }
    sync_dir(dir)?;
    Ok(out)
}

/// What the install marker records: enough to redo the install after a crash.
#[derive(Serialize, Deserialize)]
struct InstallMarker {
    dir: PathBuf,
    meta: SnapshotMeta,
}

/// Replaces every state-machine row of `shard` with the snapshot's, atomically with respect
/// to crashes (see the module's correctness notes). Blocking.
pub(crate) fn install(
    engine: &Engine,
    shard: u32,
    meta: &SnapshotMeta,
    files: &SnapshotFiles,
) -> io::Result<()> {
    let keys = Keys::new(shard);
    for f in files.materialize()? {
        if !cf::STATE_MACHINE.contains(&f.cf.as_str()) {
            return Err(invalid(format!(
                "snapshot has unknown column family {}",
                f.cf
            )));
        }
    }
    files.keep.store(true, Ordering::SeqCst);
    let marker = InstallMarker {
        dir: files.dir.clone(),
        meta: meta.clone(),
    };
    let mut b = WriteBatch::default();
    b.put_cf(
        engine.cf(cf::RAFT_META),
        keys.named(INSTALLING),
        encode(&marker).map_err(io_err)?,
    );
    for name in cf::STATE_MACHINE {
        b.delete_range_cf(
            engine.cf(cf::of_shard(name, shard)),
            keys.prefix().to_vec(),
            keys.upper(),
        );
    }
    engine.write(b, true).map_err(io_err)?;
    ingest(engine, shard, files)?;
    finish_install(engine, &keys, meta)?;
    files.keep.store(false, Ordering::SeqCst);
    Ok(())
}

/// Ingests every file of the snapshot into its column family (copies; the files stay).
fn ingest(engine: &Engine, shard: u32, files: &SnapshotFiles) -> io::Result<()> {
    let mut opts = IngestExternalFileOptions::default();
    opts.set_move_files(false);
    for f in files.files() {
        engine
            .db()
            .ingest_external_file_cf_opts(
                engine.cf(cf::of_shard(&f.cf, shard)),
                &opts,
                vec![files.path(f)],
            )
            .map_err(|e| io_err(format!("ingest {}: {e}", files.path(f).display())))?;
    }
    Ok(())
}

/// The install's last step: applied log id, membership and the marker's removal, synced.
fn finish_install(engine: &Engine, keys: &Keys, meta: &SnapshotMeta) -> io::Result<()> {
    let mut b = WriteBatch::default();
    if let Some(l) = &meta.last_log_id {
        b.put_cf(
            engine.cf(cf::META),
            keys.named(meta::APPLIED),
            encode(l).map_err(io_err)?,
        );
    }
    b.put_cf(
        engine.cf(cf::META),
        keys.named(meta::MEMBERSHIP),
        encode(&meta.last_membership).map_err(io_err)?,
    );
    b.delete_cf(engine.cf(cf::RAFT_META), keys.named(INSTALLING));
    engine.write(b, true).map_err(io_err)
}

/// Finishes every install a crash interrupted, then removes all other snapshot files (left
/// over from earlier runs). Called when the engine opens, before anything reads a shard.
pub(crate) fn recover(engine: &Engine) -> io::Result<()> {
    let mut pending = Vec::new();
    for item in engine
        .db()
        .iterator_cf(engine.cf(cf::RAFT_META), rocksdb::IteratorMode::Start)
    {
        let (k, v) = item.map_err(io_err)?;
        if k.len() == 4 + INSTALLING.len() && k[4..] == *INSTALLING.as_bytes() {
            let shard = u32::from_be_bytes([k[0], k[1], k[2], k[3]]);
            let marker: InstallMarker = decode(&v).map_err(io_err)?;
            pending.push((shard, marker));
        }
    }
    for (shard, marker) in pending {
        tracing::warn!(
            shard,
            dir = %marker.dir.display(),
            "a snapshot install was interrupted; installing it again"
        );
        let files = SnapshotFiles::open_dir(marker.dir)?;
        install(engine, shard, &marker.meta, &files)?;
    }
    remove_dir(&engine.snapshot_dir());
    Ok(())
}

/// One chunk of a snapshot being received.
pub(crate) struct Chunk {
    /// Identifies the snapshot (chunks of another snapshot restart the transfer).
    pub id: String,
    /// The snapshot's files.
    pub files: Vec<SnapshotFile>,
    /// Index into `files` of the chunk's file.
    pub file: usize,
    /// Offset of the chunk in that file.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
}

/// What a received chunk led to.
pub(crate) enum Received {
    /// Stored; the sender continues at this file and offset.
    Next {
        /// File index.
        file: usize,
        /// Offset in that file.
        offset: u64,
    },
    /// That was the last chunk: the snapshot, ready to install.
    Complete(SnapshotData),
}

/// Snapshots being received, at most one per shard; chunks go straight to files in the
/// staging directory.
#[derive(Default)]
pub(crate) struct SnapshotInbox {
    slots: parking_lot::Mutex<BTreeMap<u32, Receiving>>,
}

impl SnapshotInbox {
    /// Stores one chunk for `shard`. A chunk at the start of the first file begins a new
    /// transfer (dropping any unfinished one); any other chunk must continue the transfer in
    /// progress exactly where it stopped.
    pub(crate) async fn accept(
        &self,
        engine: &Engine,
        shard: u32,
        chunk: Chunk,
    ) -> Result<Received, String> {
        let slot = self.slots.lock().remove(&shard);
        let root = engine.snapshot_dir();
        let step = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let mut r = if chunk.file == 0 && chunk.offset == 0 {
                drop(slot);
                Receiving::start(&root, shard, &chunk).map_err(|e| e.to_string())?
            } else {
                slot.ok_or_else(|| {
                    format!(
                        "snapshot chunk (file {}, offset {}) of {} without a transfer in progress",
                        chunk.file, chunk.offset, chunk.id
                    )
                })?
            };
            r.write(&chunk)?;
            if r.file < r.files.len() {
                return Ok(Err(r));
            }
            r.complete(&root, shard).map(Ok).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        match step {
            Ok(done) => Ok(Received::Complete(done)),
            Err(r) => {
                let next = Received::Next {
                    file: r.file,
                    offset: r.offset,
                };
                let mut slots = self.slots.lock();
                if slots.contains_key(&shard) {
                    // A newer transfer started meanwhile; this one is over.
                    return Err("snapshot transfer replaced by a newer one".into());
                }
                slots.insert(shard, r);
                Ok(next)
            }
        }
    }
}

/// A snapshot being received into its staging directory (removed unless completed).
struct Receiving {
    id: String,
    files: Vec<SnapshotFile>,
    dir: PathBuf,
    /// The file being written and the bytes of it so far.
    file: usize,
    offset: u64,
    out: Option<fs::File>,
    done: bool,
}

impl Receiving {
    fn start(root: &Path, shard: u32, chunk: &Chunk) -> io::Result<Self> {
        let mut seen = Vec::new();
        for f in &chunk.files {
            if !cf::STATE_MACHINE.contains(&f.cf.as_str()) || seen.contains(&&f.cf) || f.size == 0 {
                return Err(invalid(format!(
                    "bad snapshot manifest {:?} from {}",
                    chunk.files, chunk.id
                )));
            }
            seen.push(&f.cf);
        }
        let dir = root
            .join(STAGING)
            .join(format!("{shard}-{}", unique_name()));
        fs::create_dir_all(&dir)?;
        Ok(Self {
            id: chunk.id.clone(),
            files: chunk.files.clone(),
            dir,
            file: 0,
            offset: 0,
            out: None,
            done: false,
        })
    }

    fn write(&mut self, chunk: &Chunk) -> Result<(), String> {
        if chunk.id != self.id
            || chunk.files != self.files
            || chunk.file != self.file
            || chunk.offset != self.offset
        {
            return Err(format!(
                "snapshot chunk out of order (have file {} offset {} of {}, got file {} offset {} of {})",
                self.file, self.offset, self.id, chunk.file, chunk.offset, chunk.id
            ));
        }
        let Some(f) = self.files.get(self.file) else {
            return if chunk.data.is_empty() {
                Ok(())
            } else {
                Err(format!("snapshot chunk past the last file of {}", self.id))
            };
        };
        let end = self.offset + chunk.data.len() as u64;
        if end > f.size {
            return Err(format!(
                "snapshot chunk runs past the end of {} ({end} > {} bytes)",
                f.cf, f.size
            ));
        }
        let io = |e: io::Error| format!("snapshot file {}: {e}", f.cf);
        let out = match self.out.as_mut() {
            Some(o) => o,
            None => self
                .out
                .insert(fs::File::create(self.dir.join(format!("{}.sst", f.cf))).map_err(io)?),
        };
        out.write_all(&chunk.data).map_err(io)?;
        self.offset = end;
        if end == f.size {
            out.sync_all().map_err(io)?;
            self.out = None;
            self.file += 1;
            self.offset = 0;
        }
        Ok(())
    }

    /// Moves the finished files to `<root>/<shard>/<name>` and opens them as a snapshot.
    fn complete(mut self, root: &Path, shard: u32) -> io::Result<SnapshotData> {
        sync_dir(&self.dir)?;
        let parent = root.join(shard.to_string());
        fs::create_dir_all(&parent)?;
        let target = parent.join(unique_name());
        fs::rename(&self.dir, &target)?;
        self.done = true;
        sync_dir(&parent)?;
        Ok(Arc::new(SnapshotFiles::written(
            target,
            std::mem::take(&mut self.files),
        )))
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        if !self.done {
            remove_dir(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests;
