//! The node's one RocksDB instance, shared by the state machines and the Raft metadata (votes,
//! purge marks) of every shard; Raft entries live in [`crate::raft_log`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, DB};

use crate::error::Result;
use crate::keys::cf;

/// A handle on the node's database. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    db: Arc<DB>,
    dir: Arc<PathBuf>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({})", self.db.path().display())
    }
}

/// Age (seconds) a `vals` file must reach before RocksDB may rewrite it only to drop what a
/// released snapshot had kept (see `Engine::open`).
const BOTTOMMOST_COMPACTION_DELAY_SECS: &str = "86400";

/// Memtable size of the state-machine families other than `vals-N` (see `Engine::open`).
const STATE_WRITE_BUFFER_BYTES: usize = 8 << 20;

/// The block cache shared by the node's column families.
const BLOCK_CACHE_BYTES: usize = 256 << 20;

/// Whether files under `dir` can be opened with `O_DIRECT` (not every file system can).
fn supports_direct_io(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let probe = dir.join(".direct-io-probe");
    let ok = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe)
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

impl Engine {
    /// Opens (or creates) the database under `dir`, finishes a snapshot installation that a
    /// crash interrupted and removes snapshot files left over from earlier runs (see
    /// [`crate::snapshot`]).
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| crate::error::StoreError::Internal(format!("create {dir:?}: {e}")))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        // State-machine writes skip the WAL (the Raft log is the durable source and is replayed
        // after a crash); atomic flush keeps every column family at one consistent point, so
        // the applied log id never runs ahead of the data it describes.
        opts.set_atomic_flush(true);
        opts.set_write_buffer_size(64 << 20);
        opts.set_max_write_buffer_number(4);
        // Flushes and compactions write (and compactions read) SST files with O_DIRECT: they
        // never pass through the page cache, so a store under write load neither copies every
        // SST byte into it nor makes the kernel find fresh pages for them (on VMs with free
        // page reporting, a page the host took back costs tens of µs to touch again).
        if supports_direct_io(dir) {
            opts.set_use_direct_io_for_flush_and_compaction(true);
            opts.set_compaction_readahead_size(2 << 20);
        }
        // One block cache for every column family; bloom filters so that a point lookup of a
        // key that is not there (the first put of every key) reads no data block.
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        let cfs = cf::ALL.iter().map(|name| {
            let mut o = Options::default();
            o.set_block_based_table_factory(&table);
            // The two levels that are rewritten most often stay uncompressed (as in TiKV).
            use rocksdb::DBCompressionType::{Lz4, None as Plain};
            o.set_compression_per_level(&[Plain, Plain, Lz4, Lz4, Lz4, Lz4, Lz4]);
            if name.starts_with("vals-") {
                // Values arrive in revision order: a flushed file lies past the older ones
                // and moves down whole; a level-0 file is big enough as it is.
                o.set_target_file_size_base(64 << 20);
            } else {
                // Small memtables for the rows every put inserts at a random place (`kv`,
                // `hist`, `events`) and overwrites (`meta`): a skiplist of hundreds of
                // thousands of entries costs a put more CPU with every one it holds (cache
                // misses), 122 → 155 µs per 256 B put over five rounds on one cluster with
                // RocksDB's 64 MiB; 118–132 µs, flat, with 8 MiB. Values arrive in order and
                // keep the default. (Atomic flush flushes every family when one is full.)
                o.set_write_buffer_size(STATE_WRITE_BUFFER_BYTES);
            }
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = DB::open_cf_descriptors(&opts, dir.join("db"), cfs)?;
        // A file of values is not rewritten just because a RocksDB snapshot covered it when
        // it was made (a built Raft snapshot holds one until it is sent or replaced, see
        // `crate::snapshot`): once that snapshot went, RocksDB rewrote every such file of the
        // bottom level ("BottommostFiles" compactions), i.e. every flushed value once more,
        // to drop nothing (a value goes only when Compact deletes its row, and ordinary
        // compactions handle those). Not settable through the crate's `Options`, but a
        // mutable option.
        for name in cf::VALS_FAMILIES {
            let cf = db.cf_handle(name).expect("column family created at open");
            db.set_options_cf(
                cf,
                &[(
                    "bottommost_file_compaction_delay",
                    BOTTOMMOST_COMPACTION_DELAY_SECS,
                )],
            )?;
        }
        let engine = Self {
            db: Arc::new(db),
            dir: Arc::new(dir.to_path_buf()),
        };
        crate::snapshot::recover(&engine).map_err(|e| {
            crate::error::StoreError::Internal(format!("snapshot recovery in {dir:?}: {e}"))
        })?;
        Ok(engine)
    }

    /// Where shard snapshots live on disk (`<data dir>/snapshots`): built and received
    /// snapshots under `<shard>/<id>/`, snapshots being received under `staging/`.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    /// The RocksDB handle (never leaves this crate).
    pub(crate) fn db(&self) -> &DB {
        &self.db
    }

    /// A column family handle.
    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        // Every column family in `cf::ALL` is created by `open`.
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    /// Writes `batch` and, when `sync`, fsyncs the WAL before returning.
    pub(crate) fn write(&self, batch: rocksdb::WriteBatch, sync: bool) -> Result<()> {
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    /// Writes a state-machine batch without the WAL. It becomes durable when memtables are
    /// flushed (atomically across column families, see `open`); until then the Raft log, which
    /// is never purged past [`Engine::flush_state_machine`], can replay it.
    pub(crate) fn write_state_machine(&self, batch: rocksdb::WriteBatch) -> Result<()> {
        let mut wo = rocksdb::WriteOptions::default();
        wo.disable_wal(true);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    /// Makes every state-machine write so far durable by flushing all memtables (atomically).
    pub(crate) fn flush_state_machine(&self) -> Result<()> {
        let cfs: Vec<&ColumnFamily> = cf::ALL.iter().map(|n| self.cf(n)).collect();
        let mut fo = rocksdb::FlushOptions::default();
        fo.set_wait(true);
        self.db.flush_cfs_opt(&cfs, &fo)?;
        Ok(())
    }

    /// Fsyncs the WAL: every write before this call is durable when it returns.
    pub(crate) fn sync_wal(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// Approximate on-disk size of the live data, in bytes.
    pub fn approximate_size(&self) -> u64 {
        cf::ALL
            .iter()
            .map(|name| {
                let p = |prop: &str| {
                    self.db
                        .property_int_value_cf(self.cf(name), prop)
                        .ok()
                        .flatten()
                        .unwrap_or(0)
                };
                p("rocksdb.total-sst-files-size") + p("rocksdb.cur-size-all-mem-tables")
            })
            .sum()
    }

    /// Approximate bytes on disk of one shard's rows (SST files; memtables not counted).
    pub fn approximate_shard_size(&self, shard: u32) -> u64 {
        let keys = crate::keys::Keys::new(shard);
        let (start, end) = (keys.prefix(), keys.upper());
        let range = rocksdb::Range::new(&start, &end);
        cf::ALL
            .iter()
            .map(|name| {
                self.db
                    .get_approximate_sizes_cf(self.cf(name), std::slice::from_ref(&range))
                    .first()
                    .copied()
                    .unwrap_or(0)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OPTIONS file RocksDB persists after `open` shows each `vals` family with the
    /// bottommost compaction delay set and RocksDB's memtable size, and the other families
    /// without the delay and with small memtables.
    #[test]
    fn vals_families_delay_bottommost_compactions_and_the_others_have_small_memtables() {
        let dir = tempfile::tempdir().unwrap();
        let _engine = Engine::open(dir.path()).unwrap();
        let newest = std::fs::read_dir(dir.path().join("db"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("OPTIONS-"))
            .max_by_key(|n| n["OPTIONS-".len()..].parse::<u64>().unwrap_or(0))
            .expect("an OPTIONS file");
        let text = std::fs::read_to_string(dir.path().join("db").join(newest)).unwrap();
        let mut delay_of = std::collections::HashMap::new();
        let mut buffer_of = std::collections::HashMap::new();
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if let Some(name) = line
                .strip_prefix("[CFOptions \"")
                .and_then(|l| l.strip_suffix("\"]"))
            {
                section = name.to_string();
            } else if let Some(v) = line.strip_prefix("bottommost_file_compaction_delay=") {
                delay_of.insert(section.clone(), v.to_string());
            } else if let Some(v) = line.strip_prefix("write_buffer_size=") {
                buffer_of.insert(section.clone(), v.parse::<usize>().unwrap());
            }
        }
        for name in ["kv", "hist", "events", "meta"] {
            assert_eq!(
                buffer_of.get(name),
                Some(&STATE_WRITE_BUFFER_BYTES),
                "{name}"
            );
        }
        assert_eq!(buffer_of.get("vals-0"), Some(&(64 << 20)));
        for name in cf::VALS_FAMILIES {
            assert_eq!(
                delay_of.get(name).map(String::as_str),
                Some(BOTTOMMOST_COMPACTION_DELAY_SECS),
                "{name}"
            );
        }
        assert_eq!(delay_of.get("hist").map(String::as_str), Some("0"));
    }
}
