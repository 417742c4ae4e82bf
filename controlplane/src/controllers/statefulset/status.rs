//! The status of a StatefulSet from its pods: replicas (pods not being deleted), ready
//! (Running and Ready), available (for `minReadySeconds`), current and updated replicas by
//! the revision label, and the revisions; the current revision becomes the update revision
//! once every pod is updated and ready (what `kubectl rollout status` waits for).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::identity::revision;
use super::plan::running_and_ready;
use crate::api::meta;
use crate::controllers::pods::secs_to_available;

/// The status, and the seconds until the next pod turns available.
pub fn compute(
    set: &Value,
    pods: &[Value],
    (current, update): (&str, &str),
    now: DateTime<Utc>,
) -> (Value, Option<i64>) {
    let min_ready = set
        .pointer("/spec/minReadySeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let (mut replicas, mut ready, mut available) = (0, 0, 0);
    let (mut at_current, mut updated) = (0, 0);
    let mut next: Option<i64> = None;
    for pod in pods.iter().filter(|p| !meta::is_deleting(p)) {
        replicas += 1;
        if running_and_ready(pod) {
            ready += 1;
            match secs_to_available(pod, min_ready, now) {
                Some(0) => available += 1,
                Some(s) => next = Some(next.map_or(s, |n| n.min(s))),
                None => {}
            }
        }
        at_current += usize::from(revision(pod) == Some(current));
        updated += usize::from(revision(pod) == Some(update));
    }
    let (current, at_current) = if updated == replicas && ready == replicas {
        (update, updated)
    } else {
        (current, at_current)
    };
    let mut status = json!({
        "observedGeneration": set.pointer("/metadata/generation").cloned().unwrap_or(json!(0)),
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": available,
        "currentReplicas": at_current,
        "updatedReplicas": updated,
        "currentRevision": current,
        "updateRevision": update,
        "collisionCount": 0,
    });
    if let Some(c) = set.pointer("/status/conditions") {
        status["conditions"] = c.clone();
    }
    (status, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(rev: &str, ready_at: Option<&str>) -> Value {
        let mut p = json!({"metadata": {"labels": {"controller-revision-hash": rev}},
                           "status": {"phase": "Pending"}});
        if let Some(t) = ready_at {
            p["status"] = json!({"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": t}]});
        }
        p
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn counts_by_readiness_and_revision() {
        let set = json!({"metadata": {"generation": 4}, "spec": {"minReadySeconds": 10}});
        let mut gone = pod("r1", Some("2026-01-01T00:00:00Z"));
        gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let pods = [
            pod("r1", Some("2026-01-01T00:00:00Z")),
            pod("r2", Some("2026-01-01T00:00:55Z")),
            pod("r2", None),
            gone,
        ];
        let (s, next) = compute(&set, &pods, ("r1", "r2"), at("2026-01-01T00:01:00Z"));
        assert_eq!(
            s,
            json!({"observedGeneration": 4, "replicas": 3, "readyReplicas": 2,
                   "availableReplicas": 1, "currentReplicas": 1, "updatedReplicas": 2,
                   "currentRevision": "r1", "updateRevision": "r2", "collisionCount": 0})
        );
        assert_eq!(next, Some(5));
    }

    #[test]
    fn current_revision_follows_once_all_pods_are_updated_and_ready() {
        let set = json!({"metadata": {"generation": 2}});
        let t = Some("2026-01-01T00:00:00Z");
        let now = at("2026-01-01T00:01:00Z");
        let (s, _) = compute(&set, &[pod("r2", t), pod("r2", None)], ("r1", "r2"), now);
        assert_eq!(
            (s["currentRevision"].as_str(), s["currentReplicas"].as_i64()),
            (Some("r1"), Some(0))
        );
        let (s, next) = compute(&set, &[pod("r2", t), pod("r2", t)], ("r1", "r2"), now);
        assert_eq!(
            (s["currentRevision"].as_str(), s["currentReplicas"].as_i64()),
            (Some("r2"), Some(2))
        );
        assert_eq!(next, None);
    }
}
