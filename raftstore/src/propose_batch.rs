//! Concurrent client writes share Raft entries and peer requests (the write half of group
//! commit).
//!
//! ```text
//! write ─► this node leads the shard (or its leader is unknown)? ─► the shard's queue
//!       └► another member leads it ─► the queue of that member (one per destination node,
//!                                      carrying the writes of every shard it leads)
//! write ─► join the queue ─► (fewer than `pipeline` batches in flight?) spawn a flusher
//! flusher: loop { (after a batch, more writes queued?) yield to the runtime `yields` times;
//!                 take up to MAX_BATCH_REQUESTS queued writes;
//!                 shard queue: propose them as one Command::Batch (on the leader, or forwarded
//!                              to it in one peer request if leadership moved meanwhile);
//!                 node queue:  send them in one ProposeMany peer request; the leader puts each
//!                              into its own shard queue, so they share entries with its own
//!                              clients' writes; a write it no longer leads the shard of
//!                              comes back untaken and goes to this member's shard queue;
//!                 answer every taken write with its own response }
//! ```
//!
//! With no load a write leaves at once, alone. Under load the writes that arrive while
//! `pipeline` batches are in flight wait for the next batch, so each entry carries many of
//! them: the log append, the fsyncs, replication and the apply's RocksDB write are paid per
//! batch rather than per request. Before taking a batch under load (never for the first write
//! after a quiet spell) the flusher yields to the runtime a few times, so that requests whose
//! bytes have already arrived (their tasks are runnable) join this batch rather than the next:
//! no timer, so the wait is as long as the runtime is busy and nothing when it is idle. On a
//! 3-member cluster with 5 shards at 256 concurrent clients this cut the batches per request
//! by a sixth (docs/benchmarks.md, "Store, session 8"). Forwarding per destination node
//! rather than per shard means a member's writes for every shard one peer leads share one
//! peer request, and a shard's entries carry the writes of all members instead of one
//! (docs/benchmarks.md, "Store, session 9"). Each write is still applied as its own command
//! with its own revision; one that fails (a txn on a missing lease, say) does not affect the
//! others.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::{Result, StoreError};
use crate::node::StoreNode;
use crate::shard::ShardId;
use crate::types::Command;

/// Most client writes in one batch.
pub const MAX_BATCH_REQUESTS: usize = 512;

/// A busy batcher lingers only while fewer writes than this are queued: a batch this big
/// already spreads its round's cost thin.
pub const LINGER_BELOW_REQUESTS: usize = 16;

/// How long a flusher's yields must take for it to count its runtime as busy. On an idle
/// runtime each yield comes straight back (a few µs: a poll of the I/O driver); on a busy one
/// each lets other tasks run first.
pub const BUSY_YIELDS: std::time::Duration = std::time::Duration::from_micros(250);

/// A batch stops growing once its payload reaches this many bytes (a single larger request
/// still travels, alone).
pub const MAX_BATCH_BYTES: usize = 4 << 20;

type Waiter = oneshot::Sender<Result<Bytes>>;

/// A batch taken off a queue: the writes (each with its shard) and who waits for each.
type Batch = (Vec<(ShardId, Command)>, Vec<Waiter>);

#[derive(Default)]
struct State {
    /// Flushers running (each has at most one batch in flight).
    running: usize,
    queue: VecDeque<(ShardId, Command, Waiter)>,
}

/// Where a batcher's batches go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// One entry of this shard's Raft group.
    Shard(ShardId),
    /// One `ProposeMany` request to the member at this peer address (it leads the shards).
    Node(String),
}

/// Batches client writes: those of one shard, or those this member forwards to one peer.
pub struct ProposalBatcher {
    target: Target,
    pipeline: usize,
    yields: usize,
    /// How long a flusher on a busy runtime waits for more writes before taking a small batch
    /// (zero: never).
    linger: std::time::Duration,
    /// How long the yields must take for the runtime to count as busy ([`BUSY_YIELDS`]).
    busy_after: std::time::Duration,
    state: Mutex<State>,
}

impl ProposalBatcher {
    /// A batcher for `shard` that keeps at most `pipeline` batches in flight and, under load,
    /// yields to the runtime `yields` times before taking each batch.
    pub fn new(shard: ShardId, pipeline: usize, yields: usize) -> Self {
        Self::with_target(Target::Shard(shard), pipeline, yields)
    }

    /// A batcher for the writes this member forwards to the member at `peer_addr`, which
    /// leads their shards (same `pipeline` and `yields` as [`Self::new`]).
    pub fn to_node(peer_addr: &str, pipeline: usize, yields: usize) -> Self {
        Self::with_target(Target::Node(peer_addr.to_string()), pipeline, yields)
    }

    fn with_target(target: Target, pipeline: usize, yields: usize) -> Self {
        Self {
            target,
            pipeline: pipeline.max(1),
            yields,
            linger: std::time::Duration::ZERO,
            busy_after: BUSY_YIELDS,
            state: Mutex::new(State::default()),
        }
    }

    /// Lets a flusher whose runtime is busy wait up to `linger` for more writes before it
    /// takes a batch of fewer than [`LINGER_BELOW_REQUESTS`] (see [`lingers`]).
    pub fn with_linger(mut self, linger: std::time::Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Proposes a client write of `shard` (see [`Command::batchable`]) and returns its
    /// response once it is applied.
    pub(crate) async fn propose(
        self: &Arc<Self>,
        node: &Arc<StoreNode>,
        shard: ShardId,
        cmd: Command,
    ) -> Result<Bytes> {
        debug_assert!(
            matches!(self.target, Target::Node(_)) || self.target == Target::Shard(shard)
        );
        let (rx, start) = self.enqueue(shard, cmd);
        if start {
            spawn_flusher(Arc::clone(self), Arc::clone(node));
        }
        // The flusher answers every waiter it takes; a dropped sender means the node stopped.
        rx.await.unwrap_or(Err(StoreError::Stopped))
    }

    /// Queues a write; true when the caller must start a flusher (fewer than `pipeline` run).
    pub(crate) fn enqueue(
        &self,
        shard: ShardId,
        cmd: Command,
    ) -> (oneshot::Receiver<Result<Bytes>>, bool) {
        let (tx, rx) = oneshot::channel();
        let mut st = self.state.lock();
        st.queue.push_back((shard, cmd, tx));
        let start = st.running < self.pipeline;
        if start {
            st.running += 1;
        }
        (rx, start)
    }

    /// The next batch of a flusher. `prev` is the number of writes in the batch it proposed
    /// last: 0 for a flusher's first batch (it was started by a write that found no flusher
    /// busy, which leaves at once); after one, i.e. under load, it first gives the writes that
    /// are being received a chance to join, and lingers when [`lingers`] says so.
    async fn next_batch(&self, prev: usize) -> Option<Batch> {
        if prev > 0 && self.yields > 0 && self.queued() < MAX_BATCH_REQUESTS {
            let start = std::time::Instant::now();
            for _ in 0..self.yields {
                tokio::task::yield_now().await;
            }
            let busy = start.elapsed() >= self.busy_after;
            if lingers(self.linger, busy, prev, self.queued()) {
                tokio::time::sleep(self.linger).await;
                metrics::counter!("navarch_store_proposal_lingers_total").increment(1);
            }
        }
        self.take()
    }

    /// Whether writes wait in the queue for a flusher to take them (the next batch).
    pub(crate) fn has_queued(&self) -> bool {
        self.queued() > 0
    }

    fn queued(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// Takes the next batch off the queue, or retires this flusher if the queue is empty.
    fn take(&self) -> Option<Batch> {
        let mut st = self.state.lock();
        if st.queue.is_empty() {
            st.running -= 1;
            return None;
        }
        let mut cmds = Vec::new();
        let mut waiters = Vec::new();
        let mut bytes = 0;
        while let Some((_, cmd, _)) = st.queue.front() {
            let size = cmd.payload_bytes();
            if !cmds.is_empty()
                && (cmds.len() >= MAX_BATCH_REQUESTS || bytes + size > MAX_BATCH_BYTES)
            {
                break;
            }
            bytes += size;
            let (shard, cmd, w) = st.queue.pop_front().expect("front exists");
            cmds.push((shard, cmd));
            waiters.push(w);
        }
        Some((cmds, waiters))
    }

    async fn flush(self: Arc<Self>, node: Arc<StoreNode>) {
        let restart = {
            let (batcher, node) = (Arc::clone(&self), Arc::clone(&node));
            move || spawn_flusher(batcher, node)
        };
        let mut slot = FlusherSlot::new(Arc::clone(&self), restart);
        let mut prev = 0;
        loop {
            let Some((cmds, waiters)) = self.next_batch(prev).await else {
                // `take` gave the slot back: the queue was empty.
                slot.release();
                return;
            };
            prev = cmds.len();
            let n = cmds.len() as u64;
            match &self.target {
                Target::Shard(shard) => {
                    metrics::counter!("navarch_store_proposal_batches_total").increment(1);
                    metrics::counter!("navarch_store_proposal_batched_requests_total").increment(n);
                    let cmds = cmds.into_iter().map(|(_, cmd)| cmd).collect();
                    answer(waiters, node.propose_batch(*shard, cmds).await);
                }
                Target::Node(addr) => {
                    metrics::counter!("navarch_store_forward_batches_total").increment(1);
                    metrics::counter!("navarch_store_forward_batched_requests_total").increment(n);
                    match node.forward_many(addr, cmds).await {
                        Ok((cmds, results)) => {
                            for (((shard, cmd), r), w) in cmds.into_iter().zip(results).zip(waiters)
                            {
                                match r {
                                    Err(StoreError::NoLeader) => repropose(&node, shard, cmd, w),
                                    r => {
                                        let _ = w.send(r);
                                    }
                                }
                            }
                        }
                        Err(e) => answer(waiters, Err(e)),
                    }
                }
            }
        }
    }
}

/// Whether a flusher that has just proposed a batch of `prev` writes waits `linger` before
/// taking the next one, with `queued` writes waiting and its runtime `busy` (the yields took
/// long: other tasks were ready to run). A busy member's CPU is the limit: the wait idles
/// nothing, it lets the writes being received join one Raft round instead of each paying for
/// its own (at 64 clients over five shards batches held ~5 writes, and every round costs its
/// members much the same CPU whatever it carries). No wait without concurrent writers (the
/// last batch held one write: a lone client's next write, caught by the yields, would wait
/// for nothing), on an idle member, or when the queue already holds a batch worth its round.
pub(crate) fn lingers(linger: std::time::Duration, busy: bool, prev: usize, queued: usize) -> bool {
    !linger.is_zero() && busy && prev >= 2 && queued > 0 && queued < LINGER_BELOW_REQUESTS
}

/// Starts a flusher (its own function: spawning `flush` from inside `flush` would make the
/// compiler prove the future `Send` while it is still inferring it).
fn spawn_flusher(batcher: Arc<ProposalBatcher>, node: Arc<StoreNode>) {
    tokio::spawn(batcher.flush(node));
}

/// A running flusher's place in `State::running`. A flusher ends normally when it finds the
/// queue empty (`take` gives the place back, and `release` is called). If it ends any other way
/// (a panic below it, or its task dropped), this gives the place back on drop and, when writes
/// are still queued, starts a flusher for them: without it, the batcher would count a flusher
/// that no longer exists, start no other, and every later write would wait forever.
struct FlusherSlot<F: FnOnce()> {
    batcher: Arc<ProposalBatcher>,
    restart: Option<F>,
}

impl<F: FnOnce()> FlusherSlot<F> {
    fn new(batcher: Arc<ProposalBatcher>, restart: F) -> Self {
        Self {
            batcher,
            restart: Some(restart),
        }
    }

    /// The flusher ended normally (its place is already given back).
    fn release(&mut self) {
        self.restart = None;
    }
}

impl<F: FnOnce()> Drop for FlusherSlot<F> {
    fn drop(&mut self) {
        let Some(restart) = self.restart.take() else {
            return;
        };
        let mut st = self.batcher.state.lock();
        if st.queue.is_empty() || tokio::runtime::Handle::try_current().is_err() {
            st.running -= 1;
            return;
        }
        // The place passes to the new flusher.
        drop(st);
        tracing::warn!(target = ?self.batcher.target, "a write flusher ended early; starting another");
        restart();
    }
}

/// Answers each waiter with its own result, or all of them with the batch's error.
fn answer(waiters: Vec<Waiter>, outcome: Result<Vec<Result<Bytes>>>) {
    match outcome {
        Ok(results) => {
            for (w, r) in waiters.into_iter().zip(results) {
                let _ = w.send(r);
            }
        }
        Err(e) => {
            for w in waiters {
                let _ = w.send(Err(e.clone()));
            }
        }
    }
}

/// A forwarded write the destination did not take (it no longer leads the shard): proposed
/// again through the shard's own batcher, which finds the new leader (and batches it with
/// this member's other writes of that shard), in a task of its own so that the node queue's
/// flusher goes on with its next batch. The shard batcher forwards with `Propose`, never
/// through a node queue again, so a write cannot bounce between members.
fn repropose(node: &Arc<StoreNode>, shard: ShardId, cmd: Command, w: Waiter) {
    metrics::counter!("navarch_store_forward_reproposals_total").increment(1);
    let node = Arc::clone(node);
    tokio::spawn(async move {
        let writes = Arc::clone(&node.shard(shard).writes);
        let _ = w.send(writes.propose(&node, shard, cmd).await);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(n: u8) -> Command {
        Command::Put(Bytes::from(vec![n; 8]))
    }

    /// Runs a flusher's next batch (first or after a batch) while another task queues a
    /// write as soon as it gets the thread; returns how many writes the batch took.
    async fn batch_size_with_late_write(yields: usize, prev: usize) -> usize {
        let b = Arc::new(ProposalBatcher::new(ShardId::default(), 1, yields));
        let (_rx, start) = b.enqueue(0, put(1));
        assert!(start, "the first write starts a flusher");
        let late = Arc::clone(&b);
        let writer = tokio::spawn(async move {
            let (_rx, start) = late.enqueue(0, put(2));
            start
        });
        let (cmds, _waiters) = b.next_batch(prev).await.expect("a write is queued");
        let started = writer.await.expect("writer task");
        assert!(
            !started,
            "the running flusher takes the late write, no second one starts"
        );
        cmds.len()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn under_load_a_batch_waits_for_runnable_writes() {
        assert_eq!(batch_size_with_late_write(4, 1).await, 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_first_write_after_a_quiet_spell_leaves_alone() {
        assert_eq!(batch_size_with_late_write(4, 0).await, 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn no_yields_takes_only_what_is_queued() {
        assert_eq!(batch_size_with_late_write(0, 1).await, 1);
    }

    #[test]
    fn a_flusher_lingers_only_when_busy_with_a_short_queue() {
        let ms = std::time::Duration::from_millis(1);
        assert!(lingers(ms, true, 2, 1));
        assert!(lingers(ms, true, 5, LINGER_BELOW_REQUESTS - 1));
        assert!(!lingers(ms, false, 5, 1), "an idle runtime never waits");
        assert!(
            !lingers(ms, true, 1, 1),
            "a lone writer's next write never waits"
        );
        assert!(
            !lingers(ms, true, 5, 0),
            "nothing queued: the flusher retires at once"
        );
        assert!(
            !lingers(ms, true, 5, LINGER_BELOW_REQUESTS),
            "a full enough batch goes"
        );
        assert!(
            !lingers(std::time::Duration::ZERO, true, 5, 1),
            "linger 0 turns it off"
        );
    }

    /// A flusher that has proposed a batch, with one write queued and another arriving 20 ms
    /// later; returns how many writes its next batch took. `busy_after` zero makes any yield
    /// count as busy, an hour none.
    async fn batch_with_write_arriving_later(busy_after: std::time::Duration) -> usize {
        let mut b = ProposalBatcher::new(ShardId::default(), 1, 2)
            .with_linger(std::time::Duration::from_millis(500));
        b.busy_after = busy_after;
        let b = Arc::new(b);
        let (_rx, start) = b.enqueue(0, put(1));
        assert!(start);
        let late = Arc::clone(&b);
        let writer = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            late.enqueue(0, put(2))
        });
        // The batch proposed before held two writes: there are concurrent writers.
        let (cmds, _waiters) = b.next_batch(2).await.expect("a write is queued");
        writer.await.expect("writer task");
        cmds.len()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_flusher_waits_for_writes_still_arriving() {
        assert_eq!(
            batch_with_write_arriving_later(std::time::Duration::ZERO).await,
            2
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_idle_flusher_takes_its_batch_at_once() {
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(batch_with_write_arriving_later(hour).await, 1);
    }

    #[test]
    fn the_last_flusher_retires_on_an_empty_queue() {
        let b = ProposalBatcher::new(ShardId::default(), 2, 0);
        let (_rx, start) = b.enqueue(0, put(1));
        assert!(start);
        let (_rx2, start2) = b.enqueue(0, put(2));
        assert!(start2, "a second flusher may run with pipeline 2");
        let (_rx3, start3) = b.enqueue(0, put(3));
        assert!(!start3, "no third flusher");
        assert_eq!(b.take().map(|(c, _)| c.len()), Some(3));
        assert!(b.take().is_none());
        assert_eq!(b.state.lock().running, 1);
    }

    /// A flusher that ends without finding the queue empty (a panic, a dropped task) hands
    /// its place to a new flusher while writes are queued, and gives it back otherwise; one
    /// that ended normally does neither.
    #[tokio::test(flavor = "current_thread")]
    async fn a_flusher_that_ends_early_gives_its_place_to_a_new_one() {
        let b = Arc::new(ProposalBatcher::new(ShardId::default(), 1, 0));
        let (_rx, start) = b.enqueue(0, put(1));
        assert!(start);
        let restarted = std::cell::Cell::new(0);
        drop(FlusherSlot::new(Arc::clone(&b), || {
            restarted.set(restarted.get() + 1)
        }));
        assert_eq!(restarted.get(), 1, "a write was queued: a new flusher");
        assert_eq!(b.state.lock().running, 1, "the new flusher has the place");

        assert_eq!(b.take().map(|(c, _)| c.len()), Some(1));
        drop(FlusherSlot::new(Arc::clone(&b), || {
            restarted.set(restarted.get() + 1)
        }));
        assert_eq!(restarted.get(), 1, "nothing queued: no new flusher");
        assert_eq!(b.state.lock().running, 0, "the place is given back");

        let (_rx, start) = b.enqueue(0, put(2));
        assert!(start, "a later write starts a flusher");
        assert!(b.take().is_some());
        assert!(b.take().is_none(), "the flusher found the queue empty");
        let mut slot = FlusherSlot::new(Arc::clone(&b), || restarted.set(restarted.get() + 1));
        slot.release();
        drop(slot);
        assert_eq!(restarted.get(), 1);
        assert_eq!(b.state.lock().running, 0);
    }

    #[test]
    fn a_node_batch_carries_the_writes_of_every_shard_in_order() {
        let b = ProposalBatcher::to_node("127.0.0.1:2380", 1, 0);
        let (_rx, start) = b.enqueue(3, put(1));
        assert!(start);
        let (_rx2, start2) = b.enqueue(1, put(2));
        assert!(!start2, "one flusher per destination with pipeline 1");
        let (_rx3, _) = b.enqueue(3, put(3));
        let (cmds, waiters) = b.take().expect("three writes queued");
        assert_eq!(waiters.len(), 3);
        assert_eq!(cmds, vec![(3, put(1)), (1, put(2)), (3, put(3))]);
    }
}
