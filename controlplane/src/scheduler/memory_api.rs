//! An in-memory API server for the scheduler: nodes and pods in maps, watches with a short
//! replay history, bindings, status conditions and Events recorded. It is the scheduler's
//! boundary in unit tests and the "memory" mode of the bench (pure scheduling throughput).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Node, PersistentVolume, PersistentVolumeClaim, Pod, PodCondition, PodStatus,
};
use k8s_openapi::api::storage::v1::StorageClass;
use tokio::sync::Notify;

use super::api::{ApiError, Listed, SchedulerApi, SchedulingEvent, WatchEvent, WatchStream};
use super::memory_watch::Kind;
use super::pod_info::bound_node;

struct State {
    revision: u64,
    nodes: BTreeMap<String, Node>,
    /// By `namespace/name`.
    pods: BTreeMap<String, Pod>,
    node_kind: Kind<Node>,
    pod_kind: Kind<Pod>,
    events: Vec<SchedulingEvent>,
    /// By `namespace/name`.
    claims: BTreeMap<String, PersistentVolumeClaim>,
    volumes: BTreeMap<String, PersistentVolume>,
    classes: BTreeMap<String, StorageClass>,
    binds: u64,
    fail_binds: u32,
}

pub struct InMemoryApi {
    state: Mutex<State>,
    changed: Notify,
}

impl Default for InMemoryApi {
    fn default() -> Self {
        Self::new()
    }
}

fn pod_key(p: &Pod) -> String {
    let ns = p.metadata.namespace.as_deref().unwrap_or("default");
    format!("{ns}/{}", p.metadata.name.as_deref().unwrap_or(""))
}

impl InMemoryApi {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                revision: 0,
                nodes: BTreeMap::new(),
                pods: BTreeMap::new(),
                node_kind: Kind::default(),
                pod_kind: Kind::default(),
                events: Vec::new(),
                claims: BTreeMap::new(),
                volumes: BTreeMap::new(),
                classes: BTreeMap::new(),
                binds: 0,
                fail_binds: 0,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Create or replace a node.
    pub fn put_node(&self, mut node: Node) {
        let mut s = self.lock();
        s.revision += 1;
        let rev = s.revision;
        node.metadata.resource_version = Some(rev.to_string());
        let name = node.metadata.name.clone().unwrap_or_default();
        let ev = match s.nodes.insert(name, node.clone()) {
            None => WatchEvent::Added(node),
            Some(_) => WatchEvent::Modified(node),
        };
        s.node_kind.publish(rev, ev);
        drop(s);
        self.changed.notify_waiters();
    }

    pub fn delete_node(&self, name: &str) {
        let mut s = self.lock();
        if let Some(n) = s.nodes.remove(name) {
            s.revision += 1;
            let rev = s.revision;
            s.node_kind.publish(rev, WatchEvent::Deleted(n));
        }
        drop(s);
        self.changed.notify_waiters();
    }

    /// Create or replace a pod.
    pub fn put_pod(&self, pod: Pod) {
        let mut s = self.lock();
        Self::store_pod(&mut s, pod);
        drop(s);
        self.changed.notify_waiters();
    }

    /// Create many pods under one lock (bench set-up).
    pub fn put_pods(&self, pods: impl IntoIterator<Item = Pod>) {
        let mut s = self.lock();
        for p in pods {
            Self::store_pod(&mut s, p);
        }
        drop(s);
        self.changed.notify_waiters();
    }

    fn store_pod(s: &mut State, mut pod: Pod) {
        s.revision += 1;
        let rev = s.revision;
        pod.metadata.resource_version = Some(rev.to_string());
        let ev = match s.pods.insert(pod_key(&pod), pod.clone()) {
            None => WatchEvent::Added(pod),
            Some(_) => WatchEvent::Modified(pod),
        };
        s.pod_kind.publish(rev, ev);
    }

    /// Adds or replaces a PersistentVolumeClaim (no watch: the scheduler reads claims).
    pub fn put_claim(&self, claim: PersistentVolumeClaim) {
        let ns = claim.metadata.namespace.as_deref().unwrap_or("default");
        let key = format!("{ns}/{}", claim.metadata.name.as_deref().unwrap_or(""));
        self.lock().claims.insert(key, claim);
    }

    /// Adds or replaces a PersistentVolume (read, not watched, as claims).
    pub fn put_volume(&self, pv: PersistentVolume) {
        let name = pv.metadata.name.clone().unwrap_or_default();
        self.lock().volumes.insert(name, pv);
    }

    /// Adds or replaces a StorageClass.
    pub fn put_class(&self, class: StorageClass) {
        let name = class.metadata.name.clone().unwrap_or_default();
        self.lock().classes.insert(name, class);
    }

    /// A claim as stored now.
    pub fn claim_now(&self, namespace: &str, name: &str) -> Option<PersistentVolumeClaim> {
        self.lock()
            .claims
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }

    pub fn delete_pod(&self, namespace: &str, name: &str) {
        let mut s = self.lock();
        if let Some(p) = s.pods.remove(&format!("{namespace}/{name}")) {
            s.revision += 1;
            let rev = s.revision;
            s.pod_kind.publish(rev, WatchEvent::Deleted(p));
        }
        drop(s);
        self.changed.notify_waiters();
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.lock()
            .pods
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }

    pub fn pods(&self) -> Vec<Pod> {
        self.lock().pods.values().cloned().collect()
    }

    /// Number of successful binds so far.
    pub fn binds(&self) -> u64 {
        self.lock().binds
    }

    pub fn events(&self) -> Vec<SchedulingEvent> {
        self.lock().events.clone()
    }

    /// The next `n` binds fail with a transient error.
    pub fn fail_next_binds(&self, n: u32) {
        self.lock().fail_binds = n;
    }

    /// End every open watch (the scheduler must relist).
    pub fn close_watches(&self) {
        let mut s = self.lock();
        s.node_kind.watchers.clear();
        s.pod_kind.watchers.clear();
    }

    /// Wait until `pred` holds, re-checking after every change; `false` on timeout.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Self) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return pred(self);
            }
        }
    }

    fn modify_pod(
        &self,
        pod: &Pod,
        f: impl FnOnce(&mut Pod) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        let key = pod_key(pod);
        let mut s = self.lock();
        let stored = s
            .pods
            .get_mut(&key)
            .ok_or_else(|| ApiError::NotFound(format!("pod {key}")))?;
        if stored.metadata.uid != pod.metadata.uid {
            return Err(ApiError::Conflict(
                format!("pod {key}"),
                "uid changed".into(),
            ));
        }
        f(stored)?;
        s.revision += 1;
        let rev = s.revision;
        let stored = s.pods.get_mut(&key).expect("present");
        stored.metadata.resource_version = Some(rev.to_string());
        let ev = WatchEvent::Modified(stored.clone());
        s.pod_kind.publish(rev, ev);
        drop(s);
        self.changed.notify_waiters();
        Ok(())
    }
}

fn set_condition(pod: &mut Pod, cond: PodCondition) {
    let status = pod.status.get_or_insert_with(PodStatus::default);
    let conds = status.conditions.get_or_insert_with(Vec::new);
    conds.retain(|c| c.type_ != cond.type_);
    conds.push(cond);
}

impl SchedulerApi for InMemoryApi {
    async fn list_nodes(&self) -> Result<Listed<Node>, ApiError> {
        let s = self.lock();
        Ok(Listed {
            items: s.nodes.values().cloned().collect(),
            resource_version: s.revision.to_string(),
        })
    }

    async fn list_pods(&self) -> Result<Listed<Pod>, ApiError> {
        let s = self.lock();
        Ok(Listed {
            items: s.pods.values().cloned().collect(),
            resource_version: s.revision.to_string(),
        })
    }

    async fn watch_nodes(&self, resource_version: &str) -> Result<WatchStream<Node>, ApiError> {
        let from = resource_version.parse().unwrap_or(0);
        self.lock().node_kind.watch(from)
    }

    async fn watch_pods(&self, resource_version: &str) -> Result<WatchStream<Pod>, ApiError> {
        let from = resource_version.parse().unwrap_or(0);
        self.lock().pod_kind.watch(from)
    }

    async fn bind(&self, pod: &Pod, node: &str) -> Result<(), ApiError> {
        {
            let mut s = self.lock();
            if s.fail_binds > 0 {
                s.fail_binds -= 1;
                return Err(ApiError::Other("bind".into(), "injected failure".into()));
            }
        }
        self.modify_pod(pod, |p| {
            if let Some(n) = bound_node(p) {
                return Err(ApiError::Conflict(
                    pod_key(p),
                    format!("already bound to {n}"),
                ));
            }
            p.spec.get_or_insert_with(Default::default).node_name = Some(node.to_string());
            set_condition(
                p,
                PodCondition {
                    type_: "PodScheduled".into(),
                    status: "True".into(),
                    ..PodCondition::default()
                },
            );
            Ok(())
        })?;
        self.lock().binds += 1;
        self.changed.notify_waiters();
        Ok(())
    }

    async fn set_unschedulable(&self, pod: &Pod, message: &str) -> Result<(), ApiError> {
        self.modify_pod(pod, |p| {
            set_condition(
                p,
                PodCondition {
                    type_: "PodScheduled".into(),
                    status: "False".into(),
                    reason: Some("Unschedulable".into()),
                    message: Some(message.to_string()),
                    ..PodCondition::default()
                },
            );
            Ok(())
        })
    }

    async fn emit_event(&self, event: SchedulingEvent) -> Result<(), ApiError> {
        self.lock().events.push(event);
        self.changed.notify_waiters();
        Ok(())
    }

    async fn claim(&self, ns: &str, name: &str) -> Result<Option<PersistentVolumeClaim>, ApiError> {
        Ok(self.lock().claims.get(&format!("{ns}/{name}")).cloned())
    }

    async fn volumes(&self) -> Result<Vec<PersistentVolume>, ApiError> {
        Ok(self.lock().volumes.values().cloned().collect())
    }

    async fn storage_classes(&self) -> Result<Vec<StorageClass>, ApiError> {
        Ok(self.lock().classes.values().cloned().collect())
    }

    async fn select_node(&self, ns: &str, name: &str, node: &str) -> Result<(), ApiError> {
        let mut st = self.lock();
        let key = format!("{ns}/{name}");
        let claim = st
            .claims
            .get_mut(&key)
            .ok_or_else(|| ApiError::NotFound(key.clone()))?;
        claim
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(super::volumes::SELECTED_NODE.into(), node.into());
        Ok(())
    }
}
