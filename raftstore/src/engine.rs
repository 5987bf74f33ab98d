//! The node's one RocksDB instance, shared by the Raft log and the state machine of every shard.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, DB};

use crate::error::Result;
use crate::keys::cf;

/// A handle on the node's database. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    db: Arc<DB>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({})", self.db.path().display())
    }
}

impl Engine {
    /// Opens (or creates) the database under `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| crate::error::StoreError::Internal(format!("create {dir:?}: {e}")))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        let cfs = cf::ALL.iter().map(|name| {
            let mut o = Options::default();
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = DB::open_cf_descriptors(&opts, dir.join("db"), cfs)?;
        Ok(Self { db: Arc::new(db) })
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

    /// Fsyncs the WAL: every write before this call is durable when it returns.
    pub(crate) fn sync_wal(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// Approximate on-disk size of the live data, in bytes.
    pub fn approximate_size(&self) -> u64 {
        cf::ALL
            .iter()
            .filter_map(|name| {
                let p = |prop: &str| {
                    self.db
                        .property_int_value_cf(self.cf(name), prop)
                        .ok()
                        .flatten()
                        .unwrap_or(0)
                };
                Some(p("rocksdb.total-sst-files-size") + p("rocksdb.cur-size-all-mem-tables"))
            })
            .sum()
    }
}
