//! Concurrent client writes of one shard share Raft entries (the write half of group commit).
//!
//! ```text
//! write ─► join the queue ─► (fewer than `pipeline` batches in flight?) spawn a flusher
//! flusher: loop { take up to MAX_BATCH_REQUESTS queued writes; propose them as one
//!                 Command::Batch (on the leader, or forwarded to it in one peer request);
//!                 answer every taken write with its own response }
//! ```
//!
//! With no load a write leaves at once, alone. Under load the writes that arrive while
//! `pipeline` batches are in flight wait for the next batch, so each entry carries many of
//! them: the log append, the fsyncs, replication and the apply's RocksDB write are paid per
//! batch rather than per request. Each write is still applied as its own command with its own
//! revision; one that fails (a txn on a missing lease, say) does not affect the others.

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
/// A batch stops growing once its payload reaches this many bytes (a single larger request
/// still travels, alone).
pub const MAX_BATCH_BYTES: usize = 4 << 20;

type Waiter = oneshot::Sender<Result<Bytes>>;

#[derive(Default)]
struct State {
    /// Flushers running (each has at most one batch in flight).
    running: usize,
    queue: VecDeque<(Command, Waiter)>,
}

/// Batches the client writes of one shard.
pub struct ProposalBatcher {
    shard: ShardId,
    pipeline: usize,
    state: Mutex<State>,
}

impl ProposalBatcher {
    /// A batcher for `shard` that keeps at most `pipeline` batches in flight.
    pub fn new(shard: ShardId, pipeline: usize) -> Self {
        Self {
            shard,
            pipeline: pipeline.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Proposes a client write (see [`Command::batchable`]) and returns its response once it
    /// is applied.
    pub(crate) async fn propose(
        self: &Arc<Self>,
        node: &Arc<StoreNode>,
        cmd: Command,
    ) -> Result<Bytes> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut st = self.state.lock();
            st.queue.push_back((cmd, tx));
            if st.running < self.pipeline {
                st.running += 1;
                true
            } else {
                false
            }
        };
        if start {
            tokio::spawn(Arc::clone(self).flush(Arc::clone(node)));
        }
        // The flusher answers every waiter it takes; a dropped sender means the node stopped.
        rx.await.unwrap_or(Err(StoreError::Stopped))
    }

    /// Takes the next batch off the queue, or retires this flusher if the queue is empty.
    fn take(&self) -> Option<(Vec<Command>, Vec<Waiter>)> {
        let mut st = self.state.lock();
        if st.queue.is_empty() {
            st.running -= 1;
            return None;
        }
        let mut cmds = Vec::new();
        let mut waiters = Vec::new();
        let mut bytes = 0;
        while let Some((cmd, _)) = st.queue.front() {
            let size = cmd.payload_bytes();
            if !cmds.is_empty()
                && (cmds.len() >= MAX_BATCH_REQUESTS || bytes + size > MAX_BATCH_BYTES)
            {
                break;
            }
            bytes += size;
            let (cmd, w) = st.queue.pop_front().expect("front exists");
            cmds.push(cmd);
            waiters.push(w);
        }
        Some((cmds, waiters))
    }

    async fn flush(self: Arc<Self>, node: Arc<StoreNode>) {
        while let Some((cmds, waiters)) = self.take() {
            metrics::counter!("navarch_store_proposal_batches_total").increment(1);
            metrics::counter!("navarch_store_proposal_batched_requests_total")
                .increment(cmds.len() as u64);
            match node.propose_batch(self.shard, cmds).await {
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
    }
}
