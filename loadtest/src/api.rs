//! `navarch loadtest api`: a Kubernetes API benchmark through `navarch-client`.
//!
//! ```text
//! ApiArgs ─▶ namespace ─▶ create (N pods) ─▶ get ─▶ update (PUT with resourceVersion) ─▶ list
//!        ─▶ watch fan-out (W watchers, E timestamped updates, latency per delivery)
//!        ─▶ big list (fill to --list-objects pods, full LISTs, memory per cached object)
//!        ─▶ one table (and JSON line) with throughput, p50/p99/p99.9/max, errors, server CPU/op
//! ```
//!
//! Works against any Kubernetes apiserver reachable over plain HTTP (Navarch's, or a
//! kube-apiserver behind `kubectl proxy`). Server CPU and memory come from the endpoints'
//! `/metrics` (`process_cpu_seconds_total`, `process_resident_memory_bytes`) when exposed.
//! Progress goes to stderr every two seconds. Traffic goes only to the endpoints given.

mod fanout;
mod ops;
mod report;

use std::time::Duration;

use anyhow::Context as _;
use navarch_client::{Balance, Client, ClientConfig, Request};
use serde_json::json;

pub use report::{ApiReport, PhaseReport};

/// Arguments of `navarch loadtest api`.
#[derive(clap::Args, Debug, Clone)]
pub struct ApiArgs {
    /// Comma-separated apiserver URLs (`http://HOST:PORT`); requests are spread over them.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:6443")]
    pub endpoints: Vec<String>,
    /// Concurrent clients for create/get/update/list.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Pods created by the create phase (and used by get/update).
    #[arg(long, default_value_t = 10_000)]
    pub objects: u64,
    /// Requests of the get and update phases each.
    #[arg(long, default_value_t = 20_000)]
    pub ops: u64,
    /// Full LISTs of the --objects pods in the list phase.
    #[arg(long, default_value_t = 20)]
    pub lists: u64,
    /// Concurrent watchers in the fan-out phase (each on its own connection, like kubelets).
    #[arg(long, default_value_t = 5_000)]
    pub watchers: usize,
    /// Timestamped updates delivered to every watcher.
    #[arg(long, default_value_t = 20)]
    pub fanout_events: u64,
    /// Pods in the big-list namespace (created as needed) for the LIST-from-cache phase and
    /// the memory-per-object figure; 0 skips the phase.
    #[arg(long, default_value_t = 100_000)]
    pub list_objects: u64,
    /// Full LISTs of the big namespace.
    #[arg(long, default_value_t = 5)]
    pub big_lists: u64,
    /// Phases to run, comma-separated: create,get,update,list,watch,biglist.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "create,get,update,list,watch,biglist"
    )]
    pub phases: Vec<String>,
    /// Namespace of the create/get/update/list pods (the big list uses NAMESPACE-big, the
    /// fan-out NAMESPACE-fanout).
    #[arg(long, default_value = "loadtest")]
    pub namespace: String,
    /// Per-request timeout in seconds; timed-out requests count as errors.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// Free text printed in the report.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Also print the report as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Phases in the order they run.
const PHASES: [&str; 6] = ["create", "get", "update", "list", "watch", "biglist"];

impl ApiArgs {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.clients > 0, "--clients must be at least 1");
        anyhow::ensure!(!self.endpoints.is_empty(), "--endpoints is empty");
        for p in &self.phases {
            anyhow::ensure!(
                PHASES.contains(&p.as_str()),
                "unknown phase {p:?}; phases are {}",
                PHASES.join(",")
            );
        }
        let wants = |p: &str| self.phases.iter().any(|x| x == p);
        anyhow::ensure!(
            !(wants("get") || wants("update") || wants("list")) || self.objects > 0,
            "get/update/list need --objects > 0"
        );
        Ok(())
    }

    fn wants(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }

    /// The client the request phases use: round-robin over every endpoint.
    fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::new(ClientConfig {
            balance: Balance::RoundRobin,
            request_timeout: Duration::from_secs(self.timeout_secs),
            // A benchmark reports failures instead of hiding them behind retries.
            max_attempts: 1,
            ..ClientConfig::new(self.endpoints.clone())
        })?)
    }
}

/// Creates `namespace` unless it exists.
pub(crate) async fn ensure_namespace(client: &Client, namespace: &str) -> anyhow::Result<()> {
    let body = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":namespace}});
    let r = client
        .send(&Request::json(
            http::Method::POST,
            "/api/v1/namespaces",
            serde_json::to_vec(&body)?.into(),
        ))
        .await?;
    anyhow::ensure!(
        r.status.is_success() || r.status.as_u16() == 409,
        "creating namespace {namespace}: {}",
        String::from_utf8_lossy(&r.body)
    );
    Ok(())
}

/// Runs the selected phases and prints the report to stdout.
pub async fn run_api(args: ApiArgs) -> anyhow::Result<ApiReport> {
    args.validate()?;
    let client = args.client()?;
    eprintln!(
        "loadtest api: {} clients to {}, phases {}",
        args.clients,
        client.endpoints().join(","),
        args.phases.join(",")
    );
    ensure_namespace(&client, &args.namespace)
        .await
        .context("is the apiserver up?")?;
    let mut report = ApiReport::new(&args);
    let ns = args.namespace.clone();
    let pods = ops::PodSet::new(&ns, "lt", args.objects);
    if args.wants("create") {
        report.push(ops::create(&client, &args, &pods, 0).await?);
    }
    if args.wants("get") {
        report.push(ops::get(&client, &args, &pods).await?);
    }
    if args.wants("update") {
        report.push(ops::update(&client, &args, &pods).await?);
    }
    if args.wants("list") {
        report.push(ops::list(&client, &args, &ns, args.lists, "list").await?);
    }
    if args.wants("watch") && args.watchers > 0 {
        report.push(fanout::run(&args).await?);
    }
    if args.wants("biglist") && args.list_objects > 0 {
        let big = format!("{ns}-big");
        ensure_namespace(&client, &big).await?;
        let mem_before = report::scrape_all(&client).await;
        let have = ops::count(&client, &big).await?;
        let big_pods = ops::PodSet::new(&big, "big", args.list_objects);
        if have < args.list_objects {
            let mut fill = ops::create(&client, &args, &big_pods, have).await?;
            fill.name = "create (fill)".into();
            report.push(fill);
        }
        let mem_after = report::scrape_all(&client).await;
        report.memory_per_object = report::memory_per_object(
            &mem_before,
            &mem_after,
            args.list_objects.saturating_sub(have),
        );
        report.push(ops::list(&client, &args, &big, args.big_lists, "list (big)").await?);
    }
    print!("{}", report.table());
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(report)
}
