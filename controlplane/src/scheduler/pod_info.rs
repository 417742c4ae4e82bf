//! Everything the filters and scores need from a pod, computed once per scheduling attempt.

use k8s_openapi::api::core::v1::Pod;

use super::hash::hash_str;
use super::quantity::QuantityError;
use super::resources::{host_ports, pod_requests, HostPort, Resources};
use super::selector::Term;
use super::taints::Toleration;

#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    /// Hash of the pod uid: the deterministic tie-breaker between equal-scored nodes.
    pub uid_hash: u64,
    pub requests: Resources,
    pub non_zero: Resources,
    pub host_ports: Vec<HostPort>,
    /// Uid of the controller owner reference (ReplicaSet, StatefulSet, Job ...).
    pub owner: Option<String>,
    /// `spec.nodeName` (a pod that names its node may only go there).
    pub node_name: Option<String>,
    pub node_selector: Vec<(String, String)>,
    /// Required node affinity: any term must match. `None`: no requirement.
    pub required: Option<Vec<Term>>,
    /// Preferred node affinity: `(weight, term)`.
    pub preferred: Vec<(i64, Term)>,
    pub tolerations: Vec<Toleration>,
    /// From the pod's volumes (see [`super::volumes`]): of each list, some term must match.
    pub volume_terms: Vec<Vec<Term>>,
}

impl PodInfo {
    pub fn new(pod: &Pod) -> Result<Self, QuantityError> {
        let uid_hash = hash_str(pod_uid(pod));
        let owner = controller_uid(pod).map(str::to_string);
        let Some(spec) = &pod.spec else {
            return Ok(Self {
                uid_hash,
                owner,
                ..Self::default()
            });
        };
        let req = pod_requests(spec)?;
        let node_affinity = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref());
        let required = node_affinity
            .and_then(|na| {
                na.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|sel| sel.node_selector_terms.iter().map(Term::compile).collect());
        let preferred = node_affinity
            .and_then(|na| {
                na.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|p| {
                p.iter()
                    .filter(|t| t.weight != 0)
                    .map(|t| (i64::from(t.weight), Term::compile(&t.preference)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            uid_hash,
            requests: req.requests,
            non_zero: req.non_zero,
            host_ports: host_ports(spec),
            owner,
            node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
            node_selector: spec
                .node_selector
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            required,
            preferred,
            tolerations: spec
                .tolerations
                .iter()
                .flatten()
                .map(Toleration::from)
                .collect(),
            volume_terms: Vec::new(),
        })
    }
}

pub fn pod_uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// `namespace/name`, for messages and logs.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// Uid of the owner reference marked `controller: true`.
pub fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// `spec.nodeName`, `None` when empty.
pub fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Succeeded and Failed pods no longer hold resources on their node.
pub fn is_terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}
