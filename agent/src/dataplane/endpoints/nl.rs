//! What the node's rtnetlink tells about its pods: the /32 routes of the main
//! table, the links, and the MAC of a veth's peer, read from the peer's
//! netns by its netnsid (`IFLA_TARGET_NETNSID`, Linux ≥ 4.20) without
//! entering it. The socket belongs to the calling thread's netns (the
//! node's). Read-only: nothing here changes the node's network.

use std::io;
use std::net::Ipv4Addr;

use netlink_packet_core::NLM_F_DUMP;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::plan::{PodLink, PodRoute};
use crate::sandbox::nl::Netlink;

/// Read-only rtnetlink queries on the node's socket ([`Netlink`]).
pub struct Rtnl {
    nl: Netlink,
}

impl Rtnl {
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            nl: Netlink::open()?,
        })
    }

    /// One query: a dump (up to `NLMSG_DONE`) or a single get (up to its ack).
    fn query(
        &mut self,
        msg: RouteNetlinkMessage,
        dump: bool,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.nl.request(msg, if dump { NLM_F_DUMP } else { 0 })
    }

    /// Host routes (/32) of the main table that leave by one interface.
    pub fn host_routes(&mut self) -> io::Result<Vec<PodRoute>> {
        let mut req = RouteMessage::default();
        req.header.address_family = AddressFamily::Inet;
        let answers = self.query(RouteNetlinkMessage::GetRoute(req), true)?;
        Ok(answers
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => host_route(r),
                _ => None,
            })
            .collect())
    }

    /// Every link of the node's netns, with its peer when it is a veth
    /// whose other end lives in another netns.
    pub fn links(&mut self) -> io::Result<Vec<PodLink>> {
        let answers = self.query(RouteNetlinkMessage::GetLink(LinkMessage::default()), true)?;
        Ok(answers
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(pod_link(l)),
                _ => None,
            })
            .collect())
    }

    /// The MAC of link `index` in the netns the node knows as `netnsid`.
    pub fn peer_mac(&mut self, netnsid: i32, index: u32) -> io::Result<Option<Vec<u8>>> {
        let mut req = LinkMessage::default();
        req.header.index = index;
        req.attributes.push(LinkAttribute::IfNetnsId(netnsid));
        let answers = match self.query(RouteNetlinkMessage::GetLink(req), false) {
            Ok(a) => a,
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(answers.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => l.attributes.iter().find_map(|a| match a {
                LinkAttribute::Address(mac) => Some(mac.clone()),
                _ => None,
            }),
            _ => None,
        }))
    }
}

fn host_route(msg: &RouteMessage) -> Option<PodRoute> {
    let h = &msg.header;
    if h.address_family != AddressFamily::Inet || h.destination_prefix_length != 32 {
        return None;
    }
    let mut table = u32::from(h.table);
    let (mut dst, mut oif, mut gateway) = (None, None, false);
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(*a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(_) | RouteAttribute::MultiPath(_) => gateway = true,
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) || gateway {
        return None;
    }
    Some(PodRoute {
        addr: dst.filter(|a: &Ipv4Addr| !a.is_unspecified())?,
        oif: oif?,
    })
}

fn pod_link(msg: &LinkMessage) -> PodLink {
    let mut link = PodLink {
        index: msg.header.index,
        ..PodLink::default()
    };
    let (mut peer, mut netnsid) = (None, None);
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(a) => link.mac = a.clone(),
            LinkAttribute::Link(i) => peer = Some(*i),
            LinkAttribute::LinkNetNsId(id) => netnsid = Some(*id),
            _ => {}
        }
    }
    link.peer = peer.zip(netnsid);
    link
}
