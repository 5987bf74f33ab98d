//! Leader-side lease timers.
//!
//! The lease table itself is replicated (see `mvcc::lease`); only the leader keeps expiry
//! deadlines in memory. On becoming leader it loads every lease with its *checkpointed*
//! remaining TTL (not the full TTL), so frequent leader changes cannot keep a lease alive
//! forever (etcd issue 9888). It then:
//! - proposes `LeaseRevoke` through Raft for every lease past its deadline;
//! - proposes `LeaseCheckpoint` with the remaining TTLs every checkpoint interval.
//!
//! With several shards, leases are administered by the default shard: its leader runs the
//! timers, keep-alives go there, and checkpoints are recorded there. Grants and revokes (incl.
//! expiry) are mirrored to every shard (`StoreNode::propose_all`), so a key in any shard can
//! be attached to a lease and is deleted by the revoke replicated in its own shard.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::error::{Result, StoreError};
use crate::keys::Keys;
use crate::mvcc::LeaseNotice;
use crate::node::{StoreNode, DEFAULT_SHARD};
use crate::types::Command;

/// How long an expired lease's revoke may be in flight before it is proposed again.
const REVOKE_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
struct Timer {
    ttl: i64,
    expiry: Instant,
}

#[derive(Default)]
struct State {
    leading: bool,
    timers: HashMap<i64, Timer>,
}

/// Lease deadlines, meaningful on the leader only.
pub struct Lessor {
    state: Mutex<State>,
    min_ttl: i64,
}

impl Lessor {
    /// A lessor granting at least `min_ttl` seconds.
    pub fn new(min_ttl: i64) -> Self {
        Self {
            state: Mutex::new(State::default()),
            min_ttl,
        }
    }

    /// The TTL actually granted for a requested one (etcd raises small TTLs to a minimum).
    pub fn effective_ttl(&self, requested: i64) -> i64 {
        requested.max(self.min_ttl)
    }

    /// Renews a lease (leader only); returns its TTL.
    pub fn keep_alive(&self, id: i64) -> Result<i64> {
        let mut g = self.state.lock();
        if !g.leading {
            return Err(StoreError::NoLeader);
        }
        match g.timers.get_mut(&id) {
            Some(t) => {
                t.expiry = Instant::now() + Duration::from_secs(t.ttl as u64);
                Ok(t.ttl)
            }
            None => Err(StoreError::LeaseNotFound),
        }
    }

    /// (remaining seconds, granted TTL); remaining is -1 for an unknown lease (etcd's answer).
    pub fn time_to_live(&self, id: i64) -> (i64, i64) {
        let g = self.state.lock();
        match g.timers.get(&id) {
            Some(t) => {
                let left = t.expiry.saturating_duration_since(Instant::now());
                (left.as_millis().div_ceil(1000) as i64, t.ttl)
            }
            None => (-1, 0),
        }
    }

    fn on_notice(&self, n: &LeaseNotice) {
        let mut g = self.state.lock();
        match n {
            LeaseNotice::Granted { id, ttl } => {
                if g.leading {
                    g.timers.insert(
                        *id,
                        Timer {
                            ttl: *ttl,
                            expiry: Instant::now() + Duration::from_secs(*ttl as u64),
                        },
                    );
                }
            }
            LeaseNotice::Revoked { id } => {
                g.timers.remove(id);
            }
            LeaseNotice::Reloaded => {}
        }
    }

    /// Takes the timers over from the lease table of `node`'s default shard (see
    /// [`Lessor::take_over`]).
    fn load(
        &self,
        node: &StoreNode,
        notices: &mut mpsc::UnboundedReceiver<LeaseNotice>,
    ) -> Result<()> {
        self.take_over(notices, || {
            crate::mvcc::lease_table(&node.engine, Keys::new(DEFAULT_SHARD))
        })
    }

    /// Starts leading: every lease of the table `read` returns gets a timer at its
    /// checkpointed remaining TTL.
    ///
    /// Notices still queued are dropped first. Each was sent after its entry's write, so
    /// the table read afterwards already holds what it says; acted on after the take-over, an
    /// old grant (of an entry a lagging member applies only now, just elected, e.g. after a
    /// crash lost its unflushed state) would restart its lease at the full TTL, which is
    /// what checkpoints exist to prevent (etcd issue 9888).
    fn take_over(
        &self,
        notices: &mut mpsc::UnboundedReceiver<LeaseNotice>,
        read: impl FnOnce() -> Result<Vec<crate::mvcc::LeaseRecord>>,
    ) -> Result<()> {
        while notices.try_recv().is_ok() {}
        let leases = read()?;
        let now = Instant::now();
        let mut g = self.state.lock();
        g.leading = true;
        g.timers = leases
            .into_iter()
            .map(|l| {
                let left = if l.remaining_ttl > 0 {
                    l.remaining_ttl
                } else {
                    l.ttl
                };
                (
                    l.id,
                    Timer {
                        ttl: l.ttl,
                        expiry: now + Duration::from_secs(left as u64),
                    },
                )
            })
            .collect();
        tracing::info!(leases = g.timers.len(), "lessor: took over lease timers");
        Ok(())
    }

    fn demote(&self) {
        let mut g = self.state.lock();
        g.leading = false;
        g.timers.clear();
    }

    /// Leases past their deadline. Each is given a short grace so that its revoke, now in
    /// flight, is not proposed again on every tick (a lost proposal is retried after it).
    fn expired(&self) -> Vec<i64> {
        let now = Instant::now();
        let mut g = self.state.lock();
        let mut out = Vec::new();
        for (id, t) in g.timers.iter_mut() {
            if t.expiry <= now {
                t.expiry = now + REVOKE_RETRY;
                out.push(*id);
            }
        }
        out
    }

    fn remaining(&self) -> Vec<(i64, i64)> {
        let now = Instant::now();
        let g = self.state.lock();
        g.timers
            .iter()
            .map(|(id, t)| {
                let left = t
                    .expiry
                    .saturating_duration_since(now)
                    .as_millis()
                    .div_ceil(1000);
                (*id, (left as i64).max(1))
            })
            .collect()
    }
}

/// Runs the lessor of `node` until shutdown.
pub async fn run_lessor(node: Arc<StoreNode>, mut notices: mpsc::UnboundedReceiver<LeaseNotice>) {
    let lessor = node.lessor.clone();
    let mut metrics = node.shard(DEFAULT_SHARD).raft.metrics();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_checkpoint = Instant::now();
    let mut leading = false;
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            n = notices.recv() => match n {
                Some(LeaseNotice::Reloaded) if leading => {
                    if let Err(e) = lessor.load(&node, &mut notices) {
                        tracing::warn!(error = %e, "lessor reload");
                    }
                }
                Some(n) => lessor.on_notice(&n),
                None => return,
            },
            r = metrics.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        let is_leader = node.is_leader(DEFAULT_SHARD);
        if is_leader && !leading {
            // Apply everything of earlier terms before reading the lease table.
            if node.read_barrier(DEFAULT_SHARD).await.is_ok() {
                match lessor.load(&node, &mut notices) {
                    Ok(()) => {
                        leading = true;
                        last_checkpoint = Instant::now();
                    }
                    Err(e) => tracing::warn!(error = %e, "lessor load"),
                }
            }
        } else if !is_leader && leading {
            lessor.demote();
            leading = false;
        }
        if !leading {
            continue;
        }
        for id in lessor.expired() {
            let n = node.clone();
            tokio::spawn(async move {
                match n.propose_all(Command::LeaseRevoke { id }).await {
                    Ok(_) => tracing::debug!(lease = id, "lease expired and revoked"),
                    Err(StoreError::LeaseNotFound) => {}
                    Err(e) => tracing::warn!(lease = id, error = %e, "revoking expired lease"),
                }
            });
        }
        if last_checkpoint.elapsed() >= node.cfg.lease_checkpoint_interval {
            last_checkpoint = Instant::now();
            let leases = lessor.remaining();
            if !leases.is_empty() {
                let n = node.clone();
                tokio::spawn(async move {
                    if let Err(e) = n
                        .propose(DEFAULT_SHARD, Command::LeaseCheckpoint { leases })
                        .await
                    {
                        tracing::debug!(error = %e, "lease checkpoint");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::LeaseRecord;

    /// Feeds the lessor what is queued, as `run_lessor` does between its other work.
    fn deliver(lessor: &Lessor, notices: &mut mpsc::UnboundedReceiver<LeaseNotice>) {
        while let Ok(n) = notices.try_recv() {
            lessor.on_notice(&n);
        }
    }

    /// Asserts lease `id` has a timer of `ttl` seconds with `left` seconds to go, rounded up
    /// (one less if this thread stalled for a second since the timer was set).
    fn assert_timer(lessor: &Lessor, id: i64, ttl: i64, left: i64) {
        let (now_left, now_ttl) = lessor.time_to_live(id);
        assert_eq!(now_ttl, ttl, "lease {id}");
        assert!(
            (left - 1..=left).contains(&now_left),
            "lease {id}: {now_left} s left, expected {left}"
        );
    }

    /// A member elected while it still had to apply a lease's grant (its unflushed state
    /// lost in a crash, say) reads the lease's checkpoint from the table; the grant's notice,
    /// queued before it took over, must not restart the lease at its full TTL.
    #[test]
    fn a_grant_applied_before_the_take_over_keeps_the_checkpointed_ttl() {
        let lessor = Lessor::new(1);
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send(LeaseNotice::Granted { id: 7, ttl: 8 }).unwrap();
        let table = vec![LeaseRecord {
            id: 7,
            ttl: 8,
            remaining_ttl: 2,
        }];
        lessor.take_over(&mut rx, || Ok(table)).unwrap();
        deliver(&lessor, &mut rx);
        assert_timer(&lessor, 7, 8, 2);

        // A grant applied once it leads (one of its own) starts a timer at its full TTL.
        tx.send(LeaseNotice::Granted { id: 9, ttl: 5 }).unwrap();
        deliver(&lessor, &mut rx);
        assert_timer(&lessor, 9, 5, 5);
        // A revoke applied once it leads removes the timer.
        tx.send(LeaseNotice::Revoked { id: 7 }).unwrap();
        deliver(&lessor, &mut rx);
        assert_eq!(lessor.time_to_live(7), (-1, 0));
    }
}
