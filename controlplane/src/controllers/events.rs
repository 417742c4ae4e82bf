//! Events the controllers record about the objects they manage (`Created pod: web-x`,
//! `Scaled up replica set web-5d4f from 0 to 3`), which `kubectl describe` lists. As
//! Kubernetes' event recorder does, recording never slows a reconcile: events go through a
//! bounded queue to one writer task, and when the API cannot keep up new ones are dropped
//! (and logged). The same event again on the same object within [`AGGREGATE`] raises the
//! `count` and `lastTimestamp` of the one already written (`kubectl describe` shows
//! `(x3 over 2m)`) instead of adding another. Events expire an hour after they were last
//! seen ([`TTL`], kube-apiserver's default `--event-ttl`), whoever wrote them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::owners;
use super::pods::time;
use crate::api::meta;
use crate::api::objects::{DeleteOptions, ListOptions, Objects, WriteOptions};
use crate::api::patch::PatchType;
use crate::api::registry::{self, ResourceInfo};
use crate::api::ApiError;

/// Events waiting to be written.
const QUEUE: usize = 4096;
/// How long a repeat counts into the event already written.
pub const AGGREGATE: Duration = Duration::from_secs(10 * 60);
/// Events remembered for aggregation at most (the oldest are forgotten first).
const REMEMBERED: usize = 4096;

/// Where events are recorded from; cheap to clone. [`Recorder::start`] makes one.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Pending>,
    /// Events dropped because the queue was full.
    dropped: Arc<AtomicU64>,
}

/// The object an event is about, as `involvedObject` names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Involved {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Involved {
    /// `obj` itself.
    pub fn of(obj: &Value) -> Self {
        let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("");
        Self {
            api_version: s("/apiVersion").to_string(),
            kind: s("/kind").to_string(),
            namespace: owners::namespace(obj).unwrap_or("").to_string(),
            name: meta::name(obj).to_string(),
            uid: s("/metadata/uid").to_string(),
        }
    }

    /// The controller of `child` (from its controller ownerReference), if it has one.
    pub fn controller_of(child: &Value, namespace: Option<&str>) -> Option<Self> {
        let oref = owners::controller_ref(child)?;
        let s = |k: &str| {
            oref.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Some(Self {
            api_version: s("apiVersion"),
            kind: s("kind"),
            namespace: namespace
                .or(owners::namespace(child))
                .unwrap_or("default")
                .to_string(),
            name: s("name"),
            uid: s("uid"),
        })
    }

    /// Where its events go: its namespace, `default` for a cluster-scoped object.
    pub fn event_namespace(&self) -> &str {
        if self.namespace.is_empty() {
            "default"
        } else {
            &self.namespace
        }
    }

    /// The component of Kubernetes' controller manager that records events about this
    /// kind (`source.component`).
    pub fn component(&self) -> &'static str {
        match self.kind.as_str() {
            "ReplicaSet" => "replicaset-controller",
            "ReplicationController" => "replication-controller",
            "Deployment" => "deployment-controller",
            "DaemonSet" => "daemonset-controller",
            "StatefulSet" => "statefulset-controller",
            "Job" => "job-controller",
            "CronJob" => "cronjob-controller",
            "HorizontalPodAutoscaler" => "horizontal-pod-autoscaler",
            "PersistentVolumeClaim" => "persistentvolume-controller",
            _ => "skiff-controller-manager",
        }
    }
}

/// The message of `SuccessfulCreate` on `on`, the controller of the new `child`, in the
/// words of its Kubernetes controller.
pub fn created(on: &Involved, child: &str) -> String {
    match on.kind.as_str() {
        "StatefulSet" => format!("create Pod {child} in StatefulSet {} successful", on.name),
        "CronJob" => format!("Created job {child}"),
        _ => format!("Created pod: {child}"),
    }
}

/// The message of `SuccessfulDelete` on `on`, the controller of the deleted `child`.
pub fn deleted(on: &Involved, child: &str) -> String {
    match on.kind.as_str() {
        "StatefulSet" => format!("delete Pod {child} in StatefulSet {} successful", on.name),
        "CronJob" => format!("Deleted job {child}"),
        _ => format!("Deleted pod: {child}"),
    }
}

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    Normal,
    Warning,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Normal => "Normal",
            Type::Warning => "Warning",
        }
    }
}

/// One event to write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Pending {
    on: Involved,
    type_: Type,
    reason: &'static str,
    message: String,
}

impl Recorder {
    /// Start the writer task on the current runtime; it ends once every recorder is
    /// dropped and the queue is written.
    pub fn start(objects: Objects) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let events = registry::by_kind("v1", "Event").expect("events are served");
        let task = tokio::spawn(write_all(objects, events, rx));
        let dropped = Arc::default();
        (Self { tx, dropped }, task)
    }

    pub fn normal(&self, on: Involved, reason: &'static str, message: impl Into<String>) {
        self.record(on, Type::Normal, reason, message.into());
    }

    pub fn warning(&self, on: Involved, reason: &'static str, message: impl Into<String>) {
        self.record(on, Type::Warning, reason, message.into());
    }

    fn record(&self, on: Involved, type_: Type, reason: &'static str, message: String) {
        let pending = Pending {
            on,
            type_,
            reason,
            message,
        };
        match self.tx.try_send(pending) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(p)) => {
                // One line per power of two of drops: a stalled store does not flood the log.
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    log::warn!(
                        "{n} events dropped (the queue is full), the latest: {} on {}/{}: {}",
                        p.reason,
                        p.on.namespace,
                        p.on.name,
                        p.message
                    );
                }
            }
            // The controllers are stopping.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Remembers, per object uid, the last thing said about it, so that a condition a
/// reconcile finds again on every resync is recorded once.
#[derive(Default)]
pub struct Once(Mutex<HashMap<String, String>>);

impl Once {
    /// Whether `what` is new for `uid` (then it is noted).
    pub fn first(&self, uid: &str, what: &str) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if last.get(uid).map(String::as_str) == Some(what) {
            return false;
        }
        if last.len() >= REMEMBERED {
            last.clear();
        }
        last.insert(uid.to_string(), what.to_string());
        true
    }
}

/// An event written: its name, count and when it was written first and last.
struct Written {
    name: String,
    count: u64,
    first: String,
    at: Instant,
}

async fn write_all(
    objects: Objects,
    events: &'static ResourceInfo,
    mut rx: mpsc::Receiver<Pending>,
) {
    let mut written: HashMap<Pending, Written> = HashMap::new();
    while let Some(p) = rx.recv().await {
        let now = Instant::now();
        let ns = p.on.event_namespace().to_string();
        let stamp = meta::now();
        let seen = written
            .remove(&p)
            .filter(|w| now.duration_since(w.at) < AGGREGATE);
        let count = seen.as_ref().map_or(1, |w| w.count + 1);
        if let Some(w) = &seen {
            let patch = json!({"count": count, "lastTimestamp": stamp});
            let merged = objects
                .patch(
                    events,
                    Some(&ns),
                    &w.name,
                    PatchType::Merge,
                    &patch,
                    None,
                    WriteOptions::default(),
                )
                .await;
            match merged {
                Ok(_) => {
                    let w = Written {
                        name: w.name.clone(),
                        count,
                        first: w.first.clone(),
                        at: now,
                    };
                    written.insert(p, w);
                    continue;
                }
                // Deleted meanwhile (expired, or by a user): written anew below, with the
                // count so far, as client-go's recorder does.
                Err(e) if e.code == 404 => {}
                Err(e) => {
                    log::warn!("event {} on {ns}/{}: {e}", p.reason, p.on.name);
                    continue;
                }
            }
        }
        let first = seen.map_or_else(|| stamp.clone(), |w| w.first);
        let event = event_object(&p, (&first, &stamp), count);
        match objects
            .create(events, Some(&ns), event, WriteOptions::default())
            .await
        {
            Ok(w) => {
                // Full: forget what can no longer aggregate, else the oldest.
                if written.len() >= REMEMBERED {
                    written.retain(|_, w| now.duration_since(w.at) < AGGREGATE);
                }
                if written.len() >= REMEMBERED {
                    let oldest = written.iter().min_by_key(|(_, w)| w.at);
                    if let Some(k) = oldest.map(|(k, _)| k.clone()) {
                        written.remove(&k);
                    }
                }
                let name = meta::name(&w.object).to_string();
                let w = Written {
                    name,
                    count,
                    first,
                    at: now,
                };
                written.insert(p, w);
            }
            Err(e) => log::warn!("event {} on {ns}/{}: {e}", p.reason, p.on.name),
        }
    }
}

/// How long an event lives after it was last seen (kube-apiserver's `--event-ttl`).
pub const TTL: Duration = Duration::from_secs(60 * 60);
/// How often expired events are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// When `event` was last seen: the latest of `lastTimestamp`, `eventTime`,
/// `series.lastObservedTime` and its creation.
fn last_seen(event: &Value) -> Option<DateTime<Utc>> {
    [
        "/lastTimestamp",
        "/eventTime",
        "/series/lastObservedTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .filter_map(|p| time(event.pointer(p)))
    .max()
}

/// Whether `event` was last seen more than `ttl` before `now`.
pub fn expired(event: &Value, now: DateTime<Utc>, ttl: Duration) -> bool {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    last_seen(event).is_some_and(|t| t + ttl < now)
}

/// Deletes the events (of every namespace) last seen more than `ttl` before `now`, each
/// only as it was read (one seen again meanwhile stays); returns how many went.
pub async fn sweep(
    objects: &Objects,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<usize, ApiError> {
    let info = registry::by_kind("v1", "Event").expect("events are served");
    let all = objects
        .list(info, None, &ListOptions::default())
        .await?
        .items;
    let mut gone = 0;
    for e in all.iter().filter(|e| expired(e, now, ttl)) {
        let opts = DeleteOptions {
            precondition_uid: Some(owners::uid(e).to_string()),
            precondition_resource_version: meta::resource_version(e).ok().flatten(),
            ..Default::default()
        };
        match objects
            .delete(info, owners::namespace(e), meta::name(e), &opts)
            .await
        {
            Ok(_) => gone += 1,
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(gone)
}

/// Deletes expired events every [`SWEEP_EVERY`], as the API server's event TTL does.
pub async fn expire_forever(objects: Objects) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        match sweep(&objects, Utc::now(), TTL).await {
            Ok(0) => {}
            Ok(n) => log::debug!("events: {n} expired"),
            Err(e) => log::warn!("events: deleting expired ones: {e}"),
        }
    }
}

/// The Event object of `p`, seen `count` times from `first` to `last`.
fn event_object(p: &Pending, (first, last): (&str, &str), count: u64) -> Value {
    let on = &p.on;
    let component = on.component();
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{}.", on.name), "namespace": on.event_namespace()},
        "involvedObject": {"apiVersion": on.api_version, "kind": on.kind,
                           "namespace": (!on.namespace.is_empty()).then_some(&on.namespace),
                           "name": on.name, "uid": on.uid},
        "reason": p.reason,
        "message": p.message,
        "type": p.type_.as_str(),
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": first,
        "lastTimestamp": last,
        "count": count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn involved_names_the_controller_and_its_component() {
        let pod = json!({"metadata": {"name": "web-x", "namespace": "shop", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ReplicationController", "name": "web", "uid": "u1",
             "controller": true}]}});
        let on = Involved::controller_of(&pod, None).unwrap();
        assert_eq!(
            (
                on.kind.as_str(),
                on.name.as_str(),
                on.namespace.as_str(),
                on.uid.as_str()
            ),
            ("ReplicationController", "web", "shop", "u1")
        );
        assert_eq!(on.component(), "replication-controller");
        let orphan = json!({"metadata": {"name": "p", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ReplicaSet", "name": "rs", "uid": "u2"}]}});
        assert!(Involved::controller_of(&orphan, Some("ns")).is_none());
    }

    #[test]
    fn the_event_object_is_what_kubectl_describe_reads() {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "metadata": {"name": "web-1", "namespace": "default", "uid": "u"}});
        let p = Pending {
            on: Involved::of(&rs),
            type_: Type::Normal,
            reason: "SuccessfulCreate",
            message: "Created pod: web-1-abc".into(),
        };
        let e = event_object(&p, ("2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z"), 2);
        assert_eq!(e["count"], 2);
        assert_eq!(e["involvedObject"]["kind"], "ReplicaSet");
        assert_eq!(e["involvedObject"]["uid"], "u");
        assert_eq!(e["metadata"]["generateName"], "web-1.");
        assert_eq!(e["source"]["component"], "replicaset-controller");
        assert_eq!(e["type"], "Normal");
        assert_eq!(e["firstTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(e["lastTimestamp"], "2026-01-01T00:00:05Z");
    }

    #[test]
    fn an_event_expires_a_ttl_after_it_was_last_seen() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let old = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
                         "lastTimestamp": "2026-01-01T00:30:00Z"});
        assert!(expired(&old, now, TTL));
        // Seen again since (a raised count), or an events.k8s.io series.
        let again = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
                           "lastTimestamp": "2026-01-01T01:30:00Z"});
        assert!(!expired(&again, now, TTL));
        let series = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
                            "eventTime": "2026-01-01T00:00:00.000000Z",
                            "series": {"count": 4, "lastObservedTime": "2026-01-01T01:10:00.000000Z"}});
        assert!(!expired(&series, now, TTL));
        assert!(!expired(&json!({}), now, TTL), "no time: kept");
    }
}
