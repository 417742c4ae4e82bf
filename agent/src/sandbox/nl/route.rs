//! IPv4 routes of the main table.

use std::io;
use std::net::Ipv4Addr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{gone_is_ok, Netlink};
use crate::sandbox::cidr::Ipv4Cidr;

/// An IPv4 route of the main table, as far as Skiff cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Cidr,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
    pub scope_link: bool,
    pub protocol: u8,
}

impl Netlink {
    /// IPv4 routes of the main table.
    pub fn routes(&mut self) -> io::Result<Vec<Route>> {
        let mut req = RouteMessage::default();
        req.header.address_family = AddressFamily::Inet;
        let msgs = self.dump(RouteNetlinkMessage::GetRoute(req))?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => route_of(&r),
                _ => None,
            })
            .collect())
    }

    /// Adds `route`, replacing one with the same destination (and metric).
    pub fn replace_route(&mut self, route: &Route) -> io::Result<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(route_msg(route)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }

    /// Deletes `route`; `Ok(false)` if it was already gone.
    pub fn del_route(&mut self, route: &Route) -> io::Result<bool> {
        gone_is_ok(self.request(RouteNetlinkMessage::DelRoute(route_msg(route)), 0))
    }
}

fn route_of(msg: &RouteMessage) -> Option<Route> {
    let h = &msg.header;
    if h.address_family != AddressFamily::Inet || h.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(h.table);
    let mut dst = Ipv4Addr::UNSPECIFIED;
    let mut gateway = None;
    let mut oif = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
            RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(*a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    Some(Route {
        dst: Ipv4Cidr::new(dst, h.destination_prefix_length)?,
        gateway,
        oif,
        scope_link: h.scope == RouteScope::Link,
        protocol: u8::from(h.protocol),
    })
}

fn route_msg(route: &Route) -> RouteMessage {
    let mut msg = RouteMessage::default();
    let h = &mut msg.header;
    h.address_family = AddressFamily::Inet;
    h.destination_prefix_length = route.dst.prefix();
    h.table = RouteHeader::RT_TABLE_MAIN;
    h.protocol = RouteProtocol::from(route.protocol);
    h.scope = if route.scope_link {
        RouteScope::Link
    } else {
        RouteScope::Universe
    };
    h.kind = RouteType::Unicast;
    if route.dst.prefix() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                route.dst.network(),
            )));
    }
    if let Some(gw) = route.gateway {
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
    }
    if let Some(oif) = route.oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_survive_a_round_trip_through_the_message() {
        for route in [
            Route {
                dst: "10.244.1.0/24".parse().unwrap(),
                gateway: Some(Ipv4Addr::new(192, 168, 0, 11)),
                oif: None,
                scope_link: false,
                protocol: 92,
            },
            Route {
                dst: Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0).unwrap(),
                gateway: Some(Ipv4Addr::new(169, 254, 1, 1)),
                oif: Some(3),
                scope_link: false,
                protocol: 93,
            },
            Route {
                dst: Ipv4Cidr::host(Ipv4Addr::new(10, 244, 0, 5)),
                gateway: None,
                oif: Some(7),
                scope_link: true,
                protocol: 93,
            },
        ] {
            assert_eq!(route_of(&route_msg(&route)), Some(route.clone()));
        }
    }
}
