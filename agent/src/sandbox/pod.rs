//! One pod's network: create (idempotent, repairs a half-made one),
//! re-adopt after an agent restart, tear down (idempotent).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::nl::{Netlink, Route};
use super::routes::POD_ROUTE_PROTOCOL;
use super::veth::{self, POD_IFNAME};
use super::{sysctl, valid_uid, Ipv4Cidr, PodFiles, PodNetns, PodNetwork, SandboxError, GATEWAY};

/// A pod's network namespace, address and host-side veth.
#[derive(Debug)]
pub struct Sandbox {
    uid: String,
    netns: PodNetns,
    ip: Ipv4Addr,
    host_ifname: String,
    host_index: u32,
}

fn nl_open() -> Result<Netlink, SandboxError> {
    Netlink::open().map_err(|e| SandboxError::netlink("open socket", e))
}

fn check_uid(uid: &str) -> Result<(), SandboxError> {
    if valid_uid(uid) {
        Ok(())
    } else {
        Err(SandboxError::InvalidUid(uid.to_owned()))
    }
}

impl Sandbox {
    /// Sets up pod `uid`'s network, or completes/keeps what exists: netns at
    /// `<netns_dir>/<uid>`, an address, the veth pair, the pod's addresses,
    /// routes and gateway neighbour, and the node's route to the pod. When a
    /// fresh sandbox fails half-way, what was made is torn down again.
    pub fn create(net: &PodNetwork, uid: &str) -> Result<Self, SandboxError> {
        check_uid(uid)?;
        let path = net.netns_path(uid);
        let existed = PodNetns::open(&path)?.is_some();
        let result = Self::create_in(net, uid, &path);
        if result.is_err() && !existed {
            if let Err(e) = teardown(net, uid) {
                log::warn!("pod {uid}: cleaning up a failed sandbox: {e}");
            }
        }
        result
    }

    fn create_in(net: &PodNetwork, uid: &str, path: &Path) -> Result<Self, SandboxError> {
        let netns = PodNetns::create(path)?;
        let ip = net.ipam().allocate(uid)?;
        let host = net.host_ifname(uid);
        let mut nl = nl_open()?;
        let mut link = veth::ensure_pair(&mut nl, &host, uid, &netns, net.mtu())?;
        // A host side without its peer (the pod netns was replaced): redo.
        if !netns.run(pod_has_eth0)?? {
            nl.del_link(link.index)
                .map_err(|e| SandboxError::netlink(format!("delete link {host}"), e))?;
            link = veth::ensure_pair(&mut nl, &host, uid, &netns, net.mtu())?;
        }
        nl.set_up(link.index)
            .map_err(|e| SandboxError::netlink(format!("set {host} up"), e))?;
        sysctl::write(&format!("net.ipv4.conf.{host}.proxy_arp"), "1")?;
        let mac = link.mac.clone();
        netns.run(move || configure_pod(ip, &mac))??;
        nl.replace_route(&host_route(ip, link.index))
            .map_err(|e| SandboxError::netlink(format!("add route {ip}/32 dev {host}"), e))?;
        Ok(Self {
            uid: uid.to_owned(),
            netns,
            ip,
            host_ifname: host,
            host_index: link.index,
        })
    }

    /// Re-adopts pod `uid`'s sandbox (after an agent restart): `None` if it
    /// has no netns; an `Incomplete` error if a piece is missing (then
    /// [`Sandbox::create`] repairs it). Changes nothing.
    pub fn open(net: &PodNetwork, uid: &str) -> Result<Option<Self>, SandboxError> {
        check_uid(uid)?;
        let Some(netns) = PodNetns::open(&net.netns_path(uid))? else {
            return Ok(None);
        };
        let incomplete = |what: String| SandboxError::Incomplete {
            uid: uid.to_owned(),
            what,
        };
        let ip = net
            .ipam()
            .lookup(uid)?
            .ok_or_else(|| incomplete("no address allocated".into()))?;
        let host = net.host_ifname(uid);
        let link = nl_open()?
            .link(&host)
            .map_err(|e| SandboxError::netlink(format!("get link {host}"), e))?
            .filter(|l| veth::is_ours(l, uid))
            .ok_or_else(|| incomplete(format!("no host-side veth {host}")))?;
        Ok(Some(Self {
            uid: uid.to_owned(),
            netns,
            ip,
            host_ifname: host,
            host_index: link.index,
        }))
    }

    /// Removes pod `uid`'s network: veth (and with it the node's route),
    /// netns mount and file, address, generated files. Idempotent.
    pub fn teardown(net: &PodNetwork, uid: &str) -> Result<(), SandboxError> {
        check_uid(uid)?;
        teardown(net, uid)
    }

    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The pod's address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The netns file containers join (`setns` / the runtime's netns path).
    pub fn netns_path(&self) -> &Path {
        self.netns.path()
    }

    pub fn netns(&self) -> &PodNetns {
        &self.netns
    }

    /// Host-side veth name (what the dataplane attaches to).
    pub fn host_ifname(&self) -> &str {
        &self.host_ifname
    }

    /// Host-side veth index in the node's netns.
    pub fn host_index(&self) -> u32 {
        self.host_index
    }

    /// Writes the pod's namespaced `net.*` sysctls (`securityContext.sysctls`)
    /// inside its netns.
    pub fn set_sysctls(&self, sysctls: &[(String, String)]) -> Result<(), SandboxError> {
        self.netns
            .run(|| sysctls.iter().try_for_each(|(k, v)| sysctl::write(k, v)))?
    }

    /// Writes hosts / resolv.conf / hostname to [`PodNetwork::files_dir`]
    /// and returns that directory.
    pub fn write_files(&self, net: &PodNetwork, files: &PodFiles) -> Result<PathBuf, SandboxError> {
        let dir = net.files_dir(&self.uid);
        files.write(&dir)?;
        Ok(dir)
    }
}

fn host_route(ip: Ipv4Addr, index: u32) -> Route {
    Route {
        dst: Ipv4Cidr::host(ip),
        gateway: None,
        oif: Some(index),
        scope_link: true,
        protocol: POD_ROUTE_PROTOCOL,
    }
}

/// Runs inside the pod netns.
fn pod_has_eth0() -> Result<bool, SandboxError> {
    Ok(nl_open()?
        .link(POD_IFNAME)
        .map_err(|e| SandboxError::netlink("get link eth0 in the pod", e))?
        .is_some())
}

/// Runs inside the pod netns: `lo` and `eth0` up, `ip/32` on eth0, the
/// gateway on-link with a permanent neighbour entry, default via it.
fn configure_pod(ip: Ipv4Addr, host_mac: &[u8]) -> Result<(), SandboxError> {
    let mut nl = nl_open()?;
    let err = |what: String| move |e| SandboxError::netlink(format!("{what} (in the pod)"), e);
    set_up(&mut nl, "lo")?;
    let eth0 = set_up(&mut nl, POD_IFNAME)?;
    nl.replace_addr(eth0, ip, 32)
        .map_err(err(format!("add {ip}/32 to {POD_IFNAME}")))?;
    let route = |dst, gateway| Route {
        dst,
        gateway,
        oif: Some(eth0),
        scope_link: gateway.is_none(),
        protocol: POD_ROUTE_PROTOCOL,
    };
    nl.replace_route(&route(Ipv4Cidr::host(GATEWAY), None))
        .map_err(err(format!("add route {GATEWAY} dev {POD_IFNAME}")))?;
    nl.replace_neigh(eth0, GATEWAY, host_mac)
        .map_err(err(format!("add neighbour {GATEWAY}")))?;
    let any = Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0).expect("/0 is valid");
    nl.replace_route(&route(any, Some(GATEWAY)))
        .map_err(err(format!("add default via {GATEWAY}")))
}

/// Sets link `name` up; returns its index.
fn set_up(nl: &mut Netlink, name: &str) -> Result<u32, SandboxError> {
    let op = || format!("set {name} up (in the pod)");
    let link = nl
        .link(name)
        .map_err(|e| SandboxError::netlink(op(), e))?
        .ok_or_else(|| {
            SandboxError::netlink(op(), std::io::Error::from_raw_os_error(libc::ENODEV))
        })?;
    nl.set_up(link.index)
        .map_err(|e| SandboxError::netlink(op(), e))?;
    Ok(link.index)
}

fn teardown(net: &PodNetwork, uid: &str) -> Result<(), SandboxError> {
    let host = net.host_ifname(uid);
    let mut nl = nl_open()?;
    let link = nl
        .link(&host)
        .map_err(|e| SandboxError::netlink(format!("get link {host}"), e))?;
    match link {
        Some(l) if veth::is_ours(&l, uid) => {
            nl.del_link(l.index)
                .map_err(|e| SandboxError::netlink(format!("delete link {host}"), e))?;
        }
        Some(l) => log::warn!(
            "pod {uid}: {host} belongs to {:?}; not deleting it",
            veth::owner_of(&l)
        ),
        None => {}
    }
    PodNetns::remove(&net.netns_path(uid))?;
    net.ipam().release(uid)?;
    let dir = net.files_dir(uid);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(SandboxError::io("removing", dir, e))
        }
        _ => Ok(()),
    }
}
