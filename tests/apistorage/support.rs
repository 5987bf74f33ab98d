//! Test support: a real store process (Navarch's `navarch store` or a real etcd 3.4) on loopback,
//! storages over it, raw etcd calls the storage trait does not offer (compaction), polling.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use navarch_apiserver::etcdpb::etcdserverpb::{kv_client::KvClient, CompactionRequest};
use navarch_apiserver::storage::cache::{CacheConfig, CacheStorage};
use navarch_apiserver::storage::etcd::{EtcdConfig, EtcdStorage};
use navarch_apiserver::storage::Storage;

/// Debian's etcd-server binary (etcd 3.4).
pub const ETCD_BIN: &str = "/usr/bin/etcd";

#[path = "../store/support/mod.rs"]
#[allow(unused_imports)]
mod store;

pub use store::{eventually, free_port};

/// The `navarch` binary under test.
fn navarch_bin() -> String {
    store::navarch_bin().to_string()
}

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `navarch store`, one node.
    Navarch,
    /// A real etcd 3.4, one member.
    Etcd,
}

/// One store process with its own data directory; killed on drop.
pub struct Store {
    /// What runs.
    pub kind: Kind,
    /// Client endpoint, `127.0.0.1:PORT`.
    pub endpoint: String,
    program: String,
    args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Store {
    /// Starts `kind`; `None` (after saying why) when it is an etcd that is not installed.
    pub async fn start(kind: Kind) -> Option<Store> {
        match kind {
            Kind::Navarch => Some(Self::navarch().await),
            Kind::Etcd => Self::etcd().await,
        }
    }

    /// Starts a one-node `navarch store` and waits until it serves.
    pub async fn navarch() -> Store {
        let mut nodes = Self::navarch_cluster(1).await;
        nodes.remove(0)
    }

    /// Starts an `n`-node `navarch store` cluster and waits until every node serves.
    pub async fn navarch_cluster(n: usize) -> Vec<Store> {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("{}=127.0.0.1:{peer}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let dir = tempfile::tempdir().expect("tempdir");
            let args = vec![
                "store".to_string(),
                "--data-dir".into(),
                dir.path().join("data").display().to_string(),
                "--client-addr".into(),
                format!("127.0.0.1:{client}"),
                "--peer-addr".into(),
                format!("127.0.0.1:{peer}"),
                "--id".into(),
                (i + 1).to_string(),
                "--initial-cluster".into(),
                initial.clone(),
                "--heartbeat-ms".into(),
                "100".into(),
                "--election-timeout-ms".into(),
                "800".into(),
            ];
            nodes.push(Self::spawn(
                Kind::Navarch,
                navarch_bin(),
                args,
                *client,
                dir,
            ));
        }
        for n in &nodes {
            n.wait_serving().await;
        }
        nodes
    }

    /// Starts a one-member etcd 3.4, or returns `None` with a message if it is not installed.
    pub async fn etcd() -> Option<Store> {
        if !Path::new(ETCD_BIN).exists() {
            eprintln!(
                "SKIPPED: {ETCD_BIN} not found; install Debian's etcd-server package to run the \
                 storage suite against a real etcd 3.4"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (client, peer) = (free_port(), free_port());
        let curl = format!("http://127.0.0.1:{client}");
        let purl = format!("http://127.0.0.1:{peer}");
        let args = vec![
            "--data-dir".to_string(),
            dir.path().join("data").display().to_string(),
            "--listen-client-urls".into(),
            curl.clone(),
            "--advertise-client-urls".into(),
            curl,
            "--listen-peer-urls".into(),
            purl.clone(),
            "--initial-advertise-peer-urls".into(),
            purl.clone(),
            "--initial-cluster".into(),
            format!("default={purl}"),
            "--log-level".into(),
            "warn".into(),
            "--logger".into(),
            "zap".into(),
        ];
        let store = Self::spawn(Kind::Etcd, ETCD_BIN.to_string(), args, client, dir);
        store.wait_serving().await;
        Some(store)
    }

    fn spawn(
        kind: Kind,
        program: String,
        args: Vec<String>,
        client: u16,
        dir: tempfile::TempDir,
    ) -> Store {
        let mut store = Store {
            kind,
            endpoint: format!("127.0.0.1:{client}"),
            program,
            args,
            child: None,
            log: dir.path().join("store.log"),
            _dir: dir,
        };
        store.run();
        store
    }

    fn run(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the store log");
        let err = out.try_clone().expect("clone the log handle");
        let child = Command::new(&self.program)
            .args(&self.args)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?} ({}): {e}", self.kind, self.program));
        self.child = Some(child);
    }

    /// Waits until the store answers a linearizable read.
    pub async fn wait_serving(&self) {
        let s = self.etcd_storage_lazy();
        let what = format!("{:?} store at {}", self.kind, self.endpoint);
        eventually(Duration::from_secs(30), &what, || {
            let s = &s;
            async move { s.current_revision("/").await.ok() }
        })
        .await;
    }

    /// kill -9 and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process again with the same data directory and ports.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the store is still running");
        self.run();
    }

    /// An `EtcdStorage` over this store (not yet connected).
    pub fn etcd_storage_lazy(&self) -> EtcdStorage {
        let mut cfg = EtcdConfig::new(vec![self.endpoint.clone()]);
        cfg.request_timeout = Duration::from_secs(10);
        cfg.connect_timeout = Duration::from_secs(2);
        EtcdStorage::connect_lazy(cfg).expect("valid endpoint")
    }

    /// A connected `EtcdStorage` over this store.
    pub async fn etcd_storage(&self) -> Arc<dyn Storage> {
        Arc::new(self.etcd_storage_lazy())
    }

    /// Compacts the store's history up to `revision` (physically: done when this returns).
    pub async fn compact(&self, revision: i64) {
        let mut kv = KvClient::connect(format!("http://{}", self.endpoint))
            .await
            .expect("connect for compaction");
        kv.compact(CompactionRequest {
            revision,
            physical: true,
        })
        .await
        .expect("compaction");
    }

    /// The tail of the store's log (for failure messages).
    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Cache settings for tests: short waits so `Timeout` cases finish quickly.
pub fn test_cache_config() -> CacheConfig {
    CacheConfig {
        wait_timeout: Duration::from_secs(1),
        consistent_read_timeout: Duration::from_secs(5),
        progress_interval: Duration::from_secs(1),
        ..CacheConfig::default()
    }
}

/// A watch cache over `inner`.
pub fn cache_over(inner: Arc<dyn Storage>, cfg: CacheConfig) -> Arc<CacheStorage> {
    Arc::new(CacheStorage::new(inner, cfg))
}

/// Asserts that `prefix` is served by `cache` (its own cache unit has listed).
pub fn assert_cached(cache: &CacheStorage, prefix: &str) {
    assert!(
        cache.cached_revision(prefix) > 0,
        "{prefix} is not served from the watch cache"
    );
}

/// A key prefix no other test uses.
pub fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // Two segments deep, like `/registry/pods/`: the cache's default unit.
    format!("/apistorage/{name}-{nanos}/")
}
