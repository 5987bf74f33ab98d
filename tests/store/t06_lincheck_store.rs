//! Self-tests of the linearizability checker against an in-memory etcd-like store, with a
//! deliberate stale-read bug (a lagging follower) and without it, under concurrent clients; the
//! store's reference semantics and the workload's clients also drive t05's randomized histories.

use std::collections::HashMap;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::lincheck::{check, CheckResult, Event, Op, Outcome, Recorder};
use crate::t05_lincheck::{cas, cas_res, delete, deleted, get, got, put, put_ok, TIMEOUT};

// ---------------------------------------------------------------------------------------------
// An in-memory etcd-like store, correct or with a lagging-follower bug, under concurrent clients.
// ---------------------------------------------------------------------------------------------

/// The reference semantics: one revision counter, key -> (value, mod_revision).
#[derive(Debug, Clone)]
pub(crate) struct Kv {
    rev: i64,
    keys: HashMap<String, (String, i64)>,
}

impl Kv {
    pub(crate) fn new() -> Kv {
        Kv {
            rev: 1,
            keys: HashMap::new(),
        }
    }

    pub(crate) fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Put { key, value } => {
                self.rev += 1;
                self.keys.insert(key.clone(), (value.clone(), self.rev));
                put_ok(self.rev)
            }
            Op::Get { key } => match self.keys.get(key) {
                Some((v, m)) => got(Some(v), *m, self.rev),
                None => got(None, 0, self.rev),
            },
            Op::Delete { key } => {
                if self.keys.remove(key).is_some() {
                    self.rev += 1;
                    deleted(1, self.rev)
                } else {
                    deleted(0, self.rev)
                }
            }
            Op::Cas {
                key,
                expect_mod_rev,
                value,
            } => {
                let current = self.keys.get(key).map_or(0, |(_, m)| *m);
                if current == *expect_mod_rev {
                    self.rev += 1;
                    self.keys.insert(key.clone(), (value.clone(), self.rev));
                    cas_res(true, self.rev)
                } else {
                    cas_res(false, self.rev)
                }
            }
        }
    }
}

/// Writes go to the leader. Once `lag_reads_after` requests have been handled (if ever), reads
/// are served by a follower that applies each write only when the next one arrives, so it is
/// always exactly one write behind.
struct Store {
    leader: Kv,
    follower: Kv,
    unapplied: Option<Op>,
    handled: u64,
    lag_reads_after: Option<u64>,
}

impl Store {
    fn new(lag_reads_after: Option<u64>) -> Store {
        Store {
            leader: Kv::new(),
            follower: Kv::new(),
            unapplied: None,
            handled: 0,
            lag_reads_after,
        }
    }

    fn handle(&mut self, op: &Op) -> Outcome {
        self.handled += 1;
        if matches!(op, Op::Get { .. }) {
            return match self.lag_reads_after {
                Some(n) if self.handled > n => self.follower.apply(op),
                _ => self.leader.apply(op),
            };
        }
        if let Some(previous) = self.unapplied.replace(op.clone()) {
            self.follower.apply(&previous);
        }
        self.leader.apply(op)
    }
}

/// Store behaviours under test.
const CORRECT: Option<u64> = None;
const LAGGING: Option<u64> = Some(0);

const KEYS: [&str; 3] = ["k0", "k1", "k2"];

/// How a workload turns some ops into unknown outcomes.
#[derive(Debug, Clone, Copy)]
struct Faults {
    /// Probability that a write is applied but its response is lost.
    lost_response: f64,
    /// Probability that a write is lost before it reaches the store.
    lost_request: f64,
}

const NO_FAULTS: Faults = Faults {
    lost_response: 0.0,
    lost_request: 0.0,
};

/// One client of the workload: remembers the last mod_revision it saw per key for its CASes.
pub(crate) struct Client {
    id: usize,
    rng: StdRng,
    seen: HashMap<String, i64>,
    next_value: u64,
}

impl Client {
    pub(crate) fn new(id: usize, seed: u64) -> Client {
        Client {
            id,
            rng: StdRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9e37_79b9)),
            seen: HashMap::new(),
            next_value: 0,
        }
    }

    fn value(&mut self) -> String {
        self.next_value += 1;
        format!("c{}-{}", self.id, self.next_value)
    }

    pub(crate) fn random_op(&mut self) -> Op {
        let key = KEYS[self.rng.random_range(0..KEYS.len())];
        match self.rng.random_range(0..100) {
            0..40 => put(key, &self.value()),
            40..75 => get(key),
            75..80 => delete(key),
            _ => {
                // Usually the last mod_revision seen (often stale by now), sometimes "absent".
                let expect = if self.rng.random_bool(0.2) {
                    0
                } else {
                    self.seen.get(key).copied().unwrap_or(0)
                };
                let value = self.value();
                cas(key, expect, &value)
            }
        }
    }

    pub(crate) fn learn(&mut self, op: &Op, outcome: &Outcome) {
        let key = op.key().to_owned();
        match outcome {
            Outcome::Put { rev }
            | Outcome::Cas {
                succeeded: true,
                rev,
            } => {
                self.seen.insert(key, *rev);
            }
            Outcome::Get { mod_rev, .. } => {
                self.seen.insert(key, *mod_rev);
            }
            _ => {}
        }
    }

    /// Runs `op` against the store through the recorder, injecting `faults` on writes.
    fn run(&mut self, store: &Mutex<Store>, rec: &Recorder, op: Op, faults: Faults) {
        let is_write = !matches!(op, Op::Get { .. });
        let id = rec.call(self.id, op.clone());
        if is_write && self.rng.random_bool(faults.lost_request) {
            return; // never reaches the store; the client times out
        }
        let outcome = store.lock().expect("store lock").handle(&op);
        if is_write && self.rng.random_bool(faults.lost_response) {
            return; // applied, but the client never hears back
        }
        rec.ret(id, outcome.clone());
        self.learn(&op, &outcome);
    }
}

/// `clients` threads each run `rounds` rounds of `ops_per_round` random ops against one store,
/// all concurrently; between rounds, with everyone else parked at a barrier, client 0 writes a
/// probe key and reads it back (a read that follows a completed write).
fn run_threads(
    lag_reads_after: Option<u64>,
    clients: usize,
    rounds: usize,
    ops_per_round: usize,
    faults: Faults,
    seed: u64,
) -> Vec<Event> {
    let store = Arc::new(Mutex::new(Store::new(lag_reads_after)));
    let rec = Arc::new(Recorder::new());
    let barrier = Arc::new(Barrier::new(clients));
    let handles: Vec<_> = (0..clients)
        .map(|id| {
            let (store, rec, barrier) = (store.clone(), rec.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut client = Client::new(id, seed);
                for round in 0..rounds {
                    for _ in 0..ops_per_round {
                        let op = client.random_op();
                        client.run(&store, &rec, op, faults);
                    }
                    barrier.wait();
                    if id == 0 {
                        let probe = format!("probe-{round}");
                        client.run(&store, &rec, put(&probe, "p"), NO_FAULTS);
                        client.run(&store, &rec, get(&probe), NO_FAULTS);
                    }
                    barrier.wait();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    Arc::try_unwrap(rec)
        .expect("all clients done")
        .into_history()
}

/// Checks and reports how long it took, so slow checks show up in test output.
pub(crate) fn timed_check(what: &str, history: &[Event]) -> CheckResult {
    let started = Instant::now();
    let result = check(history, TIMEOUT);
    let unknowns = history.iter().filter(|e| e.ret.is_none()).count();
    eprintln!(
        "{what}: {} ops ({unknowns} unknown) checked in {:?}: {}",
        history.len(),
        started.elapsed(),
        match &result {
            CheckResult::Linearizable => "linearizable",
            CheckResult::NotLinearizable { .. } => "not linearizable",
            CheckResult::Timeout => "timeout",
        }
    );
    result
}

#[test]
fn lagging_follower_reads_are_caught() {
    let history = run_threads(LAGGING, 6, 20, 15, NO_FAULTS, 1);
    match timed_check("lagging follower", &history) {
        CheckResult::NotLinearizable { explanation } => {
            assert!(explanation.contains("could not place"), "{explanation}");
        }
        other => panic!("the lagging follower went unnoticed: {other:?}"),
    }
}

#[test]
fn lagging_follower_reads_are_caught_despite_unknowns() {
    let faults = Faults {
        lost_response: 0.05,
        lost_request: 0.03,
    };
    let history = run_threads(LAGGING, 6, 20, 15, faults, 2);
    assert!(matches!(
        timed_check("lagging follower, unknowns", &history),
        CheckResult::NotLinearizable { .. }
    ));
}

#[test]
fn follower_lag_that_starts_late_is_caught() {
    let faults = Faults {
        lost_response: 0.05,
        lost_request: 0.03,
    };
    // Reads go stale only after 1,200 of the ~1,850 requests: the checker must get that far.
    let history = run_threads(Some(1_200), 6, 20, 15, faults, 9);
    match timed_check("follower lagging late", &history) {
        CheckResult::NotLinearizable { explanation } => {
            let placed: usize = explanation
                .split("longest linearizable prefix: ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .expect("the explanation gives the prefix length");
            assert!(placed > 1_000, "{explanation}");
        }
        other => panic!("the late lag went unnoticed: {other:?}"),
    }
}

#[test]
fn correct_store_under_concurrent_clients_is_linearizable() {
    let history = run_threads(CORRECT, 6, 20, 15, NO_FAULTS, 3);
    assert_eq!(
        timed_check("correct store", &history),
        CheckResult::Linearizable
    );
}

#[test]
fn correct_store_with_unknown_outcomes_is_linearizable() {
    let faults = Faults {
        lost_response: 0.05,
        lost_request: 0.03,
    };
    for seed in 4..7 {
        let history = run_threads(CORRECT, 8, 16, 15, faults, seed);
        assert!(
            history.iter().any(|e| e.ret.is_none()),
            "the workload lost some responses"
        );
        assert_eq!(
            timed_check("correct store, unknowns", &history),
            CheckResult::Linearizable
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn correct_store_under_tokio_tasks_is_linearizable() {
    let store = Arc::new(Mutex::new(Store::new(CORRECT)));
    let rec = Arc::new(Recorder::new());
    let faults = Faults {
        lost_response: 0.05,
        lost_request: 0.03,
    };
    let tasks: Vec<_> = (0..6)
        .map(|id| {
            let (store, rec) = (store.clone(), rec.clone());
            tokio::spawn(async move {
                let mut client = Client::new(id, 8);
                for _ in 0..250 {
                    let op = client.random_op();
                    client.run(&store, &rec, op, faults);
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    let history = Arc::try_unwrap(rec)
        .expect("all clients done")
        .into_history();
    assert_eq!(
        timed_check("tokio tasks", &history),
        CheckResult::Linearizable
    );
}
