//! Recording: a thread-safe recorder that turns the calls and responses of concurrent clients
//! into a history.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::{CallId, Event, Op, Outcome};

#[derive(Debug)]
struct Pending {
    client: usize,
    op: Op,
    call: u64,
    done: Option<(u64, Outcome)>,
}

/// A thread-safe history recorder shared by all clients of one test (wrap it in an `Arc`).
///
/// Call [`Recorder::call`] right before sending a request and [`Recorder::ret`] right after the
/// response arrives; an op that never gets `ret` (or gets `ret(id, Outcome::Unknown)`) is recorded
/// with an unknown outcome.
#[derive(Debug)]
pub struct Recorder {
    origin: Instant,
    events: Mutex<Vec<Pending>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder whose time origin is now.
    pub fn new() -> Recorder {
        Recorder {
            origin: Instant::now(),
            events: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the origin (monotonic).
    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Pending>> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that `client` is about to issue `op`.
    pub fn call(&self, client: usize, op: Op) -> CallId {
        let mut events = self.lock();
        let call = self.now();
        events.push(Pending {
            client,
            op,
            call,
            done: None,
        });
        CallId(events.len() - 1)
    }

    /// Records the response to call `id`.
    ///
    /// # Panics
    /// If `id` already returned: that is a bug in the test harness.
    pub fn ret(&self, id: CallId, outcome: Outcome) {
        let ret = self.now();
        let mut events = self.lock();
        let pending = &mut events[id.0];
        assert!(pending.done.is_none(), "call {id:?} returned twice");
        if outcome != Outcome::Unknown {
            pending.done = Some((ret, outcome));
        }
    }

    /// The history so far; calls without a response are unknown.
    pub fn history(&self) -> Vec<Event> {
        self.lock().iter().map(to_event).collect()
    }

    /// The whole history; calls without a response are unknown.
    pub fn into_history(self) -> Vec<Event> {
        let events = self
            .events
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        events.iter().map(to_event).collect()
    }
}

fn to_event(p: &Pending) -> Event {
    let (ret, outcome) = match &p.done {
        Some((r, o)) => (Some(*r), o.clone()),
        None => (None, Outcome::Unknown),
    };
    Event {
        client: p.client,
        op: p.op.clone(),
        call: p.call,
        ret,
        outcome,
    }
}
