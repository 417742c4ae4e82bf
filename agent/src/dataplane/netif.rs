//! Network interfaces of the current network namespace.
//!
//! Uses `if_nameindex(3)` (netlink under the hood), which answers for the
//! calling thread's network namespace. `/sys/class/net` would not: it shows
//! the namespace `/sys` was mounted in, and the agent runs in a node netns
//! entered with `setns` but with the root mount namespace.

use std::ffi::CStr;

use super::DataplaneError;

/// An interface: kernel index and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interface {
    pub index: u32,
    pub name: String,
}

/// Every interface of the current network namespace.
pub fn list() -> Result<Vec<Interface>, DataplaneError> {
    // SAFETY: if_nameindex has no preconditions; a null result is an error.
    let head = unsafe { libc::if_nameindex() };
    if head.is_null() {
        return Err(DataplaneError::ListInterfaces(
            std::io::Error::last_os_error(),
        ));
    }
    let mut out = Vec::new();
    let mut cur = head;
    // SAFETY: the array is terminated by an entry with index 0 and a null
    // name; every name before it is a valid C string until freed below.
    unsafe {
        while (*cur).if_index != 0 && !(*cur).if_name.is_null() {
            let name = CStr::from_ptr((*cur).if_name)
                .to_string_lossy()
                .into_owned();
            out.push(Interface {
                index: (*cur).if_index,
                name,
            });
            cur = cur.add(1);
        }
        libc::if_freenameindex(head);
    }
    out.sort();
    Ok(out)
}

/// The interfaces whose name starts with `prefix`.
pub fn with_prefix(prefix: &str) -> Result<Vec<Interface>, DataplaneError> {
    Ok(list()?
        .into_iter()
        .filter(|i| i.name.starts_with(prefix))
        .collect())
}

/// `(interface, address)` of every IPv4 address of the current network
/// namespace (`getifaddrs(3)`, netlink: the calling thread's namespace).
pub fn ipv4_addresses() -> Result<Vec<(String, std::net::Ipv4Addr)>, DataplaneError> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid out-pointer; freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(DataplaneError::ListInterfaces(
            std::io::Error::last_os_error(),
        ));
    }
    let mut out = Vec::new();
    let mut cur = head;
    // SAFETY: a linked list from getifaddrs, valid until freeifaddrs; an
    // AF_INET ifa_addr points at a sockaddr_in.
    unsafe {
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null()
                && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET
                && !ifa.ifa_name.is_null()
            {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                let addr = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                let name = CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned();
                out.push((name, addr));
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    Ok(out)
}

/// The interface of the IPv4 default route, if any (this thread's netns).
pub fn default_route_iface() -> Result<Option<String>, DataplaneError> {
    let path = "/proc/thread-self/net/route";
    let text = std::fs::read_to_string(path).map_err(|source| DataplaneError::ReadDir {
        path: path.into(),
        source,
    })?;
    Ok(text.lines().skip(1).find_map(|line| {
        let mut f = line.split_whitespace();
        let (iface, dest, mask) = (f.next()?, f.next()?, f.nth(5)?);
        (dest == "00000000" && mask == "00000000").then(|| iface.to_owned())
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_is_listed() {
        let all = super::list().unwrap();
        assert!(all.iter().any(|i| i.name == "lo"), "{all:?}");
    }

    #[test]
    fn loopback_address_is_listed() {
        let all = super::ipv4_addresses().unwrap();
        let lo = std::net::Ipv4Addr::LOCALHOST;
        assert!(all.iter().any(|(n, a)| n == "lo" && *a == lo), "{all:?}");
        super::default_route_iface().unwrap();
    }
}
