//! External clients: netns on the underlay bridge outside any node, the
//! way a client of NodePort Services reaches the cluster.

use std::net::Ipv4Addr;
use std::process::Command;

use super::{add_netns, ip_batch, LabError, Netns, Underlay};

/// One external client: `eth0` on the underlay with `.(250-k)`.
#[derive(Debug)]
pub struct ExternalClient {
    netns: Netns,
    addr: Ipv4Addr,
}

impl ExternalClient {
    pub(crate) fn create(lab: &str, k: usize, underlay: &Underlay) -> Result<Self, LabError> {
        if k > 40 {
            return Err(LabError::Config(format!("external client {k}: at most 40")));
        }
        let netns = add_netns(&format!("{lab}-x{k}"), lab)?;
        let port = format!("x{k}");
        ip_batch(
            Some(underlay.netns().name()),
            &[
                format!(
                    "link add {port} type veth peer name eth0 netns {}",
                    netns.name()
                ),
                format!("link set {port} master {}", Underlay::BRIDGE),
                format!("link set {port} up"),
            ],
        )?;
        let [a, b, c, _] = underlay.subnet().octets();
        let addr = Ipv4Addr::new(a, b, c, 250 - k as u8);
        ip_batch(
            Some(netns.name()),
            &[
                format!("addr add {addr}/24 dev eth0"),
                "link set eth0 up".into(),
            ],
        )?;
        // A NIC hands the wire complete checksums; a veth would pass on
        // the socket's CHECKSUM_PARTIAL instead.
        ethtool(netns.name(), &["-K", "eth0", "tx", "off"])?;
        Ok(Self { netns, addr })
    }

    /// A client whose netns and link someone else set up.
    pub(crate) fn from_parts(netns: Netns, addr: Ipv4Addr) -> Self {
        Self { netns, addr }
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The client's underlay address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Adds `ip route add <dst>/32 via <via>` (e.g. an externalIP via a node).
    pub fn route_via(&self, dst: Ipv4Addr, via: Ipv4Addr) -> Result<(), LabError> {
        ip_batch(
            Some(self.netns.name()),
            &[format!("route add {dst}/32 via {via} dev eth0")],
        )
    }
}

/// Runs `ethtool <args>` inside netns `ns` (ioctls only: `ip netns exec`'s
/// /sys remount does not matter here).
pub(crate) fn ethtool(ns: &str, args: &[&str]) -> Result<(), LabError> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ethtool"])
        .args(args)
        .output()
        .map_err(|source| LabError::Io {
            what: "running",
            path: "ethtool".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: format!("ip netns exec {ns} ethtool {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}
