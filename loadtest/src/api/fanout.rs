//! The watch fan-out phase: `--watchers` watches (each its own HTTP/1.1 connection, like one
//! kubelet each) on one ConfigMap, then `--fanout-events` merge patches carrying their send
//! time; every delivery's latency (receipt − send, same clock) is recorded.
//!
//! ```text
//! W watchers ─▶ patch seq 0 (sync: every watcher is connected once all have it)
//!            ─▶ for seq in 1..=E: patch {seq, sent-ns} ─▶ wait until all W delivered ─▶ next
//! ```

use std::collections::HashSet;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use http::Method;
use k8s_openapi::api::core::v1::ConfigMap;
use navarch_client::{Api, Balance, Client, ClientConfig, ListParams, Request, WatchEvent};
use serde_json::json;
use tokio::sync::mpsc;

use super::ops::{histogram, spawn_progress, Progress};
use super::report::{self, PhaseReport};
use super::{ensure_namespace, ApiArgs};

const NAME: &str = "fanout";
const SEQ: &str = "loadtest.navarch.io/seq";
const SENT: &str = "loadtest.navarch.io/sent-unix-ns";
/// How long one event may take to reach every watcher.
const EVENT_DEADLINE: Duration = Duration::from_secs(120);

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// Prints the first few watcher failures (the phase then reports the missing deliveries).
fn watcher_failed(id: usize, why: &str) {
    static PRINTED: AtomicUsize = AtomicUsize::new(0);
    if PRINTED.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("loadtest api: watcher {id}: {why}");
    }
}

/// One delivery: (watcher, seq, latency in µs).
type Delivery = (usize, u64, u64);

async fn patch(client: &Client, path: &str, seq: u64) -> anyhow::Result<()> {
    let body =
        json!({"metadata":{"annotations":{SEQ: seq.to_string(), SENT: now_ns().to_string()}}});
    let req = Request {
        method: Method::PATCH,
        path: path.into(),
        body: Some((
            serde_json::to_vec(&body)?.into(),
            "application/merge-patch+json",
        )),
    };
    let r = client.send(&req).await?;
    anyhow::ensure!(
        r.status.is_success(),
        "patching {path}: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    Ok(())
}

/// Runs the fan-out phase.
pub(crate) async fn run(args: &ApiArgs) -> anyhow::Result<PhaseReport> {
    let writer = args.client()?;
    let ns = format!("{}-fanout", args.namespace);
    ensure_namespace(&writer, &ns).await?;
    let cms: Api<ConfigMap> = Api::namespaced(writer.clone(), &ns);
    let start = match cms.get(NAME).await {
        Ok(cm) => cm,
        Err(e) if e.code() == Some(404) => {
            let cm = ConfigMap {
                metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    name: Some(NAME.into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            cms.create(&cm).await?
        }
        Err(e) => return Err(e).context("reading the fan-out configmap"),
    };
    let rv = start.metadata.resource_version.unwrap_or_default();
    let path = format!("{}/{NAME}", cms.path());
    let w = args.watchers;
    eprintln!("loadtest api: opening {w} watchers");
    let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
    // The namespace holds only this ConfigMap, so no selector is needed (with one, the server
    // decodes each event once per watcher to evaluate it).
    let params = ListParams::default();
    let last_seq = args.fanout_events;
    let mut tasks = Vec::with_capacity(w);
    for id in 0..w {
        // Each watcher is its own client with one connection, pinned to one endpoint first.
        let mut endpoints = args.endpoints.clone();
        let first = id % endpoints.len();
        endpoints.rotate_left(first);
        let client = Client::new(ClientConfig {
            balance: Balance::Sticky,
            connect_timeout: Duration::from_secs(10),
            watch_retry_for: Duration::from_secs(60),
            ..ClientConfig::new(endpoints)
        })?;
        let mut watcher = Api::<ConfigMap>::namespaced(client, &ns).watch(&params, &rv);
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(ev) = watcher.next().await {
                let cm = match ev {
                    Ok(WatchEvent::Modified(cm)) => cm,
                    Ok(_) => continue,
                    Err(e) => return watcher_failed(id, &e.to_string()),
                };
                let at = now_ns();
                let ann = cm.metadata.annotations.unwrap_or_default();
                let seq = ann.get(SEQ).and_then(|s| s.parse::<u64>().ok());
                let sent = ann.get(SENT).and_then(|s| s.parse::<u128>().ok());
                if let (Some(seq), Some(sent)) = (seq, sent) {
                    let us = (at.saturating_sub(sent) / 1000) as u64;
                    if tx.send((id, seq, us)).is_err() || seq >= last_seq {
                        return;
                    }
                }
            }
            watcher_failed(id, "the watch ended")
        }));
        if id % 500 == 499 {
            tokio::task::yield_now().await;
        }
    }
    drop(tx);

    // Sync: seq 0 reaches every watcher once all are connected (a late one replays it).
    patch(&writer, &path, 0).await?;
    let opened = Instant::now();
    wait_for(&mut rx, 0, w, Duration::from_secs(300), &mut |_| {})
        .await
        .context("watchers connecting")?;
    eprintln!(
        "loadtest api: {w} watchers connected in {:.1} s",
        opened.elapsed().as_secs_f64()
    );

    let progress = Progress::new("watch fan-out", last_seq * w as u64);
    let ticker = spawn_progress(progress.clone());
    let cpu_before = report::scrape_all(&writer).await;
    let mut latency = histogram();
    let mut completion = histogram();
    let mut writes = histogram();
    let started = Instant::now();
    for seq in 1..=last_seq {
        let sent = Instant::now();
        patch(&writer, &path, seq).await?;
        writes.saturating_record(sent.elapsed().as_micros() as u64);
        let got = wait_for(&mut rx, seq, w, EVENT_DEADLINE, &mut |us| {
            latency.saturating_record(us);
            progress.ok.fetch_add(1, Ordering::Relaxed);
        })
        .await;
        completion.saturating_record(sent.elapsed().as_micros() as u64);
        if let Err(e) = got {
            progress.error(&format!("{e:#}"));
            break;
        }
    }
    let elapsed = started.elapsed();
    ticker.abort();
    let cpu_after = report::scrape_all(&writer).await;
    for t in tasks {
        t.abort();
    }
    let missing = (last_seq * w as u64).saturating_sub(progress.ok.load(Ordering::Relaxed));
    progress.errors.fetch_add(missing, Ordering::Relaxed);
    let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    eprintln!(
        "loadtest api: fan-out: every watcher had each event within p50 {:.1} ms, p99 {:.1} ms; \
         the patch itself (store commit included) took p50 {:.1} ms, p99 {:.1} ms",
        ms(&completion, 0.5),
        ms(&completion, 0.99),
        ms(&writes, 0.5),
        ms(&writes, 0.99)
    );
    let mut report = PhaseReport::new(
        "watch fan-out",
        w,
        &progress,
        elapsed,
        &latency,
        report::cpu_seconds(&cpu_before, &cpu_after),
    );
    report.all_delivered_p99_ms = Some(ms(&completion, 0.99));
    report.write_p50_ms = Some(ms(&writes, 0.5));
    Ok(report)
}

/// Receives deliveries until `want` watchers have delivered `seq` (later seqs are not sent
/// before that); `record` gets each delivery's latency in µs.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<Delivery>,
    seq: u64,
    want: usize,
    deadline: Duration,
    record: &mut impl FnMut(u64),
) -> anyhow::Result<()> {
    let until = tokio::time::Instant::now() + deadline;
    let mut seen = HashSet::with_capacity(want);
    while seen.len() < want {
        let (id, s, us) = tokio::time::timeout_at(until, rx.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "event {seq} reached {} of {want} watchers within {deadline:?}",
                    seen.len()
                )
            })?
            .ok_or_else(|| anyhow::anyhow!("every watcher ended before event {seq}"))?;
        if s == seq && seen.insert(id) {
            record(us);
        }
    }
    Ok(())
}
