//! Building etcd v3 requests and reading their responses — pure functions, so
//! the Kubernetes-style compare-and-swap is tested without a server.
//!
//! The CAS mirrors the apiserver's `GuaranteedUpdate`:
//!
//! ```text
//! Txn( If   mod_revision(key) == last_seen
//!      Then Put(key, value)
//!      Else Range(key) )          // refresh last_seen from the reply
//! ```

use crate::proto::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op, response_op, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest, TxnResponse,
};

/// An unconditional put.
pub fn put_request(key: Vec<u8>, value: Vec<u8>) -> PutRequest {
    PutRequest {
        key,
        value,
        ..Default::default()
    }
}

/// A single-key range.
pub fn range_request(key: Vec<u8>, serializable: bool) -> RangeRequest {
    RangeRequest {
        key,
        serializable,
        ..Default::default()
    }
}

/// The compare-and-swap txn: put `value` if the key's mod revision is still
/// `expected_mod_revision` (0 means "the key does not exist"), else read it.
pub fn cas_request(key: Vec<u8>, value: Vec<u8>, expected_mod_revision: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Mod as i32,
            key: key.clone(),
            target_union: Some(TargetUnion::ModRevision(expected_mod_revision)),
            range_end: Vec::new(),
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(put_request(
                key.clone(),
                value,
            ))),
        }],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestRange(range_request(key, false))),
        }],
    }
}

/// What a CAS txn did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// The put applied; the key's mod revision is now `mod_revision`.
    Swapped {
        /// The txn's revision, which is the key's new mod revision.
        mod_revision: i64,
    },
    /// Someone else wrote first; the key's mod revision is `current`
    /// (0 when the key does not exist).
    Conflict {
        /// The mod revision read by the `Else` branch.
        current: i64,
    },
}

impl CasOutcome {
    /// The mod revision the next CAS on this key should expect.
    pub fn next_expected(self) -> i64 {
        match self {
            CasOutcome::Swapped { mod_revision } => mod_revision,
            CasOutcome::Conflict { current } => current,
        }
    }
}

/// Interprets the reply to [`cas_request`].
pub fn cas_outcome(resp: &TxnResponse) -> CasOutcome {
    if resp.succeeded {
        let mod_revision = resp.header.as_ref().map_or(0, |h| h.revision);
        return CasOutcome::Swapped { mod_revision };
    }
    let current = resp
        .responses
        .iter()
        .find_map(|r| match &r.response {
            Some(response_op::Response::ResponseRange(range)) => {
                Some(range.kvs.first().map_or(0, |kv| kv.mod_revision))
            }
            _ => None,
        })
        .unwrap_or(0);
    CasOutcome::Conflict { current }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{
        etcdserverpb::{RangeResponse, ResponseHeader, ResponseOp},
        mvccpb::KeyValue,
    };

    #[test]
    fn cas_compares_mod_revision_then_puts_else_reads() {
        let txn = cas_request(b"/k".to_vec(), b"v".to_vec(), 42);
        assert_eq!(txn.compare.len(), 1);
        let cmp = &txn.compare[0];
        assert_eq!(cmp.result, CompareResult::Equal as i32);
        assert_eq!(cmp.target, CompareTarget::Mod as i32);
        assert_eq!(cmp.key, b"/k");
        assert_eq!(cmp.target_union, Some(TargetUnion::ModRevision(42)));
        match &txn.success[..] {
            [RequestOp {
                request: Some(request_op::Request::RequestPut(put)),
            }] => assert_eq!((&put.key[..], &put.value[..]), (&b"/k"[..], &b"v"[..])),
            other => panic!("unexpected success ops {other:?}"),
        }
        match &txn.failure[..] {
            [RequestOp {
                request: Some(request_op::Request::RequestRange(range)),
            }] => assert_eq!(range.key, b"/k"),
            other => panic!("unexpected failure ops {other:?}"),
        }
    }

    #[test]
    fn successful_cas_expects_the_txn_revision_next() {
        let resp = TxnResponse {
            header: Some(ResponseHeader {
                revision: 77,
                ..Default::default()
            }),
            succeeded: true,
            responses: Vec::new(),
        };
        let outcome = cas_outcome(&resp);
        assert_eq!(outcome, CasOutcome::Swapped { mod_revision: 77 });
        assert_eq!(outcome.next_expected(), 77);
    }

    #[test]
    fn failed_cas_expects_the_revision_it_read() {
        let read = |kvs: Vec<KeyValue>| TxnResponse {
            header: Some(ResponseHeader::default()),
            succeeded: false,
            responses: vec![ResponseOp {
                response: Some(response_op::Response::ResponseRange(RangeResponse {
                    kvs,
                    ..Default::default()
                })),
            }],
        };
        let existing = read(vec![KeyValue {
            key: b"/k".to_vec(),
            mod_revision: 12,
            ..Default::default()
        }]);
        assert_eq!(cas_outcome(&existing), CasOutcome::Conflict { current: 12 });
        assert_eq!(cas_outcome(&read(Vec::new())).next_expected(), 0);
    }

    #[test]
    fn plain_requests_carry_their_fields() {
        let put = put_request(b"k".to_vec(), b"v".to_vec());
        assert_eq!((put.lease, put.prev_kv), (0, false));
        assert!(range_request(b"k".to_vec(), true).serializable);
        assert!(!range_request(b"k".to_vec(), false).serializable);
    }
}
