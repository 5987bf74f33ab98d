//! Configuration of the API server and its command-line flags (`navarch apiserver`).

use std::path::PathBuf;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

/// Which storage the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageKind {
    /// The etcd v3 API at `--store-endpoints`, behind the watch cache.
    Etcd,
    /// An in-process test double (no persistence; for development and tests only).
    Memory,
}

/// Flags of `navarch apiserver`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiserverArgs {
    /// etcd v3 endpoints of the store, comma-separated `HOST:PORT` (Navarch's store or etcd).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub store_endpoints: Vec<String>,
    /// Listen address (plain HTTP unless a certificate is given).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: String,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `--tls-cert-file`.
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, default_value_t = 3 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Minimum watch duration in seconds when the client sets no `timeoutSeconds`
    /// (the server picks a random duration in [min, 2*min), as kube-apiserver does).
    #[arg(long, default_value_t = 1800)]
    pub min_request_timeout_seconds: u64,
    /// Interval of idle watch bookmarks (when the client allows them), in seconds.
    #[arg(long, default_value_t = 30)]
    pub bookmark_interval_seconds: u64,
    /// Non-mutating requests (get, list) served at once; more get 429 (watches not counted).
    #[arg(long, default_value_t = 400)]
    pub max_requests_inflight: usize,
    /// Mutating requests (create, update, patch, delete) served at once; more get 429.
    #[arg(long, default_value_t = 200)]
    pub max_mutating_requests_inflight: usize,
    /// Storage backend (`memory` is a test double for development only).
    #[arg(long, value_enum, default_value_t = StorageKind::Etcd, hide = true)]
    pub storage: StorageKind,
    /// Compact the store's history every interval, as kube-apiserver does (`5m`, `30s`, `0`
    /// to never). A sharded Navarch store compacts itself, and this compactor then stands down.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub etcd_compaction_interval: Duration,
}

/// `5m`, `30s`, `500ms`, `1h` or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 5m, 30s or 0"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        "" if n == 0 => Ok(Duration::ZERO),
        _ => Err(format!(
            "invalid duration {s:?}: the unit must be ms, s, m or h"
        )),
    }
}

impl ApiserverArgs {
    /// The configuration these flags describe.
    pub fn into_config(self) -> Config {
        Config {
            listen: self.listen,
            store_endpoints: self.store_endpoints,
            tls: match (self.tls_cert_file, self.tls_private_key_file) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                _ => None,
            },
            max_request_bytes: self.max_request_bytes,
            min_request_timeout: Duration::from_secs(self.min_request_timeout_seconds.max(1)),
            bookmark_interval: Duration::from_secs(self.bookmark_interval_seconds.max(1)),
            max_requests_inflight: self.max_requests_inflight.max(1),
            max_mutating_requests_inflight: self.max_mutating_requests_inflight.max(1),
            storage: self.storage,
            prometheus: None,
            etcd_compaction_interval: self.etcd_compaction_interval,
        }
    }
}

/// Certificate and key files for HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Everything the server needs to run.
#[derive(Clone)]
pub struct Config {
    /// Listen address.
    pub listen: String,
    /// etcd v3 endpoints.
    pub store_endpoints: Vec<String>,
    /// HTTPS when set.
    pub tls: Option<TlsFiles>,
    /// Largest request body.
    pub max_request_bytes: usize,
    /// Minimum server-chosen watch duration.
    pub min_request_timeout: Duration,
    /// Idle bookmark interval.
    pub bookmark_interval: Duration,
    /// Limit of concurrent non-mutating requests (beyond it: 429).
    pub max_requests_inflight: usize,
    /// Limit of concurrent mutating requests (beyond it: 429).
    pub max_mutating_requests_inflight: usize,
    /// Storage backend.
    pub storage: StorageKind,
    /// A Prometheus recorder already installed in this process (e.g. the embedded store's in
    /// `navarch up`); `None`: install our own.
    pub prometheus: Option<PrometheusHandle>,
    /// Interval of kube-apiserver's store compaction (zero: never).
    pub etcd_compaction_interval: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("store_endpoints", &self.store_endpoints)
            .field("tls", &self.tls)
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The default configuration over the etcd v3 `endpoints`, plain HTTP on `listen`.
    pub fn etcd(listen: &str, endpoints: Vec<String>) -> Self {
        Self {
            store_endpoints: endpoints,
            storage: StorageKind::Etcd,
            ..Self::memory(listen)
        }
    }

    /// A development configuration: memory storage on `listen`.
    pub fn memory(listen: &str) -> Self {
        Self {
            listen: listen.to_string(),
            store_endpoints: Vec::new(),
            tls: None,
            max_request_bytes: 3 * 1024 * 1024,
            min_request_timeout: Duration::from_secs(1800),
            bookmark_interval: Duration::from_secs(30),
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            storage: StorageKind::Memory,
            prometheus: None,
            etcd_compaction_interval: Duration::ZERO,
        }
    }
}

/// A kubeconfig (YAML) for a server at `server`; `ca_file` is the CA that signed its
/// certificate (HTTPS), `insecure` skips verification instead. For HTTPS the user carries a
/// placeholder token (the server does not authenticate yet): without any credentials kubectl
/// prompts for a username on HTTPS servers.
pub fn kubeconfig(server: &str, ca_file: Option<&std::path::Path>, insecure: bool) -> String {
    let user = if server.starts_with("https://") {
        "{token: navarch-dev}"
    } else {
        "{}"
    };
    let mut cluster = format!("    server: {server}\n");
    if let Some(ca) = ca_file {
        cluster.push_str(&format!("    certificate-authority: {}\n", ca.display()));
    } else if insecure {
        cluster.push_str("    insecure-skip-tls-verify: true\n");
    }
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: navarch\n  cluster:\n{cluster}\
         contexts:\n- name: navarch\n  context:\n    cluster: navarch\n    user: navarch\n    namespace: default\n\
         current-context: navarch\nusers:\n- name: navarch\n  user: {user}\npreferences: {{}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_intervals_parse() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(
            parse_duration("5").is_err(),
            "a bare number other than 0 has no unit"
        );
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn kubeconfig_is_valid_yaml_with_the_server() {
        let text = kubeconfig(
            "https://127.0.0.1:6443",
            Some(std::path::Path::new("/tmp/ca.pem")),
            false,
        );
        let v: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority"],
            "/tmp/ca.pem"
        );
        assert_eq!(v["current-context"], "navarch");
        assert_eq!(v["contexts"][0]["context"]["user"], "navarch");
        assert_eq!(v["users"][0]["user"]["token"], "navarch-dev");
        let plain = kubeconfig("http://127.0.0.1:6443", None, true);
        let v: serde_json::Value = serde_yaml_ng::from_str(&plain).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["insecure-skip-tls-verify"],
            true
        );
    }
}
