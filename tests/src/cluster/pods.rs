//! The pods of a lab cluster as tests see them: where each runs, its address, running
//! code inside its network namespace (the way a process in the pod would send), and
//! taking a node down hard (its agent and every pod process SIGKILLed).

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;

use super::Cluster;
use crate::lab::enter;

/// A pod that is running on one of the cluster's nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub name: String,
    pub uid: String,
    /// Index of the node it runs on.
    pub node: usize,
    pub ip: Ipv4Addr,
    /// Whether the API shows it terminating (deletionTimestamp set).
    pub terminating: bool,
}

impl Cluster {
    /// The pods matching `selector` (a label selector, `""` for all) in the default
    /// namespace that are bound to a node and have an IP.
    pub fn pods(&self, selector: &str) -> Result<Vec<PodRef>> {
        let mut args = vec!["get", "pods", "-o", "json"];
        if !selector.is_empty() {
            args.extend(["-l", selector]);
        }
        // kubectl prints a `v1/List`, not a `PodList`.
        #[derive(serde::Deserialize)]
        struct Items {
            items: Vec<Pod>,
        }
        let list: Items =
            serde_json::from_str(&self.kubectl_ok(&args)?).context("parsing the pod list")?;
        let mut pods = Vec::new();
        for p in list.items {
            let spec_node = p.spec.as_ref().and_then(|s| s.node_name.clone());
            let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone());
            let (Some(node_name), Some(ip)) = (spec_node, ip) else {
                continue;
            };
            let Some(node) =
                (0..self.lab.nodes().len()).find(|&i| self.node(i).name() == node_name)
            else {
                bail!("pod bound to unknown node {node_name}");
            };
            pods.push(PodRef {
                name: p.metadata.name.clone().unwrap_or_default(),
                uid: p.metadata.uid.clone().unwrap_or_default(),
                node,
                ip: ip.parse().with_context(|| format!("pod IP {ip}"))?,
                terminating: p.metadata.deletion_timestamp.is_some(),
            });
        }
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(pods)
    }

    /// Runs `f` on a thread inside `pod`'s network namespace (the agent's bind mount
    /// `<state>/netns/<uid>`): sockets it opens send from the pod, through its veth and
    /// the node's data path. They stay usable from any thread afterwards.
    pub fn in_pod<T: Send>(&self, pod: &PodRef, f: impl FnOnce() -> T + Send) -> Result<T> {
        let path = self.state_dir(pod.node).join("netns").join(&pod.uid);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        std::thread::scope(|s| {
            s.spawn(move || -> Result<T> {
                enter(&file).with_context(|| format!("entering {}", path.display()))?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Takes node `i` down the hard way: its agent and every process of its pods get
    /// SIGKILL, as when the machine loses power. The API objects stay until the
    /// control plane notices.
    pub fn kill_node(&mut self, i: usize) {
        self.agents[i].kill();
        kill_cgroup_procs(&super::cgroup_parent(self.node(i)));
    }
}

/// SIGKILLs every process in the cgroup tree `name` of every hierarchy (v1 controllers
/// under /sys/fs/cgroup, or the unified one), until none is left (at most 10 s).
pub fn kill_cgroup_procs(name: &str) {
    fn pids(dir: &Path, out: &mut Vec<i32>) {
        if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                pids(&e.path(), out);
            }
        }
    }
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(name)];
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        dirs.push(e.path().join(name));
    }
    let collect = || {
        let mut all = Vec::new();
        for d in &dirs {
            pids(d, &mut all);
        }
        all
    };
    let gone = crate::wait::try_until(Duration::from_secs(10), || {
        let all = collect();
        for &pid in &all {
            // SAFETY: plain syscall; a pid that already exited yields ESRCH.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        all.is_empty().then_some(())
    });
    if gone.is_err() {
        eprintln!("cluster: processes of cgroup {name} survived SIGKILL for 10 s");
    }
}

/// Detaches every mount under `dir` (deepest first): what a killed agent's pods leave
/// behind (overlay roots, volumes, netns bind mounts).
pub fn unmount_all_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p) {
            // SAFETY: a plain syscall on a NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}
