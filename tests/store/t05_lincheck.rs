//! Self-tests of the linearizability checker: hand-written histories, and randomized histories
//! built from real sequential executions of the reference model (which lives with the in-memory
//! store in `t06_lincheck_store`).

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::lincheck::{
    check, check_from, check_from_state, implied_initial_rev, CheckResult, Event, InitialState, Op,
    Outcome, Recorder,
};
use crate::t06_lincheck_store::{timed_check, Client, Kv};

/// Generous: every history here checks in well under a second in a debug build.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------

pub(crate) fn put(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
    }
}

pub(crate) fn get(key: &str) -> Op {
    Op::Get { key: key.into() }
}

pub(crate) fn delete(key: &str) -> Op {
    Op::Delete { key: key.into() }
}

pub(crate) fn cas(key: &str, expect_mod_rev: i64, value: &str) -> Op {
    Op::Cas {
        key: key.into(),
        expect_mod_rev,
        value: value.into(),
    }
}

pub(crate) fn put_ok(rev: i64) -> Outcome {
    Outcome::Put { rev }
}

pub(crate) fn got(value: Option<&str>, mod_rev: i64, rev: i64) -> Outcome {
    Outcome::Get {
        value: value.map(str::to_owned),
        mod_rev,
        rev,
    }
}

pub(crate) fn deleted(deleted: i64, rev: i64) -> Outcome {
    Outcome::Delete { deleted, rev }
}

pub(crate) fn cas_res(succeeded: bool, rev: i64) -> Outcome {
    Outcome::Cas { succeeded, rev }
}

/// A completed op.
fn ev(client: usize, op: Op, call: u64, ret: u64, outcome: Outcome) -> Event {
    Event {
        client,
        op,
        call,
        ret: Some(ret),
        outcome,
    }
}

/// An op whose outcome the client never learned.
fn unknown(client: usize, op: Op, call: u64) -> Event {
    Event {
        client,
        op,
        call,
        ret: None,
        outcome: Outcome::Unknown,
    }
}

fn assert_linearizable(history: &[Event]) {
    match check(history, TIMEOUT) {
        CheckResult::Linearizable => {}
        other => panic!("expected Linearizable, got {other:?}\nhistory: {history:#?}"),
    }
}

/// Asserts the verdict and returns the explanation.
fn assert_not_linearizable(history: &[Event]) -> String {
    match check(history, TIMEOUT) {
        CheckResult::NotLinearizable { explanation } => explanation,
        other => panic!("expected NotLinearizable, got {other:?}\nhistory: {history:#?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-written histories.
// ---------------------------------------------------------------------------------------------

#[test]
fn sequential_history_is_linearizable() {
    let h = vec![
        ev(0, get("a"), 0, 10, got(None, 0, 1)),
        ev(0, put("a", "1"), 20, 30, put_ok(2)),
        ev(1, get("a"), 40, 50, got(Some("1"), 2, 2)),
        ev(1, put("b", "x"), 60, 70, put_ok(3)),
        ev(0, delete("a"), 80, 90, deleted(1, 4)),
        ev(0, get("a"), 100, 110, got(None, 0, 4)),
        // Deleting an absent key does not bump the revision.
        ev(1, delete("a"), 120, 130, deleted(0, 4)),
        ev(1, cas("b", 3, "y"), 140, 150, cas_res(true, 5)),
        // A failed CAS does not bump it either.
        ev(0, cas("b", 3, "z"), 160, 170, cas_res(false, 5)),
        ev(0, cas("c", 0, "new"), 180, 190, cas_res(true, 6)),
        ev(1, get("b"), 200, 210, got(Some("y"), 5, 6)),
    ];
    assert_linearizable(&h);
}

#[test]
fn sequential_history_with_wrong_delete_revision_is_not_linearizable() {
    // Same shape as above, but the delete of an absent key claims to have bumped the revision.
    let h = vec![
        ev(0, put("a", "1"), 0, 10, put_ok(2)),
        ev(0, delete("a"), 20, 30, deleted(1, 3)),
        ev(0, delete("a"), 40, 50, deleted(0, 4)),
    ];
    assert_not_linearizable(&h);
}

#[test]
fn concurrent_put_and_gets_overlapping_are_linearizable() {
    // Client 0's put spans [0, 100]. Gets inside the window may see either side of it, as long
    // as nobody sees the new value and then someone later sees the old one.
    let h = vec![
        ev(0, put("a", "1"), 0, 100, put_ok(2)),
        ev(1, get("a"), 10, 20, got(None, 0, 1)),
        ev(2, get("a"), 15, 50, got(Some("1"), 2, 2)),
        ev(1, get("a"), 60, 70, got(Some("1"), 2, 2)),
        // Two puts racing: the later-returning one got the lower revision.
        ev(1, put("b", "x"), 200, 300, put_ok(3)),
        ev(2, put("b", "y"), 210, 250, put_ok(4)),
        ev(0, get("b"), 260, 270, got(Some("y"), 4, 4)),
    ];
    assert_linearizable(&h);
}

#[test]
fn new_value_then_old_value_is_not_linearizable() {
    // Same put window, but a get that starts after another get saw the new value sees the old.
    let h = vec![
        ev(0, put("a", "1"), 0, 100, put_ok(2)),
        ev(1, get("a"), 10, 20, got(Some("1"), 2, 2)),
        ev(2, get("a"), 30, 40, got(None, 0, 1)),
    ];
    assert_not_linearizable(&h);
}

#[test]
fn stale_read_is_not_linearizable() {
    let h = vec![
        ev(0, put("a", "1"), 0, 10, put_ok(2)),
        ev(0, put("a", "2"), 20, 30, put_ok(3)),
        // Called after the second put returned, yet it sees the first.
        ev(1, get("a"), 40, 50, got(Some("1"), 2, 2)),
    ];
    let why = assert_not_linearizable(&h);
    // The second put cannot go before the get that needs revision 2, which is called later.
    assert!(why.contains("longest linearizable prefix: 1 ops"), "{why}");
    assert!(
        why.contains("could not place this op before it returned:\n  [event 1] client 0"),
        "{why}"
    );
    assert!(
        why.contains("leave behind ops that need an earlier revision"),
        "{why}"
    );
    assert!(
        why.contains("[event 2] client 1 Get { key: \"a\" }"),
        "the stale get is named: {why}"
    );
    assert!(why.contains("call 40ns, ret 50ns"), "with its times: {why}");
}

#[test]
fn explanation_names_the_read_the_model_cannot_produce() {
    let h = vec![
        ev(0, put("a", "1"), 0, 10, put_ok(2)),
        // "2" is written, but only later, at revision 3.
        ev(1, get("a"), 20, 30, got(Some("2"), 2, 2)),
        ev(0, put("a", "2"), 40, 50, put_ok(3)),
    ];
    let why = assert_not_linearizable(&h);
    assert!(
        why.contains("model state after the prefix: revision 2, \"a\"=\"1\"@2"),
        "{why}"
    );
    assert!(
        why.contains("could not place this op before it returned:\n  [event 1] client 1"),
        "{why}"
    );
    assert!(
        why.contains("model would answer Get { value: Some(\"1\"), mod_rev: 2, rev: 2 }"),
        "{why}"
    );
}

#[test]
fn stale_value_at_current_revision_is_not_linearizable() {
    // The revision is right but the value is not: the store served an old value.
    let h = vec![
        ev(0, put("a", "1"), 0, 10, put_ok(2)),
        ev(0, put("a", "2"), 20, 30, put_ok(3)),
        ev(1, get("a"), 40, 50, got(Some("1"), 2, 3)),
    ];
    assert_not_linearizable(&h);
}

#[test]
fn read_of_a_value_nobody_wrote_is_not_linearizable() {
    let h = vec![
        ev(0, put("a", "1"), 0, 10, put_ok(2)),
        ev(1, get("a"), 20, 30, got(Some("2"), 2, 2)),
    ];
    let why = assert_not_linearizable(&h);
    assert!(why.contains("no op in the history wrote"), "{why}");
}

#[test]
fn lost_acknowledged_write_is_not_linearizable() {
    let h = vec![
        ev(0, put("a", "1"), 0, 10, put_ok(2)),
        ev(1, put("b", "x"), 20, 30, put_ok(3)),
        // The revision moved on past the put of "a", but "a" is gone.
        ev(2, get("a"), 40, 50, got(None, 0, 3)),
    ];
    assert_not_linearizable(&h);
}

#[test]
fn two_writes_claiming_one_revision_are_not_linearizable() {
    let h = vec![
        ev(0, put("a", "1"), 0, 10, put_ok(2)),
        ev(0, put("a", "2"), 20, 30, put_ok(3)),
        ev(1, put("b", "1"), 40, 50, put_ok(4)),
        ev(1, put("a", "3"), 60, 100, put_ok(5)),
        ev(2, put("c", "1"), 70, 90, put_ok(5)),
    ];
    let why = assert_not_linearizable(&h);
    assert!(why.contains("same revision 5"), "{why}");
}

#[test]
fn revision_gap_needs_an_unknown_write_to_fill_it() {
    let gap = vec![
        ev(0, put("a", "1"), 0, 10, put_ok(2)),
        // Revision 3 was never produced by any op in the history.
        ev(0, put("b", "1"), 20, 30, put_ok(4)),
    ];
    assert_not_linearizable(&gap);

    let mut filled = gap.clone();
    filled.push(unknown(1, put("c", "1"), 5));
    assert_linearizable(&filled);

    // An unknown write called after the gap cannot fill it.
    let mut too_late = gap;
    too_late.push(unknown(1, put("c", "1"), 40));
    assert_not_linearizable(&too_late);
}

#[test]
fn one_unknown_write_cannot_fill_two_revisions() {
    // Revisions 3 and 5 belong to no completed write: unknown writes must fill both.
    let mut h = vec![
        unknown(0, put("a", "x"), 0),
        ev(1, put("b", "1"), 10, 20, put_ok(2)),
        ev(1, put("b", "2"), 30, 40, put_ok(4)),
        ev(1, put("b", "3"), 50, 60, put_ok(6)),
        // Same effect as the first (its value is never read), but called too late to help.
        unknown(2, put("a", "y"), 100),
    ];
    let why = assert_not_linearizable(&h);
    assert!(why.contains("[event 3] client 1"), "{why}");

    // Called in time, it fills revision 5.
    h[4].call = 45;
    assert_linearizable(&h);
}

#[test]
fn unknown_write_that_later_shows_up_is_linearizable() {
    let h = vec![
        unknown(0, put("a", "1"), 0),
        ev(1, get("a"), 100, 110, got(None, 0, 1)),
        ev(1, get("a"), 200, 210, got(Some("1"), 2, 2)),
        ev(2, put("a", "2"), 300, 310, put_ok(3)),
    ];
    assert_linearizable(&h);
}

#[test]
fn unknown_write_that_never_shows_up_is_linearizable() {
    let h = vec![
        unknown(0, put("a", "1"), 0),
        unknown(0, delete("b"), 5),
        unknown(0, cas("a", 0, "c"), 6),
        unknown(0, get("a"), 7),
        ev(1, get("a"), 100, 110, got(None, 0, 1)),
        ev(1, put("b", "1"), 200, 210, put_ok(2)),
        ev(2, get("a"), 300, 310, got(None, 0, 2)),
    ];
    assert_linearizable(&h);
}

#[test]
fn unknown_write_seen_before_its_call_is_not_linearizable() {
    let h = vec![
        ev(1, get("a"), 0, 10, got(Some("1"), 2, 2)),
        unknown(0, put("a", "1"), 20),
    ];
    assert_not_linearizable(&h);
}

#[test]
fn cas_against_superseded_mod_revision_is_not_linearizable() {
    let h = vec![
        ev(0, put("a", "1"), 0, 10, put_ok(2)),
        ev(1, put("a", "2"), 20, 30, put_ok(3)),
        // mod_revision of "a" is 3 by now: a compare against 2 must fail.
        ev(2, cas("a", 2, "3"), 40, 50, cas_res(true, 4)),
    ];
    assert_not_linearizable(&h);
}

#[test]
fn cas_racing_the_write_that_supersedes_it_is_linearizable() {
    // The same CAS, but concurrent with the second put: it can go first.
    let h = vec![
        ev(0, put("a", "1"), 0, 10, put_ok(2)),
        ev(1, put("a", "2"), 20, 60, put_ok(4)),
        ev(2, cas("a", 2, "3"), 30, 50, cas_res(true, 3)),
        ev(0, get("a"), 70, 80, got(Some("2"), 4, 4)),
    ];
    assert_linearizable(&h);
}

#[test]
fn failed_cas_must_see_a_mismatch() {
    let h = vec![
        ev(0, put("a", "1"), 0, 10, put_ok(2)),
        // Nothing moved "a" off mod_revision 2, so this compare should have succeeded.
        ev(1, cas("a", 2, "x"), 20, 30, cas_res(false, 2)),
    ];
    assert_not_linearizable(&h);
}

#[test]
fn initial_revision_is_honoured() {
    let h = vec![
        ev(0, put("a", "1"), 0, 10, put_ok(101)),
        ev(1, get("a"), 20, 30, got(Some("1"), 101, 101)),
    ];
    assert!(check_from(&h, 100, TIMEOUT).is_linearizable());
    assert!(!check(&h, TIMEOUT).is_linearizable());
    assert_eq!(implied_initial_rev(&h), Some(100));
    assert_eq!(implied_initial_rev(&[unknown(0, put("a", "1"), 0)]), None);

    let mut initial = InitialState::empty(100);
    initial.keys.insert("b".into(), ("old".into(), 42));
    let h = vec![ev(0, get("b"), 0, 10, got(Some("old"), 42, 100))];
    assert!(check_from_state(&h, &initial, TIMEOUT).is_linearizable());
    assert!(!check_from(&h, 100, TIMEOUT).is_linearizable());
}

#[test]
fn empty_and_all_unknown_histories_are_linearizable() {
    assert_linearizable(&[]);
    assert_linearizable(&[unknown(0, put("a", "1"), 0)]);
}

#[test]
fn zero_timeout_returns_timeout() {
    let mut rng = StdRng::seed_from_u64(7);
    let history = sequential_history(&mut rng, 500, 0.0);
    assert_eq!(check(&history, Duration::ZERO), CheckResult::Timeout);
}

#[test]
fn recorder_records_calls_returns_and_unknowns() {
    let rec = Recorder::new();
    let a = rec.call(0, put("a", "1"));
    let b = rec.call(1, get("a"));
    rec.ret(a, put_ok(2));
    let _never = rec.call(2, put("a", "2"));
    let c = rec.call(3, delete("a"));
    rec.ret(c, Outcome::Unknown);
    let snapshot = rec.history();
    assert_eq!(snapshot.len(), 4);
    assert_eq!(snapshot[1].outcome, Outcome::Unknown, "not returned yet");
    rec.ret(b, got(Some("1"), 2, 2));
    let h = rec.into_history();
    assert_eq!(h.len(), 4);
    assert_eq!((h[0].client, &h[0].outcome), (0, &put_ok(2)));
    assert_eq!(h[2].ret, None);
    assert_eq!(h[2].outcome, Outcome::Unknown);
    assert_eq!(h[3].ret, None);
    assert_eq!(h[3].outcome, Outcome::Unknown);
    let (a_ret, b_ret) = (h[0].ret.expect("returned"), h[1].ret.expect("returned"));
    assert!(h[0].call <= h[1].call && h[1].call <= a_ret && a_ret <= b_ret);
    assert_linearizable(&h);
}

// ---------------------------------------------------------------------------------------------
// Randomized: a real sequential execution, its windows jittered into overlap.
// ---------------------------------------------------------------------------------------------

/// Spacing of linearization points, and the most a window extends either side of its point.
const SLOT: u64 = 1_000;
const JITTER: u64 = 4_000;

/// A generated event, with what a get of its key would have answered just before it took effect.
struct Generated {
    event: Event,
    before: Outcome,
}

/// Runs `n` random ops through the reference model one at a time; op `i` takes effect at
/// `SLOT * (i + 1)`, and its window is that instant widened by up to `JITTER` each way, so
/// neighbouring windows overlap but every window contains its op's real point of effect (the
/// history is linearizable by construction). A fraction `unknown_rate` of the writes lose their
/// outcome; half of those never took effect at all. Ops are then dealt to clients so that each
/// client's ops do not overlap.
fn generate(rng: &mut StdRng, n: usize, unknown_rate: f64) -> Vec<Generated> {
    let mut kv = Kv::new();
    let mut source = Client::new(0, rng.random());
    let mut generated = Vec::with_capacity(n);
    for i in 0..n {
        let op = source.random_op();
        let before = kv.apply(&get(op.key()));
        let point = SLOT * (i as u64 + 1) + JITTER;
        let call = point - rng.random_range(0..=JITTER);
        let is_write = !matches!(op, Op::Get { .. });
        let event = if is_write && rng.random_bool(unknown_rate) {
            if rng.random_bool(0.5) {
                kv.apply(&op);
            }
            unknown(0, op, call)
        } else {
            let outcome = kv.apply(&op);
            source.learn(&op, &outcome);
            let ret = point + rng.random_range(0..=JITTER);
            ev(0, op, call, ret, outcome)
        };
        generated.push(Generated { event, before });
    }
    // Deal ops to clients: a client is free once its last op returned (or, for an unknown, once
    // it gave up waiting).
    generated.sort_by_key(|g| g.event.call);
    let mut busy_until: Vec<u64> = Vec::new();
    for e in generated.iter_mut().map(|g| &mut g.event) {
        let end = e.ret.unwrap_or(e.call + 2 * JITTER);
        e.client = match busy_until.iter().position(|&b| b < e.call) {
            Some(c) => c,
            None => {
                busy_until.push(0);
                busy_until.len() - 1
            }
        };
        busy_until[e.client] = end;
    }
    generated
}

fn sequential_history(rng: &mut StdRng, n: usize, unknown_rate: f64) -> Vec<Event> {
    generate(rng, n, unknown_rate)
        .into_iter()
        .map(|g| g.event)
        .collect()
}

/// Ways to break a generated history so that provably no linearization exists.
#[derive(Debug, Clone, Copy)]
enum Corruption {
    /// An op answers with a revision above any the history's writes reach.
    ImpossibleRevision,
    /// A get returns a value nobody wrote.
    UnwrittenValue,
    /// A get called after a write to its key returned answers with the state from just before
    /// that write: the get needs the write's revision minus one, so it must precede the write,
    /// yet it started after the write ended. Only the search can tell.
    StaleRead,
}

/// Applies `how` to a random suitable event; returns the events and the index of the one changed.
fn corrupt(rng: &mut StdRng, generated: Vec<Generated>, how: Corruption) -> (Vec<Event>, usize) {
    let writes_to = |g: &Generated| match g.event.outcome {
        Outcome::Put { .. }
        | Outcome::Cas {
            succeeded: true, ..
        }
        | Outcome::Delete { deleted: 1, .. } => Some(g.event.op.key().to_owned()),
        _ => None,
    };
    // For a stale read: (get, the latest write to its key that returned before the get's call).
    let mut stale: Vec<(usize, usize)> = Vec::new();
    for (i, g) in generated.iter().enumerate() {
        if !matches!(g.event.outcome, Outcome::Get { .. }) {
            continue;
        }
        let latest = (0..generated.len())
            .filter(|&w| writes_to(&generated[w]).as_deref() == Some(g.event.op.key()))
            .filter(|&w| generated[w].event.ret.is_some_and(|r| r < g.event.call))
            .max_by_key(|&w| generated[w].event.ret);
        if let Some(w) = latest {
            stale.push((i, w));
        }
    }
    let mut events: Vec<Event> = generated.iter().map(|g| g.event.clone()).collect();
    let completed: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].ret.is_some())
        .collect();
    let gets: Vec<usize> = completed
        .iter()
        .copied()
        .filter(|&i| matches!(events[i].outcome, Outcome::Get { .. }))
        .collect();
    let i = match how {
        Corruption::ImpossibleRevision => {
            let i = completed[rng.random_range(0..completed.len())];
            let impossible = 1_000_000 + events.len() as i64;
            match &mut events[i].outcome {
                Outcome::Put { rev }
                | Outcome::Get { rev, .. }
                | Outcome::Delete { rev, .. }
                | Outcome::Cas { rev, .. } => *rev = impossible,
                Outcome::Unknown => unreachable!("completed ops only"),
            }
            i
        }
        Corruption::UnwrittenValue => {
            let i = gets[rng.random_range(0..gets.len())];
            if let Outcome::Get { value, .. } = &mut events[i].outcome {
                *value = Some("never-written".into());
            }
            i
        }
        Corruption::StaleRead => {
            let (i, w) = stale[rng.random_range(0..stale.len())];
            events[i].outcome = generated[w].before.clone();
            i
        }
    };
    (events, i)
}

const CORRUPTIONS: [Corruption; 3] = [
    Corruption::ImpossibleRevision,
    Corruption::UnwrittenValue,
    Corruption::StaleRead,
];

#[test]
fn randomized_sequential_histories_check_and_corruptions_are_caught() {
    for seed in 0..30 {
        let mut rng = StdRng::seed_from_u64(seed);
        let generated = generate(&mut rng, 200, 0.1);
        let history: Vec<Event> = generated.iter().map(|g| g.event.clone()).collect();
        let clients = history.iter().map(|e| e.client).max().unwrap_or(0) + 1;
        assert!(
            clients > 2,
            "seed {seed}: windows overlap ({clients} clients)"
        );
        match check(&history, TIMEOUT) {
            CheckResult::Linearizable => {}
            other => panic!("seed {seed}: {other:?}"),
        }
        let how = CORRUPTIONS[seed as usize % CORRUPTIONS.len()];
        let (history, i) = corrupt(&mut rng, generated, how);
        match check(&history, TIMEOUT) {
            CheckResult::NotLinearizable { .. } => {}
            other => panic!(
                "seed {seed}: {how:?} of event {i} {:?}: {other:?}",
                history[i]
            ),
        }
    }
}

#[test]
fn large_randomized_history_checks_in_time() {
    let mut rng = StdRng::seed_from_u64(99);
    let generated = generate(&mut rng, 2_000, 0.05);
    let history: Vec<Event> = generated.iter().map(|g| g.event.clone()).collect();
    assert_eq!(
        timed_check("randomized 2000", &history),
        CheckResult::Linearizable
    );
    let (history, _) = corrupt(&mut rng, generated, Corruption::StaleRead);
    assert!(matches!(
        timed_check("randomized 2000, stale read", &history),
        CheckResult::NotLinearizable { .. }
    ));
}

/// Many large histories, clean and with a stale read, with up to 20% of writes unknown; prints
/// each check's time. Run with `cargo test -- --ignored stress` when changing the checker.
#[test]
#[ignore = "slow: a sweep for tuning the checker"]
fn stress_large_randomized_histories() {
    let mut slowest = Duration::ZERO;
    for seed in 0..30 {
        let mut rng = StdRng::seed_from_u64(1_000 + seed);
        let unknown_rate = [0.02, 0.1, 0.2][seed as usize % 3];
        let generated = generate(&mut rng, 2_000, unknown_rate);
        let history: Vec<Event> = generated.iter().map(|g| g.event.clone()).collect();
        let started = Instant::now();
        assert_eq!(
            check(&history, TIMEOUT),
            CheckResult::Linearizable,
            "seed {seed}"
        );
        let clean = started.elapsed();
        let (history, i) = corrupt(&mut rng, generated, Corruption::StaleRead);
        let started = Instant::now();
        let result = check(&history, TIMEOUT);
        let stale = started.elapsed();
        assert!(
            matches!(result, CheckResult::NotLinearizable { .. }),
            "seed {seed}: stale read {:?}: {result:?}",
            history[i]
        );
        eprintln!(
            "seed {seed} unknown rate {unknown_rate}: clean {clean:?}, stale read at {i} {stale:?}"
        );
        slowest = slowest.max(clean).max(stale);
    }
    eprintln!("slowest: {slowest:?}");
}
