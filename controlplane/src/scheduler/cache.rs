//! The scheduling cache: compact nodes and the usage of the pods bound or assumed to them.
//!
//! Every event is O(1) (plus the pod's own ports/owner): node slots are stable indices (a
//! deleted node's slot lives on while pods still account against it, as kube-scheduler's
//! "ghost" NodeInfo), the live-node list is swap-removed, and owners are interned to small
//! ids so per-node owner counts are integer-keyed.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::node_info::{Candidate, NodeInfo, Usage};
use super::owners::OwnerIds;
use super::pod_info::{bound_node, controller_uid, is_terminated, pod_uid};
use super::quantity::QuantityError;
use super::resources::{host_ports, pod_requests, HostPort, PodRequests};

/// How a node event changed what the scheduler can place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeChange {
    Added,
    /// Allocatable, labels, taints, readiness or cordon changed.
    Changed,
    /// Only fields the scheduler ignores (heartbeats, images ...).
    Unchanged,
}

#[derive(Debug, Default)]
struct Slot {
    name: Arc<str>,
    node: Option<NodeInfo>,
    usage: Usage,
    /// Index in `Cache::live` while `node` is `Some`.
    live_pos: usize,
}

/// What one pod contributes to its node's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Footprint {
    req: PodRequests,
    ports: Vec<HostPort>,
    owner: Option<String>,
}

#[derive(Debug)]
struct PodEntry {
    slot: u32,
    fp: Footprint,
    /// Placed by this scheduler, bind not yet seen in a watch event.
    assumed: bool,
}

#[derive(Debug, Default)]
pub struct Cache {
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    by_name: HashMap<Arc<str>, u32>,
    /// Slots holding a node, in scheduling iteration order.
    live: Vec<u32>,
    pods: HashMap<String, PodEntry>,
    owners: OwnerIds,
}

impl Cache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of nodes (schedulable or not) known to the cache.
    pub fn num_nodes(&self) -> usize {
        self.live.len()
    }

    pub fn num_pods(&self) -> usize {
        self.pods.len()
    }

    /// The `i`-th node in iteration order (`i < num_nodes()`), with its slot id.
    pub fn node_at(&self, i: usize) -> (u32, Candidate<'_>) {
        let slot_id = self.live[i];
        (
            slot_id,
            self.candidate(slot_id).expect("live slot has a node"),
        )
    }

    pub fn candidate(&self, slot: u32) -> Option<Candidate<'_>> {
        let s = self.slots.get(slot as usize)?;
        Some(Candidate {
            node: s.node.as_ref()?,
            usage: &s.usage,
        })
    }

    pub fn slot_of(&self, node_name: &str) -> Option<u32> {
        self.by_name.get(node_name).copied()
    }

    /// Usage accounted to a node by name (also a deleted node that still has pods).
    pub fn usage(&self, node_name: &str) -> Option<&Usage> {
        self.slot_of(node_name)
            .map(|s| &self.slots[s as usize].usage)
    }

    /// Interned id of an owner uid, `None` if no cached pod has that owner.
    pub fn owner_id(&self, owner_uid: &str) -> Option<u32> {
        self.owners.get(owner_uid)
    }

    /// Whether the pod counts against a node (bound or assumed).
    pub fn has_pod(&self, pod_uid: &str) -> bool {
        self.pods.contains_key(pod_uid)
    }

    pub fn is_assumed(&self, pod_uid: &str) -> bool {
        self.pods.get(pod_uid).is_some_and(|e| e.assumed)
    }

    /// Names of the nodes in the cache (for a relist).
    pub fn node_names(&self) -> Vec<Arc<str>> {
        self.live
            .iter()
            .map(|&s| self.slots[s as usize].name.clone())
            .collect()
    }

    /// Uids of the pods whose bind was observed (assumed ones excluded; for a relist).
    pub fn bound_pod_uids(&self) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, e)| !e.assumed)
            .map(|(u, _)| u.clone())
            .collect()
    }

    pub fn node_name(&self, slot: u32) -> Option<&Arc<str>> {
        self.slots.get(slot as usize).map(|s| &s.name)
    }

    pub fn upsert_node(&mut self, node: &Node) -> Result<NodeChange, QuantityError> {
        let info = NodeInfo::new(node)?;
        let slot_id = self.slot_for(&info.name);
        let slot = &mut self.slots[slot_id as usize];
        match &mut slot.node {
            Some(old) if *old == info => Ok(NodeChange::Unchanged),
            Some(old) => {
                *old = info;
                Ok(NodeChange::Changed)
            }
            None => {
                slot.node = Some(info);
                slot.live_pos = self.live.len();
                self.live.push(slot_id);
                Ok(NodeChange::Added)
            }
        }
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(slot_id) = self.slot_of(name) else {
            return;
        };
        let slot = &mut self.slots[slot_id as usize];
        if slot.node.take().is_some() {
            let pos = slot.live_pos;
            self.live.swap_remove(pos);
            if let Some(&moved) = self.live.get(pos) {
                self.slots[moved as usize].live_pos = pos;
            }
        }
        self.release_slot_if_unused(slot_id);
    }

    /// Account a pod event: bound, non-terminated pods count against their node; others
    /// are dropped (an assumed pod stays until its bind is seen or it is forgotten).
    pub fn upsert_pod(&mut self, pod: &Pod) -> Result<(), QuantityError> {
        let uid = pod_uid(pod);
        let node = match bound_node(pod) {
            Some(n) if !is_terminated(pod) => n,
            _ => {
                if is_terminated(pod) || !self.is_assumed(uid) {
                    self.remove_pod(uid);
                }
                return Ok(());
            }
        };
        let fp = match &pod.spec {
            Some(spec) => Footprint {
                req: pod_requests(spec)?,
                ports: host_ports(spec),
                owner: controller_uid(pod).map(str::to_string),
            },
            None => Footprint {
                req: PodRequests::default(),
                ports: Vec::new(),
                owner: None,
            },
        };
        if let Some(e) = self.pods.get_mut(uid) {
            if self.by_name.get(node) == Some(&e.slot) && e.fp == fp {
                e.assumed = false;
                return Ok(());
            }
        }
        // Remove first: it may free the slot the pod moves back to.
        self.remove_pod(uid);
        let slot = self.slot_for(node);
        self.add(uid.to_string(), slot, fp, false);
        Ok(())
    }

    /// Account `pod` on `slot` right after it was placed, before the bind is observed.
    pub fn assume(&mut self, pod: &Pod, slot: u32) -> Result<(), QuantityError> {
        let spec = pod.spec.clone().unwrap_or_default();
        let fp = Footprint {
            req: pod_requests(&spec)?,
            ports: host_ports(&spec),
            owner: controller_uid(pod).map(str::to_string),
        };
        let uid = pod_uid(pod);
        self.remove_pod(uid);
        self.add(uid.to_string(), slot, fp, true);
        Ok(())
    }

    /// Undo [`Self::assume`] after a failed bind (no-op once the bind was observed).
    pub fn forget(&mut self, pod_uid: &str) {
        if self.is_assumed(pod_uid) {
            self.remove_pod(pod_uid);
        }
    }

    pub fn remove_pod(&mut self, pod_uid: &str) {
        let Some(e) = self.pods.remove(pod_uid) else {
            return;
        };
        let owner = e.fp.owner.as_deref().and_then(|o| self.owner_id(o));
        let usage = &mut self.slots[e.slot as usize].usage;
        usage.requested.sub(e.fp.req.requests);
        usage.non_zero.sub(e.fp.req.non_zero);
        usage.pods -= 1;
        for p in &e.fp.ports {
            if let Some(i) = usage.ports.iter().position(|(q, _)| q == p) {
                usage.ports[i].1 -= 1;
                if usage.ports[i].1 == 0 {
                    usage.ports.swap_remove(i);
                }
            }
        }
        if let Some(id) = owner {
            if let Some(c) = usage.owners.get_mut(&id) {
                *c -= 1;
                if *c == 0 {
                    usage.owners.remove(&id);
                }
            }
        }
        if let Some(o) = &e.fp.owner {
            self.owners.release(o);
        }
        self.release_slot_if_unused(e.slot);
    }

    fn add(&mut self, uid: String, slot: u32, fp: Footprint, assumed: bool) {
        let owner = fp.owner.as_deref().map(|o| self.owners.acquire(o));
        let usage = &mut self.slots[slot as usize].usage;
        usage.requested.add(fp.req.requests);
        usage.non_zero.add(fp.req.non_zero);
        usage.pods += 1;
        for p in &fp.ports {
            match usage.ports.iter_mut().find(|(q, _)| q == p) {
                Some((_, n)) => *n += 1,
                None => usage.ports.push((p.clone(), 1)),
            }
        }
        if let Some(id) = owner {
            *usage.owners.entry(id).or_insert(0) += 1;
        }
        self.pods.insert(uid, PodEntry { slot, fp, assumed });
    }

    fn slot_for(&mut self, name: &str) -> u32 {
        if let Some(s) = self.slot_of(name) {
            return s;
        }
        let name: Arc<str> = name.into();
        let id = match self.free_slots.pop() {
            Some(id) => id,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        self.slots[id as usize] = Slot {
            name: name.clone(),
            ..Slot::default()
        };
        self.by_name.insert(name, id);
        id
    }

    /// Free a slot whose node is gone and that no pod accounts against any more.
    fn release_slot_if_unused(&mut self, id: u32) {
        let slot = &self.slots[id as usize];
        if slot.node.is_some() || slot.usage.pods > 0 {
            return;
        }
        self.by_name.remove(&slot.name);
        self.free_slots.push(id);
    }
}
