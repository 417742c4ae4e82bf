//! `skiff agent`'s NodePort setup: which interface and addresses, and the
//! attach (kept out of run.rs, which the kubelet shares).

use std::net::Ipv4Addr;
use std::path::Path;

use skiff_agent::dataplane::{external, Dataplane, NodePortAttach, PinDirs};
use skiff_agent::proxy::conntrack::{
    gc_affinity, gc_snat, live_rev_nat_ids, monotonic_now_ns, CtTimeouts,
};
use skiff_common::{defaults, ipv4_be, NodePortConfig};

use crate::cli::AgentArgs;

/// The external interfaces and the node's addresses.
pub type External = Option<(Vec<String>, Vec<Ipv4Addr>)>;

/// The external interfaces and the node's addresses, or `None` (logged)
/// when there is none: NodePorts are then not served.
pub fn resolve(args: &AgentArgs) -> External {
    match external::resolve(&args.external_iface, args.node_ip) {
        Ok((ifaces, ips)) if !ips.is_empty() => {
            log::info!(
                "NodePort: external interfaces {}, node addresses {ips:?}",
                ifaces.join(",")
            );
            Some((ifaces, ips))
        }
        Ok((ifaces, _)) => {
            log::warn!(
                "NodePort: {} has no IPv4 address; NodePorts not served",
                ifaces.join(",")
            );
            None
        }
        Err(e) => {
            log::warn!("NodePort: {e}; NodePorts not served");
            None
        }
    }
}

/// The NodePort programs' configuration: SNAT to the first node address.
pub fn config(external: &External) -> NodePortConfig {
    let addr = external
        .as_ref()
        .and_then(|(_, ips)| ips.first())
        .map_or(0, |ip| ipv4_be(ip.octets()));
    NodePortConfig {
        node_addr: addr,
        snat_port_min: defaults::SNAT_PORT_MIN,
        snat_port_max: defaults::SNAT_PORT_MAX,
    }
}

/// Attaches the NodePort program to every external interface (errors are
/// logged: ClusterIP service keeps working without it).
pub fn attach(args: &AgentArgs, external: &External, dp: &mut Dataplane, dirs: &PinDirs) {
    let listed = external.as_ref().map_or(&[][..], |(i, _)| i.as_slice());
    match external::detach_unlisted(dirs, listed) {
        Ok(gone) if !gone.is_empty() => {
            log::info!(
                "NodePort: detached from {} (no longer listed)",
                gone.join(",")
            )
        }
        Ok(_) => {}
        Err(e) => log::error!("NodePort: removing pins of unlisted interfaces: {e}"),
    }
    let Some((ifaces, _)) = external else { return };
    for iface in ifaces {
        attach_one(args, iface, dp, dirs);
    }
}

fn attach_one(args: &AgentArgs, iface: &str, dp: &mut Dataplane, dirs: &PinDirs) {
    match external::attach(&mut dp.loaded, dirs, iface, args.nodeport_mode) {
        Ok(NodePortAttach::Xdp { replaced }) => {
            log::info!("NodePort: XDP (native) on {iface}{}", how(replaced))
        }
        Ok(NodePortAttach::Tc { replaced }) => {
            log::info!("NodePort: TC ingress on {iface}{}", how(replaced))
        }
        Err(e) => log::error!(
            "NodePort: attaching to {iface} (pins in {}): {e}",
            Path::new(&dirs.links).display()
        ),
    }
}

fn how(replaced: bool) -> &'static str {
    if replaced {
        " (replaced program on existing link)"
    } else {
        " (new link)"
    }
}

/// Removes SNAT and affinity entries of deleted frontends and idle SNAT
/// flows (the LRU maps would only evict them under pressure).
pub fn gc(dp: &mut Dataplane) -> Result<(), skiff_agent::proxy::MapOpError> {
    let live = live_rev_nat_ids(&mut dp.maps)?;
    let now = monotonic_now_ns();
    let snat = gc_snat(&mut dp.maps.snat, &live, now, &CtTimeouts::default())?;
    let affinity = gc_affinity(&mut dp.maps.affinity, &live)?;
    if snat + affinity > 0 {
        log::info!("NodePort gc: removed {snat} SNAT and {affinity} affinity entries");
    }
    Ok(())
}
