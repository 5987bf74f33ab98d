//! Explanations: the human-readable account of a history the search could not linearize.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use super::model::{step, Kind, PreparedOp, State, Step, ABSENT};
use super::prepare::Prepared;
use super::search::SearchEnd;
use super::{CheckResult, Event, Outcome};

impl Prepared {
    fn value(&self, id: u32) -> Option<String> {
        (id != ABSENT).then(|| self.values[id as usize].clone())
    }

    /// What the model would have answered to `op` in state `s`.
    fn model_answer(&self, s: &State, op: &PreparedOp) -> Outcome {
        match op.kind {
            Kind::Put { .. } => Outcome::Put { rev: s.rev + 1 },
            Kind::Get { key } => Outcome::Get {
                value: self.value(s.keys[key].0),
                mod_rev: s.keys[key].1,
                rev: s.rev,
            },
            Kind::Delete { key } if s.keys[key].0 != ABSENT => Outcome::Delete {
                deleted: 1,
                rev: s.rev + 1,
            },
            Kind::Delete { .. } => Outcome::Delete {
                deleted: 0,
                rev: s.rev,
            },
            Kind::Cas { key, expect, .. } => {
                let succeeded = s.keys[key].1 == expect;
                Outcome::Cas {
                    succeeded,
                    rev: s.rev + i64::from(succeeded),
                }
            }
        }
    }

    fn describe_state(&self, s: &State) -> String {
        let mut out = format!("revision {}", s.rev);
        let mut present: Vec<(&str, usize)> = (0..self.keys.len())
            .filter(|&k| s.keys[k].0 != ABSENT)
            .map(|k| (self.keys[k].as_str(), k))
            .collect();
        present.sort();
        if present.is_empty() {
            out.push_str(", no keys");
        }
        for (name, k) in present {
            let (v, m) = s.keys[k];
            let _ = write!(out, ", {name:?}={:?}@{m}", self.values[v as usize]);
        }
        out
    }

    /// The result for a search that did not find an order.
    pub(super) fn verdict(&self, history: &[Event], end: SearchEnd) -> CheckResult {
        match end {
            SearchEnd::Linearizable => CheckResult::Linearizable,
            SearchEnd::Timeout => CheckResult::Timeout,
            SearchEnd::Stuck { best, blocker } => CheckResult::NotLinearizable {
                explanation: self.explain(history, &best, blocker),
            },
        }
    }

    /// The human-readable account of a failed search.
    fn explain(&self, history: &[Event], best: &[usize], blocker: Option<usize>) -> String {
        const SHOWN_PREFIX: usize = 12;
        const SHOWN_PENDING: usize = 16;
        let completed = self.ops.iter().filter(|o| o.completed()).count();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "history of {} ops ({} with unknown outcome) is not linearizable",
            self.total_events, self.unknown_events
        );
        let placed_completed = best.iter().filter(|&&i| self.ops[i].completed()).count();
        let _ = writeln!(
            out,
            "longest linearizable prefix: {} ops ({placed_completed} of {completed} completed ops), \
             in linearization order{}:",
            best.len(),
            if best.len() > SHOWN_PREFIX {
                format!(", last {SHOWN_PREFIX} shown")
            } else {
                String::new()
            }
        );
        let mut uses: HashMap<usize, usize> = HashMap::new();
        for &i in best {
            *uses.entry(i).or_default() += 1;
        }
        if uses.values().any(|&n| n > 1) {
            let _ = writeln!(
                out,
                "(the prefix comes from a relaxed search that lets an op with unknown outcome \
                 take effect more than once; that only widens what it accepts)"
            );
        }
        // Replay with the values as written, so the states shown name them.
        let ops: Vec<PreparedOp> = self
            .ops
            .iter()
            .zip(&self.as_written)
            .map(|(op, &kind)| PreparedOp { kind, ..*op })
            .collect();
        let mut state = self.initial.clone();
        for (n, &i) in best.iter().enumerate() {
            match step(&state, &ops[i]) {
                Step::Next(s) => state = s,
                Step::Same => {}
                // Cannot happen: placed gets only read values some get returned, which are never
                // merged into UNREAD.
                Step::Illegal => {
                    let _ = writeln!(
                        out,
                        "  (the prefix does not replay with the values as written)"
                    );
                }
            }
            if n + SHOWN_PREFIX >= best.len() {
                let key = ops[i].kind.key();
                let (v, m) = state.keys[key];
                let _ = writeln!(
                    out,
                    "  #{n:<5} {}  => revision {}, {:?}={}",
                    describe(history, self.ops[i].event),
                    state.rev,
                    self.keys[key],
                    if v == ABSENT {
                        "absent".to_owned()
                    } else {
                        format!("{:?}@{m}", self.values[v as usize])
                    }
                );
            }
        }
        let _ = writeln!(
            out,
            "model state after the prefix: {}",
            self.describe_state(&state)
        );

        let placed: HashSet<usize> = best.iter().copied().collect();
        let unplaced = |i: &usize| !placed.contains(i);
        let mut shown: HashSet<usize> = HashSet::new();
        if let Some(b) = blocker {
            shown.insert(b);
            let op = &ops[b];
            let _ = writeln!(
                out,
                "could not place this op before it returned:\n  {}",
                describe(history, op.event)
            );
            match step(&state, op) {
                Step::Illegal => {
                    let _ = writeln!(
                        out,
                        "    model would answer {:?}",
                        self.model_answer(&state, op)
                    );
                }
                Step::Same | Step::Next(_) => {
                    let after = match step(&state, op) {
                        Step::Next(s) => s.rev,
                        _ => state.rev,
                    };
                    let stranded: Vec<usize> = (0..ops.len())
                        .filter(|i| unplaced(i) && *i != b)
                        .filter(|&i| ops[i].need().is_some_and(|n| n < after))
                        .collect();
                    let _ = writeln!(
                        out,
                        "    it fits the model here, but taking revision {after} would leave \
                         behind ops that need an earlier revision and cannot be placed first:"
                    );
                    for &i in stranded.iter().take(SHOWN_PENDING) {
                        shown.insert(i);
                        let _ = writeln!(out, "  {}", describe(history, ops[i].event));
                    }
                }
            }
        }
        let misfits: Vec<usize> = (0..ops.len())
            .filter(|i| unplaced(i) && !shown.contains(i))
            .filter(|&i| ops[i].need().is_some_and(|n| n <= state.rev))
            .filter(|&i| matches!(step(&state, &ops[i]), Step::Illegal))
            .collect();
        if !misfits.is_empty() {
            let _ = writeln!(
                out,
                "ops that must go at revision {} or earlier but whose outcome the model cannot \
                 produce there:",
                state.rev
            );
        }
        for &i in misfits.iter().take(SHOWN_PENDING) {
            shown.insert(i);
            let _ = writeln!(
                out,
                "  {}\n    model would answer {:?}",
                describe(history, ops[i].event),
                self.model_answer(&state, &ops[i])
            );
        }
        let horizon = blocker.and_then(|b| ops[b].ret).unwrap_or(u64::MAX);
        let mut pending: Vec<usize> = (0..ops.len())
            .filter(|i| unplaced(i) && !shown.contains(i) && ops[*i].call <= horizon)
            .collect();
        pending.sort_by_key(|&i| (ops[i].call, i));
        let (completed, unknown): (Vec<usize>, Vec<usize>) =
            pending.into_iter().partition(|&i| ops[i].completed());
        // Unknown ops stay pending forever: show the latest, which are the likeliest suspects.
        let latest_unknown = &unknown[unknown.len().saturating_sub(SHOWN_PENDING)..];
        let lists = [
            ("completed ops", completed.len(), &completed[..]),
            ("ops with unknown outcome", unknown.len(), latest_unknown),
        ];
        for (what, total, list) in lists {
            if total == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "{what} called by then and not placed ({total}{}):",
                if total > SHOWN_PENDING {
                    format!(", {SHOWN_PENDING} shown")
                } else {
                    String::new()
                }
            );
            for &i in list.iter().take(SHOWN_PENDING) {
                let _ = writeln!(
                    out,
                    "  {}\n    model would answer {:?}",
                    describe(history, ops[i].event),
                    self.model_answer(&state, &ops[i])
                );
            }
        }
        out
    }
}

/// One line naming an event: index, client, op, outcome, times.
pub(super) fn describe(history: &[Event], i: usize) -> String {
    let e = &history[i];
    let ret = e
        .ret
        .map_or_else(|| "never".to_owned(), |r| format!("{r}ns"));
    format!(
        "[event {i}] client {} {:?} -> {:?} (call {}ns, ret {ret})",
        e.client, e.op, e.outcome, e.call
    )
}
