//! A lab of network namespaces shaped like a small cluster.
//!
//! ```text
//!   netns <lab>-ul:  br0 ── n0, n1, ...                (the underlay L2 segment)
//!   netns <lab>-n<i>: eth0 192.168.200.(i+10)/24       (veth to br0)
//!                     lxc<k> ── eth0 of <lab>-n<i>-p<k> 10.244.<i>.<k+2>/32
//!                     route 10.244.<j>.0/24 via node j (direct routing)
//! ```
//!
//! Names are `skf-<pid>-<counter>-<role>` (see [`names`]), so labs of tests
//! running in parallel never collide. Everything is removed when the [`Lab`]
//! is dropped (also on panic), on Ctrl-C / SIGTERM, and leftovers of dead
//! runs are removed by the next [`LabBuilder::build`].

pub mod cleanup;
mod external;
pub mod names;
mod netns;
mod node;
mod p2p;
mod pod;
mod underlay;
mod xdp_pass;

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

pub use external::ExternalClient;
pub(crate) use netns::enter;
pub use netns::{Netns, Proc, NETNS_DIR};
pub use node::Node;
pub use p2p::LinkEnd;
pub use pod::Pod;
pub use underlay::Underlay;

/// What can go wrong building or using a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("the lab needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")]
    NotRoot,
    #[error("interrupted: the lab is being torn down")]
    Interrupted,
    #[error("invalid lab configuration: {0}")]
    Config(String),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("setns into {netns}: {source}")]
    Setns {
        netns: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting {program} in {netns}: {source}")]
    Spawn {
        program: String,
        netns: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
}

/// Builds a [`Lab`]; see the module documentation for the topology.
#[derive(Debug, Clone)]
pub struct LabBuilder {
    nodes: usize,
    pod_cidr_base: [u8; 4],
    underlay: [u8; 4],
    service_cidr: (Ipv4Addr, u8),
    peer_routes: bool,
}

impl Default for LabBuilder {
    fn default() -> Self {
        Self {
            nodes: 1,
            pod_cidr_base: [10, 244, 0, 0],
            underlay: [192, 168, 200, 0],
            service_cidr: (Ipv4Addr::new(10, 96, 0, 0), 12),
            peer_routes: true,
        }
    }
}

impl LabBuilder {
    /// Number of nodes (1..=200).
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Node `i` gets the /24 whose third octet is `base[2] + i`.
    pub fn pod_cidr_base(mut self, base: [u8; 4]) -> Self {
        self.pod_cidr_base = base;
        self
    }

    /// The underlay /24; node `i` is `.(i+10)`.
    pub fn underlay_subnet(mut self, subnet: [u8; 4]) -> Self {
        self.underlay = subnet;
        self
    }

    /// Service CIDR; only stored for users of the lab (VIPs are not routed).
    pub fn service_cidr(mut self, base: [u8; 4], prefix_len: u8) -> Self {
        self.service_cidr = (Ipv4Addr::from(base), prefix_len);
        self
    }

    /// Whether each node gets routes to the other nodes' pod /24s (default
    /// yes); without them a test programs its own (e.g. the agent's
    /// `sandbox::Routes`).
    pub fn peer_routes(mut self, on: bool) -> Self {
        self.peer_routes = on;
        self
    }

    /// Creates the namespaces, links, addresses and routes.
    pub fn build(self) -> Result<Lab, LabError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(LabError::NotRoot);
        }
        let max_nodes = 255 - usize::from(self.pod_cidr_base[2]);
        if self.nodes == 0 || self.nodes > max_nodes.min(200) {
            return Err(LabError::Config(format!("{} nodes", self.nodes)));
        }
        let removed = cleanup::cleanup_stale(false);
        if !removed.is_empty() {
            eprintln!("lab: removed stale labs {removed:?}");
        }
        let prefix = names::next_lab_prefix();
        cleanup::register(&prefix);
        let started = Instant::now();
        eprintln!("lab {prefix}: building {} node(s)", self.nodes);
        match self.build_in(&prefix) {
            Ok(lab) => {
                eprintln!("lab {prefix}: ready in {:?}", started.elapsed());
                Ok(lab)
            }
            Err(e) => {
                cleanup::teardown(&prefix);
                Err(e)
            }
        }
    }

    fn build_in(&self, prefix: &str) -> Result<Lab, LabError> {
        let underlay = Underlay::create(prefix, Ipv4Addr::from(self.underlay))?;
        let mut nodes = Vec::with_capacity(self.nodes);
        for i in 0..self.nodes {
            let [a, b, c, _] = self.pod_cidr_base;
            let pod_cidr = Ipv4Addr::new(a, b, c + i as u8, 0);
            nodes.push(Node::create(prefix, i, &underlay, pod_cidr)?);
        }
        if self.peer_routes {
            for node in &nodes {
                node.route_to_peers(&nodes)?;
            }
        }
        Ok(Lab {
            prefix: prefix.to_owned(),
            underlay,
            nodes,
            service_cidr: self.service_cidr,
        })
    }
}

/// A running lab; dropping it removes everything it created.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    underlay: Underlay,
    nodes: Vec<Node>,
    service_cidr: (Ipv4Addr, u8),
}

impl Lab {
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// `skf-<pid>-<counter>`: every name of this lab starts with it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `i`; panics when out of range.
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    pub fn underlay(&self) -> &Underlay {
        &self.underlay
    }

    /// The service CIDR given to the builder (base, prefix length).
    pub fn service_cidr(&self) -> (Ipv4Addr, u8) {
        self.service_cidr
    }

    /// Adds external client `k` (0..=40): a netns on the underlay bridge
    /// outside every node (see [`ExternalClient`]).
    pub fn add_external_client(&self, k: usize) -> Result<ExternalClient, LabError> {
        ExternalClient::create(&self.prefix, k, &self.underlay)
    }

    /// Makes the underlay behave like a wire between NICs for XDP: nodes
    /// put complete checksums on what they send (`tx off` on `eth0`, no
    /// `CHECKSUM_PARTIAL` crossing the veth), and the bridge ports take the
    /// frames a node's XDP program sends back with `XDP_TX` (a veth
    /// processes those only when it has an XDP program itself: an
    /// `XDP_PASS` one is attached). Keep the returned links (fds) alive.
    pub fn underlay_like_nics(&self) -> Result<Vec<std::os::fd::OwnedFd>, LabError> {
        let mut links = Vec::new();
        for node in &self.nodes {
            external::ethtool(node.name(), &["-K", "eth0", "tx", "off"])?;
            let port = format!("n{}", node.index());
            links.push(xdp_pass::attach(self.underlay.netns(), &port)?);
        }
        Ok(links)
    }

    /// Removes leftovers of labs whose owner process is dead; returns their
    /// prefixes. [`LabBuilder::build`] runs it too.
    pub fn cleanup_stale() -> Vec<String> {
        cleanup::cleanup_stale(false)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        eprintln!("lab {}: tearing down", self.prefix);
        cleanup::teardown(&self.prefix);
    }
}

/// Runs `ip [-n netns] -batch -` with one command per line.
pub(crate) fn ip_batch(netns: Option<&str>, cmds: &[String]) -> Result<(), LabError> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let describe = || format!("ip {} -batch: {}", netns.unwrap_or(""), cmds.join("; "));
    let io_err = |source| LabError::Io {
        what: "running",
        path: PathBuf::from("ip"),
        source,
    };
    let mut child = cmd.spawn().map_err(io_err)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(format!("{}\n", cmds.join("\n")).as_bytes())
        .map_err(io_err)?;
    drop(stdin);
    let out = child.wait_with_output().map_err(io_err)?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: describe(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Runs `ip <args>` (outside any batch), e.g. `netns add`.
pub(crate) fn ip(args: &[&str]) -> Result<(), LabError> {
    let out = ip_output(args)?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: format!("ip {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Runs `ip <args>` and returns what it printed, whatever its status.
pub(crate) fn ip_output(args: &[&str]) -> Result<std::process::Output, LabError> {
    Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| LabError::Io {
            what: "running",
            path: PathBuf::from("ip"),
            source,
        })
}

/// Writes `/proc/sys/<key>` (a `net.*` sysctl) inside `netns`.
pub(crate) fn sysctl(netns: &Netns, key: &str, value: &str) -> Result<(), LabError> {
    let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    netns
        .run(|| std::fs::write(&path, value))?
        .map_err(|source| LabError::Io {
            what: "writing sysctl",
            path: path.clone(),
            source,
        })
}

/// Creates netns `name` (`ip netns add`) and brings its `lo` up.
pub(crate) fn add_netns(name: &str, lab: &str) -> Result<Netns, LabError> {
    {
        let _guard = cleanup::creation_guard()?;
        ip(&["netns", "add", name])?;
    }
    ip_batch(Some(name), &["link set lo up".into()])?;
    Ok(Netns::new(name.to_owned(), lab))
}
