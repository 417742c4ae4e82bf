//! Watch events into the cache and the queue.

use std::collections::HashSet;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::api::WatchEvent;
use super::cache::NodeChange;
use super::pod_info::{bound_node, is_terminated, pod_key, pod_uid};
use super::{Scheduler, DEFAULT_SCHEDULER_NAME};

impl Scheduler {
    /// Whether `spec.schedulerName` selects this scheduler.
    pub(super) fn responsible_for(&self, pod: &Pod) -> bool {
        let name = pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref());
        match name {
            None | Some("") => self.cfg.scheduler_name == DEFAULT_SCHEDULER_NAME,
            Some(n) => n == self.cfg.scheduler_name,
        }
    }

    pub(super) fn on_node(&mut self, ev: WatchEvent<Node>) {
        match ev {
            WatchEvent::Added(n) | WatchEvent::Modified(n) => match self.cache.upsert_node(&n) {
                Ok(NodeChange::Added | NodeChange::Changed) => {
                    self.queue.move_all_unschedulable(Instant::now());
                }
                Ok(NodeChange::Unchanged) => {}
                Err(e) => {
                    log::warn!("scheduler: ignoring node {:?}: {e}", n.metadata.name);
                    self.cache
                        .remove_node(n.metadata.name.as_deref().unwrap_or(""));
                }
            },
            WatchEvent::Deleted(n) => self
                .cache
                .remove_node(n.metadata.name.as_deref().unwrap_or("")),
        }
    }

    pub(super) fn on_pod(&mut self, ev: WatchEvent<Pod>) {
        let now = Instant::now();
        match ev {
            WatchEvent::Added(p) | WatchEvent::Modified(p) => self.pod_changed(p, now),
            WatchEvent::Deleted(p) => {
                let uid = pod_uid(&p);
                let held_resources = bound_node(&p).is_some();
                self.cache.remove_pod(uid);
                self.queue.remove(uid);
                if held_resources {
                    self.queue.move_all_unschedulable(now);
                }
            }
        }
    }

    fn pod_changed(&mut self, pod: Pod, now: Instant) {
        let uid = pod_uid(&pod).to_string();
        if bound_node(&pod).is_some() {
            // Bound (by us or anyone): account it; it is no longer pending.
            self.queue.remove(&uid);
            let was_counted = self.cache.has_pod(&uid);
            if let Err(e) = self.cache.upsert_pod(&pod) {
                log::warn!("scheduler: pod {} not accounted: {e}", pod_key(&pod));
            }
            if was_counted && is_terminated(&pod) {
                self.queue.move_all_unschedulable(now);
            }
            return;
        }
        if is_terminated(&pod) || pod.metadata.deletion_timestamp.is_some() {
            self.queue.remove(&uid);
            return;
        }
        // An assumed pod's pre-bind updates (e.g. our own status write) change nothing.
        if self.responsible_for(&pod) && !self.cache.is_assumed(&uid) {
            self.queue.add_or_update(pod, now);
        }
    }

    /// After a relist: drop what vanished, then apply the list as updates.
    pub(super) fn replace_nodes(&mut self, nodes: Vec<Node>) {
        let listed: HashSet<&str> = nodes
            .iter()
            .filter_map(|n| n.metadata.name.as_deref())
            .collect();
        for name in self.cache.node_names() {
            if !listed.contains(&*name) {
                self.cache.remove_node(&name);
            }
        }
        for n in nodes {
            self.on_node(WatchEvent::Modified(n));
        }
    }

    pub(super) fn replace_pods(&mut self, pods: Vec<Pod>) {
        let listed: HashSet<&str> = pods.iter().map(pod_uid).collect();
        for uid in self.cache.bound_pod_uids() {
            if !listed.contains(uid.as_str()) {
                self.cache.remove_pod(&uid);
            }
        }
        let gone: Vec<String> = self
            .queue
            .uids()
            .filter(|u| !listed.contains(u))
            .map(str::to_string)
            .collect();
        for uid in gone {
            self.queue.remove(&uid);
        }
        let now = Instant::now();
        for p in pods {
            self.pod_changed(p, now);
        }
    }
}
