//! A resumable watch: [`Watcher<K>`] reads the apiserver's JSON-lines watch stream and, when
//! the stream ends or breaks, reopens it (on another endpoint when this one failed) from the
//! last resourceVersion it delivered, so events are neither missed nor repeated.
//!
//! ```text
//! open(watch=1&allowWatchBookmarks=true&resourceVersion=last) ─▶ frames ─▶ lines ─▶ WatchEvent
//!        ▲                                                         │
//!        └──── EOF (server timeout) / transport error ◀────────────┘   ERROR 410 ─▶ Error::Expired
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{join_query, ListParams};
use crate::{Client, Error, Result};

/// One event of a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<K> {
    /// An object was created (or existed when the watch started from "now").
    Added(K),
    /// An object changed.
    Modified(K),
    /// An object was deleted (its last state).
    Deleted(K),
    /// The server's progress marker: every event up to this resourceVersion was sent.
    Bookmark {
        /// The resourceVersion reached.
        resource_version: String,
    },
}

/// A watch that survives the loss of its apiserver replica (see the module docs).
pub struct Watcher<K> {
    client: Client,
    path: String,
    params: ListParams,
    /// The resourceVersion of the last delivered event (or bookmark).
    resource_version: String,
    body: Option<(Incoming, usize)>,
    buf: Vec<u8>,
    ready: VecDeque<Value>,
    /// Since when reopening has failed without delivering an event.
    failing_since: Option<Instant>,
    done: bool,
    /// Streams opened so far.
    opened: u64,
    _kind: std::marker::PhantomData<fn() -> K>,
}

impl<K: DeserializeOwned> Watcher<K> {
    pub(crate) fn new(
        client: Client,
        path: String,
        params: ListParams,
        resource_version: String,
    ) -> Self {
        Self {
            client,
            path,
            params,
            resource_version,
            body: None,
            buf: Vec::new(),
            ready: VecDeque::new(),
            failing_since: None,
            done: false,
            opened: 0,
            _kind: std::marker::PhantomData,
        }
    }

    /// The resourceVersion the watch would resume from.
    pub fn resource_version(&self) -> &str {
        &self.resource_version
    }

    /// How many times the stream was reopened.
    pub fn reconnects(&self) -> u64 {
        self.opened.saturating_sub(1)
    }

    fn watch_path(&self) -> String {
        let mut pairs: Vec<(&str, String)> = vec![
            ("watch", "1".into()),
            ("allowWatchBookmarks", "true".into()),
        ];
        if !self.resource_version.is_empty() {
            pairs.push(("resourceVersion", self.resource_version.clone()));
        }
        // The remaining list options (selectors, timeout) follow.
        let rest = self.params.query();
        let mut q = join_query(&pairs);
        if let Some(r) = rest.strip_prefix('?') {
            q.push('&');
            q.push_str(r);
        }
        format!("{}{q}", self.path)
    }

    /// The next event; `None` once the watch has ended for good (after an error was returned).
    pub async fn next(&mut self) -> Option<Result<WatchEvent<K>>> {
        if self.done {
            return None;
        }
        loop {
            if let Some(line) = self.ready.pop_front() {
                match self.decode(line) {
                    Ok(Some(ev)) => return Some(Ok(ev)),
                    Ok(None) => continue,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            }
            if let Err(e) = self.fill().await {
                self.done = true;
                return Some(Err(e));
            }
        }
    }

    /// Reads from the stream until at least one complete line is queued, reopening the
    /// stream as needed.
    async fn fill(&mut self) -> Result<()> {
        loop {
            let Some((body, endpoint)) = self.body.as_mut() else {
                self.open().await?;
                continue;
            };
            let endpoint = *endpoint;
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                        self.split_lines()?;
                        if !self.ready.is_empty() {
                            return Ok(());
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "watch stream broke; resuming");
                    self.client.endpoint_failed(endpoint, "watch stream broke");
                    self.reset();
                }
                None => {
                    // The server ended the watch (its timeout, or it is shutting down).
                    self.reset();
                }
            }
        }
    }

    fn reset(&mut self) {
        self.body = None;
        // A partial line belongs to the broken stream; the resumed one starts afresh.
        self.buf.clear();
    }

    async fn open(&mut self) -> Result<()> {
        let retry_for = self.client.config().watch_retry_for;
        let path = self.watch_path();
        loop {
            match self.client.open_stream(&path).await {
                Ok(stream) => {
                    self.opened += 1;
                    self.body = Some(stream);
                    return Ok(());
                }
                Err(e @ (Error::Api { .. } | Error::Expired(_))) => {
                    if e.code() == Some(410) {
                        return Err(Error::Expired(e.to_string()));
                    }
                    return Err(e);
                }
                Err(e) => {
                    let since = *self.failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= retry_for {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn split_lines(&mut self) -> Result<()> {
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_slice(line)
                .map_err(|e| Error::Decode(format!("watch event: {e}")))?;
            self.ready.push_back(v);
        }
        Ok(())
    }

    fn decode(&mut self, mut v: Value) -> Result<Option<WatchEvent<K>>> {
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let object = v.get_mut("object").map(Value::take).unwrap_or_default();
        if kind == "ERROR" {
            let code = object.get("code").and_then(Value::as_u64).unwrap_or(0);
            let message = object
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("watch error")
                .to_string();
            if code == 410 {
                return Err(Error::Expired(message));
            }
            return Err(Error::Api {
                code: code as u16,
                reason: object
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("Unknown")
                    .to_string(),
                message,
            });
        }
        let rv = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(rv) = &rv {
            self.resource_version.clone_from(rv);
        }
        self.failing_since = None;
        if kind == "BOOKMARK" {
            return Ok(Some(WatchEvent::Bookmark {
                resource_version: rv.unwrap_or_default(),
            }));
        }
        let obj: K = serde_json::from_value(object)
            .map_err(|e| Error::Decode(format!("watch {kind} object: {e}")))?;
        Ok(Some(match kind.as_str() {
            "ADDED" => WatchEvent::Added(obj),
            "MODIFIED" => WatchEvent::Modified(obj),
            "DELETED" => WatchEvent::Deleted(obj),
            other => return Err(Error::Decode(format!("unknown watch event type {other:?}"))),
        }))
    }
}
