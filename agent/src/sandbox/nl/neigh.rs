//! Managed neighbour entries: the kernel keeps them resolved on its own (`ip neigh add …
//! managed`, Linux ≥ 5.16), so an XDP program's FIB lookup towards another node finds its
//! MAC on the first packet instead of failing with "no neighbour" (XDP cannot ask the
//! kernel to resolve one, TC can).

use std::io;
use std::net::Ipv4Addr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{gone_is_ok, Netlink};

fn message(index: u32, ip: Ipv4Addr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.ifindex = index;
    msg.header.kind = RouteType::Unicast;
    msg.attributes = vec![NeighbourAttribute::Destination(NeighbourAddress::Inet(ip))];
    msg
}

impl Netlink {
    /// The managed IPv4 neighbour entries: (link index, address).
    pub fn managed_neighbours(&mut self) -> io::Result<Vec<(u32, Ipv4Addr)>> {
        let mut req = NeighbourMessage::default();
        req.header.family = AddressFamily::Inet;
        let mut out = Vec::new();
        for m in self.dump(RouteNetlinkMessage::GetNeighbour(req))? {
            let RouteNetlinkMessage::NewNeighbour(n) = m else {
                continue;
            };
            let managed = n.attributes.iter().any(|a| {
                matches!(a, NeighbourAttribute::ExtFlags(f) if f.contains(NeighbourExtFlags::Managed))
            });
            let ip = n.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
                _ => None,
            });
            if let (true, Some(ip)) = (managed, ip) {
                out.push((n.header.ifindex, ip));
            }
        }
        Ok(out)
    }

    /// Makes `ip` on link `index` a managed entry (replacing a learned one).
    pub fn add_managed_neighbour(&mut self, index: u32, ip: Ipv4Addr) -> io::Result<()> {
        let mut msg = message(index, ip);
        msg.header.state = NeighbourState::None;
        msg.attributes
            .push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed));
        self.request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }

    /// Deletes the entry `ip` on link `index`; `Ok(false)` if it was gone.
    pub fn del_neighbour(&mut self, index: u32, ip: Ipv4Addr) -> io::Result<bool> {
        gone_is_ok(self.request(RouteNetlinkMessage::DelNeighbour(message(index, ip)), 0))
    }
}
