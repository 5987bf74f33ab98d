//! Client tasks: each pulls tickets from its phase, turns them into requests
//! via the plan, sends them on its shared gRPC connection and records the
//! latency of every successful reply.
//!
//! ```text
//! Phase.tickets ──ticket──▶ plan.request_for ──▶ KvClient ──▶ histogram / counters
//! ```

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use rand::{rngs::SmallRng, SeedableRng};
use tonic::transport::Channel;

use super::{
    plan::{RequestKind, StorePlan},
    report::PhaseCounts,
    request::{cas_outcome, cas_request, put_request, range_request, CasOutcome},
};
use crate::proto::etcdserverpb::kv_client::KvClient;

/// How many request errors are printed before the rest are only counted.
const PRINTED_ERRORS: usize = 5;

/// One bounded stretch of requests (warmup or measured) shared by all tasks.
#[derive(Debug)]
pub struct Phase {
    /// `warmup` or `measure`, used in progress lines.
    pub name: &'static str,
    /// Number of tickets handed out.
    pub limit: u64,
    deadline: Option<Instant>,
    tickets: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    conflicts: AtomicU64,
    printed_errors: Arc<AtomicUsize>,
}

impl Phase {
    /// A phase of `limit` requests, cut short `duration` from now if given.
    /// `printed_errors` is shared across phases so only the first few errors
    /// of the whole run are printed.
    pub fn new(
        name: &'static str,
        limit: u64,
        duration: Option<Duration>,
        printed_errors: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            name,
            limit,
            deadline: duration.map(|d| Instant::now() + d),
            tickets: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            printed_errors,
        }
    }

    /// Requests finished so far (ok + errors).
    pub fn done(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.errors.load(Ordering::Relaxed)
    }

    /// The phase's counters.
    pub fn counts(&self) -> PhaseCounts {
        PhaseCounts {
            ok: self.ok.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
        }
    }

    /// The next ticket, or `None` once the phase is out of tickets or time.
    fn next_ticket(&self) -> Option<u64> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        (ticket < self.limit).then_some(ticket)
    }

    fn on_error(&self, client: usize, kind: RequestKind, status: &tonic::Status) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let n = self.printed_errors.fetch_add(1, Ordering::Relaxed);
        if n < PRINTED_ERRORS {
            eprintln!(
                "loadtest: {} client {client} {kind:?} failed: {} {}",
                self.name,
                status.code(),
                status.message()
            );
        } else if n == PRINTED_ERRORS {
            eprintln!("loadtest: further errors are counted but not printed");
        }
    }
}

/// One client task's state; survives across phases so the CAS workload keeps
/// the mod revisions it has seen.
pub struct Worker {
    id: usize,
    client: KvClient<Channel>,
    plan: Arc<StorePlan>,
    rng: SmallRng,
    /// Last mod revision seen per key index (`txn` only).
    revisions: HashMap<u64, i64>,
    /// Latencies of successful requests in the current phase, microseconds.
    pub latency_us: Histogram<u64>,
}

impl Worker {
    /// A worker sending on `channel`; `histogram` is an empty template.
    pub fn new(
        id: usize,
        channel: Channel,
        plan: Arc<StorePlan>,
        histogram: Histogram<u64>,
    ) -> Self {
        Self {
            id,
            client: KvClient::new(channel),
            plan,
            rng: SmallRng::seed_from_u64(id as u64),
            revisions: HashMap::new(),
            latency_us: histogram,
        }
    }

    /// Issues requests until `phase` runs out of tickets or time; returns the
    /// worker with this phase's latencies recorded.
    pub async fn run(mut self, phase: Arc<Phase>) -> Self {
        self.latency_us.reset();
        while let Some(ticket) = phase.next_ticket() {
            let kind = self.plan.op.request_for(ticket);
            let key_index = self.plan.pick_key(&mut self.rng);
            let started = Instant::now();
            let result = self.execute(kind, key_index).await;
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            match result {
                Ok(conflict) => {
                    self.latency_us.saturating_record(micros.max(1));
                    phase.ok.fetch_add(1, Ordering::Relaxed);
                    if conflict {
                        phase.conflicts.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(status) => phase.on_error(self.id, kind, &status),
            }
        }
        self
    }

    /// Sends one request; `Ok(true)` means a CAS lost its compare.
    async fn execute(&mut self, kind: RequestKind, key_index: u64) -> Result<bool, tonic::Status> {
        let key = self.plan.key(key_index);
        match kind {
            RequestKind::Put => {
                let value = self.plan.value(&mut self.rng);
                self.client.put(put_request(key, value)).await?;
                Ok(false)
            }
            RequestKind::Range => {
                let req = range_request(key, self.plan.serializable);
                self.client.range(req).await?;
                Ok(false)
            }
            RequestKind::Cas => {
                let expected = self.revisions.get(&key_index).copied().unwrap_or(0);
                let value = self.plan.value(&mut self.rng);
                let resp = self.client.txn(cas_request(key, value, expected)).await?;
                let outcome = cas_outcome(resp.get_ref());
                self.revisions.insert(key_index, outcome.next_expected());
                Ok(matches!(outcome, CasOutcome::Conflict { .. }))
            }
        }
    }
}
