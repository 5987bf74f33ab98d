//! Prometheus metrics: request counts and latency histograms per verb and resource, watch counts.
//!
//! Names follow kube-apiserver's where they exist (`apiserver_request_total`,
//! `apiserver_request_duration_seconds`, `apiserver_registered_watchers`); storage latency
//! (`apiserver_storage_request_duration_seconds`) is recorded by the storage layer.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds (kube-apiserver's request-duration buckets, shortened).
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 4.0, 10.0, 30.0, 60.0,
];

/// The process-wide Prometheus handle: `preferred` when the process already installed a
/// recorder (the embedded store in `navarch up`), else our own recorder with histograms.
pub fn prometheus(preferred: Option<&PrometheusHandle>) -> PrometheusHandle {
    static OWN: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(h) = preferred {
        return h.clone();
    }
    OWN.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let builder = builder
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests run several servers in a process).
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
    .clone()
}

/// Records one finished request.
pub fn record_request(verb: &'static str, resource: &str, code: u16, elapsed: Duration) {
    let resource = resource.to_string();
    metrics::counter!(
        "apiserver_request_total",
        "verb" => verb,
        "resource" => resource.clone(),
        "code" => code.to_string()
    )
    .increment(1);
    if verb != "WATCH" {
        metrics::histogram!(
            "apiserver_request_duration_seconds",
            "verb" => verb,
            "resource" => resource
        )
        .record(elapsed.as_secs_f64());
    }
}

/// Counts an open watch for as long as the guard lives.
pub struct WatcherGuard {
    resource: String,
}

impl WatcherGuard {
    /// Registers a watcher of `resource`.
    pub fn new(resource: &str) -> Self {
        metrics::gauge!("apiserver_registered_watchers", "resource" => resource.to_string())
            .increment(1.0);
        metrics::counter!("apiserver_watch_requests_total", "resource" => resource.to_string())
            .increment(1);
        Self {
            resource: resource.to_string(),
        }
    }

    /// Counts one sent watch event.
    pub fn sent(&self, kind: &'static str) {
        metrics::counter!(
            "apiserver_watch_events_total",
            "resource" => self.resource.clone(),
            "type" => kind
        )
        .increment(1);
    }
}

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        metrics::gauge!("apiserver_registered_watchers", "resource" => self.resource.clone())
            .decrement(1.0);
    }
}
