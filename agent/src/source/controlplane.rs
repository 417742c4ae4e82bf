//! Services and EndpointSlices from the control plane's `WatchServices` stream, as a
//! [`ServiceSource`] like the manifest directory.
//!
//! A background task keeps the watched objects in a map. A relist (the first list, or after
//! the server no longer keeps the resume version) fills a fresh map that replaces the old
//! one only once complete, so the proxy never sees a half-listed cluster and a broken
//! connection never empties its state: the last good snapshot stays in force.
//!
//! Each change also wakes the proxy loop ([`ControlPlaneSource::changed`]), so a change is
//! programmed as soon as it arrives rather than at the loop's next tick: that wait would
//! otherwise be most of the network-programming latency.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use skiff_controlplane::agentapi::proto::EventType;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{ServiceSource, Snapshot, SourceError};
use crate::cpclient::{ConnectOptions, CpClient, ResumingWatch, WatchItem, WatchObject};

/// Pause before listing again after an error that resuming cannot fix.
const RELIST_AFTER: Duration = Duration::from_secs(5);

/// The objects by namespace/name.
#[derive(Debug, Default, Clone)]
struct Objects {
    services: BTreeMap<String, Service>,
    slices: BTreeMap<String, EndpointSlice>,
}

fn key(m: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        m.namespace.as_deref().unwrap_or(""),
        m.name.as_deref().unwrap_or("")
    )
}

impl Objects {
    fn apply(&mut self, kind: EventType, obj: WatchObject) {
        let deleted = kind == EventType::Deleted;
        match obj {
            WatchObject::Service(s) => {
                let k = key(&s.metadata);
                if deleted {
                    self.services.remove(&k);
                } else {
                    self.services.insert(k, *s);
                }
            }
            WatchObject::EndpointSlice(s) => {
                let k = key(&s.metadata);
                if deleted {
                    self.slices.remove(&k);
                } else {
                    self.slices.insert(k, *s);
                }
            }
            WatchObject::Pod(_) => {}
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            services: self.services.values().cloned().collect(),
            slices: self.slices.values().cloned().collect(),
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    /// The synced state; `None` until the first list is complete.
    current: Option<Objects>,
    /// `current` changed since the last poll.
    dirty: bool,
    /// An error not yet reported.
    error: Option<String>,
}

/// The control-plane source; dropping it stops the watch.
pub struct ControlPlaneSource {
    addr: String,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Drop for ControlPlaneSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ControlPlaneSource {
    /// Start watching the control plane at `addr` (`host:port`); must be called inside a
    /// tokio runtime. Connection failures are retried forever and reported through
    /// [`ServiceSource::poll`].
    pub fn start(addr: &str) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(run(addr.to_string(), shared.clone(), wake.clone()));
        Self {
            addr: addr.to_string(),
            shared,
            wake,
            task,
        }
    }

    /// Notified whenever [`ServiceSource::poll`] has something new (a change, a completed
    /// list, an error). Notifications coalesce: one wake-up may stand for many changes.
    pub fn changed(&self) -> Arc<Notify> {
        self.wake.clone()
    }
}

fn report(shared: &Mutex<Shared>, wake: &Notify, msg: String) {
    shared.lock().expect("source lock").error = Some(msg);
    wake.notify_one();
}

async fn run(addr: String, shared: Arc<Mutex<Shared>>, wake: Arc<Notify>) {
    let opts = ConnectOptions {
        deadline: Duration::from_secs(100 * 365 * 86_400),
        ..Default::default()
    };
    let client = match CpClient::connect(&addr, opts).await {
        Ok(c) => c,
        Err(e) => return report(&shared, &wake, e.to_string()),
    };
    let mut watch: ResumingWatch = client.watch_services();
    // Objects of a list in progress.
    let mut listing: Option<Objects> = None;
    loop {
        let item = match watch.next().await {
            Ok(i) => i,
            Err(e) => {
                // Not fixed by resuming (a rejected request, an undecodable object):
                // report it, keep the last good state, and list again after a pause.
                report(
                    &shared,
                    &wake,
                    format!("{e}; listing again in {RELIST_AFTER:?}"),
                );
                tokio::time::sleep(RELIST_AFTER).await;
                watch = client.watch_services();
                listing = None;
                continue;
            }
        };
        match item {
            WatchItem::Relist => listing = Some(Objects::default()),
            WatchItem::Synced { resource_version } => {
                if let Some(objs) = listing.take() {
                    log::info!(
                        "control plane: {} services, {} endpointslices at resourceVersion {resource_version}",
                        objs.services.len(),
                        objs.slices.len()
                    );
                    let mut s = shared.lock().expect("source lock");
                    s.current = Some(objs);
                    s.dirty = true;
                    wake.notify_one();
                }
            }
            WatchItem::Event { kind, object, .. } => match listing.as_mut() {
                Some(l) => l.apply(kind, object),
                None => {
                    let mut s = shared.lock().expect("source lock");
                    if let Some(cur) = s.current.as_mut() {
                        cur.apply(kind, object);
                        s.dirty = true;
                        wake.notify_one();
                    }
                }
            },
        }
    }
}

impl ServiceSource for ControlPlaneSource {
    fn poll(&mut self) -> Result<Option<Snapshot>, SourceError> {
        let mut s = self.shared.lock().expect("source lock");
        if let Some(message) = s.error.take() {
            return Err(SourceError::ControlPlane {
                addr: self.addr.clone(),
                message,
            });
        }
        if !s.dirty {
            return Ok(None);
        }
        s.dirty = false;
        Ok(s.current.as_ref().map(Objects::snapshot))
    }
}
