//! Network-programming latency: from the change in the store (the EndpointSlice's
//! `endpoints.kubernetes.io/last-change-trigger-time`, stamped by the control plane's
//! endpoints controller) to the moment this node's maps hold it, as kube-proxy's
//! `network_programming_duration_seconds`; and the duration of one sync.
//!
//! [`ProgrammingTracker`] is the pure rule: a trigger time is taken from each new snapshot
//! when it is newer than the last one seen for that slice (and not older than the tracker
//! itself, so a restarted agent does not report changes it never waited for), and each one
//! is observed exactly once, after the next pass that programmed the maps.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::DateTime;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::kubelet::http::metrics::{exponential_buckets, Histogram, Registry};

/// The annotation the endpoints controller stamps (Kubernetes'
/// `v1.EndpointsLastChangeTriggerTime`).
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Change in the store → maps programmed, seconds.
pub const PROGRAMMING_METRIC: &str = "skiff_network_programming_duration_seconds";
/// One sync pass (translate, diff, apply), seconds.
pub const SYNC_METRIC: &str = "skiff_proxy_sync_duration_seconds";

/// Millisecond resolution up to 100 ms (the target is a bound), then coarser to a minute.
pub const PROGRAMMING_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0,
    2.0, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug, thiserror::Error)]
#[error("annotation {TRIGGER_TIME_ANNOTATION}={value:?}: {source}")]
pub struct TriggerTimeError {
    pub value: String,
    #[source]
    pub source: chrono::ParseError,
}

/// Parses an RFC 3339 time (any offset, any sub-second precision).
pub fn parse_trigger_time(value: &str) -> Result<SystemTime, TriggerTimeError> {
    DateTime::parse_from_rfc3339(value)
        .map(SystemTime::from)
        .map_err(|source| TriggerTimeError {
            value: value.to_string(),
            source,
        })
}

/// The slice's trigger time: `None` without the annotation, an error when it is malformed.
pub fn trigger_time(slice: &EndpointSlice) -> Option<Result<SystemTime, TriggerTimeError>> {
    let value = slice
        .metadata
        .annotations
        .as_ref()?
        .get(TRIGGER_TIME_ANNOTATION)?;
    Some(parse_trigger_time(value))
}

/// Which trigger times wait to be observed (see the module's documentation).
#[derive(Debug)]
pub struct ProgrammingTracker {
    start: SystemTime,
    /// `namespace/name` → the newest trigger time taken for that slice.
    newest: HashMap<String, SystemTime>,
    /// Taken, not yet programmed.
    pending: Vec<SystemTime>,
}

impl ProgrammingTracker {
    /// A tracker that ignores trigger times before `start` (the agent's start).
    pub fn new(start: SystemTime) -> Self {
        Self {
            start,
            newest: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// A new snapshot of all slices was taken (it will be programmed by the next pass).
    /// Slices that are gone are forgotten; deletions are not measured (a deleted slice's
    /// annotation is the time of its last update, not of its deletion).
    pub fn snapshot(&mut self, slices: &[EndpointSlice]) {
        let mut newest = HashMap::with_capacity(slices.len());
        for slice in slices {
            let key = format!(
                "{}/{}",
                slice.metadata.namespace.as_deref().unwrap_or(""),
                slice.metadata.name.as_deref().unwrap_or("")
            );
            let seen = self.newest.get(&key).copied();
            match trigger_time(slice) {
                Some(Ok(t)) => {
                    if seen.is_none_or(|s| t > s) && t >= self.start {
                        self.pending.push(t);
                    }
                    newest.insert(key, seen.map_or(t, |s| s.max(t)));
                }
                other => {
                    if let Some(Err(e)) = other {
                        log::debug!("EndpointSlice {key}: {e}");
                    }
                    if let Some(s) = seen {
                        newest.insert(key, s);
                    }
                }
            }
        }
        self.newest = newest;
    }

    /// The maps now hold the latest snapshot: the latencies of its not yet observed
    /// changes, each once. A trigger time after `now` (the control plane's clock ahead of
    /// this node's) counts as 0.
    pub fn programmed(&mut self, now: SystemTime) -> Vec<Duration> {
        self.pending
            .drain(..)
            .map(|t| now.duration_since(t).unwrap_or(Duration::ZERO))
            .collect()
    }
}

/// The proxy's histograms, registered in the agent's `/metrics` registry.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    pub programming: Arc<Histogram>,
    pub sync: Arc<Histogram>,
}

impl ProxyMetrics {
    pub fn register(registry: &Registry) -> Self {
        Self {
            programming: registry.histogram(
                PROGRAMMING_METRIC,
                "Time from a Service or endpoint change in the store (the EndpointSlice's \
                 last-change-trigger-time) until this node's BPF maps hold it.",
                PROGRAMMING_BUCKETS,
            ),
            sync: registry.histogram(
                SYNC_METRIC,
                "Duration of one service proxy sync that programs the BPF maps \
                 (translate, diff, apply).",
                &exponential_buckets(0.0001, 2.0, 18),
            ),
        }
    }
}
