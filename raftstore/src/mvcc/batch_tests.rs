//! A batch entry must be indistinguishable from its commands applied one entry each: same
//! responses (revisions included), same watch events, same rows in every state-machine column
//! family — including commands that fail half-way (a txn whose range is refused after its put
//! was computed) and commands that read what earlier commands of the same batch wrote. The
//! batched side also reads through an [`ApplyCache`], as the state machine does.

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message;

use super::{ApplyCache, ApplyCtx};
use crate::engine::Engine;
use crate::error::{Result, StoreError};
use crate::keys::{cf, Keys};
use crate::proto::etcdserverpb::{
    compare, request_op, CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};
use crate::proto::mvccpb::Event;
use crate::types::Command;

const KEYS: &[&[u8]] = &[b"a", b"ab", b"b", b"c"];
const LEASE: i64 = 5;

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: usize,
        value: u8,
        lease: bool,
        ignore_value: bool,
    },
    Delete {
        start: usize,
        to_end: bool,
        inverted: bool,
    },
    /// if mod_revision(key) == expect then {put(then_key); range(then_key)} else delete(key);
    /// `future_range` makes the range ask for a future revision, failing after the put.
    Txn {
        key: usize,
        expect: i64,
        then_key: usize,
        value: u8,
        future_range: bool,
    },
    /// Not batchable: ends the current batch.
    Compact { back: i64 },
    /// Not batchable: ends the current batch.
    LeaseGrant,
    /// Not batchable: ends the current batch.
    LeaseRevoke,
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..KEYS.len();
    prop_oneof![
        6 => (k.clone(), any::<u8>(), prop::bool::weighted(0.2), prop::bool::weighted(0.15))
            .prop_map(|(key, value, lease, ignore_value)| Op::Put { key, value, lease, ignore_value }),
        2 => (k.clone(), any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(start, to_end, inverted)| Op::Delete { start, to_end, inverted }),
        4 => (k.clone(), 0i64..10, k.clone(), any::<u8>(), prop::bool::weighted(0.3))
            .prop_map(|(key, expect, then_key, value, future_range)| Op::Txn {
                key, expect, then_key, value, future_range
            }),
        1 => (0i64..4).prop_map(|back| Op::Compact { back }),
        1 => Just(Op::LeaseGrant),
        1 => Just(Op::LeaseRevoke),
    ]
}

fn command(op: &Op, rev_hint: i64) -> Command {
    match op {
        Op::Put {
            key,
            value,
            lease,
            ignore_value,
        } => Command::Put(
            PutRequest {
                key: KEYS[*key].to_vec(),
                value: if *ignore_value { vec![] } else { vec![*value] },
                lease: if *lease { LEASE } else { 0 },
                prev_kv: true,
                ignore_value: *ignore_value,
                ..Default::default()
            }
            .encode_to_vec()
            .into(),
        ),
        Op::Delete {
            start,
            to_end,
            inverted,
        } => {
            let range_end = if *inverted {
                b"\x01".to_vec()
            } else if *to_end {
                vec![0]
            } else {
                vec![]
            };
            Command::DeleteRange(
                DeleteRangeRequest {
                    key: KEYS[*start].to_vec(),
                    range_end,
                    prev_kv: true,
                }
                .encode_to_vec()
                .into(),
            )
        }
        Op::Txn {
            key,
            expect,
            then_key,
            value,
            future_range,
        } => Command::Txn(
            TxnRequest {
                compare: vec![Compare {
                    result: compare::CompareResult::Equal as i32,
                    target: compare::CompareTarget::Mod as i32,
                    key: KEYS[*key].to_vec(),
                    range_end: vec![],
                    target_union: Some(compare::TargetUnion::ModRevision(*expect)),
                }],
                success: vec![
                    RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: KEYS[*then_key].to_vec(),
                            value: vec![*value],
                            ..Default::default()
                        })),
                    },
                    RequestOp {
                        request: Some(request_op::Request::RequestRange(RangeRequest {
                            key: KEYS[*then_key].to_vec(),
                            revision: if *future_range { rev_hint + 1000 } else { 0 },
                            ..Default::default()
                        })),
                    },
                ],
                failure: vec![RequestOp {
                    request: Some(request_op::Request::RequestDeleteRange(
                        DeleteRangeRequest {
                            key: KEYS[*key].to_vec(),
                            ..Default::default()
                        },
                    )),
                }],
            }
            .encode_to_vec()
            .into(),
        ),
        Op::Compact { back } => Command::Compact(
            CompactionRequest {
                revision: (rev_hint - back).max(1),
                physical: true,
            }
            .encode_to_vec()
            .into(),
        ),
        Op::LeaseGrant => Command::LeaseGrant { id: LEASE, ttl: 60 },
        Op::LeaseRevoke => Command::LeaseRevoke { id: LEASE },
    }
}

/// Everything one engine said: per command its outcome, and the published events.
#[derive(Debug, Default, PartialEq)]
struct Trace {
    outcomes: Vec<Result<Bytes>>,
    events: Vec<(i64, Vec<Event>)>,
}

fn apply_alone(engine: &Engine, cmd: &Command, t: &mut Trace) {
    match ApplyCtx::new(engine, 0).unwrap().apply(cmd) {
        Ok((resp, out)) => {
            engine.write(out.batch, false).unwrap();
            t.events.extend(out.revisions);
            t.outcomes.push(Ok(resp));
        }
        Err(e @ StoreError::Internal(_)) => panic!("internal error: {e}"),
        Err(e) => t.outcomes.push(Err(e)),
    }
}

/// Applies one entry the way the state machine does: through the cache, which then learns
/// the entry's writes.
fn apply_cached(engine: &Engine, cache: &mut ApplyCache, cmd: &Command, t: &mut Trace) {
    let ctx = ApplyCtx::cached(engine, 0, cache).unwrap();
    let out = match cmd {
        Command::Batch(cmds) => {
            let (resps, out) = ctx.apply_batch(cmds).unwrap();
            t.outcomes.extend(resps);
            out
        }
        cmd => {
            let (resp, out) = ctx.apply_entry(cmd).unwrap();
            t.outcomes.push(resp);
            out
        }
    };
    engine.write(out.batch, false).unwrap();
    t.events.extend(out.revisions);
    cache.written(out.revision, out.current);
}

fn apply_batch(engine: &Engine, cache: &mut ApplyCache, cmds: &[Command], t: &mut Trace) {
    if !cmds.is_empty() {
        apply_cached(engine, cache, &Command::Batch(cmds.to_vec()), t);
    }
}

/// Every state-machine row of shard 0.
fn rows(engine: &Engine) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let keys = Keys::new(0);
    let mut out = Vec::new();
    for name in cf::STATE_MACHINE {
        for item in engine.db().iterator_cf(
            engine.cf(cf::of_shard(name, 0)),
            rocksdb::IteratorMode::Start,
        ) {
            let (k, v) = item.unwrap();
            if k.starts_with(&keys.prefix()) {
                out.push((name, k.to_vec(), v.to_vec()));
            }
        }
    }
    out
}

fn current_rev(engine: &Engine) -> i64 {
    super::Reader::new(engine, 0).revision().unwrap()
}

/// Applies `ops` one entry each on one engine and in batches (cut where `cuts` says and at
/// every unbatchable command) on another; returns both traces and rows.
fn run(ops: &[Op], cuts: &[bool]) -> (Trace, Trace, bool) {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = Engine::open(dir_a.path()).unwrap();
    let b = Engine::open(dir_b.path()).unwrap();
    let (mut ta, mut tb) = (Trace::default(), Trace::default());
    let mut cache = ApplyCache::default();
    let mut pending: Vec<Command> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        // Commands are built from the sequential engine's revision, so both get the same.
        let cmd = command(op, current_rev(&a));
        apply_alone(&a, &cmd, &mut ta);
        if cmd.batchable() {
            pending.push(cmd);
            if cuts.get(i).copied().unwrap_or(false) {
                apply_batch(&b, &mut cache, &pending, &mut tb);
                pending.clear();
            }
        } else {
            apply_batch(&b, &mut cache, &pending, &mut tb);
            pending.clear();
            apply_cached(&b, &mut cache, &cmd, &mut tb);
        }
    }
    apply_batch(&b, &mut cache, &pending, &mut tb);
    let same_rows = rows(&a) == rows(&b);
    (ta, tb, same_rows)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn a_batch_entry_equals_its_commands_applied_one_by_one(
        ops in proptest::collection::vec(op(), 1..60),
        cuts in proptest::collection::vec(prop::bool::weighted(0.15), 60),
    ) {
        let (alone, batched, same_rows) = run(&ops, &cuts);
        prop_assert_eq!(&alone.outcomes, &batched.outcomes);
        prop_assert_eq!(&alone.events, &batched.events);
        prop_assert!(same_rows, "state-machine rows differ");
    }
}

#[test]
fn a_failed_command_inside_a_batch_leaves_no_trace_and_later_ones_see_earlier_ones() {
    let ops = [
        Op::Put {
            key: 0,
            value: 1,
            lease: false,
            ignore_value: false,
        },
        // Fails after staging its put of "b" (future revision in its range).
        Op::Txn {
            key: 0,
            expect: 2,
            then_key: 2,
            value: 9,
            future_range: true,
        },
        // Reads "a" as written by the first command of the batch (mod revision 2).
        Op::Txn {
            key: 0,
            expect: 2,
            then_key: 3,
            value: 7,
            future_range: false,
        },
        // ignore_value on "b": the failed txn's put must not have created it.
        Op::Put {
            key: 2,
            value: 0,
            lease: false,
            ignore_value: true,
        },
    ];
    let (alone, batched, same_rows) = run(&ops, &[false; 4]);
    assert_eq!(alone, batched);
    assert!(same_rows);
    assert!(matches!(batched.outcomes[1], Err(StoreError::FutureRev)));
    assert!(matches!(batched.outcomes[3], Err(StoreError::KeyNotFound)));
    // Two revisions (put a, txn put c), one per successful command.
    let revs: Vec<i64> = batched.events.iter().map(|(r, _)| *r).collect();
    assert_eq!(revs, vec![2, 3]);
}
