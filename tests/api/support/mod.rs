//! Test support for the apiserver end-to-end tests: a store process and apiserver processes on
//! loopback, real kubectl of a chosen version, the Python `kubernetes` client, raw HTTP.
//!
//! ```text
//! TestCluster ─► store::Cluster (one `navarch store` process, reused from tests/store/support)
//!             ─► ApiServerProc × N (`navarch apiserver --store-endpoints … --listen …`)
//!             ─► kubeconfig-N.yaml (`navarch kubeconfig --server http://…`)
//! Kubectl     ─► kubectl.1.xx --kubeconfig … --cache-dir … (HOME in the cluster's temp dir)
//! python      ─► python3 tests/api/python/NAME.py KUBECONFIG …
//! http        ─► HTTP/1.1 over std TcpStream (requests, chunked watch streams)
//! ```

#![allow(dead_code)]

#[path = "../../store/support/mod.rs"]
#[allow(unused_imports)]
pub mod store;

pub mod cluster;
pub mod http;
pub mod kubectl;
pub mod process;
pub mod python;

use std::time::{Duration, Instant};

pub use cluster::TestCluster;
pub use kubectl::Kubectl;

/// Polls `f` until it returns `Some`, or panics with `what` (and `context()`) after `timeout`.
pub fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Collapses every run of whitespace to one space (kubectl wraps long descriptions).
pub fn squash_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The whitespace-separated columns of the first line of `table` whose first column is `first`.
pub fn table_row(table: &str, first: &str) -> Option<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cols| cols.first().map(String::as_str) == Some(first))
}

/// The header line of a kubectl table, split on runs of two or more spaces (column names such as
/// `NOMINATED NODE` contain one space).
pub fn table_header(table: &str) -> Vec<String> {
    let line = table.lines().next().unwrap_or_default();
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}
