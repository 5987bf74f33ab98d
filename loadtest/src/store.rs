//! `navarch loadtest store`: an etcd v3 client benchmark.
//!
//! ```text
//! StoreArgs ─▶ StorePlan (validated) ─▶ M gRPC channels (round-robin over endpoints)
//!    ─▶ N Worker tasks (round-robin over channels)
//!    ─▶ warmup phase (unmeasured) ─▶ measured phase (bounded by --total / --duration-secs)
//!    ─▶ merged hdrhistogram ─▶ StoreReport (table on stdout, optional JSON line)
//! ```
//!
//! Progress goes to stderr every two seconds. Traffic goes only to the
//! endpoints given.

mod plan;
mod report;
mod request;
mod worker;

use std::{
    sync::{atomic::AtomicUsize, Arc},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use tonic::transport::{Channel, Endpoint};

pub use plan::{OpKind, PlanError, StorePlan};
pub use report::{format_table, StoreReport};

use worker::{Phase, Worker};

/// Largest latency the histograms track (60 s); slower requests saturate.
const MAX_LATENCY_US: u64 = 60_000_000;
/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// How long dialing one connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Arguments of `navarch loadtest store`.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Comma-separated etcd v3 endpoints (host:port).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Concurrent client tasks.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// gRPC connections, spread over the endpoints and shared round-robin by the clients.
    #[arg(long, default_value_t = 8)]
    pub conns: usize,
    /// Workload: put, range, txn (Kubernetes-style CAS update) or mixed (80% range, 20% put).
    #[arg(long, value_enum, default_value_t = OpKind::Put)]
    pub op: OpKind,
    /// Size of the key space.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Measured requests.
    #[arg(long, default_value_t = 100_000)]
    pub total: u64,
    /// Stop the measured phase after this many seconds even if --total is not reached.
    #[arg(long)]
    pub duration_secs: Option<u64>,
    /// Use serializable (member-local) ranges instead of linearizable ones.
    #[arg(long)]
    pub serializable: bool,
    /// Prefix of every key written or read; several (comma-separated) spread the keys
    /// round-robin over them, e.g. over the shards of a sharded store.
    #[arg(long, value_delimiter = ',', default_value = "/bench/")]
    pub key_prefix: Vec<String>,
    /// Unmeasured requests issued before the measured phase.
    #[arg(long, default_value_t = 1_000)]
    pub warmup: u64,
    /// Free text printed in the report.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Also print the report as one JSON line.
    #[arg(long)]
    pub json: bool,
    /// Per-request timeout in seconds; timed-out requests count as errors.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
}

/// Runs the store benchmark and prints its report to stdout.
pub async fn run_store(args: StoreArgs) -> anyhow::Result<StoreReport> {
    let plan = Arc::new(StorePlan::from_args(&args)?);
    let channels = connect(&plan).await?;
    let template = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3)
        .context("creating latency histogram")?;
    let mut workers: Vec<Worker> = (0..plan.clients)
        .map(|id| {
            let channel = channels[plan.conn_for_client(id)].clone();
            Worker::new(id, channel, Arc::clone(&plan), template.clone())
        })
        .collect();
    eprintln!(
        "loadtest: {} {} op, {} clients over {} conns to {}, {} B values, {} keys",
        display_label(&args.label),
        plan.op.as_str(),
        plan.clients,
        plan.conns,
        plan.endpoints.join(","),
        plan.value_size,
        plan.keys
    );
    let printed_errors = Arc::new(AtomicUsize::new(0));

    if plan.warmup > 0 {
        let phase = Arc::new(Phase::new(
            "warmup",
            plan.warmup,
            None,
            Arc::clone(&printed_errors),
        ));
        workers = run_phase(workers, &phase, &args.label).await?;
        let counts = phase.counts();
        eprintln!(
            "loadtest: warmup done: {} ok, {} errors",
            counts.ok, counts.errors
        );
    }

    let phase = Arc::new(Phase::new(
        "measure",
        plan.total,
        plan.duration,
        printed_errors,
    ));
    let started = Instant::now();
    workers = run_phase(workers, &phase, &args.label).await?;
    let elapsed = started.elapsed();

    let mut latency = template;
    for w in &workers {
        latency
            .add(&w.latency_us)
            .context("merging latency histograms")?;
    }
    let report = StoreReport::new(&plan, &args.label, phase.counts(), elapsed, &latency);
    print!("{}", report.table());
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(report)
}

/// Opens the plan's connections, spread round-robin over its endpoints.
async fn connect(plan: &StorePlan) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(plan.conns);
    for conn in 0..plan.conns {
        let url = plan.endpoint_for_conn(conn);
        let channel = Endpoint::from_shared(url.to_owned())
            .with_context(|| format!("invalid endpoint {url}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(plan.request_timeout)
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {url}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// Runs every worker through `phase` concurrently, printing progress, and
/// hands the workers back for the next phase.
async fn run_phase(
    workers: Vec<Worker>,
    phase: &Arc<Phase>,
    label: &str,
) -> anyhow::Result<Vec<Worker>> {
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|w| tokio::spawn(w.run(Arc::clone(phase))))
        .collect();
    let progress = tokio::spawn(print_progress(Arc::clone(phase), display_label(label)));
    let mut workers = Vec::with_capacity(tasks.len());
    let mut failure = None;
    for task in tasks {
        match task.await {
            Ok(w) => workers.push(w),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    progress.abort();
    if let Some(e) = failure {
        return Err(e).context("client task failed");
    }
    Ok(workers)
}

/// Prints `done/total` and the rate over the last interval every
/// [`PROGRESS_EVERY`] until aborted.
async fn print_progress(phase: Arc<Phase>, label: String) {
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    let mut last_done = 0;
    let mut last_at = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        let counts = phase.counts();
        let done = phase.done();
        let secs = now.duration_since(last_at).as_secs_f64();
        let rate = if secs > 0.0 {
            done.saturating_sub(last_done) as f64 / secs
        } else {
            0.0
        };
        eprintln!(
            "loadtest: {label} {}: {done}/{} done, {rate:.0} req/s, {} errors",
            phase.name, phase.limit, counts.errors
        );
        last_done = done;
        last_at = now;
    }
}

fn display_label(label: &str) -> String {
    if label.is_empty() {
        "-".to_owned()
    } else {
        format!("[{label}]")
    }
}
