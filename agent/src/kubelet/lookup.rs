//! What the kubelet's HTTP side (logs, metrics) asks the pod manager: a pod's uid and its
//! containers (instance number, running or not), and their usage. The pod workers publish
//! into a [`PodRegistry`]; [`PodLookup`] is the read side the HTTP server uses, and
//! [`RegistryStats`] reads the running containers' cgroups for `/metrics`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::http::{ContainerUsage, StatsSource};
use crate::runtime::cgroups::CgroupManager;

/// One container of a pod, as the pod manager knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub name: String,
    /// The current instance (its log is `<restart_count>.log`).
    pub restart_count: u32,
    /// Whether that instance is running (a followed log ends when not).
    pub running: bool,
    /// The spec asks for stdin or a terminal (`kubectl run -i`, `-t`): an attach reaches
    /// its console and shows the instance's output from its start, not only what comes
    /// after.
    pub stdin: bool,
}

/// A pod on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub uid: String,
    /// Init and app containers.
    pub containers: Vec<ContainerInfo>,
}

/// A running container to run a command in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTargetInfo {
    /// The instance id (`<uid>_<name>_<restart>`), for messages.
    pub id: String,
    pub pid: u32,
    pub pid_start: u64,
    pub cgroup: Option<String>,
}

/// Finds pods by namespace and name (implemented by [`PodRegistry`]).
pub trait PodLookup: Send + Sync {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo>;

    /// The running container `container` of pod `namespace/name`.
    fn exec_target(
        &self,
        _namespace: &str,
        _name: &str,
        _container: &str,
    ) -> Option<ExecTargetInfo> {
        None
    }
}

/// One container's entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerEntry {
    pub name: String,
    /// Latest instance number started.
    pub restart_count: u32,
    pub running: bool,
    /// The running instance's cgroup.
    pub cgroup: Option<String>,
    /// The running instance's main process: host pid and its start time
    /// (what `kubectl exec` enters).
    pub process: Option<(u32, u64)>,
    /// The spec keeps stdin open (see [`ContainerInfo::stdin`]).
    pub stdin: bool,
}

/// One pod's entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodEntry {
    pub namespace: String,
    pub name: String,
    /// Init containers, then app containers, in spec order.
    pub containers: Vec<ContainerEntry>,
}

/// The pods the workers run, by uid.
#[derive(Debug, Clone, Default)]
pub struct PodRegistry {
    pods: Arc<RwLock<HashMap<String, PodEntry>>>,
}

impl PodRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self, uid: &str, entry: PodEntry) {
        let mut pods = self.pods.write().unwrap_or_else(|e| e.into_inner());
        if pods.get(uid) != Some(&entry) {
            pods.insert(uid.to_owned(), entry);
        }
    }

    pub fn remove(&self, uid: &str) {
        self.pods
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }

    /// Every pod: uid and entry.
    pub fn snapshot(&self) -> Vec<(String, PodEntry)> {
        let pods = self.pods.read().unwrap_or_else(|e| e.into_inner());
        pods.iter().map(|(u, e)| (u.clone(), e.clone())).collect()
    }
}

/// The uid and entry of pod `namespace/name` in `pods`.
fn find<'a>(
    pods: &'a HashMap<String, PodEntry>,
    namespace: &str,
    name: &str,
) -> Option<(&'a String, &'a PodEntry)> {
    pods.iter()
        .find(|(_, e)| e.namespace == namespace && e.name == name)
}

impl PodLookup for PodRegistry {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        let pods = self.pods.read().unwrap_or_else(|e| e.into_inner());
        let (uid, e) = find(&pods, namespace, name)?;
        Some(PodInfo {
            uid: uid.clone(),
            containers: e
                .containers
                .iter()
                .map(|c| ContainerInfo {
                    name: c.name.clone(),
                    restart_count: c.restart_count,
                    running: c.running,
                    stdin: c.stdin,
                })
                .collect(),
        })
    }

    fn exec_target(&self, namespace: &str, name: &str, container: &str) -> Option<ExecTargetInfo> {
        let pods = self.pods.read().unwrap_or_else(|e| e.into_inner());
        let (uid, e) = find(&pods, namespace, name)?;
        let c = e.containers.iter().find(|c| c.name == container)?;
        let (pid, pid_start) = c.process.filter(|_| c.running)?;
        Some(ExecTargetInfo {
            id: format!("{uid}_{}_{}", c.name, c.restart_count),
            pid,
            pid_start,
            cgroup: c.cgroup.clone(),
        })
    }
}

/// Usage of the running containers, from their cgroups.
#[derive(Debug, Clone)]
pub struct RegistryStats {
    pub registry: PodRegistry,
    pub cgroups: &'static dyn CgroupManager,
}

impl StatsSource for RegistryStats {
    fn container_usage(&self) -> Vec<ContainerUsage> {
        let mut out = Vec::new();
        for (uid, pod) in self.registry.snapshot() {
            for c in &pod.containers {
                let Some(path) = c.cgroup.as_ref().filter(|_| c.running) else {
                    continue;
                };
                match self.cgroups.stats(path) {
                    Ok(st) => out.push(ContainerUsage {
                        namespace: pod.namespace.clone(),
                        pod: pod.name.clone(),
                        container: c.name.clone(),
                        cpu_usage_seconds: st.cpu_usage_ns as f64 / 1e9,
                        memory_working_set_bytes: st.memory_working_set,
                    }),
                    Err(e) => log::debug!("kubelet: stats of pod {uid} {}: {e}", c.name),
                }
            }
        }
        out.sort_by(|a, b| {
            (&a.namespace, &a.pod, &a.container).cmp(&(&b.namespace, &b.pod, &b.container))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_namespace_and_name() {
        let r = PodRegistry::new();
        let c = |name: &str, restart_count, cgroup: Option<&str>| ContainerEntry {
            name: name.into(),
            restart_count,
            running: cgroup.is_some(),
            cgroup: cgroup.map(Into::into),
            process: cgroup.map(|_| (4242, 7)),
            stdin: false,
        };
        r.set(
            "u1",
            PodEntry {
                namespace: "shop".into(),
                name: "web".into(),
                containers: vec![c("init", 0, None), c("app", 2, Some("skiff/pod-u1/x"))],
            },
        );
        let info = r.pod("shop", "web").unwrap();
        assert_eq!(info.uid, "u1");
        assert_eq!(
            info.containers,
            [
                ContainerInfo {
                    name: "init".into(),
                    restart_count: 0,
                    running: false,
                    stdin: false,
                },
                ContainerInfo {
                    name: "app".into(),
                    restart_count: 2,
                    running: true,
                    stdin: false,
                }
            ]
        );
        assert_eq!(r.pod("shop", "db"), None);
        let t = r.exec_target("shop", "web", "app").unwrap();
        assert_eq!((t.id.as_str(), t.pid, t.pid_start), ("u1_app_2", 4242, 7));
        assert_eq!(t.cgroup.as_deref(), Some("skiff/pod-u1/x"));
        assert_eq!(r.exec_target("shop", "web", "init"), None, "not running");
        r.remove("u1");
        assert!(r.snapshot().is_empty());
    }
}
