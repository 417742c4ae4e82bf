//! A Skiff cluster built from a lab, the way k3s servers run: every node runs a
//! control-plane replica (`skiff server`, up to `replicas`) and `skiff agent --server`
//! (kubelet + service proxy), each a real process inside the node's netns with its own
//! data and state directories, its own netns directory and cgroup parent (so the nodes of
//! one machine never take each other's pods for orphans) and its own images.
//!
//! Ports are the defaults a real installation uses, on each node's underlay address.

mod forward;
mod kubectl;
mod observe;
mod pods;
mod procs;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};

use crate::agent::skiff_bin;
use crate::lab::{ExternalClient, Lab, Node, Proc};
use crate::wait;
pub use forward::Forward;
pub use observe::{echo_box_layout, ECHO_BOX};
pub use pods::{kill_cgroup_procs, PodRef};
pub use procs::get as procs_get;

pub const API_PORT: u16 = 6443;
pub const AGENT_PORT: u16 = 6444;
pub const RAFT_PORT: u16 = 6445;
pub const KUBELET_PORT: u16 = 10250;

/// What to build.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub nodes: usize,
    /// Control-plane replicas, on the first nodes (1, 3 or 5).
    pub replicas: usize,
    /// Image archives imported on every node.
    pub images: Vec<PathBuf>,
    /// Data, state and logs of every process.
    pub work_dir: PathBuf,
    /// Extra arguments of every `skiff server` (e.g. short node-lifecycle graces).
    pub server_args: Vec<String>,
    /// Extra arguments of every `skiff agent` (e.g. a short heartbeat period).
    pub agent_args: Vec<String>,
}

impl ClusterSpec {
    /// `nodes` nodes, `replicas` control-plane replicas, default flags.
    pub fn new(nodes: usize, replicas: usize, images: Vec<PathBuf>, work_dir: PathBuf) -> Self {
        ClusterSpec {
            nodes,
            replicas,
            images,
            work_dir,
            server_args: Vec::new(),
            agent_args: Vec::new(),
        }
    }
}

/// A running cluster; dropping it stops every process and removes the lab.
pub struct Cluster {
    lab: Lab,
    /// A client outside every node, on the underlay (NodePort traffic comes from here).
    external: ExternalClient,
    /// XDP_PASS links that make the underlay's veths take XDP_TX frames like NICs.
    _nic_links: Vec<std::os::fd::OwnedFd>,
    spec: ClusterSpec,
    servers: Vec<Proc>,
    agents: Vec<Proc>,
}

impl Cluster {
    /// Build the lab, start the replicas (the first bootstraps, the others join), import
    /// the images, start the agents, and wait until every node is Ready. `note` gets one
    /// line per step.
    pub fn start(spec: ClusterSpec, note: &dyn Fn(String)) -> Result<Cluster> {
        if spec.replicas == 0 || spec.replicas > spec.nodes {
            bail!("{} replicas on {} nodes", spec.replicas, spec.nodes);
        }
        let skiff = skiff_bin()?;
        std::fs::create_dir_all(spec.work_dir.join("logs"))?;
        note(format!("building a lab of {} nodes", spec.nodes));
        let lab = Lab::builder()
            .nodes(spec.nodes)
            .peer_routes(false)
            .build()?;
        let nic_links = lab.underlay_like_nics()?;
        let external = lab.add_external_client(0)?;
        let mut c = Cluster {
            lab,
            external,
            _nic_links: nic_links,
            spec,
            servers: Vec::new(),
            agents: Vec::new(),
        };
        for i in 0..c.spec.replicas {
            note(format!(
                "starting control-plane replica {} on {}",
                i + 1,
                c.lab.node(i).name()
            ));
            let p = procs::server(
                &skiff,
                c.lab.node(i),
                i,
                c.node_addr(0),
                &c.spec.work_dir,
                &c.spec.server_args,
            )?;
            c.servers.push(p);
            c.wait_ready(i)?;
        }
        for i in 0..c.spec.nodes {
            let state = c.state_dir(i);
            for image in &c.spec.images {
                note(format!(
                    "importing {} on {}",
                    image.display(),
                    c.lab.node(i).name()
                ));
                procs::import(&skiff, &state, image)?;
            }
        }
        for i in 0..c.spec.nodes {
            note(format!("starting the agent on {}", c.lab.node(i).name()));
            let server = c.node_addr(i % c.spec.replicas);
            let p = procs::agent(
                &skiff,
                c.lab.node(i),
                server,
                &c.state_dir(i),
                &c.spec.work_dir,
                &c.spec.agent_args,
            )?;
            c.agents.push(p);
        }
        note(format!("waiting for {} nodes to be Ready", c.spec.nodes));
        c.wait_nodes_ready(Duration::from_secs(90))?;
        Ok(c)
    }

    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    pub fn external(&self) -> &ExternalClient {
        &self.external
    }

    pub fn node(&self, i: usize) -> &Node {
        self.lab.node(i)
    }

    pub fn node_addr(&self, i: usize) -> Ipv4Addr {
        self.lab.node(i).addr()
    }

    /// The Kubernetes API of replica `i`, reachable inside the lab.
    pub fn api(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.node_addr(i), API_PORT))
    }

    pub fn state_dir(&self, i: usize) -> PathBuf {
        self.spec.work_dir.join(format!("node-{i}"))
    }

    pub fn work_dir(&self) -> &Path {
        &self.spec.work_dir
    }

    fn wait_ready(&self, i: usize) -> Result<()> {
        let api = self.api(i);
        let node = self.node(i);
        let ready = wait::try_until(Duration::from_secs(60), || {
            node.netns()
                .run(|| procs::get(api, "/readyz").is_ok_and(|(code, _)| code == 200))
                .unwrap_or(false)
                .then_some(())
        });
        if ready.is_err() {
            bail!(
                "replica {} did not become ready; see {}",
                i + 1,
                procs::log_path(&self.spec.work_dir, &format!("server-{i}")).display()
            );
        }
        Ok(())
    }

    /// Wait until every node reports Ready.
    pub fn wait_nodes_ready(&self, timeout: Duration) -> Result<()> {
        let want = self.spec.nodes;
        let ready = wait::try_until(timeout, || {
            self.kubectl_ok(&[
                "get",
                "nodes",
                "-o",
                "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
            ])
            .is_ok_and(|s| s.lines().filter(|l| *l == "True").count() == want)
            .then_some(())
        });
        if ready.is_err() {
            bail!(
                "not all {want} nodes became Ready; agent logs are in {}",
                self.spec.work_dir.join("logs").display()
            );
        }
        Ok(())
    }

    /// Delete every workload and pod and wait (bounded) until the kubelets have stopped
    /// them: agents keep pods running across their own restarts, so stopping an agent
    /// alone would leave the pods' processes behind.
    pub fn drain(&self) -> Result<()> {
        self.kubectl_ok(&[
            "delete",
            "rc,rs,deployments,daemonsets,statefulsets,jobs,pods",
            "--all",
            "--all-namespaces",
            "--wait=false",
        ])?;
        let gone = wait::try_until(Duration::from_secs(90), || {
            self.kubectl_ok(&["get", "pods", "-A", "-o", "name"])
                .is_ok_and(|s| s.trim().is_empty())
                .then_some(())
        });
        if gone.is_err() {
            bail!("pods were still present after 90 s");
        }
        Ok(())
    }

    /// Drain, then stop every agent and server (SIGTERM, then SIGKILL); the lab goes with
    /// `self`.
    pub fn stop(&mut self) {
        if !self.agents.is_empty() {
            if let Err(e) = self.drain() {
                eprintln!("cluster: draining the nodes: {e}");
            }
        }
        for p in self.agents.drain(..).chain(self.servers.drain(..)) {
            p.stop(Duration::from_secs(10));
        }
        for (i, node) in self.lab.nodes().iter().enumerate() {
            procs::remove_cgroups(&cgroup_parent(node));
            crate::kubelet_lab::unmount_netns_dir(&self.state_dir(i).join("netns"));
            pods::unmount_all_under(&self.state_dir(i));
        }
    }
}

/// The cgroup the agent of `node` puts its pods under.
pub fn cgroup_parent(node: &Node) -> String {
    format!("skiff-{}", node.name())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
