//! Watches: store events turned into Kubernetes watch events, filtered by selectors (an
//! object that starts or stops matching is ADDED or DELETED), with bookmarks and a timeout.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::{sleep_until, Instant};

use super::{prefix, ListOptions, Objects};
use crate::api::error::ApiError;
use crate::api::registry::ResourceInfo;
use crate::api::selector::{FieldSelector, LabelSelector};
use crate::{EventKind, Watcher};

/// How often a watch with `allowWatchBookmarks` gets a BOOKMARK.
pub const BOOKMARK_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `None`, `""` or `"0"`: start with ADDED events for the current objects.
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub timeout: Duration,
}

/// One watch event: `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    pub kind: &'static str,
    pub object: Value,
}

/// A running watch; [`WatchStream::next`] until `None`.
pub struct WatchStream {
    info: &'static ResourceInfo,
    opts: WatchOptions,
    queued: VecDeque<WatchEvent>,
    watcher: Option<Watcher>,
    last_revision: u64,
    deadline: Instant,
    next_bookmark: Instant,
}

impl WatchStream {
    fn matches(&self, obj: &Value) -> bool {
        self.opts.labels.matches(obj) && self.opts.fields.matches(obj)
    }

    fn error(&mut self, e: ApiError) -> Option<WatchEvent> {
        self.watcher = None;
        Some(WatchEvent {
            kind: "ERROR",
            object: e.status(),
        })
    }

    /// The next event, or `None` when the watch ends (timeout, replica stopped, error sent).
    pub async fn next(&mut self) -> Option<WatchEvent> {
        loop {
            if let Some(ev) = self.queued.pop_front() {
                return Some(ev);
            }
            let watcher = self.watcher.as_mut()?;
            let (bookmarks, bookmark) = (self.opts.bookmarks, self.next_bookmark);
            let store_event = tokio::select! {
                ev = watcher.next() => ev,
                _ = sleep_until(self.deadline) => return None,
                _ = sleep_until(bookmark), if bookmarks => {
                    self.next_bookmark = Instant::now() + BOOKMARK_EVERY;
                    return Some(WatchEvent {
                        kind: "BOOKMARK",
                        object: json!({
                            "kind": self.info.kind,
                            "apiVersion": self.info.api_version(),
                            "metadata": {"resourceVersion": self.last_revision.to_string()},
                        }),
                    });
                }
            };
            let ev = match store_event {
                None => return None,
                Some(Err(e)) => return self.error(ApiError::from_store(e, self.info, "")),
                Some(Ok(ev)) => ev,
            };
            self.last_revision = ev.revision;
            let decode = |v: &str, rev| served_value(self.info, v, rev);
            let out = match ev.kind {
                EventKind::Added => {
                    let obj = decode(&ev.kv.value, ev.kv.mod_revision);
                    obj.filter(|o| self.matches(o)).map(|o| ("ADDED", o))
                }
                EventKind::Deleted => {
                    let obj = decode(&ev.kv.value, ev.revision);
                    obj.filter(|o| self.matches(o)).map(|o| ("DELETED", o))
                }
                EventKind::Modified => {
                    let new = decode(&ev.kv.value, ev.kv.mod_revision);
                    let was = ev
                        .prev
                        .as_ref()
                        .and_then(|p| decode(&p.value, p.mod_revision))
                        .is_some_and(|o| self.matches(&o));
                    new.and_then(|o| match (was, self.matches(&o)) {
                        (true, true) => Some(("MODIFIED", o)),
                        (false, true) => Some(("ADDED", o)),
                        (true, false) => Some(("DELETED", o)),
                        (false, false) => None,
                    })
                }
            };
            if let Some((kind, object)) = out {
                return Some(WatchEvent { kind, object });
            }
        }
    }
}

fn served_value(info: &ResourceInfo, value: &str, rev: u64) -> Option<Value> {
    match super::decode_versioned(info, value, rev) {
        Ok(v) => Some(v),
        Err(e) => {
            log::warn!("watch: undecodable stored {}: {e}", info.kind);
            None
        }
    }
}

impl Objects {
    /// Start a watch on `info` (in `ns`, or all namespaces).
    pub async fn watch(
        &self,
        info: &'static ResourceInfo,
        ns: Option<&str>,
        opts: WatchOptions,
    ) -> Result<WatchStream, ApiError> {
        let now = Instant::now();
        let mut stream = WatchStream {
            info,
            queued: VecDeque::new(),
            watcher: None,
            last_revision: 0,
            deadline: now + opts.timeout,
            next_bookmark: now + BOOKMARK_EVERY,
            opts,
        };
        let from = match stream.opts.resource_version.as_deref() {
            None | Some("") | Some("0") => {
                let list = ListOptions {
                    labels: stream.opts.labels.clone(),
                    fields: stream.opts.fields.clone(),
                    any_version: stream.opts.resource_version.as_deref() == Some("0"),
                    ..Default::default()
                };
                let listed = self.list(info, ns, &list).await?;
                for object in listed.items {
                    stream.queued.push_back(WatchEvent {
                        kind: "ADDED",
                        object,
                    });
                }
                listed.revision
            }
            Some(rv) => rv
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        };
        stream.last_revision = from;
        match self.cp.watch(&prefix(info, ns), from) {
            Ok(w) => stream.watcher = Some(w),
            Err(e) => {
                let ev = stream.error(ApiError::from_store(e, info, ""));
                stream.queued.extend(ev);
            }
        }
        Ok(stream)
    }
}
