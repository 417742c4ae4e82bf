//! Point-to-point links that bypass the underlay bridge: a cable between two
//! nodes, or an external client cabled straight to one node. For
//! measurements of one node's forwarding, where the bridge's own
//! per-packet work would be charged to the path under test (a switch costs
//! a real node nothing).

use std::net::Ipv4Addr;

use super::{add_netns, external, ip_batch, ExternalClient, Lab, LabError};

/// One end of a point-to-point link.
#[derive(Debug, Clone)]
pub struct LinkEnd {
    /// Interface name inside its node's netns.
    pub ifname: String,
    pub addr: Ipv4Addr,
}

impl Lab {
    /// Cables node `a` to node `b`: a veth pair `c<a>to<b>` / `c<b>to<a>`
    /// in `subnet`/24, `.1` on `a` and `.2` on `b`, both sending complete
    /// checksums like NICs. No routes besides the connected one.
    pub fn link_nodes(
        &self,
        a: usize,
        b: usize,
        subnet: [u8; 4],
    ) -> Result<(LinkEnd, LinkEnd), LabError> {
        let (na, nb) = (self.node(a), self.node(b));
        let (ia, ib) = (format!("c{a}to{b}"), format!("c{b}to{a}"));
        let [p, q, r, _] = subnet;
        let (aa, ab) = (Ipv4Addr::new(p, q, r, 1), Ipv4Addr::new(p, q, r, 2));
        ip_batch(
            Some(na.name()),
            &[format!(
                "link add {ia} type veth peer name {ib} netns {}",
                nb.name()
            )],
        )?;
        configure(na.name(), &ia, aa)?;
        configure(nb.name(), &ib, ab)?;
        Ok((
            LinkEnd {
                ifname: ia,
                addr: aa,
            },
            LinkEnd {
                ifname: ib,
                addr: ab,
            },
        ))
    }

    /// External client `d<k>` cabled to node `node`: its `eth0` has `.2` in
    /// `subnet`/24, the node's end `d<k>` has `.1`. Returns the client and
    /// the node's end.
    pub fn add_direct_client(
        &self,
        k: usize,
        node: usize,
        subnet: [u8; 4],
    ) -> Result<(ExternalClient, LinkEnd), LabError> {
        let n = self.node(node);
        let netns = add_netns(&format!("{}-d{k}", self.prefix()), self.prefix())?;
        let ifname = format!("d{k}");
        let [p, q, r, _] = subnet;
        let (node_addr, client_addr) = (Ipv4Addr::new(p, q, r, 1), Ipv4Addr::new(p, q, r, 2));
        ip_batch(
            Some(n.name()),
            &[format!(
                "link add {ifname} type veth peer name eth0 netns {}",
                netns.name()
            )],
        )?;
        configure(n.name(), &ifname, node_addr)?;
        configure(netns.name(), "eth0", client_addr)?;
        Ok((
            ExternalClient::from_parts(netns, client_addr),
            LinkEnd {
                ifname,
                addr: node_addr,
            },
        ))
    }
}

fn configure(ns: &str, ifname: &str, addr: Ipv4Addr) -> Result<(), LabError> {
    ip_batch(
        Some(ns),
        &[
            format!("addr add {addr}/24 dev {ifname}"),
            format!("link set {ifname} up"),
        ],
    )?;
    external::ethtool(ns, &["-K", ifname, "tx", "off"])
}
