//! Preparation: interning a history's keys, values and ops, the initial model state, the static
//! checks, and which unknown ops may fill which revision gaps.

use std::collections::{HashMap, HashSet};

use super::explain::describe;
use super::model::{Kind, PreparedOp, Res, State, ABSENT, CAS, DELETE, PUT, UNREAD};
use super::{Event, InitialState, Op, Outcome};

pub(super) struct Prepared {
    pub(super) ops: Vec<PreparedOp>,
    /// Per op: its kind with the values as written, before unread values became [`UNREAD`]; for
    /// explanations.
    pub(super) as_written: Vec<Kind>,
    pub(super) initial: State,
    /// Revisions that completed writes answered with.
    claimed: HashSet<i64>,
    /// The highest revision any completed op answered with.
    max_rev: i64,
    /// Revision -> (key, value) that a completed get saw with that mod_revision.
    seen_at: HashMap<i64, (usize, u32)>,
    /// Per op: for an unknown write whose (key, value) nobody else writes and some get saw, the
    /// revision it must have taken.
    pinned: Vec<Option<i64>>,
    /// Unknown ops grouped by effect, each group by call time: ops with the same effect are
    /// interchangeable, so only the earliest one not yet used is ever tried.
    pub(super) classes: Vec<Vec<usize>>,
    /// (effect tag, key, expected mod_revision) -> classes with that effect and any value.
    pub(super) class_index: HashMap<(u8, usize, i64), Vec<usize>>,
    /// Revision -> classes of pinned unknown ops (see `pinned`) that must create it.
    pub(super) pinned_classes: HashMap<i64, Vec<usize>>,
    pub(super) keys: Vec<String>,
    /// Value id -> value; id 0 is the absent placeholder.
    pub(super) values: Vec<String>,
    pub(super) total_events: usize,
    pub(super) unknown_events: usize,
}

impl Prepared {
    pub(super) fn new(history: &[Event], initial: &InitialState) -> Prepared {
        let mut key_ids: HashMap<String, usize> = HashMap::new();
        let mut keys: Vec<String> = Vec::new();
        let mut value_ids: HashMap<String, u32> = HashMap::new();
        let mut values: Vec<String> = vec![String::new(), "<a value no get returned>".to_owned()];
        let mut key_id = |k: &str| -> usize {
            if let Some(&id) = key_ids.get(k) {
                return id;
            }
            keys.push(k.to_owned());
            key_ids.insert(k.to_owned(), keys.len() - 1);
            keys.len() - 1
        };
        let mut value_id = |v: &str| -> u32 {
            if let Some(&id) = value_ids.get(v) {
                return id;
            }
            values.push(v.to_owned());
            let id = u32::try_from(values.len() - 1).expect("fewer than 2^32 distinct values");
            value_ids.insert(v.to_owned(), id);
            id
        };

        let mut initial_keys = Vec::new();
        for (k, (v, m)) in &initial.keys {
            initial_keys.push((key_id(k), value_id(v), *m));
        }

        let mut ops = Vec::with_capacity(history.len());
        let mut unknown_events = 0;
        for (i, e) in history.iter().enumerate() {
            let kind = match &e.op {
                Op::Put { key, value } => Kind::Put {
                    key: key_id(key),
                    value: value_id(value),
                },
                Op::Get { key } => Kind::Get { key: key_id(key) },
                Op::Delete { key } => Kind::Delete { key: key_id(key) },
                Op::Cas {
                    key,
                    expect_mod_rev,
                    value,
                } => Kind::Cas {
                    key: key_id(key),
                    expect: *expect_mod_rev,
                    value: value_id(value),
                },
            };
            let res = match (&e.op, &e.outcome) {
                (_, Outcome::Unknown) => Res::Unknown,
                (Op::Put { .. }, Outcome::Put { rev }) => Res::Put { rev: *rev },
                (
                    Op::Get { .. },
                    Outcome::Get {
                        value,
                        mod_rev,
                        rev,
                    },
                ) => Res::Get {
                    value: value.as_deref().map_or(ABSENT, &mut value_id),
                    mod_rev: *mod_rev,
                    rev: *rev,
                },
                (Op::Delete { .. }, Outcome::Delete { deleted, rev }) => Res::Delete {
                    deleted: *deleted,
                    rev: *rev,
                },
                (Op::Cas { .. }, Outcome::Cas { succeeded, rev }) => Res::Cas {
                    succeeded: *succeeded,
                    rev: *rev,
                },
                _ => panic!(
                    "malformed history: event {i} pairs {:?} with {:?}",
                    e.op, e.outcome
                ),
            };
            let ret = match res {
                Res::Unknown => None,
                // A known outcome whose return time was not recorded: it returned "at the end".
                _ => Some(e.ret.unwrap_or(u64::MAX)),
            };
            if let Some(r) = ret {
                assert!(
                    r >= e.call,
                    "malformed history: event {i} returns before its call: {e:?}"
                );
            }
            if matches!(res, Res::Unknown) {
                unknown_events += 1;
                // An unknown get has no effect and constrains nothing.
                if matches!(kind, Kind::Get { .. }) {
                    continue;
                }
            }
            ops.push(PreparedOp {
                event: i,
                kind,
                res,
                call: e.call,
                ret,
            });
        }

        let mut state_keys = vec![(ABSENT, 0); keys.len()];
        for &(k, v, m) in &initial_keys {
            state_keys[k] = (v, m);
        }
        let claimed = ops.iter().filter_map(PreparedOp::claimed_rev).collect();
        let max_rev = ops
            .iter()
            .filter_map(|op| match op.res {
                Res::Put { rev }
                | Res::Get { rev, .. }
                | Res::Delete { rev, .. }
                | Res::Cas { rev, .. } => Some(rev),
                Res::Unknown => None,
            })
            .max()
            .unwrap_or(initial.rev);
        let mut seen_at = HashMap::new();
        // The initial state counts as a writer of its values.
        let mut writers: HashMap<(usize, u32), usize> =
            initial_keys.iter().map(|&(k, v, _)| ((k, v), 1)).collect();
        let mut read: HashSet<(usize, u32)> = writers.keys().copied().collect();
        for op in &ops {
            match (op.kind, op.res) {
                (Kind::Get { key }, Res::Get { value, mod_rev, .. }) if value != ABSENT => {
                    seen_at.entry(mod_rev).or_insert((key, value));
                    read.insert((key, value));
                }
                (Kind::Put { key, value } | Kind::Cas { key, value, .. }, _) => {
                    *writers.entry((key, value)).or_default() += 1;
                }
                _ => {}
            }
        }
        let seen_rev: HashMap<(usize, u32), i64> =
            seen_at.iter().map(|(&r, &kv)| (kv, r)).collect();
        let pinned: Vec<Option<i64>> = ops
            .iter()
            .map(|op| match (op.kind, op.res) {
                (Kind::Put { key, value } | Kind::Cas { key, value, .. }, Res::Unknown)
                    if writers[&(key, value)] == 1 =>
                {
                    seen_rev.get(&(key, value)).copied()
                }
                _ => None,
            })
            .collect();
        let as_written = ops.iter().map(|op| op.kind).collect();
        for op in &mut ops {
            if let Kind::Put { key, value } | Kind::Cas { key, value, .. } = &mut op.kind {
                if !read.contains(&(*key, *value)) {
                    *value = UNREAD;
                }
            }
        }

        let mut class_of: HashMap<(u8, usize, u32, i64), usize> = HashMap::new();
        let mut classes: Vec<Vec<usize>> = Vec::new();
        let mut class_index: HashMap<(u8, usize, i64), Vec<usize>> = HashMap::new();
        let mut pinned_classes: HashMap<i64, Vec<usize>> = HashMap::new();
        let mut by_call: Vec<usize> = (0..ops.len()).filter(|&i| !ops[i].completed()).collect();
        by_call.sort_by_key(|&i| (ops[i].call, i));
        for i in by_call {
            let (tag, key, value, expect) = match ops[i].kind {
                Kind::Put { key, value } => (PUT, key, value, 0),
                Kind::Delete { key } => (DELETE, key, ABSENT, 0),
                Kind::Cas { key, expect, value } => (CAS, key, value, expect),
                Kind::Get { .. } => unreachable!("unknown gets are dropped"),
            };
            let class = *class_of
                .entry((tag, key, value, expect))
                .or_insert_with(|| {
                    classes.push(Vec::new());
                    match pinned[i] {
                        Some(rev) => pinned_classes.entry(rev).or_default(),
                        None => class_index.entry((tag, key, expect)).or_default(),
                    }
                    .push(classes.len() - 1);
                    classes.len() - 1
                });
            classes[class].push(i);
        }
        Prepared {
            ops,
            as_written,
            claimed,
            max_rev,
            seen_at,
            pinned,
            classes,
            class_index,
            pinned_classes,
            initial: State {
                rev: initial.rev,
                keys: state_keys.into_boxed_slice(),
            },
            keys,
            values,
            total_events: history.len(),
            unknown_events,
        }
    }

    /// Cheap necessary conditions: every completed write claims a distinct revision, every
    /// completed op answers with a revision the writes in the history can reach from the initial
    /// one, and every value a get returns was written by some op or was there at the start.
    pub(super) fn static_conflicts(&self, history: &[Event]) -> Option<String> {
        let mut written: HashSet<(usize, u32)> = (0..self.keys.len())
            .map(|k| (k, self.initial.keys[k].0))
            .collect();
        written.extend(self.as_written.iter().filter_map(|kind| match *kind {
            Kind::Put { key, value } | Kind::Cas { key, value, .. } => Some((key, value)),
            _ => None,
        }));
        for op in &self.ops {
            if let (Kind::Get { key }, Res::Get { value, .. }) = (op.kind, op.res) {
                if value != ABSENT && !written.contains(&(key, value)) {
                    return Some(format!(
                        "a get returned a value that no op in the history wrote to that key:\n  {}",
                        describe(history, op.event)
                    ));
                }
            }
        }
        let mut claimed: HashMap<i64, usize> = HashMap::new();
        for op in &self.ops {
            let Some(rev) = op.claimed_rev() else {
                continue;
            };
            if let Some(&other) = claimed.get(&rev) {
                return Some(format!(
                    "two writes claim the same revision {rev}; each write bumps the revision:\n  \
                     {}\n  {}",
                    describe(history, other),
                    describe(history, op.event)
                ));
            }
            claimed.insert(rev, op.event);
        }
        let mut claimed: Vec<i64> = claimed.into_keys().collect();
        claimed.sort_unstable();
        let unknown_writes = self.ops.iter().filter(|o| !o.completed()).count();
        for op in &self.ops {
            let Some(need) = op.need() else {
                continue;
            };
            if need < self.initial.rev {
                return Some(format!(
                    "an op answered with a revision the store had passed before the history \
                     began (it started at revision {}):\n  {}",
                    self.initial.rev,
                    describe(history, op.event)
                ));
            }
            let writes = claimed.partition_point(|&r| r <= need) + unknown_writes;
            if need - self.initial.rev > writes as i64 {
                return Some(format!(
                    "an op answered with a revision that the history's writes cannot reach: the \
                     store started at revision {} and at most {writes} writes could have come \
                     before this op's place at revision {need}:\n  {}",
                    self.initial.rev,
                    describe(history, op.event)
                ));
            }
        }
        None
    }

    /// Whether revision `rev` is one that only an unknown write can create: no completed write
    /// claims it, and some completed op answered with it or a later one.
    pub(super) fn is_gap(&self, rev: i64) -> bool {
        rev <= self.max_rev && !self.claimed.contains(&rev)
    }

    /// Whether unknown write `op` may be the write that creates revision `rev`: some completed op
    /// answered with a revision at or above `rev` (else no completed op can follow it, and it may
    /// as well never have happened), no completed write claims `rev`, no get saw a different
    /// write at `rev`, and no get saw this op's write at another revision.
    pub(super) fn unknown_fits(&self, op: usize, rev: i64) -> bool {
        if !self.is_gap(rev) || self.pinned[op].is_some_and(|p| p != rev) {
            return false;
        }
        match (self.seen_at.get(&rev), self.ops[op].kind) {
            (None, _) => true,
            (Some(&seen), Kind::Put { key, value } | Kind::Cas { key, value, .. }) => {
                seen == (key, value)
            }
            (Some(_), _) => false,
        }
    }
}
