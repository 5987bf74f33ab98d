//! Tests of the peer network: a follower slower than a heartbeat, one that never answers, and
//! commits carried by the next entries on pipelined streams.

use super::*;

/// A peer that answers every AppendEntries frame successfully after `delay`.
struct SlowPeer {
    delay: Duration,
}

impl PeerTransport for SlowPeer {
    async fn call(
        &self,
        addr: &str,
        _req: &PeerRequest,
        _timeout: Duration,
    ) -> Result<PeerResponse, TransportError> {
        Err(TransportError::Unreachable {
            addr: addr.to_string(),
            reason: "streams only".into(),
        })
    }

    fn supports_streams(&self) -> bool {
        true
    }

    fn open_stream(
        &self,
        _addr: &str,
        _shard: ShardId,
        frames: BoxStream<'static, Vec<u8>>,
    ) -> BoxFuture<'static, Result<FrameStream, TransportError>> {
        let delay = self.delay;
        Box::pin(async move {
            // Frames leave as soon as they are made, as over a real connection.
            let (sent, received) = tokio::sync::mpsc::unbounded_channel();
            let mut frames = frames;
            tokio::spawn(async move {
                while let Some(frame) = frames.next().await {
                    let _ = sent.send(frame);
                }
            });
            let answers = tokio_stream::wrappers::UnboundedReceiverStream::new(received)
                .then(move |_| async move {
                    tokio::time::sleep(delay).await;
                    let reply: StreamAppendReply = Ok(Ok(None));
                    Ok(crate::types::encode(&reply).expect("encode a reply"))
                })
                .boxed();
            Ok(answers)
        })
    }
}

/// A connection to a [`SlowPeer`] answering after `delay`, with commit linger `linger`.
fn connection_lingering(delay: Duration, linger: Duration) -> PeerConnection<SlowPeer> {
    PeerConnection {
        target: 2,
        addr: "peer".into(),
        transport: Arc::new(SlowPeer { delay }),
        shard: DEFAULT_SHARD,
        commit_linger: linger,
        writes: None,
    }
}

/// A connection whose every request leaves (no commit linger).
fn connection(delay: Duration) -> PeerConnection<SlowPeer> {
    connection_lingering(delay, Duration::ZERO)
}

async fn replicate(conn: &mut PeerConnection<SlowPeer>, requests: usize) -> Vec<bool> {
    let req = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new(1, 1),
        prev_log_id: None,
        leader_commit: None,
        entries: vec![],
    };
    let input = futures::stream::iter(vec![req; requests]);
    // What openraft passes: its heartbeat interval.
    let option = RPCOption::new(Duration::from_millis(100));
    let answers = conn
        .stream_append(input, option)
        .await
        .expect("stream opens");
    answers.map(|a| a.is_ok()).collect().await
}

/// A follower answering in 400 ms, four heartbeat intervals, keeps its stream: every
/// pipelined request gets its answer (before, the stream failed after 75 ms).
#[tokio::test]
async fn a_follower_slower_than_a_heartbeat_keeps_its_replication_stream() {
    let mut conn = connection(Duration::from_millis(400));
    assert_eq!(replicate(&mut conn, 2).await, vec![true, true]);
}

/// On a pipelined stream too, a commit-only request followed by the next batch's entries
/// from the same position is replaced by them: one frame reaches the follower, and its
/// answer acknowledges the entries.
#[tokio::test]
async fn a_streamed_commit_rides_with_the_entries_that_follow_it() {
    let log_id = |i| openraft::testing::log_id::<TypeConfig>(1, 1, i);
    let commit = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(1, 1),
        prev_log_id: Some(log_id(5)),
        leader_commit: Some(log_id(5)),
        entries: vec![],
    };
    let entries = AppendEntriesRequest::<TypeConfig> {
        entries: vec![<crate::types::Entry as openraft::entry::RaftEntry>::new_blank(log_id(6))],
        ..commit.clone()
    };
    let mut conn = connection_lingering(Duration::ZERO, Duration::from_secs(3600));
    let input = futures::stream::iter(vec![commit, entries]);
    let answers = conn
        .stream_append(input, RPCOption::new(Duration::from_millis(100)))
        .await
        .expect("stream opens");
    let answers: Vec<_> = tokio::time::timeout(Duration::from_secs(60), answers.collect())
        .await
        .expect("the stream ends");
    assert_eq!(answers.len(), 1, "one frame for the commit and the entries");
    assert!(answers[0].is_ok());
}

/// A follower that stops answering still fails the stream, after one or two minimum waits
/// (the upper bound only shows that the wait ends; it is loose for a loaded machine).
#[tokio::test]
async fn a_follower_that_never_answers_fails_the_stream() {
    let mut conn = connection(Duration::from_secs(3600));
    let started = tokio::time::Instant::now();
    assert_eq!(replicate(&mut conn, 2).await, vec![false]);
    let waited = started.elapsed();
    assert!(
        waited >= MIN_APPEND_ANSWER_WAIT && waited < 10 * MIN_APPEND_ANSWER_WAIT,
        "{waited:?}"
    );
}
