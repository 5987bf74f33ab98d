//! The Wing–Gong search over completed and unknown ops, with memoisation of visited nodes.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::Instant;

use super::model::{mix, step, State, Step, ABSENT, CAS, DELETE, PUT};
use super::prepare::Prepared;

/// A call or return entry of a completed op in the doubly linked, time-ordered entry list
/// (index 0 is the sentinel).
#[derive(Debug, Clone, Copy)]
struct Entry {
    op: usize,
    time: u64,
    is_call: bool,
    /// For a call entry: its return entry.
    ret_entry: usize,
}

/// Memo key: the set of linearized ops and the model state they lead to.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Visited {
    hash: u64,
    /// Completed ops linearized.
    done: Box<[u64]>,
    /// Unknown ops linearized; empty in the relaxed search.
    used: Box<[u64]>,
    state: State,
}

impl Hash for Visited {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

/// `Visited` is already well mixed: hash it to itself.
#[derive(Default)]
pub(super) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = mix(self.0 ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(super) enum SearchEnd {
    Linearizable,
    Timeout,
    /// `best`: the longest linearization found (op indices); `blocker`: the op whose return
    /// ended it.
    Stuck {
        best: Vec<usize>,
        blocker: Option<usize>,
    },
}

/// How an op on the stack was chosen, so the search can resume after it.
#[derive(Debug, Clone, Copy)]
enum Choice {
    /// A completed op, by its call entry.
    Entry(usize),
    /// An unknown op: the op, its class, and its position among the node's fill candidates.
    Unknown {
        op: usize,
        class: usize,
        cand: usize,
    },
}

struct Frame {
    choice: Choice,
    /// The model state before the op.
    before: State,
    /// For `Choice::Unknown`: the return entry that bounded the candidates (0 = none).
    horizon: usize,
}

/// Where the search is among the candidates of the current node.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    /// Trying completed ops, in entry-list order, up to the first return entry.
    Scan(usize),
    /// Trying the node's fill candidates from `cand` on, unknown ops called no later than
    /// return entry `horizon` (0 = none).
    Fill { cand: usize, horizon: usize },
}

/// A set of search nodes. Handed from the relaxed to the exact search, it holds the nodes
/// (completed ops placed, model state) from which the relaxed search found no way on.
pub(super) type NodeSet = HashSet<Visited, BuildHasherDefault<PassThrough>>;

/// The Wing–Gong search. A node is a set of linearized ops and the model state they lead to; its
/// candidates are the completed ops called before the earliest return of an op not yet
/// linearized, then, when the next revision is a gap, the unknown ops called before that return.
/// Every node is expanded at most once.
///
/// Relaxed (`dead == None`): an unknown op is never used up, so one op per class (any called in
/// time will do) is tried and the memo key leaves unknown ops out. Exact: each unknown op is used
/// at most once, the earliest unused of its class first; the memo key records them, and nodes in
/// `dead` are skipped.
pub(super) struct Search<'a> {
    p: &'a Prepared,
    entries: Vec<Entry>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Zobrist value per op, XORed into the hash of the linearized set.
    zobrist: Vec<u64>,
    dead: Option<NodeSet>,

    state: State,
    /// Completed ops linearized.
    done: Vec<u64>,
    done_hash: u64,
    /// Unknown ops linearized (exact search only).
    used: Vec<u64>,
    used_hash: u64,
    /// Per class, how many of its ops are linearized (exact search only).
    class_used: Vec<usize>,
    needs: Needs,
    visited: NodeSet,
    stack: Vec<Frame>,
    best: Vec<usize>,
    blocker: Option<usize>,
}

impl<'a> Search<'a> {
    pub(super) fn new(p: &'a Prepared, dead: Option<NodeSet>) -> Search<'a> {
        // (time, is_return, op): calls sort before returns at the same instant, so ops that
        // touch in time count as concurrent.
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(p.ops.len() * 2);
        for (i, op) in p.ops.iter().enumerate() {
            if let Some(r) = op.ret {
                order.push((op.call, false, i));
                order.push((r, true, i));
            }
        }
        order.sort_unstable();
        let mut entries = vec![Entry {
            op: usize::MAX,
            time: 0,
            is_call: false,
            ret_entry: 0,
        }];
        let mut call_entry = vec![0; p.ops.len()];
        for &(time, is_ret, op) in &order {
            let idx = entries.len();
            entries.push(Entry {
                op,
                time,
                is_call: !is_ret,
                ret_entry: 0,
            });
            if is_ret {
                entries[call_entry[op]].ret_entry = idx;
            } else {
                call_entry[op] = idx;
            }
        }
        let n = entries.len();
        let mut needs = Needs::default();
        for op in &p.ops {
            if let Some(need) = op.need() {
                needs.add(need);
            }
        }
        let words = p.ops.len().div_ceil(64);
        Search {
            p,
            entries,
            next: (0..n).map(|i| (i + 1) % n).collect(),
            prev: (0..n).map(|i| (i + n - 1) % n).collect(),
            zobrist: (0..p.ops.len())
                .map(|i| mix(i as u64 ^ 0x5bd1_e995))
                .collect(),
            used: vec![0; if dead.is_some() { words } else { 0 }],
            dead,
            state: p.initial.clone(),
            done: vec![0; words],
            done_hash: 0,
            used_hash: 0,
            class_used: vec![0; p.classes.len()],
            needs,
            visited: NodeSet::default(),
            stack: Vec::new(),
            best: Vec::new(),
            blocker: None,
        }
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        self.prev[n] = e;
    }

    fn exact(&self) -> bool {
        self.dead.is_some()
    }

    /// Adds `op` to the linearized set, or takes it out.
    fn toggle(&mut self, op: usize) {
        let bit = 1 << (op % 64);
        if self.p.ops[op].completed() {
            self.done[op / 64] ^= bit;
            self.done_hash ^= self.zobrist[op];
        } else if self.exact() {
            self.used[op / 64] ^= bit;
            self.used_hash ^= self.zobrist[op];
        }
    }

    /// The memo key of the current set with model state `state`; without the unknown ops used
    /// when `relaxed`.
    fn key(&self, state: &State, relaxed: bool) -> Visited {
        let (used, used_hash) = match relaxed {
            true => (Box::default(), 0),
            false => (self.used.clone().into_boxed_slice(), self.used_hash),
        };
        Visited {
            hash: self.done_hash ^ used_hash ^ state.hash64(),
            done: self.done.clone().into_boxed_slice(),
            used,
            state: state.clone(),
        }
    }

    /// Linearizes `op` next if the model allows it, it strands no other op, and the resulting
    /// node is new (and not known dead); returns whether it did.
    fn place(&mut self, op: usize, choice: Choice, horizon: usize) -> bool {
        let o = &self.p.ops[op];
        let next = match step(&self.state, o) {
            Step::Illegal => return false,
            // An unknown op that changes nothing here is as good as never applied.
            Step::Same if !o.completed() => return false,
            Step::Same => self.state.clone(),
            // An unknown write may only take a revision that the outcomes leave free for it.
            Step::Next(s) if !o.completed() && !self.p.unknown_fits(op, s.rev) => return false,
            Step::Next(s) => s,
        };
        let need = o.need();
        if let Some(n) = need {
            self.needs.remove(n);
        }
        // Revisions only grow: a step past the revision another unplaced op needs strands it.
        let placed = self.needs.min().is_none_or(|m| m >= next.rev) && {
            self.toggle(op);
            let known_dead = self
                .dead
                .as_ref()
                .is_some_and(|dead| dead.contains(&self.key(&next, true)));
            let fresh = !known_dead && {
                let key = self.key(&next, !self.exact());
                self.visited.insert(key)
            };
            if !fresh {
                self.toggle(op);
            }
            fresh
        };
        if !placed {
            if let Some(n) = need {
                self.needs.add(n);
            }
            return false;
        }
        let before = std::mem::replace(&mut self.state, next);
        self.stack.push(Frame {
            choice,
            before,
            horizon,
        });
        match choice {
            Choice::Entry(call) => {
                self.unlink(call);
                self.unlink(self.entries[call].ret_entry);
            }
            Choice::Unknown { class, .. } => self.class_used[class] += 1,
        }
        if self.stack.len() > self.best.len() {
            self.best.clear();
            let entries = &self.entries;
            self.best.extend(self.stack.iter().map(|f| match f.choice {
                Choice::Entry(c) => entries[c].op,
                Choice::Unknown { op, .. } => op,
            }));
            self.blocker = None;
        }
        true
    }

    /// Undoes the last placement; returns where to resume, or `None` at the root.
    fn backtrack(&mut self) -> Option<Cursor> {
        let frame = self.stack.pop()?;
        let (op, resume) = match frame.choice {
            Choice::Entry(call) => {
                // Relink in the reverse order of unlinking.
                self.relink(self.entries[call].ret_entry);
                self.relink(call);
                (self.entries[call].op, Cursor::Scan(self.next[call]))
            }
            Choice::Unknown { op, class, cand } => {
                self.class_used[class] -= 1;
                let resume = Cursor::Fill {
                    cand: cand + 1,
                    horizon: frame.horizon,
                };
                (op, resume)
            }
        };
        self.state = frame.before;
        self.toggle(op);
        if let Some(n) = self.p.ops[op].need() {
            self.needs.add(n);
        }
        Some(resume)
    }

    /// The classes whose next op could create the next revision here, if it is a gap.
    fn fill_candidates(&self) -> Vec<usize> {
        let rev = self.state.rev + 1;
        let mut out = Vec::new();
        if !self.p.is_gap(rev) {
            return out;
        }
        let index = &self.p.class_index;
        for (key, &(value, mod_rev)) in self.state.keys.iter().enumerate() {
            out.extend(index.get(&(PUT, key, 0)).into_iter().flatten());
            if value != ABSENT {
                out.extend(index.get(&(DELETE, key, 0)).into_iter().flatten());
            }
            out.extend(index.get(&(CAS, key, mod_rev)).into_iter().flatten());
        }
        out.extend(self.p.pinned_classes.get(&rev).into_iter().flatten());
        out
    }

    /// Tries fill candidate `cand` of the current node.
    fn fill(&mut self, cand: usize, horizon: usize) -> Option<bool> {
        let class = *self.fill_candidates().get(cand)?;
        let limit = match horizon {
            0 => u64::MAX,
            h => self.entries[h].time,
        };
        let members = &self.p.classes[class];
        let member = if self.exact() {
            // The earliest unused: any order of interchangeable ops can be rearranged into this.
            Some(self.class_used[class]).filter(|&m| m < members.len())
        } else {
            // Nothing is used up, so any op called in time will do; the latest called makes
            // the likeliest story in an explanation.
            members
                .partition_point(|&op| self.p.ops[op].call <= limit)
                .checked_sub(1)
        };
        let placed = match member.map(|m| members[m]) {
            Some(op) if self.p.ops[op].call <= limit => {
                self.place(op, Choice::Unknown { op, class, cand }, horizon)
            }
            _ => false,
        };
        Some(placed)
    }

    pub(super) fn run(&mut self, deadline: Instant) -> SearchEnd {
        if self.needs.is_empty() {
            return SearchEnd::Linearizable;
        }
        let mut cursor = Cursor::Scan(self.next[0]);
        let mut iterations: u64 = 0;
        loop {
            if iterations.is_multiple_of(1024) && Instant::now() >= deadline {
                return SearchEnd::Timeout;
            }
            iterations += 1;
            cursor = match cursor {
                Cursor::Scan(cur) if cur != 0 && self.entries[cur].is_call => {
                    if !self.place(self.entries[cur].op, Choice::Entry(cur), 0) {
                        Cursor::Scan(self.next[cur])
                    } else if self.needs.is_empty() {
                        return SearchEnd::Linearizable;
                    } else {
                        Cursor::Scan(self.next[0])
                    }
                }
                // The earliest return of an op not yet linearized (or the end of the list):
                // nothing called after it can go before it.
                Cursor::Scan(horizon) => Cursor::Fill { cand: 0, horizon },
                Cursor::Fill { cand, horizon } => match self.fill(cand, horizon) {
                    Some(true) => Cursor::Scan(self.next[0]),
                    Some(false) => Cursor::Fill {
                        cand: cand + 1,
                        horizon,
                    },
                    None => {
                        // Every candidate of this node failed.
                        if self.stack.len() == self.best.len()
                            && self.blocker.is_none()
                            && horizon != 0
                        {
                            self.blocker = Some(self.entries[horizon].op);
                        }
                        match self.backtrack() {
                            Some(resume) => resume,
                            None => {
                                return SearchEnd::Stuck {
                                    best: std::mem::take(&mut self.best),
                                    blocker: self.blocker,
                                }
                            }
                        }
                    }
                },
            };
        }
    }

    /// After a relaxed search found an order: whether that order used an unknown op twice (so
    /// it is no real linearization and the exact search must run).
    pub(super) fn reuses_unknowns(&self) -> bool {
        let mut seen = HashSet::new();
        !self.stack.iter().all(|f| match f.choice {
            Choice::Unknown { op, .. } => seen.insert(op),
            Choice::Entry(_) => true,
        })
    }

    /// After a relaxed search found an order: the nodes it proved dead, i.e. all it visited but
    /// those on the path to the order.
    pub(super) fn into_dead(mut self) -> NodeSet {
        while let Some(frame) = self.stack.pop() {
            let key = self.key(&self.state, true);
            self.visited.remove(&key);
            self.state = frame.before;
            let op = match frame.choice {
                Choice::Entry(c) => self.entries[c].op,
                Choice::Unknown { op, .. } => op,
            };
            self.toggle(op);
        }
        self.visited
    }
}

/// Multiset of the revisions at which the completed ops not yet linearized must be placed.
#[derive(Debug, Default)]
struct Needs {
    counts: BTreeMap<i64, usize>,
}

impl Needs {
    fn add(&mut self, rev: i64) {
        *self.counts.entry(rev).or_default() += 1;
    }

    fn remove(&mut self, rev: i64) {
        if let Some(c) = self.counts.get_mut(&rev) {
            *c -= 1;
            if *c == 0 {
                self.counts.remove(&rev);
            }
        }
    }

    fn min(&self) -> Option<i64> {
        self.counts.keys().next().copied()
    }

    fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}
