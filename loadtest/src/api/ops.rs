//! The request phases of `navarch loadtest api`: create, get, update and list of pods, each
//! run by `--clients` concurrent tasks drawing request numbers from one counter.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use http::Method;
use navarch_client::{Client, Request};
use parking_lot::Mutex;
use rand::Rng as _;
use serde_json::Value;

use super::report::{self, PhaseReport};
use super::ApiArgs;

/// Largest latency the histograms track (120 s); slower requests saturate.
pub(crate) const MAX_LATENCY_US: u64 = 120_000_000;
/// Errors printed per phase (the rest are only counted).
const PRINTED_ERRORS: usize = 5;

/// A latency histogram in microseconds.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Pods `PREFIX-0 .. PREFIX-(n-1)` in one namespace, with the last resourceVersion seen of each.
pub(crate) struct PodSet {
    pub namespace: String,
    prefix: String,
    pub count: u64,
    versions: Vec<Mutex<String>>,
}

impl PodSet {
    pub(crate) fn new(namespace: &str, prefix: &str, count: u64) -> Arc<Self> {
        Arc::new(Self {
            namespace: namespace.into(),
            prefix: prefix.into(),
            count,
            versions: (0..count).map(|_| Mutex::new(String::new())).collect(),
        })
    }

    fn name(&self, i: u64) -> String {
        format!("{}-{i}", self.prefix)
    }

    fn collection(&self) -> String {
        format!("/api/v1/namespaces/{}/pods", self.namespace)
    }

    fn path(&self, i: u64) -> String {
        format!("{}/{}", self.collection(), self.name(i))
    }
}

/// A realistic pod (about 2.5 KiB of JSON once the server has defaulted it): labels and
/// annotations as controllers write them, one container with env, ports, resources, probes,
/// mounts; volumes, tolerations and a node selector.
pub(crate) fn pod_json(namespace: &str, name: &str, generation: u64, rv: Option<&str>) -> Vec<u8> {
    let mut pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {"app": "loadtest", "tier": "backend", "pod-template-hash": "5d8f6c7b9d",
                       "app.kubernetes.io/part-of": "navarch-loadtest"},
            "annotations": {"loadtest.navarch.io/generation": generation.to_string(),
                            "kubectl.kubernetes.io/restartedAt": "2026-11-01T10:00:00Z",
                            "prometheus.io/scrape": "true", "prometheus.io/port": "9102"}
        },
        "spec": {
            "containers": [{
                "name": "app", "image": "registry.k8s.io/e2e-test-images/agnhost:2.52",
                "args": ["netexec", "--http-port=8080", "--udp-port=8081"],
                "env": (0..8).map(|k| serde_json::json!({"name": format!("SETTING_{k}"), "value": format!("value-{k}-{name}")})).collect::<Vec<_>>(),
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "udp", "containerPort": 8081, "protocol": "UDP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "500m", "memory": "256Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10,
                                  "failureThreshold": 3},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/app"},
                                 {"name": "cache", "mountPath": "/var/cache/app"}]
            }],
            "volumes": [{"name": "config", "configMap": {"name": "app-config"}},
                        {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300}],
            "terminationGracePeriodSeconds": 30
        }
    });
    if let Some(rv) = rv {
        pod["metadata"]["resourceVersion"] = Value::String(rv.into());
    }
    serde_json::to_vec(&pod).expect("pod serializes")
}

/// `metadata.resourceVersion` of a pod's JSON (the only `resourceVersion` key in a pod).
fn resource_version(body: &[u8]) -> Option<String> {
    const KEY: &[u8] = br#""resourceVersion":""#;
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = body[start..].iter().position(|&b| b == b'"')?;
    Some(String::from_utf8_lossy(&body[start..start + len]).into_owned())
}

/// What one request ended as.
pub(crate) enum Outcome {
    /// Success, with the response body size.
    Ok(usize),
    /// A 409 Conflict (optimistic concurrency), retried by the caller.
    Conflict,
}

/// Shared counters of a running phase.
pub(crate) struct Progress {
    pub name: String,
    pub total: u64,
    next: AtomicU64,
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    pub conflicts: AtomicU64,
    pub bytes: AtomicU64,
    printed: AtomicUsize,
}

impl Progress {
    pub(crate) fn new(name: &str, total: u64) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            total,
            next: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            printed: AtomicUsize::new(0),
        })
    }

    pub(crate) fn error(&self, what: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if self.printed.fetch_add(1, Ordering::Relaxed) < PRINTED_ERRORS {
            eprintln!("loadtest api: {}: {what}", self.name);
        }
    }

    pub(crate) fn done(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.errors.load(Ordering::Relaxed)
    }
}

/// Prints the phase's progress every two seconds until aborted.
pub(crate) fn spawn_progress(p: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.tick().await;
        let mut last = 0;
        loop {
            tick.tick().await;
            let done = p.done();
            eprintln!(
                "loadtest api: {}: {done}/{} done, {:.0} req/s, {} errors",
                p.name,
                p.total,
                (done - last) as f64 / 2.0,
                p.errors.load(Ordering::Relaxed)
            );
            last = done;
        }
    })
}

/// Runs `op(i)` for `i` in `start..total` on `clients` tasks and reports the phase.
async fn run<F, Fut>(
    client: &Client,
    name: &str,
    start: u64,
    total: u64,
    clients: usize,
    op: F,
) -> anyhow::Result<PhaseReport>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, String>> + Send,
{
    let progress = Progress::new(name, total - start);
    progress.next.store(start, Ordering::Relaxed);
    let op = Arc::new(op);
    let cpu_before = report::scrape_all(client).await;
    let ticker = spawn_progress(progress.clone());
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients.max(1))
        .map(|_| {
            let (p, op) = (progress.clone(), op.clone());
            tokio::spawn(async move {
                let mut h = histogram();
                loop {
                    let i = p.next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let t = Instant::now();
                    match op(i).await {
                        Ok(Outcome::Ok(bytes)) => {
                            h.saturating_record(t.elapsed().as_micros() as u64);
                            p.ok.fetch_add(1, Ordering::Relaxed);
                            p.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                        }
                        Ok(Outcome::Conflict) => {
                            p.conflicts.fetch_add(1, Ordering::Relaxed);
                            p.ok.fetch_add(1, Ordering::Relaxed);
                            h.saturating_record(t.elapsed().as_micros() as u64);
                        }
                        Err(e) => p.error(&e),
                    }
                }
                h
            })
        })
        .collect();
    let mut latency = histogram();
    for t in tasks {
        latency.add(t.await.context("client task panicked")?)?;
    }
    let elapsed = started.elapsed();
    ticker.abort();
    let cpu_after = report::scrape_all(client).await;
    Ok(PhaseReport::new(
        name,
        clients,
        &progress,
        elapsed,
        &latency,
        report::cpu_seconds(&cpu_before, &cpu_after),
    ))
}

fn describe(r: &navarch_client::Response) -> String {
    format!(
        "{} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
            .chars()
            .take(200)
            .collect::<String>()
    )
}

/// Sends `req`; `want` is success (with the body size), anything else an error.
async fn expect(c: &Client, req: &Request, want: u16) -> Result<navarch_client::Response, String> {
    let r = c.send(req).await.map_err(|e| e.to_string())?;
    if r.status.as_u16() == want {
        Ok(r)
    } else {
        Err(describe(&r))
    }
}

/// Creates pods `from..set.count`.
pub(crate) async fn create(
    client: &Client,
    args: &ApiArgs,
    set: &Arc<PodSet>,
    from: u64,
) -> anyhow::Result<PhaseReport> {
    let (c, s) = (client.clone(), set.clone());
    run(client, "create", from, set.count, args.clients, move |i| {
        let (c, s) = (c.clone(), s.clone());
        async move {
            let body = pod_json(&s.namespace, &s.name(i), 0, None);
            let req = Request::json(Method::POST, s.collection(), body.into());
            let r = expect(&c, &req, 201).await?;
            if let Some(rv) = resource_version(&r.body) {
                *s.versions[i as usize].lock() = rv;
            }
            Ok(Outcome::Ok(r.body.len()))
        }
    })
    .await
}

/// Random GETs of the set's pods.
pub(crate) async fn get(
    client: &Client,
    args: &ApiArgs,
    set: &Arc<PodSet>,
) -> anyhow::Result<PhaseReport> {
    let (c, s) = (client.clone(), set.clone());
    run(client, "get", 0, args.ops, args.clients, move |_| {
        let (c, s) = (c.clone(), s.clone());
        async move {
            let i = rand::rng().random_range(0..s.count);
            let r = expect(&c, &Request::get(s.path(i)), 200).await?;
            Ok(Outcome::Ok(r.body.len()))
        }
    })
    .await
}

/// Updates (PUT with the last seen resourceVersion) of pod `i % count`; a 409 re-reads the pod
/// and counts as a conflict.
pub(crate) async fn update(
    client: &Client,
    args: &ApiArgs,
    set: &Arc<PodSet>,
) -> anyhow::Result<PhaseReport> {
    let (c, s) = (client.clone(), set.clone());
    run(client, "update", 0, args.ops, args.clients, move |n| {
        let (c, s) = (c.clone(), s.clone());
        async move {
            let i = n % s.count;
            let mut rv = s.versions[i as usize].lock().clone();
            if rv.is_empty() {
                let r = c
                    .send(&Request::get(s.path(i)))
                    .await
                    .map_err(|e| e.to_string())?;
                rv = resource_version(&r.body).ok_or_else(|| describe(&r))?;
            }
            let body = pod_json(&s.namespace, &s.name(i), n + 1, Some(&rv));
            let req = Request::json(Method::PUT, s.path(i), body.into());
            let r = c.send(&req).await.map_err(|e| e.to_string())?;
            match r.status.as_u16() {
                200 => {
                    if let Some(rv) = resource_version(&r.body) {
                        *s.versions[i as usize].lock() = rv;
                    }
                    Ok(Outcome::Ok(r.body.len()))
                }
                409 => {
                    s.versions[i as usize].lock().clear();
                    Ok(Outcome::Conflict)
                }
                _ => Err(describe(&r)),
            }
        }
    })
    .await
}

/// `lists` full (unpaginated) LISTs of the pods in `namespace`, one at a time.
pub(crate) async fn list(
    client: &Client,
    _args: &ApiArgs,
    namespace: &str,
    lists: u64,
    name: &str,
) -> anyhow::Result<PhaseReport> {
    let c = client.clone();
    let path = format!("/api/v1/namespaces/{namespace}/pods");
    run(client, name, 0, lists, 1, move |_| {
        let (c, path) = (c.clone(), path.clone());
        async move {
            let r = expect(&c, &Request::get(path), 200).await?;
            Ok(Outcome::Ok(r.body.len()))
        }
    })
    .await
}

/// Pods in `namespace`, counted over pages of 1,000.
pub(crate) async fn count(client: &Client, namespace: &str) -> anyhow::Result<u64> {
    let mut total = 0u64;
    let mut token = String::new();
    for _ in 0..100_000 {
        let params = navarch_client::ListParams {
            limit: Some(1000),
            continue_token: (!token.is_empty()).then(|| token.clone()),
            ..Default::default()
        };
        let path = format!("/api/v1/namespaces/{namespace}/pods{}", params.query());
        let page: Value = client.request_json(&Request::get(path)).await?;
        total += page["items"].as_array().map_or(0, |a| a.len() as u64);
        match page["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => return Ok(total),
        }
    }
    anyhow::bail!("counting pods in {namespace}: too many pages")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_is_realistic_and_its_resource_version_is_found() {
        let body = pod_json("ns", "lt-1", 3, Some("42"));
        assert!((1500..4096).contains(&body.len()), "{} bytes", body.len());
        assert_eq!(resource_version(&body).as_deref(), Some("42"));
        assert_eq!(resource_version(&pod_json("ns", "lt-1", 3, None)), None);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["metadata"]["annotations"]["loadtest.navarch.io/generation"],
            "3"
        );
    }
}
