//! The local-endpoints map's desired state from what the node shows, and the
//! writes that bring the map there. Pure: no netlink, no map.
//!
//! A pod is local when the node has a /32 route to it through one of the
//! pod veths (`<prefix>*`, the route the sandbox adds with the veth), and
//! the veth's other end, the pod's interface, is in another netns with a
//! known MAC. A route or veth that is missing or incomplete gives no entry:
//! that pod's packets go through the stack, as without the redirect.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use skiff_common::{ipv4_be, LocalEndpoint, LocalPrefix};

/// A /32 route of the main table leaving by interface `oif`, no gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodRoute {
    pub addr: Ipv4Addr,
    pub oif: u32,
}

/// A link of the node's netns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodLink {
    pub index: u32,
    pub name: String,
    pub mac: Vec<u8>,
    /// A veth's other end: its index and the netnsid of its netns.
    pub peer: Option<(u32, i32)>,
    /// That end's MAC, when it was read.
    pub peer_mac: Option<Vec<u8>>,
}

impl PodLink {
    /// A pod veth: the prefix, and a peer in another netns.
    pub fn is_pod_veth(&self, prefix: &str) -> bool {
        self.name.starts_with(prefix) && self.peer.is_some()
    }
}

/// What the map should hold, by pod address; `unresolved`: pods routed
/// through a pod veth whose MACs are not known (no entry for them).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub endpoints: BTreeMap<Ipv4Addr, LocalEndpoint>,
    pub unresolved: Vec<Ipv4Addr>,
}

fn mac6(mac: &[u8]) -> Option<[u8; 6]> {
    let mac: [u8; 6] = mac.try_into().ok()?;
    (mac != [0; 6]).then_some(mac)
}

/// The entries the routes and pod veths call for.
pub fn desired(routes: &[PodRoute], links: &[PodLink], prefix: &str) -> Desired {
    let veths: BTreeMap<u32, &PodLink> = links
        .iter()
        .filter(|l| l.is_pod_veth(prefix))
        .map(|l| (l.index, l))
        .collect();
    let mut out = Desired::default();
    for route in routes {
        let Some(link) = veths.get(&route.oif) else {
            continue;
        };
        let macs = mac6(&link.mac).zip(link.peer_mac.as_deref().and_then(mac6));
        match macs {
            Some((host_mac, pod_mac)) => {
                let ep = LocalEndpoint {
                    ifindex: link.index,
                    pod_mac,
                    host_mac,
                };
                out.endpoints.entry(route.addr).or_insert(ep);
            }
            None => out.unresolved.push(route.addr),
        }
    }
    out
}

/// The writes from `actual` (the map's entries, keys as stored) to
/// `desired`: new entries, changed entries, and entries to remove (written
/// in that order).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub add: Vec<(Ipv4Addr, LocalEndpoint)>,
    pub update: Vec<(Ipv4Addr, LocalEndpoint)>,
    pub remove: Vec<Ipv4Addr>,
}

pub fn diff(desired: &BTreeMap<Ipv4Addr, LocalEndpoint>, actual: &[(u32, LocalEndpoint)]) -> Plan {
    let actual: BTreeMap<Ipv4Addr, LocalEndpoint> = actual
        .iter()
        .map(|(k, v)| (Ipv4Addr::from(k.to_ne_bytes()), *v))
        .collect();
    let mut plan = Plan::default();
    for (addr, ep) in desired {
        match actual.get(addr) {
            None => plan.add.push((*addr, *ep)),
            Some(have) if have != ep => plan.update.push((*addr, *ep)),
            Some(_) => {}
        }
    }
    plan.remove = actual
        .keys()
        .filter(|a| !desired.contains_key(a))
        .copied()
        .collect();
    plan
}

/// The map key of `addr`.
pub fn key(addr: Ipv4Addr) -> u32 {
    ipv4_be(addr.octets())
}

/// The longest prefix holding every address of `addrs` (network byte
/// order, as `LOCAL_PREFIX` takes it); none: a /32 of 0.0.0.0, which no
/// pod has.
pub fn cover(addrs: impl IntoIterator<Item = Ipv4Addr>) -> LocalPrefix {
    let mut addrs = addrs.into_iter().map(u32::from);
    let Some(first) = addrs.next() else {
        return LocalPrefix {
            addr: 0,
            mask: u32::MAX,
        };
    };
    let differ = addrs.fold(0, |d, a| d | (a ^ first));
    let mask = u32::MAX
        .checked_shl(32 - differ.leading_zeros())
        .unwrap_or(0);
    LocalPrefix {
        addr: key(Ipv4Addr::from(first & mask)),
        mask: key(Ipv4Addr::from(mask)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_is_the_longest_common_prefix() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let p = cover([ip("10.244.1.5"), ip("10.244.1.9"), ip("10.244.1.200")]);
        assert_eq!(p.mask, key(ip("255.255.255.0")));
        assert_eq!(p.addr, key(ip("10.244.1.0")));
        for inside in ["10.244.1.5", "10.244.1.9", "10.244.1.200", "10.244.1.77"] {
            assert!(p.contains(key(ip(inside))), "{inside}");
        }
        for outside in ["10.244.2.5", "10.96.0.10", "10.111.255.253"] {
            assert!(!p.contains(key(ip(outside))), "{outside}");
        }
        let one = cover([ip("10.244.0.7")]);
        assert!(one.contains(key(ip("10.244.0.7"))) && !one.contains(key(ip("10.244.0.6"))));
        let far = cover([ip("10.0.0.1"), ip("192.168.0.1")]);
        assert_eq!(far.mask, 0, "nothing in common: every address");
        let none = cover([]);
        assert!(!none.contains(key(ip("10.244.0.7"))));
    }

    const HOST_MAC: [u8; 6] = [0xee, 0, 0, 0, 0, 7];
    const POD_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 5];

    fn veth(index: u32, name: &str, peer_mac: Option<[u8; 6]>) -> PodLink {
        PodLink {
            index,
            name: name.into(),
            mac: HOST_MAC.to_vec(),
            peer: Some((2, 0)),
            peer_mac: peer_mac.map(|m| m.to_vec()),
        }
    }

    fn route(addr: [u8; 4], oif: u32) -> PodRoute {
        PodRoute {
            addr: addr.into(),
            oif,
        }
    }

    fn ep(ifindex: u32) -> LocalEndpoint {
        LocalEndpoint {
            ifindex,
            pod_mac: POD_MAC,
            host_mac: HOST_MAC,
        }
    }

    #[test]
    fn a_route_through_a_pod_veth_with_known_macs_is_an_endpoint() {
        let links = [
            veth(7, "lxc0123456789ab", Some(POD_MAC)),
            veth(8, "lxcfedcba987654", None),
            PodLink {
                index: 9,
                name: "lxcnopeer".into(),
                mac: HOST_MAC.to_vec(),
                ..PodLink::default()
            },
            veth(10, "eth1", Some(POD_MAC)),
        ];
        let routes = [
            route([10, 244, 0, 5], 7),
            route([10, 244, 0, 6], 8),
            route([10, 244, 0, 7], 9),
            route([10, 244, 0, 8], 10),
            route([10, 244, 0, 9], 42),
        ];
        let d = desired(&routes, &links, "lxc");
        assert_eq!(
            d.endpoints.into_iter().collect::<Vec<_>>(),
            vec![(Ipv4Addr::new(10, 244, 0, 5), ep(7))]
        );
        assert_eq!(d.unresolved, vec![Ipv4Addr::new(10, 244, 0, 6)]);
    }

    #[test]
    fn a_zero_or_short_mac_resolves_nothing() {
        let mut link = veth(7, "lxc0", Some([0; 6]));
        assert!(
            desired(&[route([10, 244, 0, 5], 7)], &[link.clone()], "lxc")
                .endpoints
                .is_empty()
        );
        link.peer_mac = Some(POD_MAC.to_vec());
        link.mac = vec![1, 2, 3];
        let d = desired(&[route([10, 244, 0, 5], 7)], &[link], "lxc");
        assert!(d.endpoints.is_empty());
        assert_eq!(d.unresolved.len(), 1);
    }

    #[test]
    fn diff_adds_updates_and_removes_only_what_differs() {
        let a = Ipv4Addr::new(10, 244, 0, 5);
        let b = Ipv4Addr::new(10, 244, 0, 6);
        let c = Ipv4Addr::new(10, 244, 0, 7);
        let gone = Ipv4Addr::new(10, 244, 0, 9);
        let want: BTreeMap<_, _> = [(a, ep(7)), (b, ep(8)), (c, ep(9))].into();
        let have = [(key(a), ep(7)), (key(b), ep(3)), (key(gone), ep(4))];
        let plan = diff(&want, &have);
        assert_eq!(plan.add, vec![(c, ep(9))]);
        assert_eq!(plan.update, vec![(b, ep(8))]);
        assert_eq!(plan.remove, vec![gone]);
        let have: Vec<_> = want.iter().map(|(a, e)| (key(*a), *e)).collect();
        assert_eq!(diff(&want, &have), Plan::default());
    }

    #[test]
    fn keys_are_stored_in_network_order() {
        assert_eq!(
            key(Ipv4Addr::new(10, 244, 0, 5)).to_ne_bytes(),
            [10, 244, 0, 5]
        );
    }
}
