//! Point-to-point links that bypass the underlay bridge: a cable between two
//! nodes, or an external client cabled straight to one node. For nodes with
//! more than one interface, and for measurements of one node's forwarding,
//! where the bridge's own per-packet work would be charged to the path
//! under test (a switch costs a real node nothing).
//!
//! Both ends behave like NICs: they send complete checksums (`tx off`),
//! receive frames the other end's XDP program redirects into the veth (a
//! veth takes those only with a NAPI instance: GRO on), and know each
//! other's fixed MAC (permanent neighbour entries: XDP cannot resolve a
//! neighbour).

use std::net::Ipv4Addr;

use super::{add_netns, external, ip_batch, ExternalClient, Lab, LabError};

/// One end of a point-to-point link.
#[derive(Debug, Clone)]
pub struct LinkEnd {
    /// Interface name inside its node's netns.
    pub ifname: String,
    pub addr: Ipv4Addr,
    pub mac: String,
}

impl Lab {
    /// Cables node `a` to node `b`: a veth pair `c<a>to<b>` / `c<b>to<a>`
    /// in `subnet`/24, `.1` on `a` and `.2` on `b`. No routes besides the
    /// connected one.
    pub fn link_nodes(
        &self,
        a: usize,
        b: usize,
        subnet: [u8; 4],
    ) -> Result<(LinkEnd, LinkEnd), LabError> {
        let [p, q, r, _] = subnet;
        let end = |i: usize, peer: usize, host: u8| LinkEnd {
            ifname: format!("c{i}to{peer}"),
            addr: Ipv4Addr::new(p, q, r, host),
            mac: format!("02:00:cc:{i:02x}:{peer:02x}:01"),
        };
        let (ea, eb) = (end(a, b, 1), end(b, a, 2));
        cable(self.node(a).name(), &ea, self.node(b).name(), &eb)?;
        Ok((ea, eb))
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
        let netns = add_netns(&format!("{}-d{k}", self.prefix()), self.prefix())?;
        let [p, q, r, _] = subnet;
        let node_end = LinkEnd {
            ifname: format!("d{k}"),
            addr: Ipv4Addr::new(p, q, r, 1),
            mac: format!("02:00:dd:{k:02x}:{node:02x}:01"),
        };
        let client_end = LinkEnd {
            ifname: "eth0".into(),
            addr: Ipv4Addr::new(p, q, r, 2),
            mac: format!("02:00:dd:{k:02x}:{node:02x}:02"),
        };
        cable(self.node(node).name(), &node_end, netns.name(), &client_end)?;
        Ok((ExternalClient::from_parts(netns, client_end.addr), node_end))
    }
}

impl Lab {
    /// Routes `dst` (a CIDR) on node `node` over a cable: via the far end's
    /// address, out of the near end (replacing any route to `dst`).
    pub fn route_over(
        &self,
        node: usize,
        dst: &str,
        near: &LinkEnd,
        far: &LinkEnd,
    ) -> Result<(), LabError> {
        ip_batch(
            Some(self.node(node).name()),
            &[format!(
                "route replace {dst} via {} dev {}",
                far.addr, near.ifname
            )],
        )
    }
}

/// A veth pair from `a` in netns `na` to `b` in netns `nb`, both ends
/// configured (see the module docs).
fn cable(na: &str, a: &LinkEnd, nb: &str, b: &LinkEnd) -> Result<(), LabError> {
    ip_batch(
        Some(na),
        &[format!(
            "link add {} address {} type veth peer name {} address {} netns {nb}",
            a.ifname, a.mac, b.ifname, b.mac
        )],
    )?;
    configure(na, a, b)?;
    configure(nb, b, a)
}

fn configure(ns: &str, end: &LinkEnd, peer: &LinkEnd) -> Result<(), LabError> {
    ip_batch(
        Some(ns),
        &[
            format!("addr add {}/24 dev {}", end.addr, end.ifname),
            format!("link set {} up", end.ifname),
            format!(
                "neigh replace {} lladdr {} dev {} nud permanent",
                peer.addr, peer.mac, end.ifname
            ),
        ],
    )?;
    external::ethtool(ns, &["-K", &end.ifname, "tx", "off", "gro", "on"])
}
