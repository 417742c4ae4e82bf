//! The NodePort program on the node's external interfaces.
//!
//! XDP in native (driver) mode first; where it cannot attach (a driver
//! without XDP, or `--nodeport-mode tc`), the same logic as a TCX ingress
//! classifier. Like the pod hooks, the link is pinned
//! (`links/<iface>-xdp` or `links/<iface>-nodeport-tc`): it survives the
//! agent, a restart swaps the program behind it atomically, and
//! `--teardown` removes it. Attaching one flavour removes the other's pin,
//! so a packet never runs both.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use aya::programs::links::{FdLink, LinkError, PinnedLink};
use aya::programs::tc::TcAttachType;
use aya::programs::xdp::{XdpLink, XdpMode};

use super::attach::{attach_tcx, chain, remove_file};
use super::bpffs::PinDirs;
use super::loader::{Hook, Loaded, TC_NODEPORT, XDP_NODEPORT};
use super::netif;
use super::DataplaneError;

/// Link pin suffix of the XDP attachment.
pub const XDP_PIN: &str = "xdp";
/// The TC fallback hook.
pub const TC_HOOK: Hook = Hook {
    program: TC_NODEPORT,
    attach: TcAttachType::Ingress,
    name: "nodeport-tc",
};

/// How to attach the NodePort program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NodePortMode {
    /// Native XDP; TC ingress if XDP cannot attach.
    Xdp,
    /// TC (TCX) ingress only.
    Tc,
}

/// What got attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodePortAttach {
    Xdp { replaced: bool },
    Tc { replaced: bool },
}

/// Attaches the NodePort program to `iface` (see the module docs).
pub fn attach(
    loaded: &mut Loaded,
    dirs: &PinDirs,
    iface: &str,
    mode: NodePortMode,
) -> Result<NodePortAttach, DataplaneError> {
    if mode == NodePortMode::Xdp {
        match attach_xdp(loaded, &dirs.link(iface, XDP_PIN), iface) {
            Ok(replaced) => {
                remove_file(&dirs.link(iface, TC_HOOK.name))?;
                return Ok(NodePortAttach::Xdp { replaced });
            }
            Err(e) => log::warn!(
                "{iface}: native XDP unavailable ({}); using TC ingress",
                chain(&e)
            ),
        }
    }
    let index = netif::list()?
        .into_iter()
        .find(|i| i.name == iface)
        .ok_or_else(|| DataplaneError::NoInterface {
            iface: iface.to_owned(),
        })?;
    let prog = loaded.program(TC_NODEPORT)?;
    let replaced = attach_tcx(prog, &index, TC_HOOK, &dirs.link(iface, TC_HOOK.name))?;
    remove_file(&dirs.link(iface, XDP_PIN))?;
    Ok(NodePortAttach::Tc { replaced })
}

/// XDP (driver mode): reuse the pinned link if alive, else attach and pin.
fn attach_xdp(loaded: &mut Loaded, pin: &Path, iface: &str) -> Result<bool, DataplaneError> {
    let prog = loaded.xdp_program(XDP_NODEPORT)?;
    match PinnedLink::from_pin(pin) {
        Ok(old) => {
            let replaced = XdpLink::try_from(FdLink::from(old))
                .map_err(|e| chain(&e))
                .and_then(|link| prog.attach_to_link(link).map_err(|e| chain(&e)));
            match replaced {
                Ok(_) => return Ok(true),
                Err(e) => log::info!("{iface}: pinned XDP link unusable ({e}), attaching anew"),
            }
            remove_file(pin)?;
        }
        Err(LinkError::SyscallError(e)) if e.io_error.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            log::info!(
                "{iface}: cannot open pinned XDP link ({}), attaching anew",
                chain(&e)
            );
            remove_file(pin)?;
        }
    }
    let attach_err = |source| DataplaneError::Attach {
        iface: iface.to_owned(),
        source,
    };
    let id = prog.attach(iface, XdpMode::Driver).map_err(attach_err)?;
    let link = prog.take_link(id).map_err(attach_err)?;
    let fd = FdLink::try_from(link).map_err(|source| DataplaneError::Link {
        iface: iface.to_owned(),
        source,
    })?;
    fd.pin(pin).map_err(|source| DataplaneError::PinLink {
        iface: iface.to_owned(),
        path: pin.into(),
        source,
    })?;
    Ok(false)
}

/// The external interfaces and the node addresses NodePorts answer on:
/// `ifaces` if given, else the interface holding `node_ip`, else the one of
/// the default route. The addresses are those interfaces' IPv4 addresses,
/// `node_ip` first (it is the SNAT address).
pub fn resolve(
    ifaces: &[String],
    node_ip: Option<Ipv4Addr>,
) -> Result<(Vec<String>, Vec<Ipv4Addr>), DataplaneError> {
    let addrs = netif::ipv4_addresses()?;
    let mut listed: Vec<String> = Vec::new();
    for name in ifaces.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !listed.iter().any(|l| l == name) {
            listed.push(name.to_owned());
        }
    }
    let names = match (listed.is_empty(), node_ip) {
        (false, _) => listed,
        (true, Some(ip)) => vec![addrs
            .iter()
            .find(|(_, a)| *a == ip)
            .map(|(n, _)| n.clone())
            .ok_or(DataplaneError::NoExternalInterface)?],
        (true, None) => {
            vec![netif::default_route_iface()?.ok_or(DataplaneError::NoExternalInterface)?]
        }
    };
    let ips = node_addresses(&names, node_ip, &addrs);
    Ok((names, ips))
}

/// `node_ip` first, then the IPv4 addresses of `names` in the order listed
/// (from `addrs`, interface and address pairs), each once: without
/// `node_ip`, the first listed interface's first address is the SNAT
/// address.
fn node_addresses(
    names: &[String],
    node_ip: Option<Ipv4Addr>,
    addrs: &[(String, Ipv4Addr)],
) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = node_ip.into_iter().collect();
    for name in names {
        for (n, a) in addrs {
            if n == name && !ips.contains(a) {
                ips.push(*a);
            }
        }
    }
    ips
}

/// Removes the NodePort link pins of interfaces not in `ifaces` (an agent
/// restarted with fewer external interfaces): unpinning detaches the
/// program. Returns the interfaces detached.
pub fn detach_unlisted(dirs: &PinDirs, ifaces: &[String]) -> Result<Vec<String>, DataplaneError> {
    let Ok(entries) = std::fs::read_dir(&dirs.links) else {
        return Ok(Vec::new());
    };
    let mut detached = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let iface = [XDP_PIN, TC_HOOK.name]
            .iter()
            .find_map(|suffix| file.strip_suffix(&format!("-{suffix}")));
        if let Some(iface) = iface {
            if !ifaces.iter().any(|i| i == iface) {
                remove_file(&entry.path())?;
                detached.push(iface.to_owned());
            }
        }
    }
    Ok(detached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ip_first_then_every_listed_interface_once() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let addrs = vec![
            ("eth0".to_string(), a("192.0.2.1")),
            ("eth1".to_string(), a("198.51.100.1")),
            ("eth0".to_string(), a("192.0.2.9")),
            ("lo".to_string(), a("127.0.0.1")),
        ];
        let names = vec!["eth0".to_string(), "eth1".to_string()];
        assert_eq!(
            node_addresses(&names, Some(a("192.0.2.9")), &addrs),
            vec![a("192.0.2.9"), a("192.0.2.1"), a("198.51.100.1")]
        );
        // Listed order, not the interfaces' order, decides the first.
        let reversed = vec!["eth1".to_string(), "eth0".to_string()];
        assert_eq!(
            node_addresses(&reversed, None, &addrs),
            vec![a("198.51.100.1"), a("192.0.2.1"), a("192.0.2.9")]
        );
        assert_eq!(
            node_addresses(&names[1..], None, &addrs),
            vec![a("198.51.100.1")]
        );
    }
}
