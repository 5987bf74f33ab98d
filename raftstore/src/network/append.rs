//! Commits carried by the next entries ([`carry_commits`], on every replication stream) and
//! replication one AppendEntries call at a time ([`append_one_at_a_time`], QUIC with
//! `--peer-streams false`).

use futures::stream::BoxStream;
use futures::StreamExt;
use openraft::error::RPCError;
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, StreamAppendResult};
use openraft::RaftNetworkV2;

use super::{PeerConnection, PeerTransport};
use crate::types::TypeConfig;

/// The answers of [`append_one_at_a_time`].
type AppendAnswers<'s> =
    BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>;

/// Replication to a peer one AppendEntries at a time (openraft's `stream_append_sequential`),
/// except that a request without entries, while writes are queued on its shard (a next batch
/// is on its way), waits up to the connection's commit linger for the next one, and is
/// replaced by it when that one starts at the same log position
/// (`navarch_store_append_commits_carried_total` counts the replacements).
///
/// ```text
/// leader:   batch k's entries ─► follower ─► answer ─► commit k ─► "commit k" (no entries)
///           batch k+1 (proposed while "commit k" waits) ─► "k+1 entries + commit k"
/// ```
/// Without the wait, each round of a busy shard cost each follower two exchanges: one with
/// the entries, one to learn that they were committed, sent before the next batch could go
/// (one request at a time); at 64 clients followers received 0.85 entry-less requests per
/// request with entries. The next batch's request carries the newer commit anyway, and it
/// leaves as soon as it exists instead of after the commit's round trip. Only the followers'
/// commit index (what they may apply) waits, and never longer than the linger.
///
/// Safe for openraft's bookkeeping: requests come from one stream, so the next request starts
/// where the replaced one (which covers no entries) starts, carries a commit index at least as
/// new, and its answer acknowledges both (openraft drains every in-flight request up to the
/// acknowledged log id, and takes the send time of the newest for its leader lease: a real
/// answer to a request sent later than either). Heartbeats (one-request streams) and probes
/// that end their stream never wait: the stream's end sends them at once.
pub(super) fn append_one_at_a_time<'s, T, S>(
    conn: &'s mut PeerConnection<T>,
    input: S,
    option: RPCOption,
) -> openraft::base::BoxFuture<'s, Result<AppendAnswers<'s>, RPCError<TypeConfig>>>
where
    T: PeerTransport,
    S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
{
    let input = carry_commits(input, conn.commit_linger, conn.writes.clone());
    let answers = futures::stream::unfold(Some((conn, input)), move |state| {
        let option = option.clone();
        async move {
            let (conn, mut input) = state?;
            let req = input.next().await?;
            let prev = req.prev_log_id;
            let last = req.entries.last().map(|e| e.log_id).or(prev);
            match conn.append_entries(req, option).await {
                Ok(resp) => {
                    let whole = match &resp {
                        AppendEntriesResponse::PartialSuccess(m) => *m == last,
                        _ => true,
                    };
                    let result = resp.into_stream_result(prev, last);
                    let go_on = result.is_ok() && whole;
                    Some((Ok(result), go_on.then_some((conn, input))))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    Box::pin(async move { Ok(answers.boxed()) })
}

/// A replication stream's requests, except that a request without entries, while writes are
/// queued on the shard (`writes`; without it, always), waits up to `linger` for the next one
/// and is replaced by it when that one starts at the same log position and vote (see
/// [`append_one_at_a_time`]; the pipelined QUIC and gRPC streams use it too, where the
/// follower's answers come in order and a replaced request simply has none). Requests are
/// taken from `input` only when the caller asks for the next one.
pub(super) fn carry_commits<S>(
    input: S,
    linger: std::time::Duration,
    writes: Option<std::sync::Arc<crate::propose_batch::ProposalBatcher>>,
) -> BoxStream<'static, AppendEntriesRequest<TypeConfig>>
where
    S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
{
    // (requests, a request taken during a wait that goes next, requests ended)
    let start = (input, None::<AppendEntriesRequest<TypeConfig>>, false);
    futures::stream::unfold(start, move |(mut input, held, mut ended)| {
        let writes = writes.clone();
        async move {
            let mut req = match held {
                Some(r) => r,
                None if ended => return None,
                None => input.next().await?,
            };
            let mut next = None;
            // Only while writes are queued: a next batch is coming. Without that a lone
            // client's commit waited in vain.
            let coming = writes.as_ref().is_none_or(|w| w.has_queued());
            if req.entries.is_empty() && !linger.is_zero() && !ended && coming {
                let deadline = tokio::time::Instant::now() + linger;
                loop {
                    match tokio::time::timeout_at(deadline, input.next()).await {
                        // Nothing new in time: the commit goes alone.
                        Err(_) => break,
                        Ok(None) => {
                            ended = true;
                            break;
                        }
                        Ok(Some(r)) if r.prev_log_id == req.prev_log_id && r.vote == req.vote => {
                            metrics::counter!("navarch_store_append_commits_carried_total")
                                .increment(1);
                            let only_commit = r.entries.is_empty();
                            req = r;
                            if !only_commit {
                                break;
                            }
                        }
                        Ok(Some(r)) => {
                            next = Some(r);
                            break;
                        }
                    }
                }
            }
            Some((req, (input, next, ended)))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::network::{PeerRequest, PeerResponse, TransportError};
    use crate::shard::DEFAULT_SHARD;
    use crate::types::{Command, Vote};

    /// A follower over a one-call-at-a-time transport: records the AppendEntries it receives
    /// (entry indexes and commit index) and accepts them all.
    #[derive(Default)]
    struct Recorder {
        seen: parking_lot::Mutex<Vec<(Vec<u64>, Option<u64>)>>,
    }

    impl PeerTransport for Recorder {
        async fn call(
            &self,
            addr: &str,
            req: &PeerRequest,
            _timeout: Duration,
        ) -> Result<PeerResponse, TransportError> {
            match req.clone().into_shard().1 {
                PeerRequest::AppendEntries(r) => {
                    let indexes = r.entries.iter().map(|e| e.log_id.index).collect();
                    self.seen
                        .lock()
                        .push((indexes, r.leader_commit.map(|c| c.index)));
                    Ok(PeerResponse::AppendEntries(AppendEntriesResponse::Success))
                }
                other => Err(TransportError::Unreachable {
                    addr: addr.to_string(),
                    reason: format!("unexpected {other:?}"),
                }),
            }
        }
    }

    fn log_id(index: u64) -> crate::types::LogId {
        openraft::testing::log_id::<TypeConfig>(1, 1, index)
    }

    /// What openraft's replication stream sends: from `prev`, `entries`, commit at `commit`.
    fn append(prev: u64, entries: &[u64], commit: u64) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: Some(log_id(prev)),
            leader_commit: Some(log_id(commit)),
            entries: entries
                .iter()
                .map(|i| <crate::types::Entry as openraft::entry::RaftEntry>::new_blank(log_id(*i)))
                .collect(),
        }
    }

    /// Runs `input` through a connection to a [`Recorder`] with commit linger `linger`;
    /// returns what the follower received and the acknowledged log indexes. Fails the test if
    /// the stream has not ended after a minute.
    async fn replicate_to_recorder<S>(
        input: S,
        linger: Duration,
    ) -> (Vec<(Vec<u64>, Option<u64>)>, Vec<u64>)
    where
        S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        let recorder = Arc::new(Recorder::default());
        let mut conn = PeerConnection {
            target: 2,
            addr: "peer".into(),
            transport: Arc::clone(&recorder),
            shard: DEFAULT_SHARD,
            commit_linger: linger,
            writes: None,
        };
        let answers = conn
            .stream_append(input, RPCOption::new(Duration::from_millis(100)))
            .await
            .expect("stream opens");
        let acked = answers
            .map(|a| {
                a.expect("accepted")
                    .expect("no conflict")
                    .map_or(0, |l| l.index)
            })
            .collect();
        let acked = tokio::time::timeout(Duration::from_secs(60), acked)
            .await
            .expect("the replication stream ends");
        let seen = recorder.seen.lock().clone();
        (seen, acked)
    }

    /// Longer than any test runs: a request that waited for it would fail the test.
    const FOREVER: Duration = Duration::from_secs(3600);

    /// A commit-only request followed at once by the next batch's entries from the same
    /// position: the follower gets one request, with the entries and the commit (and the
    /// linger, however long, ends as soon as they come).
    #[tokio::test]
    async fn a_commit_rides_with_the_entries_that_follow_it() {
        let input = futures::stream::iter(vec![append(5, &[], 5), append(5, &[6, 7], 5)]);
        let (seen, acked) = replicate_to_recorder(input, FOREVER).await;
        assert_eq!(seen, vec![(vec![6, 7], Some(5))]);
        assert_eq!(acked, vec![7]);
    }

    /// Nothing follows a commit within the linger: it goes alone, and the stream goes on with
    /// the entries that come later.
    #[tokio::test]
    async fn a_commit_goes_alone_when_no_entries_follow_in_time() {
        let linger = Duration::from_millis(20);
        let later = futures::stream::once(async move {
            tokio::time::sleep(linger * 10).await;
            append(5, &[6], 6)
        });
        let input = futures::stream::iter(vec![append(5, &[], 5)]).chain(later);
        let (seen, acked) = replicate_to_recorder(Box::pin(input), linger).await;
        assert_eq!(seen, vec![(vec![], Some(5)), (vec![6], Some(6))]);
        assert_eq!(acked, vec![5, 6]);
    }

    /// A request that ends its stream (a heartbeat, a probe) leaves without waiting.
    #[tokio::test]
    async fn a_heartbeat_never_waits() {
        let input = futures::stream::iter(vec![append(5, &[], 5)]);
        let (seen, acked) = replicate_to_recorder(input, FOREVER).await;
        assert_eq!(seen, vec![(vec![], Some(5))]);
        assert_eq!(acked, vec![5]);
    }

    /// The first answer of a connection whose commit linger never ends and whose shard's
    /// write queue is `writes`, to a commit-only request after which the stream stays open
    /// (openraft's replication waiting for news); `None` if none comes within a minute.
    async fn first_answer_with_queue(
        writes: Arc<crate::propose_batch::ProposalBatcher>,
    ) -> Option<u64> {
        let recorder = Arc::new(Recorder::default());
        let mut conn = PeerConnection {
            target: 2,
            addr: "peer".into(),
            transport: recorder,
            shard: DEFAULT_SHARD,
            commit_linger: FOREVER,
            writes: Some(writes),
        };
        let input =
            futures::stream::iter(vec![append(5, &[], 5)]).chain(futures::stream::pending());
        let mut answers = conn
            .stream_append(input, RPCOption::new(Duration::from_millis(100)))
            .await
            .expect("stream opens");
        let first = tokio::time::timeout(Duration::from_secs(60), answers.next())
            .await
            .ok()??;
        Some(
            first
                .expect("accepted")
                .expect("no conflict")
                .map_or(0, |l| l.index),
        )
    }

    /// No write is queued on the shard, so no batch is coming to carry the commit: it leaves
    /// at once (a lone client's next write often goes to another shard).
    #[tokio::test]
    async fn a_commit_with_no_write_queued_leaves_at_once() {
        let writes = Arc::new(crate::propose_batch::ProposalBatcher::new(
            DEFAULT_SHARD,
            1,
            16,
        ));
        assert_eq!(first_answer_with_queue(writes).await, Some(5));
    }

    /// With a write queued (the next batch is on its way), the commit waits for it.
    #[tokio::test]
    async fn a_commit_waits_while_a_write_is_queued() {
        let writes = Arc::new(crate::propose_batch::ProposalBatcher::new(
            DEFAULT_SHARD,
            1,
            16,
        ));
        let _queued = writes.enqueue(DEFAULT_SHARD, Command::Put(bytes::Bytes::from_static(b"x")));
        let waited =
            tokio::time::timeout(Duration::from_millis(300), first_answer_with_queue(writes)).await;
        assert!(
            waited.is_err(),
            "the commit left while a write was queued: {waited:?}"
        );
    }

    /// With the linger off, every request goes as it comes.
    #[tokio::test]
    async fn no_linger_sends_every_request() {
        let input = futures::stream::iter(vec![append(5, &[], 5), append(5, &[6], 5)]);
        let (seen, acked) = replicate_to_recorder(input, Duration::ZERO).await;
        assert_eq!(seen, vec![(vec![], Some(5)), (vec![6], Some(5))]);
        assert_eq!(acked, vec![5, 6]);
    }
}
