//! Pod sandbox networking: one network namespace per pod, a veth pair to the
//! node, an address from the node's pod CIDR, routes, and the pod's
//! `/etc/hosts`, `/etc/resolv.conf` and hostname. Programmed with netlink
//! (netlink-packet-route), never by running `ip`.
//!
//! "The node's netns" is always the calling thread's: the agent calls this
//! from the root netns on a real machine; tests call it from a thread that
//! entered a lab node's netns. Work inside a pod's netns runs on a fresh
//! thread that enters it ([`PodNetns::run`]); no caller thread moves.
//!
//! ```text
//!   pod netns                         node netns
//!   eth0 10.244.0.5/32  <── veth ──>  lxc<hash>  (proxy_arp=1)
//!   169.254.1.1 dev eth0 scope link   10.244.0.5/32 dev lxc<hash> proto 93
//!   default via 169.254.1.1           10.244.1.0/24 via <node B> proto 92
//!   neigh 169.254.1.1 = lxc MAC       (Routes::sync)
//! ```
//!
//! - [`PodNetwork`]: the node-level handle (config, IPAM, MTU);
//! - [`Sandbox`]: one pod's network (create, re-adopt, teardown);
//! - [`Routes`]: routes to other nodes' pod CIDRs;
//! - [`files`] / [`resolv`]: the generated files (pure functions).

pub mod cidr;
mod error;
pub mod files;
pub mod ipam;
pub mod netns;
pub mod nl;
mod pod;
pub mod resolv;
pub mod routes;
mod sysctl;
pub mod veth;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub use cidr::Ipv4Cidr;
pub use error::SandboxError;
pub use files::PodFiles;
pub use ipam::{Ipam, IpamError};
pub use netns::{PodNetns, DEFAULT_NETNS_DIR};
pub use pod::Sandbox;
pub use resolv::{DnsParams, ResolvConf};
pub use routes::{RouteSyncReport, Routes, NODE_ROUTE_PROTOCOL, POD_ROUTE_PROTOCOL};

/// The link-local address every pod routes through. The node answers for it
/// on each host-side veth (a static neighbour entry in the pod, proxy ARP on
/// the node), so it never needs to be configured anywhere, and every pod of
/// every node has the same gateway.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// Pod traffic is forwarded by the node.
const IP_FORWARD: &str = "net.ipv4.ip_forward";

/// The agent's default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/skiff/agent";

/// How a node's pod network is set up.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// The node's pod CIDR (from the control plane).
    pub pod_cidr: Ipv4Cidr,
    /// The node's underlay address: the interface holding it gives the MTU.
    pub node_ip: Ipv4Addr,
    /// Overrides the MTU taken from the uplink.
    pub mtu: Option<u32>,
    /// IPAM lives in `<state_dir>/ipam/`, pod files in `<state_dir>/pods/<uid>/`.
    pub state_dir: PathBuf,
    /// Pod netns files: `<netns_dir>/<uid>`.
    pub netns_dir: PathBuf,
    /// Host-side veth prefix; must match the dataplane's `--pod-veth-prefix`.
    pub veth_prefix: String,
}

impl NetworkConfig {
    /// The defaults: `/var/lib/skiff/agent`, `/run/skiff/netns`, `lxc`.
    pub fn new(pod_cidr: Ipv4Cidr, node_ip: Ipv4Addr) -> Self {
        Self {
            pod_cidr,
            node_ip,
            mtu: None,
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            netns_dir: PathBuf::from(DEFAULT_NETNS_DIR),
            veth_prefix: veth::DEFAULT_VETH_PREFIX.to_owned(),
        }
    }
}

/// A node's pod network: where pods' namespaces, addresses and files live.
/// Holds no netns-bound resource; every call acts on the calling thread's
/// netns as the node's.
#[derive(Debug)]
pub struct PodNetwork {
    cfg: NetworkConfig,
    ipam: Ipam,
    mtu: u32,
}

impl PodNetwork {
    /// Prepares the netns directory, opens the IPAM store, reads the MTU
    /// and turns on IPv4 forwarding in the node's netns (pods are routed,
    /// as every CNI plugin needs).
    pub fn new(cfg: NetworkConfig) -> Result<Self, SandboxError> {
        if !veth::valid_prefix(&cfg.veth_prefix) {
            return Err(SandboxError::Config(format!(
                "veth prefix {:?} (want 1-7 chars of [A-Za-z0-9_])",
                cfg.veth_prefix
            )));
        }
        PodNetns::prepare_dir(&cfg.netns_dir)?;
        let ipam = Ipam::open(&cfg.state_dir.join("ipam"), cfg.pod_cidr)?;
        let mtu = match cfg.mtu {
            Some(m) => m,
            None => {
                let mut nl =
                    nl::Netlink::open().map_err(|e| SandboxError::netlink("open socket", e))?;
                veth::uplink_mtu(&mut nl, cfg.node_ip)?
            }
        };
        if std::fs::read_to_string(sysctl::path(IP_FORWARD)).is_ok_and(|v| v.trim() != "1") {
            log::info!("enabling {IP_FORWARD}: pods are routed through the node");
            sysctl::write(IP_FORWARD, "1")?;
        }
        Ok(Self { cfg, ipam, mtu })
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.cfg
    }

    pub fn ipam(&self) -> &Ipam {
        &self.ipam
    }

    /// The MTU of the pods' interfaces.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// `<netns_dir>/<uid>`.
    pub fn netns_path(&self, uid: &str) -> PathBuf {
        self.cfg.netns_dir.join(uid)
    }

    /// `<state_dir>/pods/<uid>`: the generated files the runtime bind-mounts.
    pub fn files_dir(&self, uid: &str) -> PathBuf {
        self.cfg.state_dir.join("pods").join(uid)
    }

    /// Host-side veth name of pod `uid`.
    pub fn host_ifname(&self, uid: &str) -> String {
        veth::host_ifname(&self.cfg.veth_prefix, uid)
    }

    /// Pod uids that have a netns here (to re-adopt or collect after a restart).
    pub fn list(&self) -> Result<Vec<String>, SandboxError> {
        list_uids(&self.cfg.netns_dir)
    }
}

fn list_uids(dir: &Path) -> Result<Vec<String>, SandboxError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SandboxError::io("listing", dir, e)),
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| valid_uid(n))
        .collect();
    out.sort();
    Ok(out)
}

/// Pod uids become file names: 1-128 chars of `[A-Za-z0-9._-]`, not `.`/`..`.
pub fn valid_uid(uid: &str) -> bool {
    (1..=128).contains(&uid.len())
        && uid != "."
        && uid != ".."
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_safe_file_names() {
        assert!(valid_uid("2b7c1e7a-5d0e-4f0e-9a43-3b1c2d4e5f60"));
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(129)] {
            assert!(!valid_uid(bad), "{bad:?}");
        }
    }

    #[test]
    fn listing_a_missing_dir_is_empty() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(list_uids(&tmp.path().join("none")).unwrap().is_empty());
        std::fs::write(tmp.path().join("pod-1"), "").unwrap();
        std::fs::write(tmp.path().join("bad name"), "").unwrap();
        assert_eq!(list_uids(tmp.path()).unwrap(), ["pod-1"]);
    }
}
