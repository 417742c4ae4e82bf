//! Direct routing to the other nodes' pod CIDRs: `cidr via node_ip`.
//!
//! Skiff's routes carry their own rtnetlink protocol number
//! ([`NODE_ROUTE_PROTOCOL`], shown as `proto 92` by `ip route`), so a sync
//! only ever changes or removes routes it created; a route of somebody else
//! for the same prefix is left alone and reported as a conflict. The host
//! routes to local pods use [`POD_ROUTE_PROTOCOL`] and are never touched here.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::cidr::Ipv4Cidr;
use super::nl::{Netlink, Route};
use super::SandboxError;

/// Protocol of the routes to other nodes' pod CIDRs.
pub const NODE_ROUTE_PROTOCOL: u8 = 92;
/// Protocol of the host routes `podIP/32 dev <host veth>` to local pods.
pub const POD_ROUTE_PROTOCOL: u8 = 93;

/// What to change to get from the actual routes to the desired ones.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoutePlan {
    /// Routes to add, or to change (a route of ours with another gateway).
    pub upsert: Vec<(Ipv4Cidr, Ipv4Addr)>,
    /// Routes of ours no longer wanted.
    pub remove: Vec<Route>,
    /// Wanted prefixes that already have a route that is not ours.
    pub conflicts: Vec<(Ipv4Cidr, Route)>,
}

/// The pure diff: `desired` is (pod CIDR, node address) pairs (the last
/// pair wins for a repeated CIDR), `actual` the main table's IPv4 routes.
pub fn plan(desired: &[(Ipv4Cidr, Ipv4Addr)], actual: &[Route], protocol: u8) -> RoutePlan {
    let want: BTreeMap<Ipv4Cidr, Ipv4Addr> = desired.iter().copied().collect();
    let mut out = RoutePlan::default();
    for r in actual {
        if r.protocol == protocol && want.get(&r.dst) != r.gateway.as_ref() {
            out.remove.push(r.clone());
        }
    }
    for (cidr, gw) in want {
        let same_dst: Vec<&Route> = actual.iter().filter(|r| r.dst == cidr).collect();
        if let Some(foreign) = same_dst.iter().find(|r| r.protocol != protocol) {
            out.conflicts.push((cidr, (*foreign).clone()));
            continue;
        }
        if !same_dst.iter().any(|r| r.gateway == Some(gw)) {
            out.upsert.push((cidr, gw));
        }
    }
    // A route whose gateway changes is replaced in place, not removed.
    out.remove
        .retain(|r| !out.upsert.iter().any(|(cidr, _)| *cidr == r.dst));
    out
}

/// The link whose IPv4 subnet holds `gw` (an on-link gateway), from `addrs` (link
/// index, address, prefix length).
pub fn on_link_index(addrs: &[(u32, Ipv4Addr, u8)], gw: Ipv4Addr) -> Option<u32> {
    addrs
        .iter()
        .filter(|(_, addr, prefix)| *prefix > 0 && *addr != gw)
        .find(|(_, addr, prefix)| Ipv4Cidr::new(*addr, *prefix).is_some_and(|c| c.contains(gw)))
        .map(|(index, _, _)| *index)
}

/// Keeps a managed neighbour entry for every gateway (see `nl::neigh`): the NodePort XDP
/// program forwards to other nodes with the MAC the kernel already resolved. Entries of
/// gateways no longer wanted are left (they may not be ours; an unused one costs a probe
/// now and then).
fn keep_resolved(
    nl: &mut Netlink,
    gateways: &[Ipv4Addr],
    report: &mut RouteSyncReport,
) -> std::io::Result<()> {
    let managed = nl.managed_neighbours()?;
    let addrs = nl.addrs()?;
    for &gw in gateways {
        let Some(index) = on_link_index(&addrs, gw) else {
            continue;
        };
        if managed.contains(&(index, gw)) {
            continue;
        }
        match nl.add_managed_neighbour(index, gw) {
            Ok(()) => report.resolving.push(gw),
            Err(e) => report.errors.push(SandboxError::netlink(
                format!("add managed neighbour {gw} (Linux ≥ 5.16)"),
                e,
            )),
        }
    }
    Ok(())
}

/// What a sync did.
#[derive(Debug, Default)]
pub struct RouteSyncReport {
    pub upserted: Vec<(Ipv4Cidr, Ipv4Addr)>,
    pub removed: Vec<Ipv4Cidr>,
    pub conflicts: Vec<(Ipv4Cidr, Route)>,
    /// Gateways that got a managed (kernel-resolved) neighbour entry.
    pub resolving: Vec<Ipv4Addr>,
    /// Per-route failures (the other routes are still handled).
    pub errors: Vec<SandboxError>,
}

/// Programs the routes to other nodes in the calling thread's netns (the
/// node's: on a real machine the root netns).
#[derive(Debug, Clone)]
pub struct Routes {
    protocol: u8,
}

impl Default for Routes {
    fn default() -> Self {
        Self {
            protocol: NODE_ROUTE_PROTOCOL,
        }
    }
}

impl Routes {
    /// Routes tagged with `protocol` instead of [`NODE_ROUTE_PROTOCOL`].
    pub fn with_protocol(protocol: u8) -> Self {
        Self { protocol }
    }

    /// Makes Skiff's routes exactly `desired`: one `cidr via node_ip` per
    /// pair (the gateway must be on-link: direct routing needs the nodes on
    /// one L2 segment), removing Skiff's routes to prefixes not listed.
    pub fn sync(&self, desired: &[(Ipv4Cidr, Ipv4Addr)]) -> Result<RouteSyncReport, SandboxError> {
        let mut nl = Netlink::open().map_err(|e| SandboxError::netlink("open socket", e))?;
        let actual = nl
            .routes()
            .map_err(|e| SandboxError::netlink("dump routes", e))?;
        let plan = plan(desired, &actual, self.protocol);
        let mut report = RouteSyncReport {
            conflicts: plan.conflicts,
            ..Default::default()
        };
        for (cidr, gw) in plan.upsert {
            let route = Route {
                dst: cidr,
                gateway: Some(gw),
                oif: None,
                scope_link: false,
                protocol: self.protocol,
            };
            match nl.replace_route(&route) {
                Ok(()) => report.upserted.push((cidr, gw)),
                Err(e) => report.errors.push(SandboxError::netlink(
                    format!("add route {cidr} via {gw}"),
                    e,
                )),
            }
        }
        for route in plan.remove {
            match nl.del_route(&route) {
                Ok(_) => report.removed.push(route.dst),
                Err(e) => report.errors.push(SandboxError::netlink(
                    format!("delete route {}", route.dst),
                    e,
                )),
            }
        }
        let gateways: Vec<Ipv4Addr> = desired.iter().map(|(_, gw)| *gw).collect();
        if let Err(e) = keep_resolved(&mut nl, &gateways, &mut report) {
            report
                .errors
                .push(SandboxError::netlink("dump addresses/neighbours", e));
        }
        for (cidr, foreign) in &report.conflicts {
            log::warn!("route to pod CIDR {cidr} not programmed: {foreign:?} is not Skiff's");
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u8 = NODE_ROUTE_PROTOCOL;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn route(dst: &str, gw: Option<&str>, protocol: u8) -> Route {
        Route {
            dst: cidr(dst),
            gateway: gw.map(ip),
            oif: Some(2),
            scope_link: gw.is_none(),
            protocol,
        }
    }

    #[test]
    fn the_gateway_is_on_the_link_whose_subnet_holds_it() {
        let addrs = [
            (1, ip("127.0.0.1"), 8),
            (2, ip("192.168.200.10"), 24),
            (3, ip("10.244.0.1"), 32),
        ];
        assert_eq!(on_link_index(&addrs, ip("192.168.200.11")), Some(2));
        assert_eq!(on_link_index(&addrs, ip("10.0.0.1")), None);
    }

    #[test]
    fn adds_missing_keeps_present_removes_stale() {
        let actual = vec![
            route("10.244.1.0/24", Some("192.168.0.11"), P),
            route("10.244.9.0/24", Some("192.168.0.19"), P),
            route("192.168.0.0/24", None, 2), // the kernel's connected route
            route("0.0.0.0/0", Some("192.168.0.1"), 4),
        ];
        let desired = [
            (cidr("10.244.1.0/24"), ip("192.168.0.11")),
            (cidr("10.244.2.0/24"), ip("192.168.0.12")),
        ];
        let plan = plan(&desired, &actual, P);
        assert_eq!(
            plan.upsert,
            vec![(cidr("10.244.2.0/24"), ip("192.168.0.12"))]
        );
        assert_eq!(plan.remove, vec![actual[1].clone()]);
        assert!(plan.conflicts.is_empty());
    }

    #[test]
    fn a_moved_cidr_is_replaced_not_removed() {
        let actual = vec![route("10.244.1.0/24", Some("192.168.0.11"), P)];
        let desired = [(cidr("10.244.1.0/24"), ip("192.168.0.21"))];
        let plan = plan(&desired, &actual, P);
        assert_eq!(
            plan.upsert,
            vec![(cidr("10.244.1.0/24"), ip("192.168.0.21"))]
        );
        assert!(plan.remove.is_empty(), "{plan:?}");
    }

    #[test]
    fn foreign_routes_are_never_touched() {
        let foreign = route("10.244.3.0/24", Some("192.168.0.99"), 4);
        let pod_host_route = route("10.244.0.5/32", None, POD_ROUTE_PROTOCOL);
        let actual = vec![foreign.clone(), pod_host_route];
        let desired = [(cidr("10.244.3.0/24"), ip("192.168.0.13"))];
        let plan = plan(&desired, &actual, P);
        assert!(plan.upsert.is_empty());
        assert!(plan.remove.is_empty(), "{plan:?}");
        assert_eq!(plan.conflicts, vec![(cidr("10.244.3.0/24"), foreign)]);
    }

    #[test]
    fn empty_desired_removes_all_of_ours_and_nothing_else() {
        let actual = vec![
            route("10.244.1.0/24", Some("192.168.0.11"), P),
            route("10.244.2.0/24", Some("192.168.0.12"), P),
            route("10.10.0.0/16", Some("192.168.0.1"), 3),
        ];
        let plan = plan(&[], &actual, P);
        assert_eq!(plan.remove, actual[..2].to_vec());
        assert_eq!(plan, plan_of_nothing_else(&plan));
    }

    fn plan_of_nothing_else(p: &RoutePlan) -> RoutePlan {
        RoutePlan {
            upsert: vec![],
            remove: p.remove.clone(),
            conflicts: vec![],
        }
    }

    #[test]
    fn in_sync_means_no_work() {
        let actual = vec![route("10.244.1.0/24", Some("192.168.0.11"), P)];
        let desired = [(cidr("10.244.1.0/24"), ip("192.168.0.11"))];
        assert_eq!(plan(&desired, &actual, P), RoutePlan::default());
    }
}
