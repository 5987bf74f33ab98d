//! The op plan: pure decisions about a run — which endpoint each connection
//! dials, which connection each client shares, which operation a ticket
//! performs, and the key and value bytes it carries. No I/O here.

use std::time::Duration;

use rand::{Rng, RngCore};

use super::StoreArgs;

/// The workload a run issues.
#[derive(clap::ValueEnum, serde::Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// Unconditional `Put` of a fresh value.
    Put,
    /// Single-key `Range` (linearizable unless `--serializable`).
    Range,
    /// Kubernetes-style update: `Txn(If mod_revision == last seen, Then Put, Else Range)`.
    Txn,
    /// 80% `Range`, 20% `Put`.
    Mixed,
}

impl OpKind {
    /// The lowercase name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Put => "put",
            OpKind::Range => "range",
            OpKind::Txn => "txn",
            OpKind::Mixed => "mixed",
        }
    }

    /// The request the `ticket`-th request of a phase performs. `Mixed` makes
    /// exactly one ticket in five a put, so the 80/20 split holds at any scale
    /// without depending on the random stream.
    pub fn request_for(self, ticket: u64) -> RequestKind {
        match self {
            OpKind::Put => RequestKind::Put,
            OpKind::Range => RequestKind::Range,
            OpKind::Txn => RequestKind::Cas,
            OpKind::Mixed if ticket % 5 == 0 => RequestKind::Put,
            OpKind::Mixed => RequestKind::Range,
        }
    }
}

/// One concrete request kind sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `KV.Put`.
    Put,
    /// `KV.Range` of one key.
    Range,
    /// `KV.Txn` compare-on-mod_revision-then-put.
    Cas,
}

/// Invalid `navarch loadtest store` arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `--endpoints` was empty.
    #[error("--endpoints lists no endpoint")]
    NoEndpoints,
    /// An entry of `--endpoints` was blank or not `host:port`.
    #[error("bad endpoint {endpoint:?}: expected host:port or http://host:port")]
    BadEndpoint {
        /// The entry as given.
        endpoint: String,
    },
    /// A count flag that must be positive was zero.
    #[error("--{flag} must be at least 1")]
    Zero {
        /// The flag's long name.
        flag: &'static str,
    },
}

/// A validated run description derived from [`StoreArgs`].
#[derive(Debug, Clone, PartialEq)]
pub struct StorePlan {
    /// Endpoint URLs (`http://host:port`), in the order given.
    pub endpoints: Vec<String>,
    /// Concurrent client tasks.
    pub clients: usize,
    /// gRPC connections actually opened (never more than `clients`).
    pub conns: usize,
    /// The workload.
    pub op: OpKind,
    /// Key space size; keys are `prefix` + zero-padded index in `0..keys`.
    pub keys: u64,
    /// Value size in bytes for puts.
    pub value_size: usize,
    /// Measured requests.
    pub total: u64,
    /// Unmeasured requests issued first.
    pub warmup: u64,
    /// Optional cap on the measured phase.
    pub duration: Option<Duration>,
    /// Whether ranges are serializable (member-local) reads.
    pub serializable: bool,
    /// Key prefixes; key `i` uses prefix `i % len` (spreads keys over store shards).
    pub key_prefixes: Vec<String>,
    /// Per-request deadline; a request that exceeds it counts as an error.
    pub request_timeout: Duration,
    key_width: usize,
}

impl StorePlan {
    /// Validates `args` and derives the plan.
    pub fn from_args(args: &StoreArgs) -> Result<Self, PlanError> {
        let endpoints = args
            .endpoints
            .iter()
            .map(|e| normalize_endpoint(e))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(PlanError::NoEndpoints);
        }
        let positive = |value: u64, flag: &'static str| {
            if value == 0 {
                Err(PlanError::Zero { flag })
            } else {
                Ok(())
            }
        };
        positive(args.clients as u64, "clients")?;
        positive(args.conns as u64, "conns")?;
        positive(args.keys, "keys")?;
        positive(args.timeout_secs, "timeout-secs")?;
        Ok(Self {
            endpoints,
            clients: args.clients,
            conns: args.conns.min(args.clients),
            op: args.op,
            keys: args.keys,
            value_size: args.value_size,
            total: args.total,
            warmup: args.warmup,
            duration: args.duration_secs.map(Duration::from_secs),
            serializable: args.serializable,
            key_prefixes: if args.key_prefix.is_empty() {
                vec![String::new()]
            } else {
                args.key_prefix.clone()
            },
            request_timeout: Duration::from_secs(args.timeout_secs),
            key_width: decimal_digits(args.keys - 1),
        })
    }

    /// The endpoint connection `conn` dials: connections are spread
    /// round-robin over the endpoints.
    pub fn endpoint_for_conn(&self, conn: usize) -> &str {
        &self.endpoints[conn % self.endpoints.len()]
    }

    /// The connection client task `client` sends on: clients share the
    /// connections round-robin.
    pub fn conn_for_client(&self, client: usize) -> usize {
        client % self.conns
    }

    /// The key with index `index`: a prefix (round-robin over the prefixes) followed by the
    /// index zero-padded to the width of the largest index, so keys sort numerically.
    pub fn key(&self, index: u64) -> Vec<u8> {
        let prefix = &self.key_prefixes[(index % self.key_prefixes.len() as u64) as usize];
        format!("{prefix}{:0width$}", index, width = self.key_width).into_bytes()
    }

    /// A uniformly random key index.
    pub fn pick_key(&self, rng: &mut impl Rng) -> u64 {
        rng.random_range(0..self.keys)
    }

    /// A fresh value of `value_size` random alphanumeric bytes. Values are
    /// regenerated per request so a compressing engine gains nothing from
    /// repeated payloads (Kubernetes JSON compresses better than this; the
    /// benchmark errs against compression).
    pub fn value(&self, rng: &mut impl RngCore) -> Vec<u8> {
        random_alphanumeric(self.value_size, rng)
    }
}

/// Turns `host:port` into `http://host:port`; URLs with a scheme are kept.
pub fn normalize_endpoint(raw: &str) -> Result<String, PlanError> {
    let trimmed = raw.trim();
    let bad = || PlanError::BadEndpoint {
        endpoint: raw.to_owned(),
    };
    let (url, authority) = match trimmed.split_once("://") {
        Some((_, rest)) => (trimmed.to_owned(), rest),
        None => (format!("http://{trimmed}"), trimmed),
    };
    let authority = authority.trim_end_matches('/');
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(url),
        _ => Err(bad()),
    }
}

/// `n` random bytes drawn from `[0-9A-Za-z]`.
pub fn random_alphanumeric(n: usize, rng: &mut impl RngCore) -> Vec<u8> {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut buf = vec![0u8; n];
    rng.fill_bytes(&mut buf);
    for b in &mut buf {
        *b = ALPHABET[usize::from(*b) % ALPHABET.len()];
    }
    buf
}

fn decimal_digits(mut n: u64) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use rand::{rngs::SmallRng, SeedableRng};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: StoreArgs,
    }

    fn plan(argv: &[&str]) -> Result<StorePlan, PlanError> {
        let cli = Cli::try_parse_from(std::iter::once("loadtest").chain(argv.iter().copied()))
            .expect("arguments parse");
        StorePlan::from_args(&cli.args)
    }

    #[test]
    fn defaults_match_the_documented_flags() {
        let p = plan(&[]).unwrap();
        assert_eq!(p.endpoints, vec!["http://127.0.0.1:2379".to_owned()]);
        assert_eq!((p.clients, p.conns), (64, 8));
        assert_eq!(p.op, OpKind::Put);
        assert_eq!(
            (p.keys, p.value_size, p.total, p.warmup),
            (10_000, 256, 100_000, 1_000)
        );
        assert_eq!(p.duration, None);
        assert!(!p.serializable);
        assert_eq!(p.key_prefixes, ["/bench/"]);
    }

    #[test]
    fn parses_every_flag() {
        let p = plan(&[
            "--endpoints",
            "127.0.0.1:1,http://10.0.0.2:2, localhost:3",
            "--clients",
            "4",
            "--conns",
            "2",
            "--op",
            "mixed",
            "--keys",
            "100",
            "--value-size",
            "3072",
            "--total",
            "500",
            "--duration-secs",
            "7",
            "--serializable",
            "--key-prefix",
            "/registry/pods/",
            "--warmup",
            "0",
            "--label",
            "x",
            "--json",
        ])
        .unwrap();
        assert_eq!(
            p.endpoints,
            [
                "http://127.0.0.1:1",
                "http://10.0.0.2:2",
                "http://localhost:3"
            ]
        );
        assert_eq!((p.clients, p.conns, p.op), (4, 2, OpKind::Mixed));
        assert_eq!(
            (p.keys, p.value_size, p.total, p.warmup),
            (100, 3072, 500, 0)
        );
        assert_eq!(p.duration, Some(Duration::from_secs(7)));
        assert!(p.serializable);
        assert_eq!(p.key(7), b"/registry/pods/07");
    }

    #[test]
    fn rejects_unknown_op_and_bad_counts() {
        assert!(Cli::try_parse_from(["loadtest", "--op", "delete"]).is_err());
        assert_eq!(
            plan(&["--clients", "0"]),
            Err(PlanError::Zero { flag: "clients" })
        );
        assert_eq!(
            plan(&["--conns", "0"]),
            Err(PlanError::Zero { flag: "conns" })
        );
        assert_eq!(
            plan(&["--keys", "0"]),
            Err(PlanError::Zero { flag: "keys" })
        );
        assert!(matches!(
            plan(&["--endpoints", "nohost"]),
            Err(PlanError::BadEndpoint { .. })
        ));
        assert!(matches!(
            plan(&["--endpoints", "a:1,,b:2"]),
            Err(PlanError::BadEndpoint { .. })
        ));
    }

    #[test]
    fn connections_spread_over_endpoints_and_clients_share_connections() {
        let p = plan(&[
            "--endpoints",
            "a:1,b:2,c:3",
            "--clients",
            "10",
            "--conns",
            "4",
        ])
        .unwrap();
        let conn_endpoints: Vec<_> = (0..p.conns).map(|c| p.endpoint_for_conn(c)).collect();
        assert_eq!(
            conn_endpoints,
            ["http://a:1", "http://b:2", "http://c:3", "http://a:1"]
        );
        let client_conns: Vec<_> = (0..p.clients).map(|c| p.conn_for_client(c)).collect();
        assert_eq!(client_conns, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]);
    }

    #[test]
    fn never_opens_more_connections_than_clients() {
        let p = plan(&["--clients", "3", "--conns", "8"]).unwrap();
        assert_eq!(p.conns, 3);
    }

    #[test]
    fn op_kinds_map_to_requests() {
        assert_eq!(OpKind::Put.request_for(3), RequestKind::Put);
        assert_eq!(OpKind::Range.request_for(3), RequestKind::Range);
        assert_eq!(OpKind::Txn.request_for(3), RequestKind::Cas);
        let puts = (0..1000)
            .filter(|t| OpKind::Mixed.request_for(*t) == RequestKind::Put)
            .count();
        assert_eq!(puts, 200, "mixed is exactly 20% puts");
    }

    #[test]
    fn keys_are_zero_padded_to_the_key_space() {
        let p = plan(&["--keys", "10000"]).unwrap();
        assert_eq!(p.key(0), b"/bench/0000");
        assert_eq!(p.key(9999), b"/bench/9999");
        let p = plan(&["--keys", "1", "--key-prefix", "k"]).unwrap();
        assert_eq!(p.key(0), b"k0");
        let mut rng = SmallRng::seed_from_u64(1);
        let p = plan(&["--keys", "10"]).unwrap();
        assert!((0..1000).all(|_| p.pick_key(&mut rng) < 10));
    }

    #[test]
    fn values_have_the_requested_size_and_are_alphanumeric() {
        let p = plan(&["--value-size", "3000"]).unwrap();
        let mut rng = SmallRng::seed_from_u64(7);
        let a = p.value(&mut rng);
        let b = p.value(&mut rng);
        assert_eq!(a.len(), 3000);
        assert!(a.iter().all(u8::is_ascii_alphanumeric));
        assert_ne!(a, b, "every request gets a fresh value");
        let mut again = SmallRng::seed_from_u64(7);
        assert_eq!(p.value(&mut again), a, "deterministic for a seed");
        assert!(random_alphanumeric(0, &mut rng).is_empty());
    }

    #[test]
    fn normalizes_endpoints() {
        assert_eq!(
            normalize_endpoint(" 127.0.0.1:22379 ").unwrap(),
            "http://127.0.0.1:22379"
        );
        assert_eq!(normalize_endpoint("http://h:1/").unwrap(), "http://h:1/");
        assert!(normalize_endpoint("h:notaport").is_err());
        assert!(normalize_endpoint(":1").is_err());
        assert!(normalize_endpoint("").is_err());
    }
}
