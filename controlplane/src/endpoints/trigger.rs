//! The `endpoints.kubernetes.io/last-change-trigger-time` annotation: when the change that
//! made the controller write an EndpointSlice (or Endpoints) happened, so that a node's
//! service proxy can measure network-programming latency (change → maps programmed), as
//! kube-proxy's `network_programming_duration_seconds` does.
//!
//! The time is the moment the controller *observed* the triggering Pod or Service change
//! (the reflector stamps each watch event as it arrives, [`super::reflector::Change`]), not a
//! timestamp inside the object: a Pod's `Ready` `lastTransitionTime` (what Kubernetes reads)
//! has whole-second precision, too coarse for a 100 ms target, and it is written by the
//! kubelet before its status even reaches the store. The observation follows the store's
//! commit by one in-process watch hop, so the measured span is "the store has the change" →
//! "the node's maps have it".
//!
//! When several changes are batched into one sync, the annotation carries the *earliest* of
//! them (Kubernetes' `TriggerTimeTracker` also exports the minimum of the changed trigger
//! times): every change in the batch waited at least that long, and taking the latest
//! would hide how long the first one waited.

use std::collections::BTreeMap;
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;

/// The annotation's key (Kubernetes' `v1.EndpointsLastChangeTriggerTime`).
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// RFC 3339 in UTC with nanoseconds, e.g. `2025-01-02T03:04:05.123456789Z`.
pub fn format_trigger_time(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Sets the annotation to `trigger`, or removes it when the write has no known trigger
/// (a resync that found drift): a stale time would be measured again by nobody, but a
/// consumer reading it would take it for this write's cause.
pub fn stamp(meta: &mut ObjectMeta, trigger: Option<SystemTime>) {
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    match trigger {
        Some(t) => {
            annotations.insert(LAST_CHANGE_TRIGGER_TIME.to_string(), format_trigger_time(t));
        }
        None => {
            annotations.remove(LAST_CHANGE_TRIGGER_TIME);
        }
    }
    if annotations.is_empty() {
        meta.annotations = None;
    }
}

/// `true` when the stored slice differs from the desired one in what the controller owns.
pub fn slice_changed(cur: &EndpointSlice, want: &EndpointSlice) -> bool {
    cur.endpoints != want.endpoints
        || cur.ports != want.ports
        || cur.metadata.labels != want.metadata.labels
}

/// `true` when the stored Endpoints differ from the desired ones in what the controller owns.
pub fn endpoints_changed(cur: &Endpoints, want: &Endpoints) -> bool {
    cur.subsets.clone().unwrap_or_default() != want.subsets.clone().unwrap_or_default()
        || cur.metadata.labels != want.metadata.labels
}

/// What to write for a desired slice: `None` when the stored one already matches (its
/// annotation is then left as it is), else `want` stamped with `trigger`.
pub fn slice_to_write(
    cur: Option<&EndpointSlice>,
    want: EndpointSlice,
    trigger: Option<SystemTime>,
) -> Option<EndpointSlice> {
    to_write(cur, want, trigger, slice_changed)
}

/// Like [`slice_to_write`], for the legacy Endpoints object.
pub fn endpoints_to_write(
    cur: Option<&Endpoints>,
    want: Endpoints,
    trigger: Option<SystemTime>,
) -> Option<Endpoints> {
    to_write(cur, want, trigger, endpoints_changed)
}

fn to_write<K: Metadata<Ty = ObjectMeta>>(
    cur: Option<&K>,
    mut want: K,
    trigger: Option<SystemTime>,
    changed: fn(&K, &K) -> bool,
) -> Option<K> {
    if cur.is_some_and(|c| !changed(c, &want)) {
        return None;
    }
    stamp(want.metadata_mut(), trigger);
    Some(want)
}

/// Merges a change observed at `t` into a pending trigger time: the earliest one wins, and
/// a change with a time beats none.
pub fn merge(pending: Option<SystemTime>, t: Option<SystemTime>) -> Option<SystemTime> {
    match (pending, t) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
