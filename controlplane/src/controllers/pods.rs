//! Pod state as the workload controllers see it: active, ready, available, and the order
//! in which surplus pods are deleted (Kubernetes' `ActivePods` ordering).

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::api::meta;

/// In phase `phase`.
pub fn has_phase(pod: &Value, phase: &str) -> bool {
    pod.pointer("/status/phase").and_then(Value::as_str) == Some(phase)
}

/// Phase Succeeded or Failed.
pub fn is_finished(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// Not being deleted and not finished.
pub fn is_active(pod: &Value) -> bool {
    !meta::is_deleting(pod) && !is_finished(pod)
}

fn ready_condition(pod: &Value) -> Option<&Value> {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type") == Some(&json!("Ready")))
}

pub fn is_ready(pod: &Value) -> bool {
    ready_condition(pod).is_some_and(|c| c.get("status") == Some(&json!("True")))
}

/// An RFC 3339 timestamp field.
pub(super) fn time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v?.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// When the pod last became ready.
pub fn ready_since(pod: &Value) -> Option<DateTime<Utc>> {
    if !is_ready(pod) {
        return None;
    }
    time(ready_condition(pod).and_then(|c| c.get("lastTransitionTime")))
        .or_else(|| time(pod.pointer("/metadata/creationTimestamp")))
}

/// Seconds until the pod counts as available (`Some(0)`: it does), `None`: not ready.
pub fn secs_to_available(pod: &Value, min_ready: i64, now: DateTime<Utc>) -> Option<i64> {
    let since = ready_since(pod)?;
    if min_ready <= 0 {
        return Some(0);
    }
    Some((min_ready - (now - since).num_seconds()).max(0))
}

pub fn is_available(pod: &Value, min_ready: i64, now: DateTime<Utc>) -> bool {
    secs_to_available(pod, min_ready, now) == Some(0)
}

fn phase_rank(pod: &Value) -> u8 {
    match pod.pointer("/status/phase").and_then(Value::as_str) {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn restarts(pod: &Value) -> i64 {
    pod.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                .sum()
        })
        .unwrap_or(0)
}

fn assigned(pod: &Value) -> bool {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
}

/// Which of two pods to delete first (`Less`: `a`): unscheduled, pending, not ready,
/// ready for less time, more restarts, newer.
pub fn deletion_order(a: &Value, b: &Value) -> Ordering {
    assigned(a)
        .cmp(&assigned(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(is_ready(a).cmp(&is_ready(b)))
        .then_with(|| match (ready_since(a), ready_since(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then(restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let created = |p: &Value| time(p.pointer("/metadata/creationTimestamp"));
            created(b).cmp(&created(a))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(node: &str, phase: &str, ready: bool, created: &str) -> Value {
        json!({"metadata": {"creationTimestamp": created},
               "spec": {"nodeName": node},
               "status": {"phase": phase, "conditions": [{"type": "Ready",
                   "status": if ready {"True"} else {"False"},
                   "lastTransitionTime": created}]}})
    }

    #[test]
    fn deletes_unscheduled_then_not_ready_then_newer() {
        let old = "2024-01-01T00:00:00Z";
        let new = "2024-01-02T00:00:00Z";
        let mut pods = [
            pod("n", "Running", true, old),
            pod("n", "Running", true, new),
            pod("n", "Running", false, old),
            pod("", "Pending", false, old),
        ];
        pods.sort_by(deletion_order);
        assert_eq!(pods[0]["spec"]["nodeName"], "");
        assert_eq!(pods[1]["status"]["conditions"][0]["status"], "False");
        assert_eq!(pods[2]["metadata"]["creationTimestamp"], new);
    }
}
