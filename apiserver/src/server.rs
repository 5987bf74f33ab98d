//! Serving: the listener (plain HTTP or TLS via tokio-rustls), HTTP/1.1 + HTTP/2 through
//! hyper-util, graceful shutdown (watches end, in-flight requests finish), startup bootstrap.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, StorageKind, TlsFiles};
use crate::memory::MemoryStorage;
use crate::storage::Storage;

/// State shared by every request.
pub struct AppState {
    /// Object storage.
    pub storage: Arc<dyn Storage>,
    /// Configuration.
    pub config: Config,
    /// Cancelled on shutdown (ends watches).
    pub shutdown: CancellationToken,
    /// Prometheus handle for `/metrics`.
    pub metrics: PrometheusHandle,
    /// Slots for non-mutating requests (`--max-requests-inflight`).
    pub readonly_slots: Arc<tokio::sync::Semaphore>,
    /// Slots for mutating requests (`--max-mutating-requests-inflight`).
    pub mutating_slots: Arc<tokio::sync::Semaphore>,
}

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long startup waits for the store to answer.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(60);

/// Namespaces every cluster has.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Builds the storage the configuration names.
pub async fn open_storage(config: &Config) -> Result<Arc<dyn Storage>> {
    match config.storage {
        StorageKind::Memory => {
            tracing::warn!("using the in-memory storage test double: nothing is persisted");
            Ok(Arc::new(MemoryStorage::new()))
        }
        StorageKind::Etcd => crate::storage_backend::etcd_with_cache(
            &config.store_endpoints,
            config.etcd_compaction_interval,
        ),
    }
}

/// Creates the system namespaces if they are missing.
pub async fn bootstrap(storage: &dyn Storage) -> Result<()> {
    let Some(info) = navarch_api::resources::find("", "v1", "namespaces") else {
        return Ok(());
    };
    for ns in SYSTEM_NAMESPACES {
        let key = info.key(None, ns);
        if storage
            .get(&key, crate::storage::ReadRevision::Latest)
            .await?
            .is_some()
        {
            continue;
        }
        let mut obj = serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns}, "spec": {}});
        crate::model::default_object(info, &mut obj);
        crate::registry::prepare_create(info, &mut obj, jiff::Timestamp::now());
        match storage.create(&key, crate::objects::to_stored(&obj)).await {
            Ok(_) | Err(crate::storage::StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("creating namespace {ns}")),
        }
    }
    Ok(())
}

/// Bootstraps, waiting (bounded) for a store that is still starting (`navarch up`).
async fn bootstrap_with_retry(storage: &dyn Storage) -> Result<()> {
    let deadline = tokio::time::Instant::now() + BOOTSTRAP_TIMEOUT;
    loop {
        match bootstrap(storage).await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::info!(error = %e, "waiting for the store");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).context("bootstrapping system namespaces"),
        }
    }
}

fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("building the TLS configuration")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Runs the API server until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> Result<()> {
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let storage = open_storage(&config).await?;
    serve(config, storage, listener, terminated()).await
}

async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot install a SIGTERM handler; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Serves on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    config: Config,
    storage: Arc<dyn Storage>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    bootstrap_with_retry(storage.as_ref()).await?;
    let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
    let token = CancellationToken::new();
    let metrics = crate::metrics::prometheus(config.prometheus.as_ref());
    let state = Arc::new(AppState {
        readonly_slots: Arc::new(tokio::sync::Semaphore::new(config.max_requests_inflight)),
        mutating_slots: Arc::new(tokio::sync::Semaphore::new(
            config.max_mutating_requests_inflight,
        )),
        storage,
        config,
        shutdown: token.clone(),
        metrics,
    });
    let app = crate::routes::router(state.clone());
    let local: SocketAddr = listener.local_addr()?;
    tracing::info!(addr = %local, tls = tls.is_some(), "apiserver listening");
    let stop = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop.cancel();
    });
    let mut conns = JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = token.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let _ = tcp.set_nodelay(true);
        let svc = TowerToHyperService::new(app.clone());
        let tls = tls.clone();
        let token = token.clone();
        conns.spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            match tls {
                None => serve_conn(&builder, TokioIo::new(tcp), svc, token).await,
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => serve_conn(&builder, TokioIo::new(stream), svc, token).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                },
            }
        });
    }
    drop(listener);
    tracing::info!(connections = conns.len(), "apiserver draining");
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
    }
    tracing::info!("apiserver stopped");
    Ok(())
}

async fn serve_conn<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: TokioIo<I>,
    svc: TowerToHyperService<axum::Router>,
    token: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = token.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
