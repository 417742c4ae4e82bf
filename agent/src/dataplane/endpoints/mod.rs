//! Keeping `LOCAL_ENDPOINTS` (pod address → host veth, MACs) equal to the
//! pods this node routes to its pod veths, so that `skiff_from_pod` can hand
//! a packet for one of them straight to it (`bpf_redirect_peer`).
//!
//! Everything comes from the node itself, on every link scan: the /32
//! routes of the main table, the pod veths (`<prefix>*`) they leave by, and
//! the MAC of each veth's other end, read through rtnetlink by netnsid. So
//! the map follows pods however they were made (the kubelet's sandbox, a
//! test lab) and is repaired after an agent restart or any drift; the map
//! itself is read back each pass, it holds one entry per local pod.

mod nl;
pub mod plan;

use std::net::Ipv4Addr;

use skiff_common::{LocalEndpoint, LocalPrefix};

use super::maps::{PinnedArray, PinnedHash};
use super::DataplaneError;
use crate::proxy::KvMap;
use nl::Rtnl;
use plan::{PodLink, PodRoute};

/// What a pass changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EndpointReport {
    pub added: Vec<Ipv4Addr>,
    pub updated: Vec<Ipv4Addr>,
    pub removed: Vec<Ipv4Addr>,
    /// Pods routed through a pod veth whose MACs could not be read: no
    /// entry, their packets go through the stack.
    pub unresolved: Vec<Ipv4Addr>,
    /// How many entries the map holds now.
    pub total: usize,
}

fn nl_err(what: &str) -> impl FnOnce(std::io::Error) -> DataplaneError + '_ {
    move |source| DataplaneError::Netlink {
        what: what.to_owned(),
        source,
    }
}

/// The /32 routes and links of this thread's netns, with the peer MAC of
/// every pod veth some route leaves by.
pub fn observe(prefix: &str) -> Result<(Vec<PodRoute>, Vec<PodLink>), DataplaneError> {
    let mut rtnl = Rtnl::open().map_err(nl_err("opening a socket"))?;
    let routes = rtnl.host_routes().map_err(nl_err("dumping routes"))?;
    let mut links = rtnl.links().map_err(nl_err("dumping links"))?;
    for link in links.iter_mut().filter(|l| l.is_pod_veth(prefix)) {
        if !routes.iter().any(|r| r.oif == link.index) {
            continue;
        }
        if let Some((peer, netnsid)) = link.peer {
            let what = format!("reading the peer of {} (netnsid {netnsid})", link.name);
            link.peer_mac = rtnl.peer_mac(netnsid, peer).map_err(nl_err(&what))?;
        }
    }
    Ok((routes, links))
}

/// One pass: observe, compare with the map, write the difference (new and
/// changed entries first, then removals). `LOCAL_PREFIX` covers the old and
/// the new entries while they change, and only the new ones after.
pub fn sync(
    map: &mut PinnedHash<u32, LocalEndpoint>,
    cover: &mut PinnedArray<LocalPrefix>,
    prefix: &str,
) -> Result<EndpointReport, DataplaneError> {
    let (routes, links) = observe(prefix)?;
    let want = plan::desired(&routes, &links, prefix);
    let have = map.entries()?;
    let diff = plan::diff(&want.endpoints, &have);
    let have_addrs = have
        .iter()
        .map(|(k, _)| std::net::Ipv4Addr::from(k.to_ne_bytes()));
    let wide = plan::cover(want.endpoints.keys().copied().chain(have_addrs));
    let narrow = plan::cover(want.endpoints.keys().copied());
    if cover.get(&0)?.unwrap_or_default() != wide {
        cover.insert(0, wide)?;
    }
    let mut report = EndpointReport {
        unresolved: want.unresolved,
        total: want.endpoints.len(),
        ..EndpointReport::default()
    };
    for (addr, ep) in &diff.add {
        map.insert(plan::key(*addr), *ep)?;
        report.added.push(*addr);
    }
    for (addr, ep) in &diff.update {
        map.insert(plan::key(*addr), *ep)?;
        report.updated.push(*addr);
    }
    for addr in &diff.remove {
        map.remove(&plan::key(*addr))?;
        report.removed.push(*addr);
    }
    if narrow != wide {
        cover.insert(0, narrow)?;
    }
    Ok(report)
}
