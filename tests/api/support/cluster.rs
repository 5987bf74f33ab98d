//! A store process plus N apiserver processes on free loopback ports, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process;
use super::store::{self, free_port};
use super::Kubectl;

/// The `navarch` binary under test: `$NAVARCH_TEST_BIN` when set (a pinned copy, since the
/// shared build directory may be rebuilt by someone else mid-run), else the one cargo built.
pub fn navarch_bin() -> String {
    std::env::var("NAVARCH_TEST_BIN").unwrap_or_else(|_| store::navarch_bin().to_string())
}

/// How long a fresh process may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(45);

/// One `navarch apiserver` process.
pub struct ApiServerProc {
    /// Index in the cluster (0-based).
    pub index: usize,
    /// `127.0.0.1:PORT` it listens on.
    pub addr: String,
    /// Its log file (stdout + stderr).
    pub log: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl ApiServerProc {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open apiserver log");
        let child = Command::new(navarch_bin())
            .arg("apiserver")
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn navarch apiserver");
        self.child = Some(child);
    }

    /// Whether the process runs (and has not exited by itself).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// kill -9 and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again (same port, same log).
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "apiserver {} still running",
            self.index
        );
        self.spawn();
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 40)
    }

    /// Polls `/readyz` until it answers 200; panics (with the log) if the process exits or the
    /// deadline passes.
    pub fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last: String;
        loop {
            if !self.is_running() {
                panic!(
                    "apiserver {} ({}) exited before becoming ready\n--- log ---\n{}",
                    self.index,
                    self.addr,
                    self.log_tail()
                );
            }
            match store::http_get(&self.addr, "/readyz") {
                Ok((200, _)) => return,
                Ok((code, body)) => last = format!("HTTP {code}: {body}"),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                panic!(
                    "apiserver {} ({}) not ready after {timeout:?} (last /readyz: {last})\n--- log ---\n{}",
                    self.index,
                    self.addr,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ApiServerProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The last `n` lines of a log file.
pub fn log_tail(path: &Path, n: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A store and apiserver replicas over it, each process in the cluster's temp dir.
pub struct TestCluster {
    /// The apiserver replicas (fields dropped in order: apiservers before the store).
    pub apiservers: Vec<ApiServerProc>,
    /// The store (one node).
    pub store: store::Cluster,
    /// `kubeconfig-N.yaml` for apiserver N.
    pub kubeconfigs: Vec<PathBuf>,
    dir: tempfile::TempDir,
}

impl TestCluster {
    /// One store node and one apiserver.
    pub fn start() -> Self {
        Self::with_replicas(1)
    }

    /// One store node and `n` apiserver replicas, all ready.
    pub fn with_replicas(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store::Cluster::start(1, &[]);
        let store_addr = store.nodes[0].client_addr.clone();
        wait_store_healthy(&store, &store_addr);
        let mut apiservers = Vec::new();
        let mut kubeconfigs = Vec::new();
        for index in 0..n {
            let addr = format!("127.0.0.1:{}", free_port());
            let mut p = ApiServerProc {
                index,
                addr: addr.clone(),
                log: dir.path().join(format!("apiserver-{index}.log")),
                args: vec![
                    "--store-endpoints".into(),
                    store_addr.clone(),
                    "--listen".into(),
                    addr.clone(),
                ],
                child: None,
            };
            p.spawn();
            apiservers.push(p);
            kubeconfigs.push(write_kubeconfig(dir.path(), index, &addr));
        }
        for p in &mut apiservers {
            p.wait_ready(START_TIMEOUT);
        }
        Self {
            apiservers,
            store,
            kubeconfigs,
            dir,
        }
    }

    /// Address of apiserver 0.
    pub fn addr(&self) -> &str {
        &self.apiservers[0].addr
    }

    /// The cluster's temp dir (for manifests, editor scripts, caches).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// kubectl `version` (e.g. "1.30") pointed at apiserver 0.
    pub fn kubectl(&self, version: &str) -> Kubectl {
        self.kubectl_at(version, 0)
    }

    /// kubectl `version` pointed at apiserver `index`.
    pub fn kubectl_at(&self, version: &str, index: usize) -> Kubectl {
        Kubectl::new(
            version,
            self.kubeconfigs[index].clone(),
            self.dir.path().join(format!("kubectl-{version}-{index}")),
            self.apiservers.iter().map(|a| a.log.clone()).collect(),
        )
    }

    /// Log tails of every process (for failure messages).
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for a in &self.apiservers {
            s.push_str(&format!(
                "--- apiserver {} ({}) ---\n{}\n",
                a.index,
                a.addr,
                a.log_tail()
            ));
        }
        s.push_str(&self.store.logs());
        s
    }

    /// How many keys the store holds under `prefix` (read from the store itself, not through
    /// the apiserver: "nothing stored" means nothing reached the store).
    pub fn store_key_count(&self, prefix: &str) -> i64 {
        let addr = self.store.nodes[0].client_addr.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async {
            let mut c = store::Client::connect_eventually(&addr).await;
            c.range_prefix(prefix, false, true)
                .await
                .unwrap_or_else(|e| panic!("store range {prefix}: {e}"))
                .count
        })
    }

    /// Writes `contents` to a file in the cluster's temp dir; returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).expect("write test file");
        p
    }
}

fn wait_store_healthy(store: &store::Cluster, addr: &str) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok((200, _)) = store::http_get(addr, "/health") {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "store at {addr} not healthy after {START_TIMEOUT:?}\n{}",
                store.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `navarch kubeconfig --server http://ADDR` into DIR/kubeconfig-N.yaml.
fn write_kubeconfig(dir: &Path, index: usize, addr: &str) -> PathBuf {
    let mut cmd = Command::new(navarch_bin());
    cmd.args(["kubeconfig", "--server", &format!("http://{addr}")]);
    let run = process::run(cmd, None, Duration::from_secs(20));
    assert!(
        run.success() && run.stdout.contains("clusters"),
        "`navarch kubeconfig` must print a kubeconfig\n{}",
        run.describe()
    );
    let path = dir.join(format!("kubeconfig-{index}.yaml"));
    std::fs::write(&path, &run.stdout).expect("write kubeconfig");
    path
}
