//! Linearizable reads of one shard share ReadIndex rounds (the read half of group commit).
//!
//! ```text
//! read ─► join the waiting list ─► (no round running?) spawn the driver
//! driver: loop { take the waiting list; one ReadIndex round (leadership confirmed by a
//!               quorum, then applied ≥ read index); answer every taken waiter }
//! ```
//!
//! A read that arrives while a round is in flight waits for the next round, which starts after
//! it arrived: its read index is therefore taken after the read began, as linearizability
//! requires. N concurrent reads cost about two rounds instead of N.

use std::sync::Arc;

use openraft::ReadPolicy;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::types::Raft;

/// Why a shared round did not produce a read index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoundError {
    /// This node is not (or no longer) the shard's leader: retry through the leader.
    NotLeader,
    /// The Raft group is shutting down.
    Stopped,
}

#[derive(Default)]
struct State {
    running: bool,
    waiting: Vec<oneshot::Sender<Result<u64, RoundError>>>,
}

/// Shares ReadIndex rounds between concurrent reads of one shard.
#[derive(Default)]
pub struct ReadBatcher {
    state: Mutex<State>,
}

impl ReadBatcher {
    /// A read index taken after this call began, once this (leader) replica has applied it.
    pub(crate) async fn read_index(self: &Arc<Self>, raft: &Raft) -> Result<u64, RoundError> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut st = self.state.lock();
            st.waiting.push(tx);
            !std::mem::replace(&mut st.running, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).drive(raft.clone()));
        }
        rx.await.unwrap_or(Err(RoundError::Stopped))
    }

    async fn drive(self: Arc<Self>, raft: Raft) {
        loop {
            let waiting = {
                let mut st = self.state.lock();
                if st.waiting.is_empty() {
                    st.running = false;
                    return;
                }
                std::mem::take(&mut st.waiting)
            };
            metrics::counter!("navarch_store_read_index_rounds_total").increment(1);
            metrics::counter!("navarch_store_read_index_reads_total")
                .increment(waiting.len() as u64);
            let r = match raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
                Ok(read) => Ok(read.index()),
                Err(e) if e.forward_to_leader().is_some() || e.api_error().is_some() => {
                    Err(RoundError::NotLeader)
                }
                Err(_) => Err(RoundError::Stopped),
            };
            for w in waiting {
                let _ = w.send(r);
            }
        }
    }
}
