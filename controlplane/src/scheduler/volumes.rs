//! The pod's PersistentVolumeClaims in scheduling (kube-scheduler's VolumeBinding plugin,
//! for the volumes Skiff has):
//!
//! - A bound claim whose volume has node affinity (a `local` volume, or one provisioned
//!   for a node) lets the pod go only where that volume is reachable.
//! - A node-local claim lives on the node of the first pod that used it, recorded as
//!   `volume.kubernetes.io/selected-node` just before that pod is bound; every later pod
//!   of the claim goes to that node.
//! - An unbound claim of a class that waits for its first consumer (`WaitForFirstConsumer`)
//!   is bound after the pod is placed: the pod's node is written as the claim's selected
//!   node and the volume controller binds or provisions for that node. For a class without
//!   a provisioner, only the nodes that some free fitting volume is reachable from qualify.
//! - Any other unbound or missing claim makes the pod unschedulable for now (retried after
//!   a back-off: claims bind on their own).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::api::SchedulerApi;
use super::selector::Term;
use crate::api::meta;
use crate::controllers::volumes::matching::{
    available, claim_class, fits, node_affinity, waits_for_consumer, NO_PROVISIONER,
};

/// The annotation naming the node a claim's volume lives on.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// How long a pod's binding waits for its delayed claims to bind (then the pod is scheduled
/// again).
const CLAIM_BIND_WAIT: Duration = Duration::from_secs(30);
const CLAIM_POLL: Duration = Duration::from_millis(100);

/// Where a pod's claims let it go.
#[derive(Debug, Default)]
pub struct Placement {
    /// The node every pinned claim names (`None`: no claim is pinned).
    pub node: Option<String>,
    /// Claims not pinned yet: the pod's node pins them.
    pub unpinned: Vec<String>,
    /// Claims waiting for this pod (their first consumer) to be placed before they bind.
    pub delayed: Vec<String>,
    /// Node selector terms from the volumes: of each list, some term must match the node.
    pub node_terms: Vec<Vec<Term>>,
}

/// The claims a pod's volumes name.
pub fn claim_names(pod: &Pod) -> Vec<String> {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref());
    let mut names: Vec<String> = volumes
        .unwrap_or_default()
        .iter()
        .filter_map(|v| Some(v.persistent_volume_claim.as_ref()?.claim_name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// What the pod's claims, as read, allow: the claims by name (`None`: not found), every
/// volume and every class. An error is the reason the pod fits nowhere.
pub fn placement(
    claims: &[(String, Option<Value>)],
    volumes: &[Value],
    classes: &[Value],
) -> Result<Placement, String> {
    let mut out = Placement::default();
    for (name, claim) in claims {
        let Some(claim) = claim else {
            return Err(format!("persistentvolumeclaim {name:?} not found"));
        };
        if claim.pointer("/status/phase").and_then(Value::as_str) == Some("Bound") {
            let volume = claim.pointer("/spec/volumeName").and_then(Value::as_str);
            let pv = volume.and_then(|v| volumes.iter().find(|pv| meta::name(pv) == v));
            out.node_terms.extend(pv.and_then(node_affinity));
        } else {
            let class = classes.iter().find(|k| meta::name(k) == claim_class(claim));
            let Some(class) = class.filter(|k| waits_for_consumer(k)) else {
                return Err("pod has unbound immediate PersistentVolumeClaims".into());
            };
            let provisioner = class.get("provisioner").and_then(Value::as_str);
            if provisioner == Some(NO_PROVISIONER) {
                out.node_terms.extend(reachable_fits(claim, volumes)?);
            }
            out.delayed.push(name.clone());
        }
        let pinned = claim
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(SELECTED_NODE))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        match (pinned, &out.node) {
            (None, _) => out.unpinned.push(name.clone()),
            (Some(n), Some(m)) if n != m => {
                return Err("node(s) had volume node affinity conflict".into());
            }
            (Some(n), _) => out.node = Some(n.to_owned()),
        }
    }
    Ok(out)
}

/// Where some free volume fitting `claim` is reachable: the union of their node affinity
/// (`None`: one of them is reachable from every node).
fn reachable_fits(claim: &Value, volumes: &[Value]) -> Result<Option<Vec<Term>>, String> {
    let mut fitting = volumes
        .iter()
        .filter(|pv| available(pv) && fits(claim, pv))
        .peekable();
    if fitting.peek().is_none() {
        return Err("node(s) didn't find available persistent volumes to bind".into());
    }
    let mut terms = Vec::new();
    for pv in fitting {
        match node_affinity(pv) {
            Some(t) => terms.extend(t),
            None => return Ok(None),
        }
    }
    Ok(Some(terms))
}

/// Reads the pod's claims (and, if it has any, the volumes and classes) and places it.
pub async fn resolve<A: SchedulerApi>(api: &A, pod: &Pod) -> Result<Placement, String> {
    let names = claim_names(pod);
    if names.is_empty() {
        return Ok(Placement::default());
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut claims = Vec::with_capacity(names.len());
    for name in names {
        let claim = api.claim(ns, &name).await.map_err(|e| e.to_string())?;
        claims.push((name, claim.map(|c| json(&c))));
    }
    // Only an unbound claim needs the classes (does it wait for its consumer?).
    let unbound = claims.iter().any(|(_, c)| {
        c.as_ref()
            .is_some_and(|c| c.pointer("/status/phase").and_then(Value::as_str) != Some("Bound"))
    });
    let volumes = api.volumes().await.map_err(|e| e.to_string())?;
    let volumes: Vec<Value> = volumes.iter().map(json).collect();
    let classes: Vec<Value> = if unbound {
        let classes = api.storage_classes().await.map_err(|e| e.to_string())?;
        classes.iter().map(json).collect()
    } else {
        Vec::new()
    };
    placement(&claims, &volumes, &classes)
}

fn json(object: &impl serde::Serialize) -> Value {
    serde_json::to_value(object).unwrap_or_default()
}

/// Waits (bounded by [`CLAIM_BIND_WAIT`]) until the `delayed` claims in `ns`, just given
/// `node`, are bound: the pod reaches its node with its volumes there, as after
/// kube-scheduler's PreBind. An error says why not (a claim gone, given another node or
/// none — the volume controller un-pins a claim it cannot bind there — or not bound in
/// time).
pub async fn wait_bound<A: SchedulerApi>(
    api: &A,
    ns: &str,
    delayed: &[String],
    node: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + CLAIM_BIND_WAIT;
    for name in delayed {
        loop {
            let claim = api
                .claim(ns, name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("persistentvolumeclaim {name:?} is gone"))?;
            if claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") {
                break;
            }
            let annotations = claim.metadata.annotations.as_ref();
            let selected = annotations.and_then(|a| a.get(SELECTED_NODE));
            if selected.map(String::as_str) != Some(node) {
                return Err(format!(
                    "persistentvolumeclaim {name:?} cannot be bound on node {node:?}"
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "persistentvolumeclaim {name:?} was not bound within {CLAIM_BIND_WAIT:?}"
                ));
            }
            tokio::time::sleep(CLAIM_POLL).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::selector::Labels;
    use serde_json::json;

    fn claim(node: Option<&str>) -> Option<Value> {
        let mut c = json!({"spec": {"storageClassName": "manual", "volumeName": "pv-a",
                                    "accessModes": ["ReadWriteOnce"],
                                    "resources": {"requests": {"storage": "1Gi"}}},
                           "status": {"phase": "Bound"}});
        if let Some(n) = node {
            c["metadata"] = json!({"annotations": {SELECTED_NODE: n}});
        }
        Some(c)
    }

    fn local_pv(name: &str, class: &str, host: &str) -> Value {
        json!({"metadata": {"name": name},
               "spec": {"storageClassName": class, "capacity": {"storage": "5Gi"},
                        "accessModes": ["ReadWriteOnce"],
                        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In",
                             "values": [host]}]}]}}}})
    }

    fn matches(p: &Placement, node: &str) -> bool {
        let labels = Labels::new([("kubernetes.io/hostname".to_string(), node.to_string())]);
        p.node_terms
            .iter()
            .all(|terms| terms.iter().any(|t| t.matches(&labels, node)))
    }

    #[test]
    fn pinned_claims_decide_the_node() {
        let p = placement(
            &[("a".into(), claim(Some("n2"))), ("b".into(), claim(None))],
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(p.node.as_deref(), Some("n2"));
        assert_eq!(p.unpinned, ["b"]);
        let conflict = placement(
            &[
                ("a".into(), claim(Some("n1"))),
                ("b".into(), claim(Some("n2"))),
            ],
            &[],
            &[],
        );
        assert!(conflict.unwrap_err().contains("conflict"));
        let pending = placement(&[("p".into(), Some(json!({})))], &[], &[]);
        assert_eq!(
            pending.unwrap_err(),
            "pod has unbound immediate PersistentVolumeClaims"
        );
        let missing = placement(&[("gone".into(), None)], &[], &[]);
        assert_eq!(
            missing.unwrap_err(),
            "persistentvolumeclaim \"gone\" not found"
        );
    }

    #[test]
    fn a_bound_volume_with_node_affinity_limits_the_nodes() {
        let pvs = [local_pv("pv-a", "manual", "n2")];
        let p = placement(&[("a".into(), claim(None))], &pvs, &[]).unwrap();
        assert!(matches(&p, "n2") && !matches(&p, "n1"));
        let anywhere = [json!({"metadata": {"name": "pv-a"}, "spec": {}})];
        let p = placement(&[("a".into(), claim(None))], &anywhere, &[]).unwrap();
        assert!(p.node_terms.is_empty());
    }

    #[test]
    fn a_claim_waiting_for_its_consumer_goes_where_a_volume_can_bind() {
        let mut waiting = claim(None).unwrap();
        waiting["spec"] = json!({"storageClassName": "local", "accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": "1Gi"}}});
        waiting["status"] = json!({"phase": "Pending"});
        let classes = [json!({"metadata": {"name": "local"},
                              "provisioner": NO_PROVISIONER,
                              "volumeBindingMode": "WaitForFirstConsumer"})];
        let mut taken = local_pv("taken", "local", "n1");
        taken["spec"]["claimRef"] = json!({"name": "other", "namespace": "default"});
        let pvs = [
            local_pv("v2", "local", "n2"),
            local_pv("v3", "local", "n3"),
            taken,
        ];
        let claims = [("w".to_string(), Some(waiting.clone()))];
        let p = placement(&claims, &pvs, &classes).unwrap();
        assert_eq!(
            (p.unpinned.as_slice(), p.delayed.as_slice()),
            (&["w".to_string()][..], &["w".to_string()][..])
        );
        assert!(matches(&p, "n2") && matches(&p, "n3") && !matches(&p, "n1"));
        let none = placement(&claims, &pvs[2..], &classes);
        assert_eq!(
            none.unwrap_err(),
            "node(s) didn't find available persistent volumes to bind"
        );
        // A class with a provisioner can make a volume on whichever node is chosen.
        let mut provisioned = classes[0].clone();
        provisioned["provisioner"] = json!("skiff.io/local-path");
        let p = placement(&claims, &[], &[provisioned]).unwrap();
        assert!(p.node_terms.is_empty() && p.unpinned == ["w"]);
        // An Immediate class's unbound claim still waits for its binding.
        let mut immediate = classes[0].clone();
        immediate["volumeBindingMode"] = json!("Immediate");
        assert!(placement(&claims, &pvs, &[immediate]).is_err());
    }

    #[tokio::test]
    async fn binding_waits_for_delayed_claims_and_gives_up_when_unpinned() {
        use crate::scheduler::memory_api::InMemoryApi;
        let api = InMemoryApi::new();
        let put = |phase: &str, node: Option<&str>| {
            let mut c = json!({"metadata": {"name": "data", "namespace": "default"},
                               "status": {"phase": phase}});
            if let Some(n) = node {
                c["metadata"]["annotations"] = json!({SELECTED_NODE: n});
            }
            api.put_claim(serde_json::from_value(c).unwrap());
        };
        let delayed = ["data".to_string()];
        put("Bound", Some("n1"));
        assert_eq!(wait_bound(&api, "default", &delayed, "n1").await, Ok(()));
        // The volume controller dropped the pin: no waiting out the deadline.
        put("Pending", None);
        let err = wait_bound(&api, "default", &delayed, "n1")
            .await
            .unwrap_err();
        assert!(err.contains("cannot be bound on node \"n1\""), "{err}");
        let gone = wait_bound(&api, "default", &["other".to_string()], "n1").await;
        assert!(gone.unwrap_err().contains("is gone"));
    }

    #[test]
    fn claim_names_come_from_the_volumes() {
        let pod: Pod = serde_json::from_value(json!({"spec": {"containers": [], "volumes": [
            {"name": "x", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "y", "emptyDir": {}},
            {"name": "z", "persistentVolumeClaim": {"claimName": "data"}}]}}))
        .unwrap();
        assert_eq!(claim_names(&pod), ["data"]);
    }
}
