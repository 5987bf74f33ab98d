//! etcd `Watch` service: one task per gRPC stream multiplexes its watchers.
//!
//! Each watcher belongs to the one shard that owns its range (a range spanning shards is
//! refused). The stream subscribes to the watch hub of every shard it has watchers in; the
//! subscriptions' channels are merged, and revisions are per shard.
//!
//! ```text
//! create(start_rev) ─► hub.add_watcher → R ─► replay [start_rev, R] from RocksDB
//!                                          └─► live revisions > R from the hub channel
//! ```
//! Events of one revision always travel in one response; revisions are delivered in order, once.
//! A progress notification with revision R is sent only after every event ≤ R of this stream has
//! been sent (the hub's ordering guarantee plus draining the channel first).

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::stream::SelectAll;
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::StoreError;
use crate::keys::KeyRange;
use crate::node::StoreNode;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::etcdserverpb::{
    watch_create_request::FilterType, WatchCreateRequest, WatchRequest, WatchResponse,
};
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::shard::{ShardId, DEFAULT_SHARD};
use crate::watch::RevisionEvents;

/// Events per replay response (a revision is never split, so a response may hold more).
const REPLAY_BATCH: usize = 1000;
/// etcd's id for responses not tied to one watcher (progress responses).
const NO_WATCH_ID: i64 = -1;

/// The Watch service of a store node.
pub struct WatchService {
    node: Arc<StoreNode>,
}

impl WatchService {
    /// Serves `node`.
    pub fn new(node: Arc<StoreNode>) -> Self {
        Self { node }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(256);
        let node = self.node.clone();
        tokio::spawn(async move {
            metrics::gauge!("navarch_store_watch_streams").increment(1.0);
            let mut s = StreamTask::new(node, tx);
            if let Err(e) = s.run(inbound).await {
                tracing::debug!(error = %e, "watch stream ended");
            }
            s.close();
            metrics::gauge!("navarch_store_watch_streams").decrement(1.0);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct Watcher {
    shard: ShardId,
    range: KeyRange,
    /// Revisions below this are not delivered (already replayed, or before the start).
    next_rev: i64,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
    sent_since_tick: bool,
}

#[derive(Debug, thiserror::Error)]
enum StreamEnd {
    #[error("client went away")]
    ClientGone,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("request stream: {0}")]
    Inbound(#[from] Status),
}

/// What the merged hub subscriptions yield.
enum Live {
    /// A revision of a shard.
    Rev(ShardId, RevisionEvents),
    /// The hub of the shard dropped subscription `sub` (or shut down).
    Ended(ShardId, u64),
}

/// One shard's subscription as a stream (`Sync`, so the stream task can be spawned).
type LiveStream = Pin<Box<dyn Stream<Item = Live> + Send + Sync>>;

/// One shard's hub subscription of this stream.
struct ShardSub {
    id: u64,
    lagged: Arc<std::sync::atomic::AtomicBool>,
}

struct StreamTask {
    node: Arc<StoreNode>,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
    subs: HashMap<ShardId, ShardSub>,
    live: SelectAll<LiveStream>,
    watchers: HashMap<i64, Watcher>,
    next_id: i64,
}

impl StreamTask {
    fn new(node: Arc<StoreNode>, out: mpsc::Sender<Result<WatchResponse, Status>>) -> Self {
        Self {
            node,
            out,
            subs: HashMap::new(),
            live: SelectAll::new(),
            watchers: HashMap::new(),
            next_id: 0,
        }
    }

    /// The stream's subscription to `shard`'s hub, subscribing on first use.
    fn subscribe(&mut self, shard: ShardId) -> u64 {
        if let Some(s) = self.subs.get(&shard) {
            return s.id;
        }
        let sub = self.node.shard(shard).hub.subscribe();
        let id = sub.id;
        let revs = ReceiverStream::new(sub.rx)
            .map(move |r| Live::Rev(shard, r))
            .chain(futures::stream::once(async move { Live::Ended(shard, id) }));
        self.live.push(Box::pin(revs));
        self.subs.insert(
            shard,
            ShardSub {
                id,
                lagged: sub.lagged,
            },
        );
        id
    }

    fn revision(&self, shard: ShardId) -> i64 {
        self.node.shard(shard).hub.revision()
    }

    fn close(&self) {
        for (shard, sub) in &self.subs {
            self.node.shard(*shard).hub.unsubscribe(sub.id);
        }
    }

    async fn send(&self, shard: ShardId, mut r: WatchResponse, rev: i64) -> Result<(), StreamEnd> {
        r.header = Some(self.node.header(shard, rev));
        self.out
            .send(Ok(r))
            .await
            .map_err(|_| StreamEnd::ClientGone)
    }

    async fn run(&mut self, mut inbound: Streaming<WatchRequest>) -> Result<(), StreamEnd> {
        let interval = self.node.cfg.watch_progress_interval;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tokio::select! {
                biased;
                _ = self.node.shutdown.cancelled() => return Ok(()),
                Some(msg) = self.live.next(), if !self.live.is_empty() => match msg {
                    Live::Rev(shard, first) => self.deliver_live(shard, first).await?,
                    Live::Ended(shard, sub) => self.on_lagged(shard, sub).await?,
                },
                req = inbound.message() => match req? {
                    Some(r) => self.on_request(r).await?,
                    None => return Ok(()),
                },
                _ = tick.tick() => self.on_tick().await?,
            }
        }
    }

    async fn on_request(&mut self, req: WatchRequest) -> Result<(), StreamEnd> {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(RequestUnion::CancelRequest(c)) => {
                if let Some(w) = self.watchers.remove(&c.watch_id) {
                    if let Some(sub) = self.subs.get(&w.shard) {
                        self.node
                            .shard(w.shard)
                            .hub
                            .remove_watcher(sub.id, c.watch_id);
                    }
                    let rev = self.revision(w.shard);
                    self.send(
                        w.shard,
                        WatchResponse {
                            watch_id: c.watch_id,
                            canceled: true,
                            ..Default::default()
                        },
                        rev,
                    )
                    .await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => self.on_progress_request().await,
            None => Ok(()),
        }
    }

    /// etcd answers a progress request with one response (watch id -1) at the current
    /// revision. Revisions are per shard, so that holds when every watcher of the stream is in
    /// one shard; otherwise each watcher gets its own progress response at its shard's revision.
    async fn on_progress_request(&mut self) -> Result<(), StreamEnd> {
        // The revisions captured before draining: every event up to them has now been sent.
        // Reading the hub again here would claim revisions whose events are still queued.
        let revs = self.flush_to_now().await?;
        let synced = |shard: ShardId| revs.get(&shard).copied().unwrap_or(0);
        let shards: std::collections::BTreeSet<ShardId> =
            self.watchers.values().map(|w| w.shard).collect();
        if shards.len() <= 1 {
            let shard = shards.into_iter().next().unwrap_or(DEFAULT_SHARD);
            let rev = synced(shard);
            return self
                .send(
                    shard,
                    WatchResponse {
                        watch_id: NO_WATCH_ID,
                        ..Default::default()
                    },
                    rev,
                )
                .await;
        }
        let targets: Vec<(i64, ShardId)> =
            self.watchers.iter().map(|(id, w)| (*id, w.shard)).collect();
        for (id, shard) in targets {
            let rev = synced(shard);
            self.send(
                shard,
                WatchResponse {
                    watch_id: id,
                    ..Default::default()
                },
                rev,
            )
            .await?;
        }
        Ok(())
    }

    async fn create(&mut self, c: WatchCreateRequest) -> Result<(), StreamEnd> {
        let cur = self.revision(DEFAULT_SHARD);
        let reject = |watch_id: i64, reason: String| WatchResponse {
            watch_id,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        };
        if c.key.is_empty() && c.range_end.is_empty() {
            return self
                .send(
                    DEFAULT_SHARD,
                    reject(-1, StoreError::EmptyKey.to_string()),
                    cur,
                )
                .await;
        }
        let range = KeyRange::new(&c.key, &c.range_end);
        if range.is_inverted() {
            return self
                .send(
                    DEFAULT_SHARD,
                    reject(-1, StoreError::InvertedRange.to_string()),
                    cur,
                )
                .await;
        }
        let shard = match self.node.route(&c.key, &c.range_end) {
            Ok(s) => s,
            Err(e) => {
                return self
                    .send(DEFAULT_SHARD, reject(-1, e.to_string()), cur)
                    .await
            }
        };
        let cur = self.revision(shard);
        let id = if c.watch_id != 0 {
            if self.watchers.contains_key(&c.watch_id) {
                return self
                    .send(
                        shard,
                        reject(
                            c.watch_id,
                            "mvcc: duplicate watch ID provided on the WatchStream".into(),
                        ),
                        cur,
                    )
                    .await;
            }
            c.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id
        };
        let compact = self.node.reader(shard).compact_revision()?;
        if c.start_revision > 0 && c.start_revision < compact {
            self.send(
                shard,
                WatchResponse {
                    watch_id: id,
                    created: true,
                    ..Default::default()
                },
                cur,
            )
            .await?;
            return self
                .send(
                    shard,
                    WatchResponse {
                        watch_id: id,
                        canceled: true,
                        compact_revision: compact,
                        cancel_reason: StoreError::Compacted {
                            compact_revision: compact,
                        }
                        .to_string(),
                        ..Default::default()
                    },
                    cur,
                )
                .await;
        }
        let sub = self.subscribe(shard);
        let Some(upto) = self
            .node
            .shard(shard)
            .hub
            .add_watcher(sub, id, range.clone())
        else {
            // The subscription just lagged; it is renewed on the next loop turn.
            return self
                .send(
                    shard,
                    reject(id, "watch stream is resubscribing; retry".into()),
                    cur,
                )
                .await;
        };
        let filters: Vec<_> = c
            .filters
            .iter()
            .filter_map(|f| FilterType::try_from(*f).ok())
            .collect();
        let mut w = Watcher {
            shard,
            range,
            next_rev: upto + 1,
            prev_kv: c.prev_kv,
            no_put: filters.contains(&FilterType::Noput),
            no_delete: filters.contains(&FilterType::Nodelete),
            progress_notify: c.progress_notify,
            sent_since_tick: false,
        };
        self.send(
            shard,
            WatchResponse {
                watch_id: id,
                created: true,
                ..Default::default()
            },
            upto,
        )
        .await?;
        if c.start_revision > 0 && c.start_revision <= upto {
            self.replay(id, &w, c.start_revision, upto).await?;
        }
        if c.start_revision > upto {
            w.next_rev = c.start_revision;
        }
        self.watchers.insert(id, w);
        metrics::counter!("navarch_store_watchers_created_total").increment(1);
        Ok(())
    }

    /// Sends the history `[from, to]` of a new watcher from storage.
    async fn replay(&self, id: i64, w: &Watcher, from: i64, to: i64) -> Result<(), StreamEnd> {
        let node = self.node.clone();
        let range = w.range.clone();
        let want_prev = w.prev_kv;
        let shard = w.shard;
        let revs = tokio::task::spawn_blocking(
            move || -> Result<BTreeMap<i64, Vec<Event>>, StoreError> {
                let reader = node.reader(shard);
                let mut revs: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
                reader.scan_changes(from, to, |rev, _sub, key| {
                    if !range.contains(&key) {
                        return Ok(true);
                    }
                    let kv = reader.version_at(&key, rev)?;
                    let (ty, kv) = match kv {
                        Some(kv) if kv.version != 0 => (EventType::Put, kv),
                        _ => (
                            EventType::Delete,
                            KeyValue {
                                key: key.clone(),
                                mod_revision: rev,
                                ..Default::default()
                            },
                        ),
                    };
                    let prev_kv = if want_prev {
                        reader.version_before(&key, rev)?
                    } else {
                        None
                    };
                    revs.entry(rev).or_default().push(Event {
                        r#type: ty as i32,
                        kv: Some(kv),
                        prev_kv,
                    });
                    Ok(true)
                })?;
                Ok(revs)
            },
        )
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))??;
        let mut batch = Vec::new();
        let mut last = 0;
        for (rev, events) in revs {
            let events: Vec<Event> = events.into_iter().filter_map(|e| w.shape(e)).collect();
            if events.is_empty() {
                continue;
            }
            batch.extend(events);
            last = rev;
            if batch.len() >= REPLAY_BATCH {
                self.send_events(shard, id, std::mem::take(&mut batch), last)
                    .await?;
            }
        }
        if !batch.is_empty() {
            self.send_events(shard, id, batch, last).await?;
        }
        Ok(())
    }

    async fn send_events(
        &self,
        shard: ShardId,
        id: i64,
        events: Vec<Event>,
        rev: i64,
    ) -> Result<(), StreamEnd> {
        metrics::counter!("navarch_store_watch_events_sent_total").increment(events.len() as u64);
        self.send(
            shard,
            WatchResponse {
                watch_id: id,
                events,
                ..Default::default()
            },
            rev,
        )
        .await
    }

    /// Delivers `first` and whatever else is queued, one response per watcher.
    async fn deliver_live(
        &mut self,
        shard: ShardId,
        first: RevisionEvents,
    ) -> Result<(), StreamEnd> {
        let mut revs = vec![(shard, first)];
        let mut ended = Vec::new();
        while revs.len() < 64 {
            match self.live.next().now_or_never() {
                Some(Some(Live::Rev(s, r))) => revs.push((s, r)),
                Some(Some(Live::Ended(s, sub))) => {
                    ended.push((s, sub));
                    break;
                }
                _ => break,
            }
        }
        self.deliver(revs).await?;
        for (s, sub) in ended {
            self.on_lagged(s, sub).await?;
        }
        Ok(())
    }

    async fn deliver(&mut self, revs: Vec<(ShardId, RevisionEvents)>) -> Result<(), StreamEnd> {
        let mut out: BTreeMap<i64, (ShardId, Vec<Event>, i64)> = BTreeMap::new();
        for (shard, r) in &revs {
            for (id, w) in &self.watchers {
                if w.shard != *shard || r.rev < w.next_rev {
                    continue;
                }
                let evs: Vec<Event> = r
                    .events
                    .iter()
                    .filter(|e| e.kv.as_ref().is_some_and(|kv| w.range.contains(&kv.key)))
                    .filter_map(|e| w.shape(e.clone()))
                    .collect();
                if !evs.is_empty() {
                    let slot = out.entry(*id).or_insert((*shard, Vec::new(), 0));
                    slot.1.extend(evs);
                    slot.2 = r.rev;
                }
            }
        }
        for (id, (shard, events, rev)) in out {
            if let Some(w) = self.watchers.get_mut(&id) {
                w.sent_since_tick = true;
                w.next_rev = rev + 1;
            }
            self.send_events(shard, id, events, rev).await?;
        }
        Ok(())
    }

    /// Delivers every queued revision; returns each shard's revision R (read before draining)
    /// such that all of the shard's events ≤ R are sent.
    async fn flush_to_now(&mut self) -> Result<HashMap<ShardId, i64>, StreamEnd> {
        let revs_now: HashMap<ShardId, i64> = self
            .node
            .shards
            .iter()
            .map(|s| (s.id, s.hub.revision()))
            .collect();
        let mut revs = Vec::new();
        let mut ended = Vec::new();
        while let Some(Some(item)) = self.live.next().now_or_never() {
            match item {
                Live::Rev(s, r) => revs.push((s, r)),
                Live::Ended(s, sub) => ended.push((s, sub)),
            }
        }
        if !revs.is_empty() {
            self.deliver(revs).await?;
        }
        for (s, sub) in ended {
            self.on_lagged(s, sub).await?;
        }
        let lagged: Vec<(ShardId, u64)> = self
            .subs
            .iter()
            .filter(|(_, s)| s.lagged.load(Ordering::SeqCst))
            .map(|(shard, s)| (*shard, s.id))
            .collect();
        for (s, sub) in lagged {
            self.on_lagged(s, sub).await?;
        }
        Ok(revs_now)
    }

    async fn on_tick(&mut self) -> Result<(), StreamEnd> {
        if !self.watchers.values().any(|w| w.progress_notify) {
            return Ok(());
        }
        let revs = self.flush_to_now().await?;
        let due: Vec<(i64, ShardId)> = self
            .watchers
            .iter_mut()
            .filter(|(_, w)| w.progress_notify)
            .filter_map(|(id, w)| {
                (!std::mem::replace(&mut w.sent_since_tick, false)).then_some((*id, w.shard))
            })
            .collect();
        for (id, shard) in due {
            let rev = revs.get(&shard).copied().unwrap_or(0);
            self.send(
                shard,
                WatchResponse {
                    watch_id: id,
                    ..Default::default()
                },
                rev,
            )
            .await?;
        }
        Ok(())
    }

    /// The hub of `shard` dropped subscription `sub` (too slow, or storage replaced by a
    /// snapshot): cancel the shard's watchers, telling the client where to resume; the next
    /// watcher in that shard subscribes afresh. An end of a subscription already replaced is
    /// ignored; an end without lag means the node is stopping.
    async fn on_lagged(&mut self, shard: ShardId, sub: u64) -> Result<(), StreamEnd> {
        let Some(current) = self.subs.get(&shard) else {
            return Ok(());
        };
        if current.id != sub {
            return Ok(());
        }
        if !current.lagged.load(Ordering::SeqCst) {
            return Err(StreamEnd::Store(StoreError::Stopped));
        }
        self.subs.remove(&shard);
        let ids: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.shard == shard)
            .map(|(id, _)| *id)
            .collect();
        let watchers: Vec<(i64, Watcher)> = ids
            .into_iter()
            .filter_map(|id| self.watchers.remove(&id).map(|w| (id, w)))
            .collect();
        metrics::counter!("navarch_store_watchers_cancelled_slow_total")
            .increment(watchers.len() as u64);
        let rev = self.revision(shard);
        for (id, w) in watchers {
            self.send(
                shard,
                WatchResponse {
                    watch_id: id,
                    canceled: true,
                    cancel_reason: format!(
                        "watcher fell behind (slow consumer or store replaced); resume from revision {}",
                        w.next_rev
                    ),
                    ..Default::default()
                },
                rev,
            )
            .await?;
        }
        Ok(())
    }
}

impl Watcher {
    /// Applies the watcher's filters and `prev_kv` choice to an event.
    fn shape(&self, mut e: Event) -> Option<Event> {
        let is_put = e.r#type == EventType::Put as i32;
        if (is_put && self.no_put) || (!is_put && self.no_delete) {
            return None;
        }
        if !self.prev_kv {
            e.prev_kv = None;
        }
        Some(e)
    }
}
