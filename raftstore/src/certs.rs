//! Cluster certificates for the QUIC peer transport's mutual TLS: one cluster CA, one
//! certificate per node, PEM files in one directory.
//!
//! ```text
//! DIR/ca.pem            cluster CA certificate: the trust root of servers and clients
//! DIR/ca-key.pem        CA private key (only needed to issue node certificates)
//! DIR/node-N.pem        node N's certificate, signed by the CA (server and client auth)
//! DIR/node-N-key.pem    node N's private key (PKCS#8, mode 0600)
//! ```
//!
//! Peers know each other only by address, so every node certificate carries the DNS name
//! [`PEER_SERVER_NAME`] (`navarch-peer`), plus `node-N` and the hosts it was issued for, and
//! every client dials with the server name `navarch-peer`. Both sides check that the other
//! holds a certificate issued by the cluster CA: the CA is the cluster's identity, so a CA must
//! never be shared between clusters.
//!
//! `navarch certs --out DIR --nodes N` writes a whole directory ([`write_cluster_certs`]).
//! Dev mode ([`ensure_node_certs`]) creates the CA when DIR has none and issues a node's
//! certificate when it is missing; nodes that share DIR then share the CA.

use std::fs;
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::types::NodeId;

/// The server name every peer dials and every node certificate carries.
pub const PEER_SERVER_NAME: &str = "navarch-peer";

/// Common name of the cluster CA. Issuing from a stored CA rebuilds its parameters from this
/// (see [`ClusterCa::load`]), so it must not change.
const CA_COMMON_NAME: &str = "Navarch cluster CA";

/// How long dev mode waits for another process that is creating the CA in the same directory.
const CA_CREATION_WAIT: Duration = Duration::from_secs(10);

/// Errors creating, reading or using certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Key or certificate generation failed.
    #[error("generating {what}: {source}")]
    Generate {
        /// What was being generated.
        what: String,
        /// Cause.
        #[source]
        source: rcgen::Error,
    },
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("{path}: {reason}")]
    Parse {
        /// The file (or a description of in-memory PEM).
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A host name or address that cannot go into a certificate.
    #[error("bad certificate host {host:?}: {reason}")]
    BadHost {
        /// The host as given.
        host: String,
        /// Why.
        reason: String,
    },
    /// The certificate directory is in a state we cannot use.
    #[error("certificate directory {dir}: {reason}")]
    Layout {
        /// The directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// Building a TLS configuration or verifying a certificate failed.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Result alias of this module.
pub type Result<T, E = CertError> = std::result::Result<T, E>;

/// The ring crypto provider, used explicitly everywhere (no process-wide default needed).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// `DIR/ca.pem`.
pub fn ca_cert_path(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}

/// `DIR/ca-key.pem`.
pub fn ca_key_path(dir: &Path) -> PathBuf {
    dir.join("ca-key.pem")
}

/// `DIR/node-N.pem`.
pub fn node_cert_path(dir: &Path, id: NodeId) -> PathBuf {
    dir.join(format!("node-{id}.pem"))
}

/// `DIR/node-N-key.pem`.
pub fn node_key_path(dir: &Path, id: NodeId) -> PathBuf {
    dir.join(format!("node-{id}-key.pem"))
}

/// A cluster CA that can issue node certificates.
pub struct ClusterCa {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// Generates a new cluster CA (ECDSA P-256, self-signed).
pub fn generate_ca() -> Result<ClusterCa> {
    let gen = |source| CertError::Generate {
        what: "cluster CA".into(),
        source,
    };
    let key = KeyPair::generate().map_err(gen)?;
    let params = ca_params();
    let cert = params.self_signed(&key).map_err(gen)?;
    Ok(ClusterCa {
        cert_der: cert.der().clone(),
        cert_pem: cert.pem(),
        issuer: Issuer::new(params, key),
    })
}

impl ClusterCa {
    /// Reads `DIR/ca.pem` and `DIR/ca-key.pem`. The CA must have been made by Navarch
    /// ([`generate_ca`]): its parameters are rebuilt, and every certificate issued from it is
    /// checked to chain to `ca.pem`.
    pub fn load(dir: &Path) -> Result<Self> {
        let cert_path = ca_cert_path(dir);
        let key_path = ca_key_path(dir);
        let cert_pem = read_to_string(&cert_path)?;
        let cert_der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| CertError::Parse {
                path: cert_path.clone(),
                reason: format!("no PEM certificate: {e}"),
            })?;
        let key = KeyPair::from_pem(&read_to_string(&key_path)?).map_err(|e| CertError::Parse {
            path: key_path.clone(),
            reason: format!("no PEM private key: {e}"),
        })?;
        Ok(Self {
            cert_der,
            cert_pem,
            issuer: Issuer::new(ca_params(), key),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Writes `DIR/ca-key.pem` then `DIR/ca.pem` (each atomically; the key first, so a
    /// directory with `ca.pem` always has its key).
    pub fn write(&self, dir: &Path) -> Result<()> {
        create_dir(dir)?;
        write_atomic(&ca_key_path(dir), &self.key_pem(), true)?;
        write_atomic(&ca_cert_path(dir), &self.cert_pem, false)
    }
}

/// A node's certificate and private key, PEM.
pub struct NodeCert {
    /// The certificate (signed by the cluster CA).
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCert").finish_non_exhaustive()
    }
}

impl NodeCert {
    /// Writes `DIR/node-N-key.pem` then `DIR/node-N.pem` (each atomically).
    pub fn write(&self, dir: &Path, id: NodeId) -> Result<()> {
        create_dir(dir)?;
        write_atomic(&node_key_path(dir, id), &self.key_pem, true)?;
        write_atomic(&node_cert_path(dir, id), &self.cert_pem, false)
    }
}

fn san(host: &str) -> Result<SanType> {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let name = rcgen::string::Ia5String::try_from(host).map_err(|e| CertError::BadHost {
        host: host.into(),
        reason: e.to_string(),
    })?;
    Ok(SanType::DnsName(name))
}

/// Issues node `id`'s certificate: SANs `navarch-peer`, `node-<id>` and `hosts` (IP addresses or
/// DNS names), usable for TLS server and client authentication.
pub fn issue_node_cert(ca: &ClusterCa, id: NodeId, hosts: &[String]) -> Result<NodeCert> {
    let node_name = format!("node-{id}");
    let gen = |source| CertError::Generate {
        what: format!("certificate of {node_name}"),
        source,
    };
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node_name.clone());
    params.distinguished_name = dn;
    let mut sans = vec![san(PEER_SERVER_NAME)?, san(&node_name)?];
    for h in hosts.iter().filter(|h| !h.trim().is_empty()) {
        let s = san(h)?;
        if !sans.contains(&s) {
            sans.push(s);
        }
    }
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().map_err(gen)?;
    let cert = params.signed_by(&key, &ca.issuer).map_err(gen)?;
    check_chains_to(&ca.cert_der, cert.der())?;
    Ok(NodeCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Verifies `leaf` as a peer server certificate against `ca` alone.
fn check_chains_to(ca: &CertificateDer<'static>, leaf: &CertificateDer<'static>) -> Result<()> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone())
        .map_err(|e| CertError::Tls(format!("CA certificate: {e}")))?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crypto_provider())
        .build()
        .map_err(|e| CertError::Tls(e.to_string()))?;
    let name = ServerName::try_from(PEER_SERVER_NAME).map_err(|e| CertError::Tls(e.to_string()))?;
    verifier
        .verify_server_cert(leaf, &[], &name, &[], UnixTime::now())
        .map_err(|e| {
            CertError::Tls(format!(
                "issued certificate does not verify against the CA (was ca.pem made by \
                 `navarch certs`?): {e}"
            ))
        })?;
    Ok(())
}

/// Writes a cluster's certificates into `dir`: the CA (reused if `dir/ca.pem` exists, so
/// more nodes can be added later) and certificates for nodes `1..=nodes`, each with SANs
/// `hosts` besides the fixed ones. Returns the files written.
pub fn write_cluster_certs(dir: &Path, nodes: u64, hosts: &[String]) -> Result<Vec<PathBuf>> {
    create_dir(dir)?;
    let mut written = Vec::new();
    let ca = if ca_cert_path(dir).exists() {
        ClusterCa::load(dir)?
    } else {
        let ca = generate_ca()?;
        ca.write(dir)?;
        written.extend([ca_cert_path(dir), ca_key_path(dir)]);
        ca
    };
    for id in 1..=nodes {
        issue_node_cert(&ca, id, hosts)?.write(dir, id)?;
        written.extend([node_cert_path(dir, id), node_key_path(dir, id)]);
    }
    Ok(written)
}

/// What [`ensure_node_certs`] had to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ensured {
    /// This call created the cluster CA.
    pub created_ca: bool,
    /// This call issued the node's certificate.
    pub issued_node_cert: bool,
}

/// Dev mode: makes sure `dir` holds a CA and node `id`'s certificate. Creates the CA if
/// `dir/ca.pem` is missing (safe when several nodes sharing `dir` start at once: exactly one
/// creates it, the others wait for it), then issues `node-<id>.pem` if missing.
pub fn ensure_node_certs(dir: &Path, id: NodeId, hosts: &[String]) -> Result<Ensured> {
    create_dir(dir)?;
    let mut out = Ensured::default();
    if !ca_cert_path(dir).exists() {
        out.created_ca = create_ca_once(dir)?;
    }
    if !node_cert_path(dir, id).exists() {
        if !ca_key_path(dir).exists() {
            return Err(CertError::Layout {
                dir: dir.into(),
                reason: format!(
                    "node-{id}.pem is missing and there is no ca-key.pem to issue it \
                     (write it with `navarch certs`)"
                ),
            });
        }
        let ca = ClusterCa::load(dir)?;
        issue_node_cert(&ca, id, hosts)?.write(dir, id)?;
        out.issued_node_cert = true;
    }
    Ok(out)
}

/// Creates the CA unless another process beats us to it; returns whether we created it.
/// The key is published with a no-clobber hard link (the race's single winner), then the
/// certificate with a rename; losers wait for the certificate.
fn create_ca_once(dir: &Path) -> Result<bool> {
    let key_path = ca_key_path(dir);
    let cert_path = ca_cert_path(dir);
    let won = if key_path.exists() {
        false
    } else {
        let ca = generate_ca()?;
        let key_tmp = tmp_path(&key_path);
        write_file(&key_tmp, &ca.key_pem(), true)?;
        let linked = fs::hard_link(&key_tmp, &key_path);
        let _ = fs::remove_file(&key_tmp);
        match linked {
            Ok(()) => {
                write_atomic(&cert_path, ca.cert_pem(), false)?;
                true
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
            Err(source) => {
                return Err(CertError::Write {
                    path: key_path,
                    source,
                })
            }
        }
    };
    if !won {
        let deadline = Instant::now() + CA_CREATION_WAIT;
        while !cert_path.exists() {
            if Instant::now() >= deadline {
                return Err(CertError::Layout {
                    dir: dir.into(),
                    reason: format!(
                        "ca-key.pem exists but ca.pem did not appear within {CA_CREATION_WAIT:?} \
                         (an interrupted CA creation? remove ca-key.pem)"
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(won)
}

/// The TLS material of one node: the CA roots, its certificate chain and private key.
pub struct PeerTls {
    roots: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls")
            .field("roots", &self.roots.len())
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Clone for PeerTls {
    fn clone(&self) -> Self {
        Self {
            roots: self.roots.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

fn pem_certs(pem: &[u8], what: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| CertError::Parse {
            path: what.into(),
            reason: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(CertError::Parse {
            path: what.into(),
            reason: "no certificate in file".into(),
        });
    }
    Ok(certs)
}

impl PeerTls {
    /// Node `id`'s material from `dir` (`ca.pem`, `node-<id>.pem`, `node-<id>-key.pem`).
    pub fn load(dir: &Path, id: NodeId) -> Result<Self> {
        let ca = ca_cert_path(dir);
        let cert = node_cert_path(dir, id);
        let key = node_key_path(dir, id);
        let key_pem = read_to_string(&key)?;
        let tls = Self {
            roots: pem_certs(read_to_string(&ca)?.as_bytes(), &ca)?,
            chain: pem_certs(read_to_string(&cert)?.as_bytes(), &cert)?,
            key: PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
                CertError::Parse {
                    path: key,
                    reason: format!("no PEM private key: {e}"),
                }
            })?,
        };
        Ok(tls)
    }

    /// Material from PEM text (CA certificate(s), node certificate chain, node key).
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self> {
        let mem = |what: &str| PathBuf::from(format!("<{what} PEM>"));
        Ok(Self {
            roots: pem_certs(ca_pem.as_bytes(), &mem("CA"))?,
            chain: pem_certs(cert_pem.as_bytes(), &mem("certificate"))?,
            key: PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
                CertError::Parse {
                    path: mem("key"),
                    reason: format!("no PEM private key: {e}"),
                }
            })?,
        })
    }

    fn root_store(&self) -> Result<Arc<RootCertStore>> {
        let mut roots = RootCertStore::empty();
        for c in &self.roots {
            roots
                .add(c.clone())
                .map_err(|e| CertError::Tls(format!("CA certificate: {e}")))?;
        }
        Ok(Arc::new(roots))
    }

    /// TLS 1.3 server configuration that requires a client certificate issued by the CA.
    pub fn server_config(&self) -> Result<rustls::ServerConfig> {
        let tls = |e: rustls::Error| CertError::Tls(e.to_string());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.root_store()?, crypto_provider())
                .build()
                .map_err(|e| CertError::Tls(e.to_string()))?;
        rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(tls)
    }

    /// TLS 1.3 client configuration that trusts only the CA and presents this node's
    /// certificate.
    pub fn client_config(&self) -> Result<rustls::ClientConfig> {
        let tls = |e: rustls::Error| CertError::Tls(e.to_string());
        rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls)?
            .with_root_certificates(self.root_store()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(tls)
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.into(),
        source,
    })
}

fn read_to_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| CertError::Read {
        path: path.into(),
        source,
    })
}

/// A fresh sibling name for `path` (unique per process and call).
fn tmp_path(path: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Creates `path` (private keys with mode 0600) and writes `contents`.
fn write_file(path: &Path, contents: &str, secret: bool) -> Result<()> {
    let err = |source| CertError::Write {
        path: path.into(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(contents.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Writes `path` through a temporary file and a rename, so readers never see half a file.
fn write_atomic(path: &Path, contents: &str, secret: bool) -> Result<()> {
    let tmp = tmp_path(path);
    write_file(&tmp, contents, secret)?;
    fs::rename(&tmp, path).map_err(|source| {
        let _ = fs::remove_file(&tmp);
        CertError::Write {
            path: path.into(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_dir_round_trips_and_reuses_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["127.0.0.1".to_string(), "db-1.example".to_string()];
        let files = write_cluster_certs(dir.path(), 3, &hosts).unwrap();
        assert_eq!(files.len(), 2 + 3 * 2);
        for f in &files {
            assert!(f.exists(), "{} missing", f.display());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(node_key_path(dir.path(), 2))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "node key readable by others: {mode:o}");
        }
        for id in 1..=3 {
            let tls = PeerTls::load(dir.path(), id).unwrap();
            tls.server_config().unwrap();
            tls.client_config().unwrap();
        }
        // A second run keeps the CA and issues from the stored one (checked to chain to it).
        let ca_before = fs::read_to_string(ca_cert_path(dir.path())).unwrap();
        let files = write_cluster_certs(dir.path(), 4, &[]).unwrap();
        assert_eq!(files.len(), 4 * 2, "CA must not be rewritten");
        assert_eq!(
            fs::read_to_string(ca_cert_path(dir.path())).unwrap(),
            ca_before
        );
    }

    #[test]
    fn a_foreign_ca_cannot_issue_into_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        write_cluster_certs(dir.path(), 1, &[]).unwrap();
        // Swap in another CA's key: issuing must notice that certificates no longer chain.
        let other = generate_ca().unwrap();
        fs::write(ca_key_path(dir.path()), other.key_pem()).unwrap();
        let ca = ClusterCa::load(dir.path()).unwrap();
        let err = issue_node_cert(&ca, 2, &[]).unwrap_err();
        assert!(matches!(err, CertError::Tls(_)), "{err}");
    }

    #[test]
    fn dev_mode_nodes_sharing_a_directory_share_one_ca() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let outcomes: Vec<Ensured> = std::thread::scope(|s| {
            let handles: Vec<_> = (1..=3)
                .map(|id| {
                    let p = path.clone();
                    s.spawn(move || ensure_node_certs(&p, id, &["127.0.0.1".into()]).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(outcomes.iter().filter(|o| o.created_ca).count(), 1);
        assert!(outcomes.iter().all(|o| o.issued_node_cert));
        let ca = PeerTls::load(&path, 1).unwrap().roots;
        for id in 1..=3 {
            let tls = PeerTls::load(&path, id).unwrap();
            assert_eq!(tls.roots, ca);
            let leaf = tls.chain[0].clone();
            check_chains_to(&ca[0], &leaf).unwrap();
        }
        // Restart: nothing to do.
        assert_eq!(
            ensure_node_certs(&path, 2, &[]).unwrap(),
            Ensured::default()
        );
    }

    #[test]
    fn missing_material_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = PeerTls::load(dir.path(), 1).unwrap_err();
        assert!(err.to_string().contains("node-1-key.pem"), "{err}");
        fs::write(node_key_path(dir.path(), 1), "not pem").unwrap();
        fs::write(ca_cert_path(dir.path()), "not pem").unwrap();
        fs::write(node_cert_path(dir.path(), 1), "not pem").unwrap();
        assert!(matches!(
            PeerTls::load(dir.path(), 1).unwrap_err(),
            CertError::Parse { .. }
        ));
        // A CA certificate without its key cannot issue.
        let dir2 = tempfile::tempdir().unwrap();
        write_cluster_certs(dir2.path(), 1, &[]).unwrap();
        fs::remove_file(ca_key_path(dir2.path())).unwrap();
        assert!(matches!(
            ensure_node_certs(dir2.path(), 5, &[]).unwrap_err(),
            CertError::Layout { .. }
        ));
    }

    #[test]
    fn bad_hosts_are_rejected() {
        let ca = generate_ca().unwrap();
        let err = issue_node_cert(&ca, 1, &["bad host\u{e9}".into()]).unwrap_err();
        assert!(matches!(err, CertError::BadHost { .. }), "{err}");
        issue_node_cert(&ca, 1, &["[::1]".into(), "10.0.0.7".into()]).unwrap();
    }
}
