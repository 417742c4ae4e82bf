//! `net.*` sysctls of the calling thread's network namespace.
//!
//! `/proc/sys/net` answers for the netns of the thread that opens it, so a
//! write from a thread that entered a pod's netns changes that pod's value.

use std::path::PathBuf;

use super::SandboxError;

/// The `/proc/sys` path of a dotted key (`net.ipv4.conf.eth0.proxy_arp`).
/// Interface names may not contain `/`; dots in them are not supported.
pub fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

/// Writes `value` to `key` in the calling thread's netns.
pub fn write(key: &str, value: &str) -> Result<(), SandboxError> {
    let path = path(key);
    std::fs::write(&path, value).map_err(|e| SandboxError::io("writing sysctl", path, e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn dotted_keys_become_paths() {
        assert_eq!(
            super::path("net.ipv4.conf.lxc1.proxy_arp"),
            std::path::Path::new("/proc/sys/net/ipv4/conf/lxc1/proxy_arp")
        );
    }
}
