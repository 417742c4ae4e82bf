//! What the kubelet's HTTP side (logs, metrics) asks the pod manager: which uid a pod has,
//! where a container's log is, how often it restarted. The pod workers publish into a
//! [`PodRegistry`]; [`PodLookup`] is the read side.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::layout;

/// Read access to the node's pods (implemented by [`PodRegistry`]).
pub trait PodLookup: Send + Sync {
    /// The uid of pod `ns/name` on this node.
    fn pod_uid(&self, ns: &str, name: &str) -> Option<String>;
    /// The restart count of `container` of pod `ns/name`.
    fn restart_count(&self, ns: &str, name: &str, container: &str) -> Option<u32>;
    /// The log file of `container`'s current instance, or of the previous one.
    fn log_path(&self, ns: &str, name: &str, container: &str, previous: bool) -> Option<PathBuf>;
    /// Every pod: (namespace, name, uid, container names).
    fn pods(&self) -> Vec<(String, String, String, Vec<String>)>;
}

/// One pod's entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodEntry {
    pub namespace: String,
    pub name: String,
    /// Container name → restart count (latest instance number).
    pub containers: BTreeMap<String, u32>,
}

/// The pods the workers run, by uid.
#[derive(Debug, Clone)]
pub struct PodRegistry {
    state_dir: PathBuf,
    pods: Arc<RwLock<HashMap<String, PodEntry>>>,
}

impl PodRegistry {
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            state_dir,
            pods: Arc::default(),
        }
    }

    pub fn set(&self, uid: &str, entry: PodEntry) {
        let mut pods = self.pods.write().expect("pod registry lock");
        if pods.get(uid) != Some(&entry) {
            pods.insert(uid.to_owned(), entry);
        }
    }

    pub fn remove(&self, uid: &str) {
        self.pods.write().expect("pod registry lock").remove(uid);
    }

    fn find(&self, ns: &str, name: &str) -> Option<(String, PodEntry)> {
        let pods = self.pods.read().expect("pod registry lock");
        pods.iter()
            .find(|(_, e)| e.namespace == ns && e.name == name)
            .map(|(u, e)| (u.clone(), e.clone()))
    }
}

impl PodLookup for PodRegistry {
    fn pod_uid(&self, ns: &str, name: &str) -> Option<String> {
        self.find(ns, name).map(|(u, _)| u)
    }

    fn restart_count(&self, ns: &str, name: &str, container: &str) -> Option<u32> {
        self.find(ns, name)?.1.containers.get(container).copied()
    }

    fn log_path(&self, ns: &str, name: &str, container: &str, previous: bool) -> Option<PathBuf> {
        let (uid, e) = self.find(ns, name)?;
        let n = *e.containers.get(container)?;
        let n = if previous { n.checked_sub(1)? } else { n };
        Some(layout::log_path(&self.state_dir, &uid, container, n))
    }

    fn pods(&self) -> Vec<(String, String, String, Vec<String>)> {
        let pods = self.pods.read().expect("pod registry lock");
        pods.iter()
            .map(|(u, e)| {
                (
                    e.namespace.clone(),
                    e.name.clone(),
                    u.clone(),
                    e.containers.keys().cloned().collect(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_namespace_and_name() {
        let r = PodRegistry::new("/s".into());
        let containers = [("app".to_string(), 2)].into();
        r.set(
            "u1",
            PodEntry {
                namespace: "shop".into(),
                name: "web".into(),
                containers,
            },
        );
        assert_eq!(r.pod_uid("shop", "web").as_deref(), Some("u1"));
        assert_eq!(r.restart_count("shop", "web", "app"), Some(2));
        assert_eq!(
            r.log_path("shop", "web", "app", true),
            Some("/s/pods/u1/logs/app/1.log".into())
        );
        assert_eq!(r.pod_uid("shop", "db"), None);
        r.remove("u1");
        assert!(r.pods().is_empty());
    }
}
