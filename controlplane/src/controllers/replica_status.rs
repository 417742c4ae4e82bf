//! The status of a ReplicationController or ReplicaSet from its active pods: replicas,
//! fullyLabeledReplicas, readyReplicas, availableReplicas (minReadySeconds) and
//! observedGeneration; written only when it changed.

use std::time::Duration;

use serde_json::{json, Value};

use super::owners;
use super::pods::{is_ready, secs_to_available};
use super::runtime::Action;
use super::ControllerError;
use crate::api::objects::Objects;
use crate::api::registry::{ResourceInfo, Subresource};
use crate::api::selector::{labels, string_map};

/// The `ReplicaFailure` condition: set when creating pods fails (`failure`: why), kept as
/// first set while it goes on failing; gone once creates succeed again.
fn conditions(owner: &Value, failure: Option<&str>) -> Vec<Value> {
    let mut conds: Vec<Value> = owner
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let was = conds
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some("ReplicaFailure"))
        .map(|i| conds.remove(i));
    // As Kubernetes: the first refusal stays until creates succeed (each retry names a new
    // pod; a condition rewritten per retry would be a status write per retry).
    match (failure, was) {
        (Some(_), Some(was)) => conds.push(was),
        (Some(message), None) => conds.push(json!({
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": message, "lastTransitionTime": crate::api::meta::now()})),
        (None, _) => {}
    }
    conds
}

/// The computed status and the seconds until the next pod turns available.
pub fn compute(owner: &Value, active: &[Value], failure: Option<&str>) -> (Value, Option<i64>) {
    let min_ready = owner
        .pointer("/spec/minReadySeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let template_labels = string_map(owner.pointer("/spec/template/metadata/labels"));
    let now = chrono::Utc::now();
    let (mut labeled, mut ready, mut available) = (0, 0, 0);
    let mut next: Option<i64> = None;
    for pod in active {
        let l = labels(pod);
        if template_labels.iter().all(|(k, v)| l.get(k) == Some(v)) {
            labeled += 1;
        }
        if is_ready(pod) {
            ready += 1;
        }
        match secs_to_available(pod, min_ready, now) {
            Some(0) => available += 1,
            Some(s) => next = Some(next.map_or(s, |n| n.min(s))),
            None => {}
        }
    }
    let mut status = json!({
        "replicas": active.len(),
        "fullyLabeledReplicas": labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": owner.pointer("/metadata/generation").cloned().unwrap_or(json!(0)),
    });
    let conds = conditions(owner, failure);
    if !conds.is_empty() || owner.pointer("/status/conditions").is_some() {
        status["conditions"] = json!(conds);
    }
    (status, next)
}

fn differs(old: Option<&Value>, new: &Value) -> bool {
    let Some(o) = new.as_object() else {
        return false;
    };
    o.iter().any(|(k, v)| {
        let cur = old.and_then(|s| s.get(k)).cloned().unwrap_or(json!(0));
        &cur != v
    })
}

/// Write the status of `owner` if it changed; requeue for pods that turn available later.
pub async fn update(
    objects: &Objects,
    info: &ResourceInfo,
    owner: &Value,
    active: &[Value],
    failure: Option<&str>,
) -> Result<Action, ControllerError> {
    write(objects, info, owner, compute(owner, active, failure)).await
}

/// Write `status` to `owner` if it changed; requeue after `next` seconds if given.
pub async fn write(
    objects: &Objects,
    info: &ResourceInfo,
    owner: &Value,
    (status, next): (Value, Option<i64>),
) -> Result<Action, ControllerError> {
    if differs(owner.get("status"), &status) {
        let patch = json!({"status": status});
        owners::merge_patch(objects, info, owner, &patch, Some(Subresource::Status)).await?;
    }
    Ok(match next {
        Some(s) => Action::RequeueAfter(Duration::from_secs(s.max(1) as u64)),
        None => Action::Done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ready_for: i64) -> Value {
        let t = (chrono::Utc::now() - chrono::Duration::seconds(ready_for))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        json!({"metadata": {"labels": {"app": "a"}},
               "status": {"conditions": [{"type": "Ready", "status": "True",
                                          "lastTransitionTime": t}]}})
    }

    #[test]
    fn min_ready_seconds_delays_availability() {
        let owner = json!({"metadata": {"generation": 2},
            "spec": {"minReadySeconds": 10, "template": {"metadata": {"labels": {"app": "a"}}}}});
        let (s, next) = compute(&owner, &[pod(60), pod(2), json!({"metadata": {}})], None);
        assert_eq!(s["replicas"], 3);
        assert_eq!(s["fullyLabeledReplicas"], 2);
        assert_eq!(s["readyReplicas"], 2);
        assert_eq!(s["availableReplicas"], 1);
        assert_eq!(s["observedGeneration"], 2);
        assert!(next.is_some_and(|n| (7..=8).contains(&n)), "{next:?}");
    }

    #[test]
    fn a_refused_create_shows_as_replica_failure_until_creates_succeed() {
        let owner = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2}});
        let why = "pods \"x\" is forbidden: exceeded quota: q";
        let (s, _) = compute(&owner, &[], Some(why));
        let c = &s["conditions"][0];
        assert_eq!(
            (c["type"].as_str(), c["reason"].as_str()),
            (Some("ReplicaFailure"), Some("FailedCreate"))
        );
        assert_eq!(c["message"], why);
        let failing = json!({"metadata": {"generation": 1}, "status": s});
        let (again, _) = compute(&failing, &[], Some("pods \"y\" is forbidden: the same"));
        assert_eq!(again["conditions"][0], *c, "kept as first set");
        let (ok, _) = compute(&failing, &[], None);
        assert_eq!(ok["conditions"], json!([]));
    }
}
