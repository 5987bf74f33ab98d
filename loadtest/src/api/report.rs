//! The `navarch loadtest api` report: one row per phase (throughput, latency percentiles,
//! errors, server CPU per request), the fan-out figures and memory per cached object; server
//! figures come from the endpoints' Prometheus `process_*` metrics.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hdrhistogram::Histogram;
use navarch_client::{Client, Request};
use serde::Serialize;

use super::ops::Progress;
use super::ApiArgs;

/// One phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Phase name (`create`, `get`, `update`, `list`, `watch fan-out`, ...).
    pub name: String,
    /// Concurrent clients (watchers for the fan-out).
    pub clients: usize,
    /// Successful operations (deliveries for the fan-out).
    pub ok: u64,
    /// Failed operations.
    pub errors: u64,
    /// 409 Conflicts (update), counted in `ok`.
    pub conflicts: u64,
    /// Wall time, seconds.
    pub elapsed_secs: f64,
    /// Successful operations per second.
    pub throughput: f64,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
    /// Mean response body size, bytes.
    pub mean_body_bytes: f64,
    /// Server CPU (all endpoints) per successful operation, µs; absent without `/metrics`.
    pub server_cpu_us_per_op: Option<f64>,
    /// Fan-out only: p99 of the time until every watcher had an event, ms.
    pub all_delivered_p99_ms: Option<f64>,
    /// Fan-out only: median latency of the timestamped write itself (store commit included),
    /// which every delivery latency contains, ms.
    pub write_p50_ms: Option<f64>,
}

impl PhaseReport {
    pub(crate) fn new(
        name: &str,
        clients: usize,
        p: &Progress,
        elapsed: Duration,
        latency_us: &Histogram<u64>,
        server_cpu_secs: Option<f64>,
    ) -> Self {
        let ok = p.ok.load(Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let ms = |q: f64| latency_us.value_at_quantile(q) as f64 / 1000.0;
        Self {
            name: name.into(),
            clients,
            ok,
            errors: p.errors.load(Ordering::Relaxed),
            conflicts: p.conflicts.load(Ordering::Relaxed),
            elapsed_secs: secs,
            throughput: if secs > 0.0 { ok as f64 / secs } else { 0.0 },
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: latency_us.max() as f64 / 1000.0,
            mean_body_bytes: if ok > 0 {
                p.bytes.load(Ordering::Relaxed) as f64 / ok as f64
            } else {
                0.0
            },
            server_cpu_us_per_op: server_cpu_secs
                .filter(|_| ok > 0)
                .map(|s| s * 1e6 / ok as f64),
            all_delivered_p99_ms: None,
            write_p50_ms: None,
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct ApiReport {
    /// Free text from `--label`.
    pub label: String,
    /// Endpoints driven.
    pub endpoints: Vec<String>,
    /// Phases in the order they ran.
    pub phases: Vec<PhaseReport>,
    /// Growth of the servers' resident memory per pod added to the big namespace, bytes
    /// (every replica caches every pod, so this is summed over the endpoints).
    pub memory_per_object: Option<f64>,
}

impl ApiReport {
    pub(crate) fn new(args: &ApiArgs) -> Self {
        Self {
            label: args.label.clone(),
            endpoints: args.endpoints.clone(),
            phases: Vec::new(),
            memory_per_object: None,
        }
    }

    pub(crate) fn push(&mut self, p: PhaseReport) {
        eprintln!(
            "loadtest api: {} done: {} ok, {} errors, {:.0}/s, p99 {:.1} ms",
            p.name, p.ok, p.errors, p.throughput, p.p99_ms
        );
        self.phases.push(p);
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "navarch loadtest api {} against {}",
            self.label,
            self.endpoints.join(",")
        );
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "phase",
            "clients",
            "ok",
            "errors",
            "ops/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "body B",
            "srv cpu µs"
        );
        for p in &self.phases {
            let _ = writeln!(
                out,
                "{:<16} {:>7} {:>8} {:>6} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.0} {:>10}",
                p.name,
                p.clients,
                p.ok,
                p.errors,
                p.throughput,
                p.p50_ms,
                p.p99_ms,
                p.p999_ms,
                p.max_ms,
                p.mean_body_bytes,
                p.server_cpu_us_per_op
                    .map_or_else(|| "-".to_string(), |c| format!("{c:.0}"))
            );
            if let (Some(all), Some(w)) = (p.all_delivered_p99_ms, p.write_p50_ms) {
                let _ = writeln!(
                    out,
                    "  (every watcher had each event within {all:.2} ms, p99; latencies count from \
                     sending the write, whose own p50 is {w:.2} ms)"
                );
            }
            if p.conflicts > 0 {
                let _ = writeln!(out, "  ({} conflicts)", p.conflicts);
            }
        }
        if let Some(m) = self.memory_per_object {
            let _ = writeln!(
                out,
                "server memory per cached pod: {m:.0} bytes (resident memory growth / pods added)"
            );
        }
        out
    }
}

/// `process_cpu_seconds_total` and `process_resident_memory_bytes` of one endpoint.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcessSample {
    cpu_secs: f64,
    rss_bytes: f64,
}

/// Scrapes every endpoint's `/metrics`; `None` for endpoints without process metrics.
pub(crate) async fn scrape_all(client: &Client) -> Vec<Option<ProcessSample>> {
    let mut out = Vec::new();
    for endpoint in client.endpoints() {
        let one = Client::single(&endpoint).ok();
        let sample = match one {
            Some(c) => match c.send(&Request::get("/metrics")).await {
                Ok(r) if r.status.is_success() => parse_process(&String::from_utf8_lossy(&r.body)),
                _ => None,
            },
            None => None,
        };
        out.push(sample);
    }
    out
}

fn parse_process(text: &str) -> Option<ProcessSample> {
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some(ProcessSample {
        cpu_secs: value("process_cpu_seconds_total")?,
        rss_bytes: value("process_resident_memory_bytes")?,
    })
}

/// CPU seconds spent by all endpoints between two scrapes (`None` if any lacks metrics).
pub(crate) fn cpu_seconds(
    before: &[Option<ProcessSample>],
    after: &[Option<ProcessSample>],
) -> Option<f64> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| Some(a.as_ref()?.cpu_secs - b.as_ref()?.cpu_secs))
        .sum()
}

/// Resident memory growth per object added, summed over the endpoints.
pub(crate) fn memory_per_object(
    before: &[Option<ProcessSample>],
    after: &[Option<ProcessSample>],
    added: u64,
) -> Option<f64> {
    if added == 0 {
        return None;
    }
    let grown: Option<f64> = before
        .iter()
        .zip(after)
        .map(|(b, a)| Some(a.as_ref()?.rss_bytes - b.as_ref()?.rss_bytes))
        .sum();
    grown.map(|g| g / added as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_are_parsed_and_differenced() {
        let a = parse_process(
            "# HELP x\nprocess_cpu_seconds_total 1.5\nprocess_resident_memory_bytes 1000\n",
        );
        let b = parse_process("process_cpu_seconds_total 4\nprocess_resident_memory_bytes 5000\n");
        assert!(parse_process("process_cpu_seconds_total_x 3\n").is_none());
        assert_eq!(cpu_seconds(&[a], &[b]), Some(2.5));
        assert_eq!(memory_per_object(&[a], &[b], 4), Some(1000.0));
        assert_eq!(cpu_seconds(&[a, None], &[b, b]), None);
    }
}
