//! The pod's veth pair: naming, creation, and the node's uplink MTU.
//!
//! The host side is `<prefix><hash of the pod uid>`, 15 characters (the
//! kernel's limit), deterministic so a restarted agent finds it again, and
//! starting with the prefix the dataplane attaches its TC programs to
//! (`--pod-veth-prefix`, `lxc` by default). Its alias (`ip link` shows it)
//! records the owner, `skiff-pod:<uid>`, so a hash collision is detected
//! instead of tearing down another pod's link. The alias is set right after
//! creation (the kernel ignores one given with `RTM_NEWLINK`), so a link with
//! this name and no alias is taken for an interrupted create of this pod's.
//! The pod side is created directly inside the pod netns as `eth0`.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use super::netns::PodNetns;
use super::nl::{Link, Netlink};
use super::SandboxError;

/// The prefix the dataplane's default `--pod-veth-prefix` matches.
pub const DEFAULT_VETH_PREFIX: &str = "lxc";
/// Name of the pod side inside the pod.
pub const POD_IFNAME: &str = "eth0";
/// Longest interface name (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;
/// Prefixes may not leave fewer than this many hash characters.
const MIN_HASH_CHARS: usize = 8;

/// Whether `prefix` leaves room for enough hash characters.
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() + MIN_HASH_CHARS <= MAX_IFNAME
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The host-side name: `prefix` + hex FNV-1a 64 of `uid`, 15 characters.
/// FNV is fixed by its definition, so names never change between builds.
pub fn host_ifname(prefix: &str, uid: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in uid.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let hex = format!("{h:016x}");
    let take = MAX_IFNAME.saturating_sub(prefix.len()).min(hex.len());
    format!("{prefix}{}", &hex[..take])
}

/// The alias that marks a host-side veth as pod `uid`'s.
pub fn owner_alias(uid: &str) -> String {
    format!("skiff-pod:{uid}")
}

/// The pod uid recorded in a link's alias, if it is a Skiff pod veth.
pub fn owner_of(link: &Link) -> Option<&str> {
    link.alias.as_deref()?.strip_prefix("skiff-pod:")
}

/// Creates the pair (host side here, `eth0` in `netns`) unless the host side
/// exists; returns the host side. A host side of another owner is an error.
pub fn ensure_pair(
    nl: &mut Netlink,
    host: &str,
    uid: &str,
    netns: &PodNetns,
    mtu: u32,
) -> Result<Link, SandboxError> {
    let get = |nl: &mut Netlink| {
        nl.link(host)
            .map_err(|e| SandboxError::netlink(format!("get link {host}"), e))
    };
    let link = match get(nl)? {
        Some(link) if !is_ours(&link, uid) => {
            return Err(SandboxError::NameClash {
                ifname: host.to_owned(),
                owner: owner_of(&link).map(str::to_owned),
                uid: uid.to_owned(),
            })
        }
        Some(link) => link,
        None => {
            nl.add_veth(host, POD_IFNAME, netns.fd().as_raw_fd(), mtu)
                .map_err(|e| {
                    let op = format!("add veth {host} <-> {POD_IFNAME} of pod {uid}");
                    SandboxError::netlink(op, e)
                })?;
            get(nl)?.ok_or_else(|| SandboxError::Incomplete {
                uid: uid.to_owned(),
                what: format!("{host} vanished right after it was created"),
            })?
        }
    };
    if link.alias.is_none() {
        nl.set_alias(link.index, &owner_alias(uid))
            .map_err(|e| SandboxError::netlink(format!("set alias of {host}"), e))?;
    }
    Ok(link)
}

/// Whether `link` (named after `uid`) is pod `uid`'s: its alias says so, or
/// it has none yet (a create interrupted before the alias was set).
pub fn is_ours(link: &Link, uid: &str) -> bool {
    link.alias.is_none() || owner_of(link) == Some(uid)
}

/// The MTU of the interface holding `node_ip` (the underlay uplink).
pub fn uplink_mtu(nl: &mut Netlink, node_ip: Ipv4Addr) -> Result<u32, SandboxError> {
    let addrs = nl
        .addrs()
        .map_err(|e| SandboxError::netlink("dump addresses", e))?;
    let index = addrs
        .iter()
        .find(|(_, ip, _)| *ip == node_ip)
        .map(|(i, _, _)| *i)
        .ok_or(SandboxError::NoUplink(node_ip))?;
    let links = nl
        .links()
        .map_err(|e| SandboxError::netlink("dump links", e))?;
    links
        .iter()
        .find(|l| l.index == index)
        .map(|l| l.mtu)
        .ok_or(SandboxError::NoUplink(node_ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_15_chars_and_keep_the_prefix() {
        let a = host_ifname("lxc", "2b7c1e7a-5d0e-4f0e-9a43-3b1c2d4e5f60");
        assert_eq!(a.len(), MAX_IFNAME);
        assert!(a.starts_with("lxc"), "{a}");
        assert_eq!(
            a,
            host_ifname("lxc", "2b7c1e7a-5d0e-4f0e-9a43-3b1c2d4e5f60")
        );
        assert_ne!(
            a,
            host_ifname("lxc", "2b7c1e7a-5d0e-4f0e-9a43-3b1c2d4e5f61")
        );
        // Fixed by FNV-1a's definition: a restarted (rebuilt) agent agrees.
        assert_eq!(host_ifname("lxc", ""), "lxccbf29ce48422");
        assert_eq!(host_ifname("skf", "a").len(), 15);
    }

    #[test]
    fn prefixes_must_leave_room() {
        assert!(valid_prefix("lxc"));
        assert!(valid_prefix("skiffp_"));
        assert!(!valid_prefix("toolongprefix"));
        assert!(!valid_prefix(""));
        assert!(!valid_prefix("a-b"));
    }

    #[test]
    fn owner_is_read_back_from_the_alias() {
        let link = Link {
            index: 7,
            name: "lxc0".into(),
            mtu: 1500,
            mac: vec![],
            alias: Some(owner_alias("uid-1")),
        };
        assert_eq!(owner_of(&link), Some("uid-1"));
        let foreign = Link {
            alias: Some("uplink".into()),
            ..link.clone()
        };
        assert_eq!(owner_of(&foreign), None);
        assert!(is_ours(&link, "uid-1") && !is_ours(&link, "uid-2"));
        assert!(!is_ours(&foreign, "uid-1"));
        let unnamed = Link {
            alias: None,
            ..link
        };
        assert_eq!(owner_of(&unnamed), None);
        assert!(is_ours(&unnamed, "uid-1"), "an interrupted create");
    }
}
