//! Periodic auto-compaction, per shard: etcd's `--auto-compaction-mode=periodic`.
//!
//! ```text
//! every retention/10: on each shard this node leads, sample (now, shard revision)
//!   ─► the newest sample at least `retention` old is the target
//!   ─► propose Compact(target) through that shard's Raft log (if above its compacted revision)
//! ```
//!
//! Kubernetes' apiserver compacts etcd itself every five minutes with one global revision; with
//! one revision sequence per shard a single number cannot be right for every shard, so the
//! store keeps the history of each shard for `retention` and compacts it on its own. A leader
//! that has just taken over starts sampling afresh, so a leadership change delays compaction by
//! at most one retention period and never compacts early.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;

use crate::node::StoreNode;
use crate::proto::etcdserverpb::CompactionRequest;
use crate::types::Command;

/// Shortest sampling interval.
const MIN_SAMPLE: Duration = Duration::from_millis(100);

/// Samples of one shard: (when, revision), oldest first.
#[derive(Default)]
struct Samples(VecDeque<(Instant, i64)>);

impl Samples {
    /// Records `rev` at `now` and returns the compaction target, if one is due: the newest
    /// sample that is at least `retention` old (older ones are dropped).
    fn record(&mut self, now: Instant, rev: i64, retention: Duration) -> Option<i64> {
        self.0.push_back((now, rev));
        let mut target = None;
        while let Some(&(at, r)) = self.0.front() {
            if now.duration_since(at) < retention {
                break;
            }
            target = Some(r);
            self.0.pop_front();
        }
        target
    }
}

/// Runs until the node shuts down; does nothing when `auto_compaction_retention` is zero.
pub(crate) async fn run(node: Arc<StoreNode>) {
    let retention = node.cfg.auto_compaction_retention;
    if retention.is_zero() {
        return;
    }
    let every = (retention / 10).max(MIN_SAMPLE);
    let mut samples: Vec<Samples> = node.shards.iter().map(|_| Samples::default()).collect();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = node.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (i, shard) in node.shards.iter().enumerate() {
            if !node.is_leader(shard.id) {
                samples[i] = Samples::default();
                continue;
            }
            let Some(target) = samples[i].record(Instant::now(), shard.hub.revision(), retention)
            else {
                continue;
            };
            let compacted = match node.reader(shard.id).compact_revision() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(shard = shard.id, error = %e, "auto-compaction: cannot read the compacted revision");
                    continue;
                }
            };
            if target <= compacted {
                continue;
            }
            let req = CompactionRequest {
                revision: target,
                physical: false,
            };
            match node
                .propose(shard.id, Command::Compact(req.encode_to_vec().into()))
                .await
            {
                Ok(_) => {
                    metrics::counter!("navarch_store_auto_compactions_total").increment(1);
                    tracing::info!(
                        shard = shard.id,
                        revision = target,
                        ?retention,
                        "auto-compacted"
                    );
                }
                Err(e) => {
                    tracing::warn!(shard = shard.id, revision = target, error = %e, "auto-compaction failed; retrying next period");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_the_newest_sample_at_least_retention_old() {
        let t0 = Instant::now();
        let r = Duration::from_secs(10);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut s = Samples::default();
        assert_eq!(s.record(at(0), 5, r), None);
        assert_eq!(s.record(at(5), 8, r), None);
        assert_eq!(s.record(at(9), 9, r), None);
        // At t=10 the sample from t=0 is due; at t=16 both t=5 and t=0... only t=5 remains.
        assert_eq!(s.record(at(10), 12, r), Some(5));
        assert_eq!(s.record(at(16), 20, r), Some(8));
        assert_eq!(s.record(at(17), 21, r), None);
        // After a long pause every old sample is due at once: the newest of them wins.
        assert_eq!(s.record(at(60), 30, r), Some(21));
    }
}
