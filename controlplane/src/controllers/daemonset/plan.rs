//! What one reconcile of a DaemonSet does, decided without I/O: which nodes get a pod,
//! which pods go (finished, duplicate, misscheduled, or replaced by a rolling update), and
//! the status. Rolling updates follow Kubernetes: with `maxSurge` 0 an old pod is deleted
//! while fewer than `maxUnavailable` nodes lack an available pod (old pods that are not
//! available go at once); with `maxSurge` > 0 the new pod starts next to the old one, which
//! goes once the new one is available. A node whose pod is still terminating (or just
//! failed) gets its replacement only once that pod is gone, as Kubernetes waits too.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::placement::{target_node, Fit};
use crate::api::meta;
use crate::controllers::deployment::rolling::resolve;
use crate::controllers::pods::{
    has_phase, is_active, is_available, is_finished, is_ready, secs_to_available,
};

/// The label carrying the template hash a daemon pod was made from.
pub use crate::controllers::history::REVISION_LABEL as HASH_LABEL;

/// The inputs: the set, its nodes (with the fit of its pod), its pods, the current hash.
pub struct Input<'a> {
    pub ds: &'a Value,
    pub nodes: &'a BTreeMap<String, Fit>,
    pub pods: &'a [Value],
    pub hash: &'a str,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Nodes that get a new pod.
    pub create_on: Vec<String>,
    pub delete: Vec<Value>,
    /// Failed pods, by node: deleted (and so replaced) unless the node is in backoff.
    pub failed: Vec<(String, Value)>,
    pub status: Value,
    /// Look again when a ready pod becomes available (`minReadySeconds`).
    pub requeue: Option<Duration>,
}

fn created(pod: &Value) -> &str {
    pod.pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn is_updated(pod: &Value, hash: &str) -> bool {
    pod.pointer(&format!("/metadata/labels/{HASH_LABEL}"))
        .and_then(Value::as_str)
        == Some(hash)
}

/// One node's pods after finished and duplicate ones were set aside.
#[derive(Default)]
struct Slot<'a> {
    old: Option<&'a Value>,
    new: Option<&'a Value>,
}

impl Slot<'_> {
    /// The pod that stands for the node in the status: the new one if there is one.
    fn current(&self) -> Option<&Value> {
        self.new.or(self.old)
    }
}

struct Rollout {
    on_delete: bool,
    max_surge: usize,
    max_unavailable: usize,
}

fn rollout(ds: &Value, desired: usize) -> Rollout {
    let strategy = ds.pointer("/spec/updateStrategy");
    let on_delete = strategy.and_then(|s| s.get("type")) == Some(&json!("OnDelete"));
    let ru = strategy.and_then(|s| s.get("rollingUpdate"));
    let scaled = |field: &str, default: i64| match ru.and_then(|r| r.get(field)) {
        None => default,
        v => resolve(v, desired as i64, true),
    };
    let surge = scaled("maxSurge", 0).max(0) as usize;
    let unavailable = scaled("maxUnavailable", 1).max(0) as usize;
    Rollout {
        on_delete,
        max_surge: surge,
        max_unavailable: if surge == 0 && unavailable == 0 {
            1
        } else {
            unavailable
        },
    }
}

/// Decide one reconcile.
pub fn plan(input: &Input<'_>) -> Plan {
    let min_ready = input
        .ds
        .pointer("/spec/minReadySeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let available = |p: &Value| is_available(p, min_ready, input.now);
    let mut out = Plan::default();
    let mut by_node: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    // Nodes with any pod of the set, terminating and finished ones included.
    let mut occupied: BTreeSet<&str> = BTreeSet::new();
    for pod in input.pods {
        let node = target_node(pod).unwrap_or("");
        // A finished pod on its way out (a finalizer may hold it) holds nothing up.
        if !(is_finished(pod) && meta::is_deleting(pod)) {
            occupied.insert(node);
        }
        if has_phase(pod, "Failed") && !meta::is_deleting(pod) {
            out.failed.push((node.to_string(), pod.clone()));
        } else if is_finished(pod) && !meta::is_deleting(pod) {
            out.delete.push(pod.clone());
        } else if is_active(pod) {
            by_node
                .entry(target_node(pod).unwrap_or(""))
                .or_default()
                .push(pod);
        }
    }
    let desired = input.nodes.values().filter(|f| f.should_run).count();
    let r = rollout(input.ds, desired);
    let surging = !r.on_delete && r.max_surge > 0;

    // Per node: keep at most one pod (an old and a new one while surging), delete the
    // rest and the pods of nodes that must not have one.
    let mut slots: BTreeMap<&str, Slot<'_>> = BTreeMap::new();
    let mut misscheduled = 0;
    for (node, mut pods) in by_node {
        let fit = input.nodes.get(node).copied().unwrap_or(Fit::NONE);
        if !fit.should_continue {
            out.delete.extend(pods.into_iter().cloned());
            continue;
        }
        if !fit.should_run {
            misscheduled += 1;
            continue;
        }
        pods.sort_by(|a, b| created(a).cmp(created(b)));
        let (new, old): (Vec<&Value>, Vec<&Value>) =
            pods.into_iter().partition(|p| is_updated(p, input.hash));
        let slot = if surging {
            Slot {
                old: old.first().copied(),
                new: new.first().copied(),
            }
        } else {
            // The oldest pod stays, whatever its revision.
            match (old.first(), new.first()) {
                (Some(o), Some(n)) if created(o) <= created(n) => Slot {
                    old: Some(o),
                    new: None,
                },
                (_, Some(n)) => Slot {
                    old: None,
                    new: Some(n),
                },
                (o, None) => Slot {
                    old: o.copied(),
                    new: None,
                },
            }
        };
        let kept = [slot.old, slot.new];
        let surplus = old.iter().chain(new.iter()).filter(|p| {
            !kept
                .iter()
                .flatten()
                .any(|k| std::ptr::eq::<Value>(**p, *k))
        });
        out.delete.extend(surplus.map(|p| (*p).clone()));
        slots.insert(node, slot);
    }
    // Nodes that should run a pod and have none active: a new one goes where none is
    // left, the others wait for theirs to be gone.
    let mut waiting = 0;
    for (node, fit) in input.nodes {
        if fit.should_run && !slots.contains_key(node.as_str()) {
            if occupied.contains(node.as_str()) {
                waiting += 1;
            } else {
                out.create_on.push(node.clone());
            }
        }
    }

    if !r.on_delete {
        update(&mut out, &slots, &r, waiting, &available);
    }
    out.status = status(input, &slots, misscheduled, desired, &available);
    out.requeue = slots
        .values()
        .filter_map(Slot::current)
        .filter_map(|p| secs_to_available(p, min_ready, input.now))
        .filter(|s| *s > 0)
        .min()
        .map(|s| Duration::from_secs(s as u64));
    out
}

/// The rolling update's share of the plan.
fn update(
    out: &mut Plan,
    slots: &BTreeMap<&str, Slot<'_>>,
    r: &Rollout,
    waiting: usize,
    available: &dyn Fn(&Value) -> bool,
) {
    if r.max_surge > 0 {
        let surging = slots
            .values()
            .filter(|s| s.old.is_some() && s.new.is_some_and(|n| !available(n)))
            .count();
        let mut budget = r.max_surge.saturating_sub(surging);
        for (node, s) in slots {
            match (s.old, s.new) {
                (Some(o), None) if !available(o) => out.delete.push(o.clone()),
                (Some(_), None) if budget > 0 => {
                    out.create_on.push(node.to_string());
                    budget -= 1;
                }
                (Some(o), Some(n)) if available(n) => out.delete.push(o.clone()),
                _ => {}
            }
        }
        return;
    }
    // Nodes about to get a pod, or waiting for a terminating one to go, count as
    // unavailable too.
    let unavailable = out.create_on.len()
        + waiting
        + slots
            .values()
            .filter(|s| s.current().is_none_or(|p| !available(p)))
            .count();
    let mut budget = r.max_unavailable.saturating_sub(unavailable);
    for s in slots.values() {
        let Some(o) = s.old else { continue };
        if !available(o) {
            out.delete.push(o.clone());
        } else if budget > 0 {
            out.delete.push(o.clone());
            budget -= 1;
        }
    }
}

fn status(
    input: &Input<'_>,
    slots: &BTreeMap<&str, Slot<'_>>,
    misscheduled: usize,
    desired: usize,
    available: &dyn Fn(&Value) -> bool,
) -> Value {
    let current: Vec<&Value> = slots.values().filter_map(Slot::current).collect();
    let count = |f: &dyn Fn(&Value) -> bool| current.iter().filter(|p| f(p)).count();
    let n_available = count(available);
    json!({
        "observedGeneration": input.ds.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": current.len(),
        "numberMisscheduled": misscheduled,
        "numberReady": count(&is_ready),
        "numberAvailable": n_available,
        "numberUnavailable": desired.saturating_sub(n_available),
        "updatedNumberScheduled": count(&|p| is_updated(p, input.hash)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Fit = Fit {
        should_run: true,
        should_continue: true,
    };
    const T0: &str = "2026-01-01T00:00:00Z";

    fn ds(strategy: Value) -> Value {
        json!({"metadata": {"name": "ds", "generation": 2}, "spec": {"updateStrategy": strategy}})
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "creationTimestamp": T0,
                            "labels": {HASH_LABEL: hash}},
               "spec": {"nodeName": node},
               "status": {"phase": "Running", "conditions": [{"type": "Ready",
                   "status": if ready {"True"} else {"False"}, "lastTransitionTime": T0}]}})
    }

    fn nodes(names: &[&str]) -> BTreeMap<String, Fit> {
        names.iter().map(|n| (n.to_string(), BOTH)).collect()
    }

    fn run(ds: &Value, nodes: &BTreeMap<String, Fit>, pods: &[Value]) -> Plan {
        plan(&Input {
            ds,
            nodes,
            pods,
            hash: "new",
            now: "2026-01-01T01:00:00Z".parse().unwrap(),
        })
    }

    fn names(pods: &[Value]) -> Vec<&str> {
        let mut v: Vec<&str> = pods.iter().map(meta::name).collect();
        v.sort();
        v
    }

    #[test]
    fn one_pod_per_fitting_node() {
        let d = ds(json!({"type": "RollingUpdate"}));
        let mut ns = nodes(&["a", "b", "c"]);
        ns.insert("d".into(), Fit::NONE);
        let pods = [pod("pa", "a", "new", true), pod("pd", "d", "new", true)];
        let p = run(&d, &ns, &pods);
        assert_eq!(p.create_on, ["b", "c"]);
        assert_eq!(names(&p.delete), ["pd"]);
        assert_eq!(p.status["desiredNumberScheduled"], 3);
        assert_eq!(p.status["currentNumberScheduled"], 1);
        assert_eq!(p.status["numberAvailable"], 1);
        assert_eq!(p.status["numberUnavailable"], 2);
        assert_eq!(p.status["observedGeneration"], 2);
    }

    #[test]
    fn duplicates_and_finished_pods_go_and_tainted_nodes_keep_theirs() {
        let d = ds(json!({"type": "RollingUpdate"}));
        let mut ns = nodes(&["a"]);
        let keep = Fit {
            should_run: false,
            should_continue: true,
        };
        ns.insert("b".into(), keep);
        let mut older = pod("a1", "a", "new", true);
        older["metadata"]["creationTimestamp"] = json!("2025-01-01T00:00:00Z");
        let mut failed = pod("a3", "a", "new", false);
        failed["status"]["phase"] = json!("Failed");
        let pods = [
            pod("a2", "a", "new", true),
            older,
            failed,
            pod("b1", "b", "new", true),
        ];
        let p = run(&d, &ns, &pods);
        assert!(p.create_on.is_empty());
        assert_eq!(names(&p.delete), ["a2"]);
        assert_eq!(p.failed.len(), 1);
        assert_eq!(
            (p.failed[0].0.as_str(), meta::name(&p.failed[0].1)),
            ("a", "a3")
        );
        assert_eq!(p.status["numberMisscheduled"], 1);
        assert_eq!(p.status["desiredNumberScheduled"], 1);
    }

    #[test]
    fn a_node_waits_for_its_terminating_or_failed_pod_to_go() {
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}));
        let ns = nodes(&["a", "b", "c"]);
        let mut leaving = pod("pa", "a", "old", true);
        leaving["metadata"]["deletionTimestamp"] = json!(T0);
        let mut failed = pod("pb", "b", "new", false);
        failed["status"]["phase"] = json!("Failed");
        let pods = [leaving, failed, pod("pc", "c", "old", true)];
        let p = run(&d, &ns, &pods);
        assert!(p.create_on.is_empty(), "{:?}", p.create_on);
        assert_eq!(p.failed.len(), 1);
        // Two nodes are already without an available pod: the rollout waits.
        assert!(p.delete.is_empty(), "{:?}", names(&p.delete));
        assert_eq!(p.status["numberUnavailable"], 2);
        // Once they are gone, both nodes get their pod.
        let p = run(&d, &ns, &pods[2..]);
        assert_eq!(p.create_on, ["a", "b"]);
    }

    #[test]
    fn rolling_update_replaces_max_unavailable_at_a_time() {
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}));
        let ns = nodes(&["a", "b", "c"]);
        let pods = [
            pod("pa", "a", "old", true),
            pod("pb", "b", "old", true),
            pod("pc", "c", "old", true),
        ];
        let p = run(&d, &ns, &pods);
        assert_eq!(names(&p.delete), ["pa"]);
        assert_eq!(p.status["updatedNumberScheduled"], 0);
        // While the replacement is not ready, nothing else goes.
        let pods = [
            pod("pa2", "a", "new", false),
            pod("pb", "b", "old", true),
            pod("pc", "c", "old", true),
        ];
        let p = run(&d, &ns, &pods);
        assert!(p.delete.is_empty() && p.create_on.is_empty());
        // A node without its pod counts against the budget too.
        let p = run(&d, &ns, &pods[1..]);
        assert_eq!(p.create_on, ["a"]);
        assert!(p.delete.is_empty());
        // Old pods that are not available go at once.
        let pods = [
            pod("pa2", "a", "new", true),
            pod("pb", "b", "old", false),
            pod("pc", "c", "old", false),
        ];
        assert_eq!(names(&run(&d, &ns, &pods).delete), ["pb", "pc"]);
    }

    #[test]
    fn percent_max_unavailable_rounds_up() {
        let d = ds(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}));
        let ns = nodes(&["a", "b", "c"]);
        let pods = [
            pod("pa", "a", "old", true),
            pod("pb", "b", "old", true),
            pod("pc", "c", "old", true),
        ];
        assert_eq!(run(&d, &ns, &pods).delete.len(), 2);
    }

    #[test]
    fn surge_starts_the_new_pod_before_the_old_goes() {
        let d = ds(json!({"type": "RollingUpdate",
                          "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}));
        let ns = nodes(&["a", "b"]);
        let pods = [pod("pa", "a", "old", true), pod("pb", "b", "old", true)];
        let p = run(&d, &ns, &pods);
        assert_eq!(p.create_on, ["a"]);
        assert!(p.delete.is_empty());
        let pods = [
            pod("pa", "a", "old", true),
            pod("pa2", "a", "new", false),
            pod("pb", "b", "old", true),
        ];
        let p = run(&d, &ns, &pods);
        assert!(p.create_on.is_empty() && p.delete.is_empty());
        let pods = [
            pod("pa", "a", "old", true),
            pod("pa2", "a", "new", true),
            pod("pb", "b", "old", true),
        ];
        let p = run(&d, &ns, &pods);
        assert_eq!(names(&p.delete), ["pa"]);
        assert_eq!(p.create_on, ["b"]);
    }

    #[test]
    fn on_delete_leaves_old_pods() {
        let d = ds(json!({"type": "OnDelete"}));
        let ns = nodes(&["a"]);
        let p = run(&d, &ns, &[pod("pa", "a", "old", true)]);
        assert!(p.delete.is_empty() && p.create_on.is_empty());
        assert_eq!(p.status["updatedNumberScheduled"], 0);
    }

    #[test]
    fn min_ready_seconds_requeues() {
        let mut d = ds(json!({"type": "RollingUpdate"}));
        d["spec"]["minReadySeconds"] = json!(10);
        let ns = nodes(&["a"]);
        let mut p = pod("pa", "a", "new", true);
        p["status"]["conditions"][0]["lastTransitionTime"] = json!("2026-01-01T00:59:55Z");
        let out = run(&d, &ns, &[p]);
        assert_eq!(out.status["numberAvailable"], 0);
        assert_eq!(out.status["numberReady"], 1);
        assert_eq!(out.requeue, Some(Duration::from_secs(5)));
    }
}
