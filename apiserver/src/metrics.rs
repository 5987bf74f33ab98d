//! Prometheus metrics: request counts and latency histograms per verb and resource, watch counts.
//!
//! Names follow kube-apiserver's where they exist (`apiserver_request_total`,
//! `apiserver_request_duration_seconds`, `apiserver_registered_watchers`); storage latency
//! (`apiserver_storage_request_duration_seconds`) is recorded by the storage layer. The
//! Prometheus process collector's `process_*` series (resident memory, CPU seconds, open file
//! descriptors) are read from `/proc/self` at scrape time.

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

/// The standard `process_*` metrics of this process, read from `/proc/self` (Linux; empty
/// elsewhere): resident memory, CPU seconds (user + system) and open file descriptors.
pub fn process_metrics() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    if let Some(kib) = rss_kib {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}",
            kib * 1024
        );
    }
    // Fields 14 and 15 of /proc/self/stat (after the parenthesised command name) are utime and
    // stime in clock ticks; Linux reports them in USER_HZ, which is 100 on every architecture.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let ticks = stat.rsplit_once(") ").map(|(_, rest)| {
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        field(11) + field(12)
    });
    if let Some(ticks) = ticks {
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}",
            ticks as f64 / 100.0
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(
            out,
            "# HELP process_open_fds Number of open file descriptors.\n\
             # TYPE process_open_fds gauge\nprocess_open_fds {}",
            fds.count()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn process_metrics_are_read_from_proc() {
        let text = super::process_metrics();
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing in {text}"))
                .parse()
                .unwrap()
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_open_fds") >= 3.0);
        let cpu = value("process_cpu_seconds_total");
        assert!((0.0..1e6).contains(&cpu), "cpu seconds {cpu}");
    }
}
