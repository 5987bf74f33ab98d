//! The `navarch` binary: thin subcommands over the workspace crates.

mod store_cli;

/// mimalloc: the apiserver and the store allocate many small, short-lived objects (JSON trees,
/// RocksDB batches); glibc malloc spent a third of the apiserver's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use navarch_raftstore::certs;
use navarch_raftstore::network::PeerTransportConfig;
use navarch_raftstore::{server, NodeConfig, StoreNode};

#[derive(Parser)]
#[command(
    name = "navarch",
    version,
    about = "Navarch: a Kubernetes-compatible control plane for very large fleets"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once at start-up: the size of the store's flag set costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Start a local control plane in the foreground: an embedded single-node store and the
    /// API server next to it (same process).
    Up {
        /// Data directory.
        #[arg(long, default_value = "navarch-data")]
        data_dir: PathBuf,
        /// etcd API address of the embedded store.
        #[arg(long, default_value = "127.0.0.1:2379")]
        store_addr: String,
        /// Peer address of the embedded store.
        #[arg(long, default_value = "127.0.0.1:2380")]
        store_peer_addr: String,
        /// Listen address of the API server (plain HTTP).
        #[arg(long, default_value = "127.0.0.1:6443")]
        api_listen: String,
    },
    /// Run the Kubernetes API server over a store (Navarch's or etcd).
    Apiserver(navarch_apiserver::ApiserverArgs),
    /// Print a kubeconfig for an API server (for kubectl and client libraries).
    Kubeconfig {
        /// API server URL, e.g. http://127.0.0.1:6443.
        #[arg(long, default_value = "http://127.0.0.1:6443")]
        server: String,
        /// CA certificate file that signed the server's certificate (HTTPS).
        #[arg(long)]
        certificate_authority: Option<PathBuf>,
        /// Skip verification of the server's certificate (HTTPS, development only).
        #[arg(long)]
        insecure_skip_tls_verify: bool,
    },
    /// Run one store node (Navarch's etcd), or administer running ones (`store status`, ...).
    Store(StoreCmd),
    /// Write a cluster CA and node certificates for the QUIC peer transport (mutual TLS):
    /// DIR/ca.pem, DIR/ca-key.pem, DIR/node-N.pem, DIR/node-N-key.pem. An existing
    /// DIR/ca.pem (with its key) is reused, so nodes can be added later.
    Certs {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Number of node certificates (node-1 .. node-N).
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Extra subject alternative names on every node certificate (IP addresses or DNS
        /// names, comma-separated); `navarch-peer` and `node-N` are always there.
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
        hosts: Vec<String>,
    },
    /// Benchmarks.
    Loadtest {
        #[command(subcommand)]
        what: LoadtestCmd,
    },
}

#[derive(Subcommand)]
enum LoadtestCmd {
    /// Drive the etcd v3 API of any endpoints (Navarch's store or a real etcd).
    Store(navarch_loadtest::StoreArgs),
    /// Drive the Kubernetes API: create/get/update/list, watch fan-out, big LIST, memory.
    Api(navarch_loadtest::ApiArgs),
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct StoreCmd {
    #[command(subcommand)]
    admin: Option<store_cli::StoreAdmin>,
    #[command(flatten)]
    run: StoreArgs,
}

#[derive(clap::Args)]
struct StoreArgs {
    /// Data directory (created if missing; restarting with the same directory resumes).
    #[arg(long, required = true)]
    data_dir: Option<PathBuf>,
    /// etcd v3 API listen address (also serves /metrics and /health).
    #[arg(long, default_value = "127.0.0.1:2379")]
    client_addr: String,
    /// Peer (Raft) listen address.
    #[arg(long, default_value = "127.0.0.1:2380")]
    peer_addr: String,
    /// This member's id (> 0).
    #[arg(long, default_value_t = 1)]
    id: u64,
    /// Member name (default navarch-ID).
    #[arg(long)]
    name: Option<String>,
    /// Initial members as `ID=HOST:PORT,...` (peer addresses); default: this node alone.
    #[arg(long)]
    initial_cluster: Option<String>,
    /// Largest request accepted, in bytes (etcd's --max-request-bytes).
    #[arg(long, default_value_t = 3 * 512 * 1024)]
    max_request_bytes: usize,
    /// Raft heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 100)]
    heartbeat_ms: u64,
    /// Raft election timeout in milliseconds (randomized up to twice this).
    #[arg(long, default_value_t = 1000)]
    election_timeout_ms: u64,
    /// Interval of watch progress notifications, in milliseconds.
    #[arg(long, default_value_t = 600_000)]
    watch_progress_notify_interval_ms: u64,
    /// Applied entries between snapshots (the log is purged behind a snapshot); etcd's default.
    #[arg(long, default_value_t = 100_000)]
    snapshot_count: u64,
    /// History kept per shard before periodic compaction, as etcd's
    /// `--auto-compaction-retention` in periodic mode: `5m`, `30s`, `1h`, a bare number of
    /// hours; `0` keeps all history. (Kubernetes' apiserver compacts every 5 minutes.)
    #[arg(long, default_value = "5m", value_parser = parse_retention)]
    auto_compaction_retention: Duration,
    /// Revisions a watch stream may fall behind before it is cancelled as too slow.
    #[arg(long, default_value_t = 4096)]
    watch_buffer: usize,
    /// Client-write batches each shard keeps in flight (group commit: writes that arrive
    /// meanwhile ride together in the next Raft entry).
    #[arg(long, default_value_t = 1)]
    proposal_pipeline: usize,
    /// Forwarded-write batches a member keeps in flight to each member leading shards.
    #[arg(long, default_value_t = navarch_raftstore::node::DEFAULT_FORWARD_PIPELINE)]
    forward_pipeline: usize,
    /// Times a busy shard yields to the runtime before taking its next write batch, so that
    /// writes already being received join it (0: no wait). Never delays a write on an idle
    /// shard.
    #[arg(long, default_value_t = navarch_raftstore::node::DEFAULT_PROPOSAL_YIELDS)]
    proposal_yields: usize,
    /// Milliseconds a busy shard (its runtime's other tasks kept its yields waiting) waits for
    /// more writes before proposing a batch of fewer than 16: fewer, fuller Raft rounds when
    /// the CPU is the limit. An idle member or a lone client never waits. 0: never; so does
    /// `--proposal-yields 0` (the yields are what tells a busy runtime).
    #[arg(long, default_value_t = navarch_raftstore::node::DEFAULT_PROPOSAL_LINGER.as_millis() as u64)]
    proposal_linger_ms: u64,
    /// Forward client writes to the member leading their shard in one batch per destination
    /// member (carrying every shard it leads, joining its own batches) instead of one per shard.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    forward_per_node: bool,
    /// With `--peer-transport quic`: replicate over pipelined QUIC streams instead of one
    /// AppendEntries call at a time (every member must have them: while older members remain,
    /// pass `false`; see docs/benchmarks.md, session 16).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    peer_streams: bool,
    /// Milliseconds a leader holds an AppendEntries that only carries a new commit index, so
    /// that the shard's next entries (usually the next write batch) carry it instead: one
    /// exchange per round with each follower instead of two under load. Followers learn a
    /// commit at most this much later; heartbeats never wait. 0: never.
    #[arg(long, default_value_t = navarch_raftstore::network::DEFAULT_COMMIT_LINGER.as_millis() as u64)]
    commit_linger_ms: u64,
    /// Interval of lease remaining-TTL checkpoints, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    lease_checkpoint_interval_ms: u64,
    /// Peer transport: `grpc` (HTTP/2 over TCP) or `quic` (QUIC over UDP on the same
    /// host:port, mutual TLS). Every member of a cluster must use the same.
    #[arg(long, value_enum, default_value_t = PeerTransportArg::Grpc)]
    peer_transport: PeerTransportArg,
    /// QUIC: directory with ca.pem, node-ID.pem and node-ID-key.pem (see `navarch certs`);
    /// default DATA_DIR/certs. Dev mode: a missing CA is created there (and this node's
    /// certificate issued), so the nodes of a dev cluster must share one directory.
    #[arg(long)]
    peer_certs: Option<PathBuf>,
    /// Shard map: `NAME=PREFIX,...`, one Raft group per entry plus the default shard for
    /// everything else. Every member must use the same map. `--shards ''` runs one group.
    #[arg(
        long,
        default_value = "pods=/registry/pods/,events=/registry/events/,leases=/registry/leases/,nodes=/registry/minions/"
    )]
    shards: String,
    /// Keep shard leaders where elections put them (no automatic spreading).
    #[arg(long)]
    no_balance_leaders: bool,
    /// `new` bootstraps a cluster from --initial-cluster; `existing` joins a running cluster
    /// (after `navarch store member add` or `etcdctl member add`) and never bootstraps.
    #[arg(long, default_value = "new", value_parser = ["new", "existing"])]
    initial_cluster_state: String,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PeerTransportArg {
    /// gRPC over TCP.
    Grpc,
    /// QUIC over UDP with mutual TLS.
    Quic,
}

/// The host part of `host:port` (brackets of an IPv6 literal removed).
fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']')
}

/// `5m`, `30s`, `1h`, `500ms`, or a bare number of hours (etcd's periodic retention).
fn parse_retention(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<u64>() {
        Ok(hours) => Ok(Duration::from_secs(hours * 3600)),
        Err(_) => navarch_apiserver::config::parse_duration(s),
    }
}

fn parse_cluster(s: &str) -> Result<BTreeMap<u64, String>> {
    let mut m = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .with_context(|| format!("--initial-cluster entry {part:?} is not ID=HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("bad member id {id:?}"))?;
        let addr = addr.trim().trim_start_matches("http://").to_string();
        if m.insert(id, addr).is_some() {
            bail!("member id {id} listed twice in --initial-cluster");
        }
    }
    Ok(m)
}

impl StoreArgs {
    fn into_config(self) -> Result<NodeConfig> {
        if self.id == 0 {
            bail!("--id must be > 0");
        }
        let Some(data_dir) = self.data_dir.clone() else {
            bail!("--data-dir is required");
        };
        let certs_dir = self
            .peer_certs
            .clone()
            .unwrap_or_else(|| data_dir.join("certs"));
        let mut cfg = NodeConfig::single(data_dir, &self.client_addr, &self.peer_addr);
        cfg.shards = navarch_raftstore::shard::ShardMap::parse(&self.shards)
            .map_err(|e| anyhow::anyhow!("--shards: {e}"))?;
        cfg.balance_leaders = !self.no_balance_leaders;
        cfg.join_existing = self.initial_cluster_state == "existing";
        cfg.id = self.id;
        cfg.name = self.name.unwrap_or_else(|| format!("navarch-{}", self.id));
        if let Some(c) = self.initial_cluster {
            cfg.initial_cluster = parse_cluster(&c)?;
            match cfg.initial_cluster.get(&self.id) {
                Some(a) if a == &self.peer_addr => {}
                Some(a) => bail!(
                    "--initial-cluster gives member {} the peer address {a}, but --peer-addr is {}",
                    self.id,
                    self.peer_addr
                ),
                None => bail!(
                    "--initial-cluster does not list this member (--id {})",
                    self.id
                ),
            }
        } else {
            cfg.initial_cluster = BTreeMap::from([(self.id, self.peer_addr.clone())]);
        }
        cfg.max_request_bytes = self.max_request_bytes;
        cfg.heartbeat = Duration::from_millis(self.heartbeat_ms);
        cfg.election_timeout = Duration::from_millis(self.election_timeout_ms);
        cfg.watch_progress_interval =
            Duration::from_millis(self.watch_progress_notify_interval_ms.max(1));
        cfg.snapshot_entries = self.snapshot_count.max(1);
        cfg.auto_compaction_retention = self.auto_compaction_retention;
        cfg.watch_buffer = self.watch_buffer.max(1);
        cfg.proposal_pipeline = self.proposal_pipeline.max(1);
        cfg.forward_pipeline = self.forward_pipeline.max(1);
        cfg.proposal_yields = self.proposal_yields;
        cfg.proposal_linger = Duration::from_millis(self.proposal_linger_ms);
        cfg.forward_per_node = self.forward_per_node;
        cfg.peer_streams = self.peer_streams;
        cfg.commit_linger = Duration::from_millis(self.commit_linger_ms);
        cfg.lease_checkpoint_interval =
            Duration::from_millis(self.lease_checkpoint_interval_ms.max(1));
        if self.peer_transport == PeerTransportArg::Quic {
            let host = host_of(&self.peer_addr).to_string();
            let made = certs::ensure_node_certs(&certs_dir, self.id, &[host])
                .with_context(|| format!("peer certificates in {}", certs_dir.display()))?;
            if made.created_ca {
                tracing::warn!(
                    dir = %certs_dir.display(),
                    "dev mode: created a new cluster CA; every member must use this directory \
                     (or certificates from this CA)"
                );
            }
            if made.issued_node_cert {
                tracing::info!(dir = %certs_dir.display(), id = self.id, "issued this node's peer certificate");
            }
            cfg.peer_transport = PeerTransportConfig::Quic { certs_dir };
        }
        Ok(cfg)
    }
}

async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
    }
}

async fn run_store(cfg: NodeConfig) -> Result<()> {
    let client = server::bind(&cfg.client_addr).await?;
    let peer = server::bind(&cfg.peer_addr).await?;
    let node = StoreNode::start(cfg).await.context("starting store node")?;
    let res = server::serve(node.clone(), client, peer, terminated()).await;
    node.shutdown().await;
    tracing::info!("store stopped");
    if let Some(fatal) = node.fatal.lock().clone() {
        bail!("store stopped on a fatal error: {fatal}");
    }
    res.map_err(Into::into)
}

/// Keeps freed memory in the process for reuse instead of handing it straight back to the
/// kernel. The store frees and allocates the same amounts all the time (RocksDB memtables of
/// 64 MiB, Raft entries, request buffers); returned memory costs a page fault and a zeroed page
/// on every reuse, and on VMs whose host reclaims freed guest memory (free page reporting) far
/// more: there this was a large part of the store's CPU under write load.
#[allow(unsafe_code)]
fn retain_freed_memory() {
    // mimalloc 3 `mi_option_purge_delay` (libmimalloc-sys 0.1.49, enum position 15): free
    // pages are returned after this many ms (default 1,000).
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    unsafe extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    // SAFETY: called once at the start of `main`, before any other thread exists; both calls
    // only set allocator parameters (mallopt for glibc malloc, which RocksDB's C++ code uses:
    // blocks up to 32 MiB come from its heap and freed memory is kept up to 1 GiB).
    unsafe {
        mi_option_set(MI_OPTION_PURGE_DELAY, 10_000);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

fn main() -> Result<()> {
    retain_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Up { data_dir, store_addr, store_peer_addr, api_listen } => {
                let mut cfg = NodeConfig::single(data_dir, &store_addr, &store_peer_addr);
                cfg.auto_compaction_retention = Duration::from_secs(300);
                let mut api = navarch_apiserver::Config::etcd(&api_listen, vec![store_addr.clone()]);
                api.prometheus = Some(server::prometheus().clone());
                eprintln!("navarch up: store (etcd v3 API) on {store_addr}; API server on http://{api_listen}");
                eprintln!("  kubectl: navarch kubeconfig --server http://{api_listen} > navarch.kubeconfig && kubectl --kubeconfig navarch.kubeconfig get namespaces");
                tokio::try_join!(run_store(cfg), navarch_apiserver::run(api)).map(|_| ())
            }
            Cmd::Apiserver(a) => navarch_apiserver::run(a.into_config()).await,
            Cmd::Kubeconfig { server, certificate_authority, insecure_skip_tls_verify } => {
                print!(
                    "{}",
                    navarch_apiserver::kubeconfig(
                        &server,
                        certificate_authority.as_deref(),
                        insecure_skip_tls_verify
                    )
                );
                Ok(())
            }
            Cmd::Store(StoreCmd { admin: Some(cmd), .. }) => {
                tokio::task::spawn_blocking(move || store_cli::run(cmd)).await?
            }
            Cmd::Store(StoreCmd { run, .. }) => run_store(run.into_config()?).await,
            Cmd::Certs { out, nodes, hosts } => {
                if nodes == 0 {
                    bail!("--nodes must be > 0");
                }
                let files = certs::write_cluster_certs(&out, nodes, &hosts)
                    .with_context(|| format!("writing certificates into {}", out.display()))?;
                for f in files {
                    println!("{}", f.display());
                }
                Ok(())
            }
            Cmd::Loadtest { what: LoadtestCmd::Store(a) } => {
                navarch_loadtest::run_store(a).await.map(|_| ())
            }
            Cmd::Loadtest { what: LoadtestCmd::Api(a) } => {
                navarch_loadtest::run_api(a).await.map(|_| ())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_parses_like_etcd() {
        assert_eq!(parse_retention("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_retention("1").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_retention("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_retention("750ms").unwrap(),
            Duration::from_millis(750)
        );
        assert!(parse_retention("5x").is_err());
        assert!(parse_retention("m").is_err());
    }

    #[test]
    fn initial_cluster_parses_and_rejects_duplicates() {
        let m = parse_cluster("1=127.0.0.1:2380,2=http://127.0.0.1:12380").unwrap();
        assert_eq!(m[&2], "127.0.0.1:12380");
        assert!(parse_cluster("1=a:1,1=b:2").is_err());
        assert!(parse_cluster("x=a:1").is_err());
        assert!(parse_cluster("1").is_err());
    }

    #[test]
    fn apiserver_flags_parse() {
        let cli = Cli::try_parse_from([
            "navarch",
            "apiserver",
            "--store-endpoints",
            "127.0.0.1:2379,127.0.0.1:3379",
            "--listen",
            "127.0.0.1:7443",
        ])
        .unwrap();
        let Cmd::Apiserver(a) = cli.cmd else {
            unreachable!()
        };
        let cfg = a.into_config();
        assert_eq!(cfg.store_endpoints, ["127.0.0.1:2379", "127.0.0.1:3379"]);
        assert_eq!(cfg.listen, "127.0.0.1:7443");
        assert!(cfg.tls.is_none());
        // A certificate without its key is refused.
        assert!(Cli::try_parse_from(["navarch", "apiserver", "--tls-cert-file", "c.pem"]).is_err());
        assert!(Cli::try_parse_from([
            "navarch",
            "kubeconfig",
            "--server",
            "https://127.0.0.1:6443"
        ])
        .is_ok());
    }

    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("127.0.0.1:2380"), "127.0.0.1");
        assert_eq!(host_of("[::1]:2380"), "::1");
        assert_eq!(host_of("db-1:2380"), "db-1");
    }

    #[test]
    fn store_flags_set_the_replication_and_forwarding_defaults() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["navarch", "store", "--data-dir", "x"];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(args).unwrap().cmd {
                Cmd::Store(StoreCmd { run, .. }) => run.into_config().unwrap(),
                _ => unreachable!(),
            }
        };
        let cfg = parse(&[]);
        assert!(cfg.peer_streams, "replication streams are on by default");
        assert_eq!(
            cfg.forward_pipeline,
            navarch_raftstore::node::DEFAULT_FORWARD_PIPELINE
        );
        assert_eq!(cfg.proposal_pipeline, 1);
        let cfg = parse(&["--peer-streams", "false", "--forward-pipeline", "0"]);
        assert!(!cfg.peer_streams);
        assert_eq!(cfg.forward_pipeline, 1, "at least one forward in flight");
    }

    #[test]
    fn store_flags_select_the_peer_transport() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        let parse = |extra: &[&str]| {
            let mut args = vec!["navarch", "store", "--data-dir", data.to_str().unwrap()];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(args).unwrap().cmd {
                Cmd::Store(StoreCmd { run, .. }) => run.into_config().unwrap(),
                _ => unreachable!(),
            }
        };
        assert_eq!(parse(&[]).peer_transport, PeerTransportConfig::Grpc);
        // quic without --peer-certs: dev mode under DATA_DIR/certs.
        let cfg = parse(&["--peer-transport", "quic"]);
        let certs_dir = data.join("certs");
        assert_eq!(
            cfg.peer_transport,
            PeerTransportConfig::Quic {
                certs_dir: certs_dir.clone()
            }
        );
        assert!(certs_dir.join("ca.pem").exists() && certs_dir.join("node-1.pem").exists());
        assert!(Cli::try_parse_from([
            "navarch",
            "store",
            "--data-dir",
            "x",
            "--peer-transport",
            "tcp"
        ])
        .is_err());
    }
}
