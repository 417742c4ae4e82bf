//! A pod: a netns behind a veth pair whose host side lives in its node.

use std::net::Ipv4Addr;

use super::{cleanup, ip, ip_batch, LabError, Netns};

/// The link-local gateway every pod routes through (answered by the node).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// One pod of a lab node. Removed with the lab, or earlier by [`Pod::remove`].
#[derive(Debug, Clone)]
pub struct Pod {
    name: String,
    node: usize,
    index: usize,
    ip: Ipv4Addr,
    netns: Netns,
}

impl Pod {
    pub(crate) fn new(name: &str, node: usize, index: usize, ip: Ipv4Addr, netns: Netns) -> Self {
        Self {
            name: name.to_owned(),
            node,
            index,
            ip,
            netns,
        }
    }

    /// Addresses and routes inside the pod. The gateway's neighbour entry
    /// is static (the node's `lxc<k>` MAC), as Cilium does; the node also
    /// has proxy ARP on `lxc<k>`.
    pub(crate) fn configure(&self) -> Result<(), LabError> {
        ip_batch(
            Some(self.netns.name()),
            &[
                format!("addr add {}/32 dev eth0", self.ip),
                "link set eth0 up".into(),
                format!("route add {GATEWAY} dev eth0 scope link"),
                format!("route add default via {GATEWAY} dev eth0"),
                format!(
                    "neigh replace {GATEWAY} dev eth0 lladdr {} nud permanent",
                    self.host_mac()
                ),
            ],
        )
    }

    /// The label given to [`super::Node::add_pod`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Index of the node the pod runs on.
    pub fn node_index(&self) -> usize {
        self.node
    }

    /// Pod index `k` on its node.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The pod's address, `10.244.<i>.<k+2>`.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The host-side veth in the node netns, `lxc<k>`.
    pub fn host_ifname(&self) -> String {
        format!("lxc{}", self.index)
    }

    /// MAC of the host-side veth (the pod's gateway MAC).
    pub fn host_mac(&self) -> String {
        format!("02:00:00:{:02x}:{:02x}:01", self.node, self.index)
    }

    /// MAC of the pod's `eth0`.
    pub fn mac(&self) -> String {
        format!("02:00:00:{:02x}:{:02x}:02", self.node, self.index)
    }

    /// Kills the pod's processes and deletes its netns (its veth pair and the
    /// node's route to it go away with it).
    pub fn remove(self) -> Result<(), LabError> {
        cleanup::kill_netns_procs(self.netns.lab(), self.netns.name());
        ip(&["netns", "del", self.netns.name()])
    }
}
