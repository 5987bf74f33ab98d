//! The benchmark report: counts and latency percentiles of the measured
//! phase, rendered as a human table and as one JSON line.

use std::{fmt::Write as _, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::plan::StorePlan;

/// Result of one `navarch loadtest store` run (the measured phase only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreReport {
    /// Free text from `--label`.
    pub label: String,
    /// The workload (`put`, `range`, `txn`, `mixed`).
    pub op: String,
    /// Concurrent client tasks.
    pub clients: usize,
    /// gRPC connections used.
    pub conns: usize,
    /// Put value size in bytes.
    pub value_size: usize,
    /// Requests that completed successfully.
    pub ok: u64,
    /// Requests that failed (gRPC status or timeout).
    pub errors: u64,
    /// CAS txns whose compare failed (counted in `ok`; `txn` and retries only).
    pub conflicts: u64,
    /// Wall time of the measured phase in seconds.
    pub elapsed_secs: f64,
    /// Successful requests per second.
    pub throughput: f64,
    /// Median latency of successful requests, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// 99.9th percentile latency, ms.
    pub p999_ms: f64,
    /// Maximum latency, ms.
    pub max_ms: f64,
}

/// Counters of a finished phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseCounts {
    /// Successful requests.
    pub ok: u64,
    /// Failed requests.
    pub errors: u64,
    /// CAS conflicts (a subset of `ok`).
    pub conflicts: u64,
}

impl StoreReport {
    /// Builds the report from the plan, the phase's counters, its wall time
    /// and the merged latency histogram (recorded in microseconds).
    pub fn new(
        plan: &StorePlan,
        label: &str,
        counts: PhaseCounts,
        elapsed: Duration,
        latency_us: &Histogram<u64>,
    ) -> Self {
        let secs = elapsed.as_secs_f64();
        let throughput = if secs > 0.0 {
            counts.ok as f64 / secs
        } else {
            0.0
        };
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            label: label.to_owned(),
            op: plan.op.as_str().to_owned(),
            clients: plan.clients,
            conns: plan.conns,
            value_size: plan.value_size,
            ok: counts.ok,
            errors: counts.errors,
            conflicts: counts.conflicts,
            elapsed_secs: secs,
            throughput,
            p50_ms: ms(latency_us.value_at_quantile(0.50)),
            p99_ms: ms(latency_us.value_at_quantile(0.99)),
            p999_ms: ms(latency_us.value_at_quantile(0.999)),
            max_ms: ms(latency_us.max()),
        }
    }

    /// The report as a header line plus one row.
    pub fn table(&self) -> String {
        format_table(std::slice::from_ref(self))
    }
}

const HEADER: [&str; 14] = [
    "label",
    "op",
    "value_B",
    "clients",
    "conns",
    "ok",
    "errors",
    "conflicts",
    "secs",
    "req/s",
    "p50_ms",
    "p99_ms",
    "p99.9_ms",
    "max_ms",
];

/// Renders reports as an aligned table: one header line, one row each.
pub fn format_table(reports: &[StoreReport]) -> String {
    let rows: Vec<[String; 14]> = reports
        .iter()
        .map(|r| {
            [
                if r.label.is_empty() {
                    "-".to_owned()
                } else {
                    r.label.clone()
                },
                r.op.clone(),
                r.value_size.to_string(),
                r.clients.to_string(),
                r.conns.to_string(),
                r.ok.to_string(),
                r.errors.to_string(),
                r.conflicts.to_string(),
                format!("{:.2}", r.elapsed_secs),
                format!("{:.1}", r.throughput),
                format_ms(r.p50_ms),
                format_ms(r.p99_ms),
                format_ms(r.p999_ms),
                format_ms(r.max_ms),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            // The label column is left-aligned, numbers right-aligned.
            if i < 2 {
                let _ = write!(text, "{cell:<w$}");
            } else {
                let _ = write!(text, "{cell:>w$}");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut HEADER.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// A latency in milliseconds with microsecond resolution.
pub fn format_ms(ms: f64) -> String {
    format!("{ms:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::plan::OpKind;

    fn plan() -> StorePlan {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: crate::StoreArgs,
        }
        let cli = Cli::parse_from(["t", "--op", "txn", "--clients", "4", "--conns", "2"]);
        StorePlan::from_args(&cli.args).unwrap()
    }

    fn histogram(values_us: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for v in values_us {
            h.record(*v).unwrap();
        }
        h
    }

    #[test]
    fn percentiles_come_from_the_histogram_in_ms() {
        let values: Vec<u64> = (1..=1000).collect();
        let counts = PhaseCounts {
            ok: 1000,
            errors: 2,
            conflicts: 5,
        };
        let r = StoreReport::new(
            &plan(),
            "lbl",
            counts,
            Duration::from_secs(2),
            &histogram(&values),
        );
        assert_eq!(r.op, OpKind::Txn.as_str());
        assert_eq!((r.ok, r.errors, r.conflicts), (1000, 2, 5));
        assert_eq!((r.clients, r.conns), (4, 2));
        assert_eq!(r.throughput, 500.0);
        assert_eq!(r.p50_ms, 0.5);
        assert_eq!(r.p99_ms, 0.99);
        assert_eq!(r.p999_ms, 0.999);
        assert_eq!(r.max_ms, 1.0);
    }

    #[test]
    fn empty_run_reports_zeros() {
        let r = StoreReport::new(
            &plan(),
            "",
            PhaseCounts::default(),
            Duration::ZERO,
            &histogram(&[]),
        );
        assert_eq!((r.throughput, r.p50_ms, r.max_ms), (0.0, 0.0, 0.0));
        assert!(r.table().lines().nth(1).unwrap().starts_with("-  "));
    }

    #[test]
    fn formats_ms_with_three_decimals() {
        assert_eq!(format_ms(1.2345), "1.234");
        assert_eq!(format_ms(0.0), "0.000");
        assert_eq!(format_ms(12.0), "12.000");
    }

    #[test]
    fn table_aligns_columns() {
        let mut a = StoreReport::new(
            &plan(),
            "etcd put 256B",
            PhaseCounts::default(),
            Duration::from_secs(1),
            &histogram(&[1500]),
        );
        a.ok = 123_456;
        let b = StoreReport::new(
            &plan(),
            "navarch",
            PhaseCounts::default(),
            Duration::from_secs(1),
            &histogram(&[25]),
        );
        let table = format_table(&[a, b]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("label"));
        assert!(lines[1].starts_with("etcd put 256B  txn"));
        assert!(lines[1].contains("123456"));
        assert!(lines[1].ends_with("1.500"));
        assert!(lines[2].starts_with("navarch        txn"));
        assert!(lines[2].ends_with("0.025"));
        assert_eq!(lines[0].len(), lines[1].len());
    }

    #[test]
    fn serializes_as_one_json_line() {
        let r = StoreReport::new(
            &plan(),
            "x",
            PhaseCounts::default(),
            Duration::from_secs(1),
            &histogram(&[]),
        );
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["label"], "x");
        assert_eq!(v["op"], "txn");
        for field in [
            "ok",
            "errors",
            "elapsed_secs",
            "throughput",
            "p50_ms",
            "p99_ms",
            "p999_ms",
            "max_ms",
        ] {
            assert!(v.get(field).is_some(), "missing {field}");
        }
    }
}
