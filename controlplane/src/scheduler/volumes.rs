//! Node-local volume claims in scheduling (the share of kube-scheduler's VolumeBinding
//! plugin that applies to them): a claim lives on the node of the first pod that used it,
//! recorded as `volume.kubernetes.io/selected-node` just before that pod is bound, and
//! every later pod of the claim goes to that node. A pod whose claim does not exist or is
//! not bound yet is unschedulable (and retried after a back-off: claims bind on their own).

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};

use super::api::SchedulerApi;

/// The annotation naming the node a claim's volume lives on.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// Where a pod's claims let it go.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// The node every pinned claim names (`None`: no claim is pinned).
    pub node: Option<String>,
    /// Claims not pinned yet: the pod's node pins them.
    pub unpinned: Vec<String>,
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

/// The placement from the claims as read (`None`: not found); an error is the reason the
/// pod fits nowhere.
pub fn placement(claims: &[(String, Option<PersistentVolumeClaim>)]) -> Result<Placement, String> {
    let mut out = Placement::default();
    for (name, claim) in claims {
        let Some(claim) = claim else {
            return Err(format!("persistentvolumeclaim {name:?} not found"));
        };
        let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase != Some("Bound") {
            return Err("pod has unbound immediate PersistentVolumeClaims".into());
        }
        let pinned = claim
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SELECTED_NODE))
            .filter(|n| !n.is_empty());
        match (pinned, &out.node) {
            (None, _) => out.unpinned.push(name.clone()),
            (Some(n), Some(m)) if n != m => {
                return Err("node(s) had volume node affinity conflict".into());
            }
            (Some(n), _) => out.node = Some(n.clone()),
        }
    }
    Ok(out)
}

/// Reads the pod's claims and places it.
pub async fn resolve<A: SchedulerApi>(api: &A, pod: &Pod) -> Result<Placement, String> {
    let names = claim_names(pod);
    if names.is_empty() {
        return Ok(Placement::default());
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut claims = Vec::with_capacity(names.len());
    for name in names {
        let claim = api.claim(ns, &name).await.map_err(|e| e.to_string())?;
        claims.push((name, claim));
    }
    placement(&claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(node: Option<&str>) -> Option<PersistentVolumeClaim> {
        let mut c: PersistentVolumeClaim =
            serde_json::from_value(json!({"status": {"phase": "Bound"}})).unwrap();
        if let Some(n) = node {
            c.metadata.annotations = Some([(SELECTED_NODE.to_string(), n.to_string())].into());
        }
        Some(c)
    }

    #[test]
    fn pinned_claims_decide_the_node() {
        let p = placement(&[("a".into(), claim(Some("n2"))), ("b".into(), claim(None))]);
        assert_eq!(
            p,
            Ok(Placement {
                node: Some("n2".into()),
                unpinned: vec!["b".into()],
            })
        );
        let conflict = placement(&[
            ("a".into(), claim(Some("n1"))),
            ("b".into(), claim(Some("n2"))),
        ]);
        assert!(conflict.unwrap_err().contains("conflict"));
        let pending = placement(&[("p".into(), Some(PersistentVolumeClaim::default()))]);
        assert_eq!(
            pending.unwrap_err(),
            "pod has unbound immediate PersistentVolumeClaims"
        );
        let missing = placement(&[("gone".into(), None)]);
        assert_eq!(
            missing.unwrap_err(),
            "persistentvolumeclaim \"gone\" not found"
        );
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
