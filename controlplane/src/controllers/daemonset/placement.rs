//! Where a DaemonSet's pods belong (Kubernetes' `NodeShouldRunDaemonPod`) and the pod for
//! one node: the template plus the tolerations every daemon pod gets and a required node
//! affinity to exactly that node, so the scheduler binds it there.

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use crate::scheduler::filters::node_affinity;
use crate::scheduler::node_info::{Candidate, NodeInfo, Usage};
use crate::scheduler::pod_info::PodInfo;
use crate::scheduler::taints::{tolerated, Effect};

/// Whether a node should get a daemon pod, and whether one already there may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub should_run: bool,
    /// `false`: an untolerated `NoExecute` taint or a node that no longer matches.
    pub should_continue: bool,
}

impl Fit {
    pub const NONE: Fit = Fit {
        should_run: false,
        should_continue: false,
    };
}

/// The tolerations Kubernetes adds to every daemon pod (`AddOrUpdateDaemonPodTolerations`):
/// node conditions never evict them or keep them off a node.
fn daemon_tolerations(host_network: bool) -> Vec<(&'static str, &'static str)> {
    let mut t = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        t.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    t
}

/// Adds the daemon tolerations to a pod (as JSON) unless it has one for the same key
/// and effect already.
pub fn add_daemon_tolerations(pod: &mut Value) {
    let host_network = pod.pointer("/spec/hostNetwork") == Some(&json!(true));
    let spec = &mut pod["spec"];
    if !spec["tolerations"].is_array() {
        spec["tolerations"] = json!([]);
    }
    let list = spec["tolerations"].as_array_mut().expect("an array");
    for (key, effect) in daemon_tolerations(host_network) {
        let present = list
            .iter()
            .any(|t| t["key"] == json!(key) && t["effect"] == json!(effect));
        if !present {
            list.push(json!({"key": key, "operator": "Exists", "effect": effect}));
        }
    }
}

/// Pins a daemon pod to `node`: its required node affinity becomes exactly that node
/// (`ReplaceDaemonSetPodNodeNameNodeAffinity`; the template's own terms were already
/// checked against the node by [`fit`]).
pub fn pin_to_node(pod: &mut Value, node: &str) {
    let term = json!({"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": [node]}
    ]});
    let spec = &mut pod["spec"];
    if !spec["affinity"].is_object() {
        spec["affinity"] = json!({});
    }
    if !spec["affinity"]["nodeAffinity"].is_object() {
        spec["affinity"]["nodeAffinity"] = json!({});
    }
    spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] =
        json!({"nodeSelectorTerms": [term]});
}

/// The node a daemon pod is bound to, or pinned to while it waits for the scheduler.
pub fn target_node(pod: &Value) -> Option<&str> {
    if let Some(n) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Some(n);
    }
    let terms = pod.pointer(
        "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
    )?;
    terms.as_array()?.iter().find_map(|t| {
        t.get("matchFields")?.as_array()?.iter().find_map(|f| {
            let by_name = f["key"] == json!("metadata.name") && f["operator"] == json!("In");
            by_name.then(|| f.pointer("/values/0")?.as_str()).flatten()
        })
    })
}

/// The daemon pod (the template with the daemon tolerations, as JSON) as the scheduler
/// reads it, or why it does not parse.
pub fn pod_info(pod: &Value) -> Result<PodInfo, String> {
    let pod: Pod = serde_json::from_value(pod.clone()).map_err(|e| e.to_string())?;
    PodInfo::new(&pod).map_err(|e| e.to_string())
}

/// Whether a daemon pod (the template with the daemon tolerations, as JSON) belongs on
/// `node`: `nodeName`, `nodeSelector` and required node affinity match, and every
/// `NoSchedule`/`NoExecute` taint is tolerated (an untolerated `NoExecute` one also
/// evicts a pod already there). Resources are the scheduler's business, not this.
///
/// A pod that does not parse is the set's error (`Err`, nothing is decided on it); a node
/// that does not parse runs no daemon pod.
pub fn fit(pod: &PodInfo, node: &Value) -> Fit {
    let Some(n) = serde_json::from_value::<Node>(node.clone())
        .ok()
        .and_then(|node| NodeInfo::new(&node).ok())
    else {
        return Fit::NONE;
    };
    let name_ok = pod.node_name.as_deref().is_none_or(|want| want == &*n.name);
    let usage = Usage::default();
    let candidate = Candidate {
        node: &n,
        usage: &usage,
    };
    if !name_ok || node_affinity(pod, candidate).is_err() {
        return Fit::NONE;
    }
    let mut fit = Fit {
        should_run: true,
        should_continue: true,
    };
    for t in n.taints.iter().filter(|t| !tolerated(&pod.tolerations, t)) {
        match t.effect {
            Effect::NoExecute => return Fit::NONE,
            Effect::NoSchedule => fit.should_run = false,
            _ => {}
        }
    }
    fit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: Value, taints: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}})
    }

    fn daemon_pod(spec: Value) -> Value {
        let mut p = json!({"metadata": {"name": "p"}, "spec": spec});
        add_daemon_tolerations(&mut p);
        p
    }

    const BOTH: Fit = Fit {
        should_run: true,
        should_continue: true,
    };

    #[test]
    fn node_selector_and_affinity_pick_nodes() {
        let pod = daemon_pod(json!({"nodeSelector": {"disk": "ssd"}, "containers": []}));
        assert_eq!(
            fit(
                &pod_info(&pod).unwrap(),
                &node("a", json!({"disk": "ssd"}), json!([]))
            ),
            BOTH
        );
        assert_eq!(
            fit(&pod_info(&pod).unwrap(), &node("b", json!({}), json!([]))),
            Fit::NONE
        );
        let pod = daemon_pod(json!({"containers": [], "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}
        ]}}}}));
        assert_eq!(
            fit(
                &pod_info(&pod).unwrap(),
                &node("a", json!({"zone": "z1"}), json!([]))
            ),
            BOTH
        );
        assert_eq!(
            fit(
                &pod_info(&pod).unwrap(),
                &node("b", json!({"zone": "z2"}), json!([]))
            ),
            Fit::NONE
        );
    }

    #[test]
    fn taints_keep_pods_off_or_evict_them() {
        let pod = daemon_pod(json!({"containers": []}));
        let no_schedule = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        let fit_ns = fit(&pod_info(&pod).unwrap(), &node("a", json!({}), no_schedule));
        assert_eq!(
            fit_ns,
            Fit {
                should_run: false,
                should_continue: true
            }
        );
        let no_exec = json!([{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]);
        assert_eq!(
            fit(&pod_info(&pod).unwrap(), &node("a", json!({}), no_exec)),
            Fit::NONE
        );
        // Node conditions and cordons are tolerated by every daemon pod.
        let conditions = json!([
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
        ]);
        assert_eq!(
            fit(&pod_info(&pod).unwrap(), &node("a", json!({}), conditions)),
            BOTH
        );
        let tolerant = daemon_pod(json!({"containers": [], "tolerations": [
            {"key": "dedicated", "operator": "Exists"}]}));
        let gpu = json!([{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]);
        assert_eq!(
            fit(&pod_info(&tolerant).unwrap(), &node("a", json!({}), gpu)),
            BOTH
        );
    }

    #[test]
    fn pinned_pods_name_their_node() {
        let mut pod = daemon_pod(json!({"containers": []}));
        pin_to_node(&mut pod, "n2");
        assert_eq!(target_node(&pod), Some("n2"));
        assert_eq!(
            fit(&pod_info(&pod).unwrap(), &node("n2", json!({}), json!([]))),
            BOTH
        );
        assert_eq!(
            fit(&pod_info(&pod).unwrap(), &node("n1", json!({}), json!([]))),
            Fit::NONE
        );
        pod["spec"]["nodeName"] = json!("n3");
        assert_eq!(target_node(&pod), Some("n3"));
    }

    #[test]
    fn a_template_that_does_not_parse_is_an_error() {
        let pod = daemon_pod(json!({"containers": [
            {"name": "c", "image": "i", "resources": {"limits": {"memory": "512MB"}}}]}));
        assert!(pod_info(&pod).is_err());
    }

    #[test]
    fn tolerations_are_added_once() {
        let mut pod = daemon_pod(json!({"containers": [], "hostNetwork": true}));
        add_daemon_tolerations(&mut pod);
        let n = pod["spec"]["tolerations"].as_array().unwrap().len();
        assert_eq!(n, 7);
    }
}
