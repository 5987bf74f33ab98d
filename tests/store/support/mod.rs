//! Test support: real `navarch store` processes on loopback, an etcd v3 client, polling.

#![allow(dead_code)]

pub mod lincheck;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use navarch_raftstore::proto::etcdserverpb::{
    kv_client::KvClient, lease_client::LeaseClient, maintenance_client::MaintenanceClient,
    watch_client::WatchClient, PutRequest, RangeRequest, StatusRequest,
};
use tonic::transport::Channel;

/// The `navarch` binary under test.
pub fn navarch_bin() -> &'static str {
    env!("CARGO_BIN_EXE_navarch")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One store process.
pub struct StoreProc {
    /// Member id.
    pub id: u64,
    /// etcd API address.
    pub client_addr: String,
    /// Peer address.
    pub peer_addr: String,
    /// Data directory.
    pub data_dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl StoreProc {
    /// Starts a member with explicit `store` flags (e.g. one joining a running cluster).
    pub fn start_with(
        id: u64,
        data_dir: PathBuf,
        client_addr: String,
        peer_addr: String,
        args: Vec<String>,
    ) -> Self {
        let mut p = StoreProc {
            id,
            client_addr,
            peer_addr,
            data_dir,
            args,
            child: None,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.with_extension("log"))
            .expect("open log");
        let child = Command::new(navarch_bin())
            .arg("store")
            .args(&self.args)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn navarch store");
        self.child = Some(child);
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Sends `sig` (e.g. "KILL", "TERM", "STOP", "CONT") to the process.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let st = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(c.id().to_string())
                .status()
                .expect("run kill");
            assert!(st.success(), "kill -{sig} failed");
        }
    }

    /// If the process has exited on its own, reaps it and returns its status.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// kill -9 and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        self.child = None;
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("store did not exit within 20s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again with the same data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }

    /// The tail of this node's log (for failure messages).
    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for StoreProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A store cluster of real processes.
pub struct Cluster {
    /// Members, index i has id i+1.
    pub nodes: Vec<StoreProc>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes (1 = a single-node store) with extra flags for every node.
    pub fn start(n: usize, extra: &[&str]) -> Self {
        Self::start_prepared(n, extra, |_, _| {})
    }

    /// Like [`Cluster::start`], calling `prepare(member id, data dir)` before each member starts
    /// (e.g. to mount a small filesystem there).
    pub fn start_prepared(n: usize, extra: &[&str], prepare: impl Fn(u64, &Path)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, (c, p)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let data_dir = dir.path().join(format!("node{id}"));
            prepare(id, &data_dir);
            let mut args = vec![
                "--data-dir".to_string(),
                data_dir.display().to_string(),
                "--client-addr".into(),
                format!("127.0.0.1:{c}"),
                "--peer-addr".into(),
                format!("127.0.0.1:{p}"),
                "--id".into(),
                id.to_string(),
                "--initial-cluster".into(),
                initial.clone(),
                "--heartbeat-ms".into(),
                "100".into(),
                "--election-timeout-ms".into(),
                "800".into(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let mut p = StoreProc {
                id,
                client_addr: format!("127.0.0.1:{c}"),
                peer_addr: format!("127.0.0.1:{p}"),
                data_dir,
                args,
                child: None,
            };
            p.spawn();
            nodes.push(p);
        }
        Self { nodes, _dir: dir }
    }

    /// Comma-separated client endpoints (for etcdctl).
    pub fn endpoints(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.client_addr.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Index of the node that leads, as reported by a running member, once one leads.
    pub async fn wait_leader(&self, timeout: Duration) -> usize {
        eventually(timeout, "a leader", || async {
            for n in self.nodes.iter().filter(|n| n.is_running()) {
                let Ok(mut c) = Client::connect(&n.client_addr).await else {
                    continue;
                };
                if let Ok(s) = c.status().await {
                    if s.leader != 0 {
                        let idx = (s.leader - 1) as usize;
                        if self.nodes.get(idx).is_some_and(|l| l.is_running()) {
                            // Confirm with the leader itself.
                            if let Ok(mut lc) = Client::connect(&self.nodes[idx].client_addr).await
                            {
                                if lc
                                    .status()
                                    .await
                                    .map(|ls| ls.leader == s.leader)
                                    .unwrap_or(false)
                                {
                                    return Some(idx);
                                }
                            }
                        }
                    }
                }
            }
            None
        })
        .await
    }

    /// Dump every node's log tail (call before panicking in a test).
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}", n.id, n.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A minimal etcd v3 client over our generated stubs.
#[derive(Clone)]
pub struct Client {
    /// KV service.
    pub kv: KvClient<Channel>,
    /// Watch service.
    pub watch: WatchClient<Channel>,
    /// Lease service.
    pub lease: LeaseClient<Channel>,
    /// Maintenance service.
    pub maint: MaintenanceClient<Channel>,
}

impl Client {
    /// Connects to `addr` (`host:port`).
    pub async fn connect(addr: &str) -> Result<Self, tonic::transport::Error> {
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(10))
            .connect()
            .await?;
        Ok(Self {
            kv: KvClient::new(ch.clone()).max_decoding_message_size(64 << 20),
            watch: WatchClient::new(ch.clone()),
            lease: LeaseClient::new(ch.clone()),
            maint: MaintenanceClient::new(ch),
        })
    }

    /// Connects, retrying until the node answers.
    pub async fn connect_eventually(addr: &str) -> Self {
        eventually(
            Duration::from_secs(30),
            &format!("store at {addr}"),
            || async {
                let mut c = Client::connect(addr).await.ok()?;
                c.status().await.ok()?;
                Some(c)
            },
        )
        .await
    }

    /// Maintenance.Status.
    pub async fn status(
        &mut self,
    ) -> Result<navarch_raftstore::proto::etcdserverpb::StatusResponse, tonic::Status> {
        Ok(self.maint.status(StatusRequest {}).await?.into_inner())
    }

    /// Put; returns the revision.
    pub async fn put(&mut self, k: &str, v: &str) -> Result<i64, tonic::Status> {
        let r = self
            .kv
            .put(PutRequest {
                key: k.as_bytes().to_vec(),
                value: v.as_bytes().to_vec(),
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok(r.header.map_or(0, |h| h.revision))
    }

    /// Range over every key under `prefix` (`serializable` reads the local replica only).
    pub async fn range_prefix(
        &mut self,
        prefix: &str,
        serializable: bool,
        count_only: bool,
    ) -> Result<navarch_raftstore::proto::etcdserverpb::RangeResponse, tonic::Status> {
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().expect("non-empty prefix") += 1;
        Ok(self
            .kv
            .range(RangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: end,
                serializable,
                count_only,
                ..Default::default()
            })
            .await?
            .into_inner())
    }

    /// Linearizable get of one key: (value, mod_revision, header revision).
    pub async fn get(&mut self, k: &str) -> Result<(Option<String>, i64, i64), tonic::Status> {
        let r = self
            .kv
            .range(RangeRequest {
                key: k.as_bytes().to_vec(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let rev = r.header.map_or(0, |h| h.revision);
        Ok(match r.kvs.first() {
            Some(kv) => (
                Some(String::from_utf8_lossy(&kv.value).into_owned()),
                kv.mod_revision,
                rev,
            ),
            None => (None, 0, rev),
        })
    }
}

/// Runs etcdctl (API v3) against `endpoints` with `args`; returns (success, stdout, stderr).
pub fn etcdctl(endpoints: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = Command::new(etcdctl_bin());
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=10s")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("spawn etcdctl");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().expect("etcdctl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Path of the real etcdctl (Debian package etcd-client); the test command installs it.
pub fn etcdctl_bin() -> &'static str {
    for p in ["/usr/bin/etcdctl", "/usr/local/bin/etcdctl"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("etcdctl not found: install the Debian package etcd-client (scripts/test.sh does)");
}

/// A plain HTTP/1.1 GET on loopback (for /metrics and /health); returns (status, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path)
}

/// A plain HTTP/1.1 POST without a body (the store's admin endpoints); returns (status, body).
pub fn http_post(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "POST", path)
}

fn http_request(addr: &str, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The value of an unlabelled counter or gauge in a Prometheus text exposition.
pub fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}
