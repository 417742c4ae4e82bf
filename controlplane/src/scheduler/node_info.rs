//! A node in compact form (what the filters read, computed once per node change), and the
//! usage the cache accounts against it.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use super::hash::{hash_str, IdBuild};
use super::quantity::QuantityError;
use super::resources::{HostPort, Resources};
use super::selector::Labels;
use super::taints::Taint;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: Arc<str>,
    pub name_hash: u64,
    /// `status.allocatable` (per resource, `status.capacity` when allocatable lacks it).
    pub allocatable: Resources,
    pub allowed_pods: i64,
    pub labels: Labels,
    pub taints: Vec<Taint>,
    /// Condition `Ready` is `True`.
    pub ready: bool,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
}

impl NodeInfo {
    pub fn new(node: &Node) -> Result<Self, QuantityError> {
        let name: Arc<str> = node.metadata.name.as_deref().unwrap_or("").into();
        let status = node.status.as_ref();
        let (alloc, alloc_pods) = match status.and_then(|s| s.allocatable.as_ref()) {
            Some(l) => Resources::from_list(l)?,
            None => (Resources::default(), None),
        };
        let (cap, cap_pods) = match status.and_then(|s| s.capacity.as_ref()) {
            Some(l) => Resources::from_list(l)?,
            None => (Resources::default(), None),
        };
        let has = |k: &str| {
            status
                .and_then(|s| s.allocatable.as_ref())
                .is_some_and(|l| l.contains_key(k))
        };
        let allocatable = Resources {
            milli_cpu: if has("cpu") {
                alloc.milli_cpu
            } else {
                cap.milli_cpu
            },
            memory: if has("memory") {
                alloc.memory
            } else {
                cap.memory
            },
        };
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let spec = node.spec.as_ref();
        Ok(Self {
            name_hash: hash_str(&name),
            name,
            allocatable,
            allowed_pods: alloc_pods.or(cap_pods).unwrap_or(0),
            labels: Labels::new(node.metadata.labels.clone().unwrap_or_default()),
            taints: spec
                .and_then(|s| s.taints.as_ref())
                .into_iter()
                .flatten()
                .map(Taint::from)
                .collect(),
            ready,
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        })
    }
}

/// What the pods bound (or assumed) to a node consume there.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub requested: Resources,
    pub non_zero: Resources,
    pub pods: i64,
    /// Host ports in use, with how many pods use each (a pod may share with itself only).
    pub ports: Vec<(HostPort, u32)>,
    /// Interned owner id → number of that owner's pods on this node.
    pub owners: HashMap<u32, u32, IdBuild>,
}

impl Usage {
    pub fn owner_count(&self, owner: Option<u32>) -> u32 {
        owner
            .and_then(|o| self.owners.get(&o).copied())
            .unwrap_or(0)
    }
}

/// A node as the filters and scores see it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub node: &'a NodeInfo,
    pub usage: &'a Usage,
}
