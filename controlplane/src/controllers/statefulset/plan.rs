//! What one pass over a StatefulSet does, decided from its spec and its pods alone.
//!
//! Pods in the ordinal range are created when missing (`OrderedReady`: the lowest one, once
//! every lower pod is Running, Ready and available), finished pods are deleted (their
//! replacement waits until they are gone); pods above the range are deleted highest first
//! once every pod below is healthy; then a RollingUpdate deletes the highest pod at or above
//! the partition that is not of the update revision, once all pods are healthy. `Parallel`
//! creates and scales down without waiting.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::identity::{ordinal, revision};
use crate::api::meta;
use crate::controllers::pods::{has_phase, is_finished, is_ready, secs_to_available};

/// The parts of a StatefulSet's spec the decisions read (with Kubernetes' defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub start: i64,
    pub replicas: i64,
    /// `podManagementPolicy: Parallel`.
    pub parallel: bool,
    /// `updateStrategy.type: OnDelete`.
    pub on_delete: bool,
    pub partition: i64,
    pub min_ready: i64,
}

impl Spec {
    pub fn of(set: &Value) -> Self {
        let int = |p: &str, d: i64| set.pointer(p).and_then(Value::as_i64).unwrap_or(d);
        Self {
            name: meta::name(set).to_string(),
            start: int("/spec/ordinals/start", 0).max(0),
            replicas: int("/spec/replicas", 1).max(0),
            parallel: set.pointer("/spec/podManagementPolicy") == Some(&json!("Parallel")),
            on_delete: set.pointer("/spec/updateStrategy/type") == Some(&json!("OnDelete")),
            partition: int("/spec/updateStrategy/rollingUpdate/partition", 0).max(0),
            min_ready: int("/spec/minReadySeconds", 0),
        }
    }

    /// Does `ord` belong to the set at its current size?
    pub fn in_range(&self, ord: i64) -> bool {
        (self.start..self.start + self.replicas).contains(&ord)
    }
}

/// Which revision a created pod gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rev {
    Current,
    Update,
}

/// The writes of one pass.
#[derive(Debug, Default)]
pub struct Plan {
    /// Ordinals to create, with the revision of each.
    pub create: Vec<(i64, Rev)>,
    pub delete: Vec<Value>,
}

/// Phase Running with a true Ready condition.
pub fn running_and_ready(pod: &Value) -> bool {
    has_phase(pod, "Running") && is_ready(pod)
}

/// Running, Ready for `minReadySeconds`, and not being deleted.
pub fn healthy(spec: &Spec, pod: &Value, now: DateTime<Utc>) -> bool {
    !meta::is_deleting(pod)
        && running_and_ready(pod)
        && secs_to_available(pod, spec.min_ready, now) == Some(0)
}

/// The revision pod `ord` is created from: below the partition of a RollingUpdate the
/// current one, else the update revision.
fn rev_for(spec: &Spec, ord: i64) -> Rev {
    if !spec.on_delete && ord < spec.partition {
        Rev::Current
    } else {
        Rev::Update
    }
}

/// The next writes for the set described by `spec`, owning `pods`, whose pod template is
/// of revision `update`.
pub fn plan(spec: &Spec, pods: &[Value], update: &str, now: DateTime<Utc>) -> Plan {
    let mut members: Vec<(i64, &Value)> = pods
        .iter()
        .filter_map(|p| Some((ordinal(&spec.name, p)?, p)))
        .collect();
    members.sort_by_key(|(o, _)| *o);
    let ordered = !spec.parallel;
    let mut plan = Plan::default();
    let healthy = |p: &Value| healthy(spec, p, now);

    // The ordinal range, lowest first.
    let mut waiting = false;
    for ord in spec.start..spec.start + spec.replicas {
        match members.iter().find(|(o, _)| *o == ord).map(|(_, p)| *p) {
            None => plan.create.push((ord, rev_for(spec, ord))),
            Some(p) if is_finished(p) && !meta::is_deleting(p) => plan.delete.push(p.clone()),
            Some(p) if healthy(p) => continue,
            Some(_) => {}
        }
        waiting = true;
        if ordered {
            return plan;
        }
    }

    // Pods above the range, highest first, each once every pod below it is healthy.
    let condemned: Vec<&Value> = members
        .iter()
        .rev()
        .filter(|(o, _)| !spec.in_range(*o))
        .map(|(_, p)| *p)
        .collect();
    for (i, p) in condemned.iter().enumerate() {
        if meta::is_deleting(p) {
            if ordered {
                return plan;
            }
            continue;
        }
        if ordered && (waiting || !condemned[i + 1..].iter().all(|q| healthy(q))) {
            return plan;
        }
        plan.delete.push((*p).clone());
        if ordered {
            return plan;
        }
    }

    // A rolling update: one pod at a time, highest first, while everything is healthy.
    let busy = waiting || !plan.delete.is_empty() || !condemned.is_empty();
    if spec.on_delete || busy {
        return plan;
    }
    let first = spec.partition.max(spec.start);
    let outdated = members
        .iter()
        .rev()
        .filter(|(o, _)| *o >= first && spec.in_range(*o))
        .find(|(_, p)| revision(p) != Some(update));
    if let Some((_, p)) = outdated {
        plan.delete.push((*p).clone());
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T00:10:00Z";

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(NOW)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Pod `ord` of revision `rev`: "ready" (Running and Ready), "pending", "failed" or
    /// "deleting".
    fn pod(ord: i64, rev: &str, state: &str) -> Value {
        let mut p = json!({"metadata": {"name": format!("web-{ord}"),
                                        "labels": {"controller-revision-hash": rev}},
                           "status": {"phase": "Pending"}});
        match state {
            "ready" | "deleting" => {
                p["status"] = json!({"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True",
                     "lastTransitionTime": "2026-01-01T00:00:00Z"}]});
                if state == "deleting" {
                    p["metadata"]["deletionTimestamp"] = json!(NOW);
                }
            }
            "failed" => p["status"]["phase"] = json!("Failed"),
            _ => {}
        }
        p
    }

    fn spec(replicas: i64) -> Spec {
        Spec::of(&json!({"metadata": {"name": "web"}, "spec": {"replicas": replicas}}))
    }

    fn names(pods: &[Value]) -> Vec<&str> {
        pods.iter().map(meta::name).collect()
    }

    #[test]
    fn spec_defaults_and_fields() {
        let s = spec(3);
        assert_eq!(
            (s.start, s.replicas, s.partition, s.min_ready),
            (0, 3, 0, 0)
        );
        assert!(!s.parallel && !s.on_delete);
        let s = Spec::of(&json!({"metadata": {"name": "db"}, "spec": {
            "ordinals": {"start": 5}, "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 2}},
            "minReadySeconds": 7}}));
        assert_eq!(
            (s.start, s.replicas, s.partition, s.min_ready),
            (5, 1, 2, 7)
        );
        assert!(s.parallel && s.on_delete && s.in_range(5) && !s.in_range(6));
    }

    #[test]
    fn ordered_ready_creates_the_lowest_missing_once_the_lower_pods_are_ready() {
        let s = spec(3);
        let p = plan(&s, &[], "r1", now());
        assert_eq!(p.create, [(0, Rev::Update)]);
        // web-0 exists but is not ready: nothing to do.
        let p = plan(&s, &[pod(0, "r1", "pending")], "r1", now());
        assert!(p.create.is_empty() && p.delete.is_empty());
        let p = plan(&s, &[pod(0, "r1", "ready")], "r1", now());
        assert_eq!(p.create, [(1, Rev::Update)]);
        // A gap is filled first, even above a ready pod.
        let p = plan(
            &s,
            &[pod(0, "r1", "ready"), pod(2, "r1", "ready")],
            "r1",
            now(),
        );
        assert_eq!(p.create, [(1, Rev::Update)]);
    }

    #[test]
    fn min_ready_seconds_holds_the_next_ordinal() {
        let mut s = spec(2);
        s.min_ready = 3600;
        let p = plan(&s, &[pod(0, "r1", "ready")], "r1", now());
        assert!(p.create.is_empty());
        s.min_ready = 60;
        let p = plan(&s, &[pod(0, "r1", "ready")], "r1", now());
        assert_eq!(p.create, [(1, Rev::Update)]);
    }

    #[test]
    fn parallel_creates_everything_at_once() {
        let mut s = spec(3);
        s.parallel = true;
        let p = plan(&s, &[pod(1, "r1", "pending")], "r1", now());
        assert_eq!(p.create, [(0, Rev::Update), (2, Rev::Update)]);
        s.start = 3;
        let p = plan(&s, &[], "r1", now());
        assert_eq!(p.create.iter().map(|c| c.0).collect::<Vec<_>>(), [3, 4, 5]);
    }

    #[test]
    fn finished_pods_are_deleted_then_recreated() {
        let s = spec(2);
        let ready0 = pod(0, "r1", "ready");
        let p = plan(&s, &[ready0.clone(), pod(1, "r1", "failed")], "r1", now());
        assert_eq!(names(&p.delete), ["web-1"]);
        assert!(p.create.is_empty());
        // Still being deleted: its name is taken, wait.
        let mut going = pod(1, "r1", "failed");
        going["metadata"]["deletionTimestamp"] = json!(NOW);
        let p = plan(&s, &[ready0.clone(), going], "r1", now());
        assert!(p.create.is_empty() && p.delete.is_empty());
        let p = plan(&s, &[ready0], "r1", now());
        assert_eq!(p.create, [(1, Rev::Update)]);
    }

    #[test]
    fn scale_down_removes_the_highest_first_one_at_a_time() {
        let s = spec(1);
        let pods: Vec<Value> = (0..3).map(|o| pod(o, "r1", "ready")).collect();
        let p = plan(&s, &pods, "r1", now());
        assert_eq!(names(&p.delete), ["web-2"]);
        // web-2 still terminating: wait for it before web-1.
        let mut going = pods.clone();
        going[2] = pod(2, "r1", "deleting");
        assert!(plan(&s, &going, "r1", now()).delete.is_empty());
        // A pod below the victim is not ready: wait.
        let mut sick = pods.clone();
        sick[1] = pod(1, "r1", "pending");
        assert!(plan(&s, &sick, "r1", now()).delete.is_empty());
        // The victim itself may be unhealthy.
        let mut top = pods.clone();
        top[2] = pod(2, "r1", "pending");
        assert_eq!(names(&plan(&s, &top, "r1", now()).delete), ["web-2"]);
        // Parallel: all at once, whatever their state.
        let mut par = spec(1);
        par.parallel = true;
        assert_eq!(
            names(&plan(&par, &sick, "r1", now()).delete),
            ["web-2", "web-1"]
        );
    }

    #[test]
    fn rolling_update_replaces_the_highest_outdated_pod_when_all_are_healthy() {
        let s = spec(3);
        let mut pods: Vec<Value> = (0..3).map(|o| pod(o, "r1", "ready")).collect();
        assert_eq!(names(&plan(&s, &pods, "r2", now()).delete), ["web-2"]);
        pods[2] = pod(2, "r2", "pending");
        assert!(plan(&s, &pods, "r2", now()).delete.is_empty());
        pods[2] = pod(2, "r2", "ready");
        assert_eq!(names(&plan(&s, &pods, "r2", now()).delete), ["web-1"]);
        // The replacement is created from the update revision.
        pods.remove(1);
        assert_eq!(plan(&s, &pods, "r2", now()).create, [(1, Rev::Update)]);
        // Everything updated: nothing to do.
        let done: Vec<Value> = (0..3).map(|o| pod(o, "r2", "ready")).collect();
        let p = plan(&s, &done, "r2", now());
        assert!(p.create.is_empty() && p.delete.is_empty());
    }

    #[test]
    fn partition_keeps_lower_ordinals_on_the_current_revision() {
        let mut s = spec(3);
        s.partition = 2;
        let mut pods: Vec<Value> = (0..3).map(|o| pod(o, "r1", "ready")).collect();
        assert_eq!(names(&plan(&s, &pods, "r2", now()).delete), ["web-2"]);
        pods[2] = pod(2, "r2", "ready");
        assert!(plan(&s, &pods, "r2", now()).delete.is_empty());
        // A lost pod below the partition comes back at the current revision.
        pods.remove(0);
        assert_eq!(plan(&s, &pods, "r2", now()).create, [(0, Rev::Current)]);
    }

    #[test]
    fn on_delete_never_deletes_for_an_update() {
        let mut s = spec(2);
        s.on_delete = true;
        s.partition = 5;
        let pods: Vec<Value> = (0..2).map(|o| pod(o, "r1", "ready")).collect();
        assert!(plan(&s, &pods, "r2", now()).delete.is_empty());
        assert_eq!(plan(&s, &pods[..1], "r2", now()).create, [(1, Rev::Update)]);
    }

    #[test]
    fn pods_not_named_for_the_set_are_ignored() {
        let s = spec(1);
        let stray = json!({"metadata": {"name": "other-0"}, "status": {"phase": "Running"}});
        assert_eq!(plan(&s, &[stray], "r1", now()).create, [(0, Rev::Update)]);
    }
}
