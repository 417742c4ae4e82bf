//! The underlay: one bridge in its own netns that every node's `eth0` plugs into.

use std::net::Ipv4Addr;

use super::{add_netns, ip_batch, names, LabError, Netns};

/// The bridge netns and the /24 the nodes share.
#[derive(Debug)]
pub struct Underlay {
    netns: Netns,
    subnet: Ipv4Addr,
}

impl Underlay {
    /// Name of the bridge inside the underlay netns.
    pub const BRIDGE: &'static str = "br0";

    pub(crate) fn create(lab: &str, subnet: Ipv4Addr) -> Result<Self, LabError> {
        let netns = add_netns(&names::underlay(lab), lab)?;
        ip_batch(
            Some(netns.name()),
            &[
                format!("link add {} type bridge", Self::BRIDGE),
                format!("link set {} up", Self::BRIDGE),
            ],
        )?;
        // The underlay is a switch, not a firewall: with br_netfilter loaded (some other
        // software on the host may load it) every bridged frame would also run the
        // netns' iptables hooks, a cost no real NIC-to-switch path has.
        netns.run(|| {
            for proto in ["iptables", "ip6tables", "arptables"] {
                let knob = format!("/proc/sys/net/bridge/bridge-nf-call-{proto}");
                if std::path::Path::new(&knob).exists() {
                    let _ = std::fs::write(&knob, "0");
                }
            }
        })?;
        Ok(Self { netns, subnet })
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The underlay /24 (network address).
    pub fn subnet(&self) -> Ipv4Addr {
        self.subnet
    }

    /// Underlay address of node `i`: `.(i+10)`.
    pub fn node_addr(&self, i: usize) -> Ipv4Addr {
        let [a, b, c, _] = self.subnet.octets();
        Ipv4Addr::new(a, b, c, 10 + i as u8)
    }

    /// Plugs a new node in: veth `n<i>` on the bridge, `eth0` in `node`.
    pub(crate) fn attach(&self, i: usize, node: &Netns) -> Result<(), LabError> {
        let port = format!("n{i}");
        ip_batch(
            Some(self.netns.name()),
            &[
                format!(
                    "link add {port} type veth peer name eth0 netns {}",
                    node.name()
                ),
                format!("link set {port} master {}", Self::BRIDGE),
                format!("link set {port} up"),
            ],
        )
    }
}
