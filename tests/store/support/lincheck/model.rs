//! The model of the store: ops and outcomes interned for the search, the model state, and its
//! transition function.

/// Value id 0 means "absent".
pub(super) const ABSENT: u32 = 0;
/// Effect tags of unknown-op classes.
pub(super) const PUT: u8 = 0;
pub(super) const DELETE: u8 = 1;
pub(super) const CAS: u8 = 2;
/// Value id 1 stands for every written value that no completed get returned: such values are
/// indistinguishable to the model, and merging them lets equivalent branches share memo entries.
pub(super) const UNREAD: u32 = 1;

#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Put { key: usize, value: u32 },
    Get { key: usize },
    Delete { key: usize },
    Cas { key: usize, expect: i64, value: u32 },
}

impl Kind {
    pub(super) fn key(&self) -> usize {
        match *self {
            Kind::Put { key, .. }
            | Kind::Get { key }
            | Kind::Delete { key }
            | Kind::Cas { key, .. } => key,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Res {
    Put { rev: i64 },
    Get { value: u32, mod_rev: i64, rev: i64 },
    Delete { deleted: i64, rev: i64 },
    Cas { succeeded: bool, rev: i64 },
    Unknown,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct PreparedOp {
    /// Index into the caller's history.
    pub(super) event: usize,
    pub(super) kind: Kind,
    pub(super) res: Res,
    pub(super) call: u64,
    /// `None`: unknown outcome, may take effect at any time after `call`, or never.
    pub(super) ret: Option<u64>,
}

impl PreparedOp {
    pub(super) fn completed(&self) -> bool {
        !matches!(self.res, Res::Unknown)
    }

    /// The model revision at which a completed op must be placed: the revision it answered with,
    /// less one if it says it wrote.
    pub(super) fn need(&self) -> Option<i64> {
        match self.res {
            Res::Unknown => None,
            Res::Get { rev, .. }
            | Res::Delete { deleted: 0, rev }
            | Res::Cas {
                succeeded: false,
                rev,
            } => Some(rev),
            Res::Put { rev } | Res::Delete { rev, .. } | Res::Cas { rev, .. } => Some(rev - 1),
        }
    }

    /// The revision a completed write says it created.
    pub(super) fn claimed_rev(&self) -> Option<i64> {
        match self.res {
            Res::Put { rev }
            | Res::Delete { deleted: 1, rev }
            | Res::Cas {
                succeeded: true,
                rev,
            } => Some(rev),
            _ => None,
        }
    }
}

/// The model: the store revision and, per interned key, (value id, mod_revision).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct State {
    pub(super) rev: i64,
    pub(super) keys: Box<[(u32, i64)]>,
}

impl State {
    pub(super) fn hash64(&self) -> u64 {
        let mut h = mix(self.rev as u64);
        for &(v, m) in self.keys.iter() {
            h = mix(h ^ ((v as u64) << 32) ^ (m as u64));
        }
        h
    }
}

pub(super) enum Step {
    /// The outcome cannot be produced by the model here.
    Illegal,
    /// Legal, and the state does not change.
    Same,
    /// Legal, and the state becomes this.
    Next(State),
}

pub(super) fn step(s: &State, op: &PreparedOp) -> Step {
    // The state after a write of `key` that leaves it at `entry` and bumps the store to `rev`.
    let with = |key: usize, entry: (u32, i64), rev: i64| {
        let mut keys = s.keys.clone();
        keys[key] = entry;
        Step::Next(State { rev, keys })
    };
    let legal = |ok: bool| if ok { Step::Same } else { Step::Illegal };
    match (op.kind, op.res) {
        (Kind::Put { key, value }, Res::Put { rev }) if rev == s.rev + 1 => {
            with(key, (value, rev), rev)
        }
        (Kind::Put { key, value }, Res::Unknown) => with(key, (value, s.rev + 1), s.rev + 1),
        (
            Kind::Get { key },
            Res::Get {
                value,
                mod_rev,
                rev,
            },
        ) => legal(rev == s.rev && (value, mod_rev) == s.keys[key]),
        (Kind::Delete { key }, res) => {
            let present = s.keys[key].0 != ABSENT;
            match res {
                Res::Delete { deleted: 1, rev } if present && rev == s.rev + 1 => {
                    with(key, (ABSENT, 0), rev)
                }
                Res::Delete { deleted: 0, rev } if !present && rev == s.rev => Step::Same,
                Res::Unknown if present => with(key, (ABSENT, 0), s.rev + 1),
                Res::Unknown => Step::Same,
                _ => Step::Illegal,
            }
        }
        (Kind::Cas { key, expect, value }, res) => {
            let matches = s.keys[key].1 == expect;
            match res {
                Res::Cas {
                    succeeded: true,
                    rev,
                } if matches && rev == s.rev + 1 => with(key, (value, rev), rev),
                Res::Cas {
                    succeeded: false,
                    rev,
                } if !matches && rev == s.rev => Step::Same,
                Res::Unknown if matches => with(key, (value, s.rev + 1), s.rev + 1),
                Res::Unknown => Step::Same,
                _ => Step::Illegal,
            }
        }
        _ => Step::Illegal,
    }
}

/// splitmix64's finaliser.
pub(super) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
