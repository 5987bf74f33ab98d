//! The MVCC engine against an in-memory reference model of etcd's semantics (proptest):
//! random sequences of put / delete-range / txn / compact / range-at-revision.
//!
//! The model keeps a full copy of the key space after every revision, which is slow and
//! obviously right; the engine keeps RocksDB history and must agree on every answer.

use std::collections::BTreeMap;

use navarch_raftstore::engine::Engine;
use navarch_raftstore::mvcc::apply_local;
use navarch_raftstore::mvcc::Reader;
use navarch_raftstore::proto::etcdserverpb::{
    compare, request_op, CompactionRequest, Compare, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RequestOp, TxnRequest, TxnResponse,
};
use navarch_raftstore::proto::mvccpb::KeyValue;
use navarch_raftstore::types::Command;
use navarch_raftstore::StoreError;
use proptest::prelude::*;
use prost::Message;

const KEYS: &[&[u8]] = &[b"a", b"a\0", b"ab", b"b", b"c", b"d"];

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: usize,
        value: u8,
    },
    Delete {
        start: usize,
        end: Option<usize>,
    },
    /// if mod_revision(key) == expect then put(then_key) else delete(key)
    Txn {
        key: usize,
        expect: i64,
        then_key: usize,
        value: u8,
    },
    Compact {
        back: i64,
    },
    Range {
        start: usize,
        end: Option<usize>,
        back: i64,
        limit: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..KEYS.len();
    prop_oneof![
        4 => (k.clone(), any::<u8>()).prop_map(|(key, value)| Op::Put { key, value }),
        1 => (k.clone(), proptest::option::of(0..KEYS.len() + 1))
            .prop_map(|(start, end)| Op::Delete { start, end }),
        2 => (k.clone(), 0i64..12, k.clone(), any::<u8>())
            .prop_map(|(key, expect, then_key, value)| Op::Txn { key, expect, then_key, value }),
        1 => (0i64..6).prop_map(|back| Op::Compact { back }),
        3 => (k.clone(), proptest::option::of(0..KEYS.len() + 1), 0i64..8, 0i64..4)
            .prop_map(|(start, end, back, limit)| Op::Range { start, end, back, limit }),
    ]
}

/// `end` index past the key list means "\0" (every key >= start).
fn range_end(end: Option<usize>) -> Vec<u8> {
    match end {
        None => Vec::new(),
        Some(i) if i >= KEYS.len() => vec![0],
        Some(i) => KEYS[i].to_vec(),
    }
}

fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        key == start
    } else if end == [0] {
        key >= start
    } else {
        key >= start && key < end
    }
}

#[derive(Default)]
struct Model {
    /// Key space after each revision; index 0 = revision 1 (empty store).
    states: Vec<BTreeMap<Vec<u8>, KeyValue>>,
    compacted: i64,
}

impl Model {
    fn new() -> Self {
        Self {
            states: vec![BTreeMap::new()],
            compacted: 0,
        }
    }
    fn rev(&self) -> i64 {
        self.states.len() as i64
    }
    fn cur(&self) -> &BTreeMap<Vec<u8>, KeyValue> {
        self.states.last().unwrap()
    }
    fn put(&self, s: &mut BTreeMap<Vec<u8>, KeyValue>, key: &[u8], value: u8, rev: i64) {
        let prev = s.get(key).cloned();
        s.insert(
            key.to_vec(),
            KeyValue {
                key: key.to_vec(),
                create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                mod_revision: rev,
                version: prev.as_ref().map_or(1, |p| p.version + 1),
                value: vec![value],
                lease: 0,
            },
        );
    }
    fn range(&self, start: &[u8], end: &[u8], at: i64) -> Result<Vec<KeyValue>, StoreError> {
        let at = if at <= 0 { self.rev() } else { at };
        if at > self.rev() {
            return Err(StoreError::FutureRev);
        }
        if at < self.compacted {
            return Err(StoreError::Compacted {
                compact_revision: self.compacted,
            });
        }
        Ok(self.states[(at - 1) as usize]
            .values()
            .filter(|kv| in_range(&kv.key, start, end))
            .cloned()
            .collect())
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let mut m = Model::new();
    for (step, op) in ops.into_iter().enumerate() {
        let ctx = format!("step {step}: {op:?}");
        match op {
            Op::Put { key, value } => {
                let req = PutRequest {
                    key: KEYS[key].to_vec(),
                    value: vec![value],
                    prev_kv: true,
                    ..Default::default()
                };
                let (b, rev) =
                    apply_local(&engine, 0, &Command::Put(req.encode_to_vec().into())).unwrap();
                let resp = PutResponse::decode(b.as_ref()).unwrap();
                let prev = m.cur().get(KEYS[key]).cloned();
                let mut next = m.cur().clone();
                m.put(&mut next, KEYS[key], value, m.rev() + 1);
                m.states.push(next);
                prop_assert_eq!(rev, m.rev(), "{}", ctx);
                prop_assert_eq!(resp.prev_kv, prev, "{}", ctx);
            }
            Op::Delete { start, end } => {
                let end = range_end(end);
                let req = DeleteRangeRequest {
                    key: KEYS[start].to_vec(),
                    range_end: end.clone(),
                    prev_kv: true,
                };
                let got = apply_local(
                    &engine,
                    0,
                    &Command::DeleteRange(req.encode_to_vec().into()),
                );
                if inverted(KEYS[start], &end) {
                    prop_assert_eq!(
                        got.map(|_| ()).unwrap_err(),
                        StoreError::InvertedRange,
                        "{}",
                        ctx
                    );
                    continue;
                }
                let (b, rev) = got.unwrap();
                let resp = DeleteRangeResponse::decode(b.as_ref()).unwrap();
                let victims: Vec<KeyValue> = m
                    .cur()
                    .values()
                    .filter(|kv| in_range(&kv.key, KEYS[start], &end))
                    .cloned()
                    .collect();
                if !victims.is_empty() {
                    let mut next = m.cur().clone();
                    for v in &victims {
                        next.remove(&v.key);
                    }
                    m.states.push(next);
                }
                prop_assert_eq!(resp.deleted, victims.len() as i64, "{}", ctx);
                prop_assert_eq!(resp.prev_kvs, victims, "{}", ctx);
                prop_assert_eq!(rev, m.rev(), "{}", ctx);
            }
            Op::Txn {
                key,
                expect,
                then_key,
                value,
            } => {
                let req = TxnRequest {
                    compare: vec![Compare {
                        result: compare::CompareResult::Equal as i32,
                        target: compare::CompareTarget::Mod as i32,
                        key: KEYS[key].to_vec(),
                        range_end: vec![],
                        target_union: Some(compare::TargetUnion::ModRevision(expect)),
                    }],
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: KEYS[then_key].to_vec(),
                            value: vec![value],
                            ..Default::default()
                        })),
                    }],
                    failure: vec![RequestOp {
                        request: Some(request_op::Request::RequestDeleteRange(
                            DeleteRangeRequest {
                                key: KEYS[key].to_vec(),
                                ..Default::default()
                            },
                        )),
                    }],
                };
                let (b, rev) =
                    apply_local(&engine, 0, &Command::Txn(req.encode_to_vec().into())).unwrap();
                let resp = TxnResponse::decode(b.as_ref()).unwrap();
                let cur_mod = m.cur().get(KEYS[key]).map_or(0, |kv| kv.mod_revision);
                let ok = cur_mod == expect;
                prop_assert_eq!(resp.succeeded, ok, "{}", ctx);
                let mut next = m.cur().clone();
                let changed = if ok {
                    m.put(&mut next, KEYS[then_key], value, m.rev() + 1);
                    true
                } else {
                    next.remove(KEYS[key]).is_some()
                };
                if changed {
                    m.states.push(next);
                }
                prop_assert_eq!(rev, m.rev(), "{}", ctx);
                prop_assert_eq!(resp.header.unwrap().revision, m.rev(), "{}", ctx);
            }
            Op::Compact { back } => {
                let target = (m.rev() - back).max(1);
                let req = CompactionRequest {
                    revision: target,
                    physical: true,
                };
                let got = apply_local(&engine, 0, &Command::Compact(req.encode_to_vec().into()));
                if target <= m.compacted {
                    prop_assert_eq!(
                        got.map(|_| ()).unwrap_err(),
                        StoreError::Compacted {
                            compact_revision: m.compacted
                        },
                        "{}",
                        ctx
                    );
                } else {
                    got.unwrap();
                    m.compacted = target;
                }
            }
            Op::Range {
                start,
                end,
                back,
                limit,
            } => {
                let end = range_end(end);
                let at = if back == 0 { 0 } else { m.rev() + 2 - back };
                let req = RangeRequest {
                    key: KEYS[start].to_vec(),
                    range_end: end.clone(),
                    revision: at,
                    limit,
                    ..Default::default()
                };
                let got = Reader::new(&engine, 0).range(&req);
                if inverted(KEYS[start], &end) {
                    prop_assert_eq!(got.unwrap_err(), StoreError::InvertedRange, "{}", ctx);
                    continue;
                }
                match m.range(KEYS[start], &end, at) {
                    Err(e) => prop_assert_eq!(got.unwrap_err(), e, "{}", ctx),
                    Ok(all) => {
                        let resp = got.unwrap();
                        let want: Vec<KeyValue> = if limit > 0 {
                            all.iter().take(limit as usize).cloned().collect()
                        } else {
                            all.clone()
                        };
                        prop_assert_eq!(resp.count, all.len() as i64, "{}", ctx);
                        prop_assert_eq!(
                            resp.more,
                            limit > 0 && all.len() > limit as usize,
                            "{}",
                            ctx
                        );
                        prop_assert_eq!(resp.kvs, want, "{}", ctx);
                        prop_assert_eq!(resp.header.unwrap().revision, m.rev(), "{}", ctx);
                    }
                }
            }
        }
    }
    Ok(())
}

fn inverted(start: &[u8], end: &[u8]) -> bool {
    !end.is_empty() && end != [0] && end < start
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn mvcc_engine_matches_reference_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}

#[test]
fn model_test_catches_a_wrong_engine_answer() {
    // Guard against a vacuous comparison: a model that disagrees must fail the run.
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let req = PutRequest {
        key: b"a".to_vec(),
        value: vec![1],
        ..Default::default()
    };
    let (_, rev) = apply_local(&engine, 0, &Command::Put(req.encode_to_vec().into())).unwrap();
    assert_eq!(rev, 2);
    let r = Reader::new(&engine, 0)
        .range(&RangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.kvs[0].version, 1);
    assert_ne!(r.kvs[0].mod_revision, 1, "revision 1 is the empty store");
}
