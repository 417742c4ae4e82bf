//! Socket-level load balancing for the node's own sockets (host processes,
//! hostNetwork pods): the cgroup hooks of `ebpf/programs/src/sock.rs`,
//! attached to the cgroup v2 root. They act only on sockets of the network
//! namespace whose cookie the loader wrote into `SKIFF_HOST_NETNS` (this
//! agent's), so several agents on one machine (a lab) each serve their own
//! node. The links are pinned (`<node pin dir>/sock-<hook>`), as the TC and
//! XDP ones are, so the hooks outlive an agent restart: a restarted agent
//! attaches its new links first and only then replaces the pins, so for a
//! moment both run, which is harmless (the second sees a backend address, not
//! a frontend, and finds nothing to report back). Teardown removes the pins,
//! and with them the hooks; so does `--no-socket-lb` ([`detach`]).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use aya::programs::links::FdLink;
use aya::programs::{CgroupAttachMode, CgroupSockAddr};

use super::attach::remove_file;
use super::{DataplaneError, Loaded, PinDirs};
use crate::runtime::cgroups;

/// The hooks, in the order they are attached: the reverse ones first, so
/// that a failed attach never leaves sockets translated without them.
pub const SOCK_PROGRAMS: [&str; 4] = [
    "skiff_sock_recvmsg4",
    "skiff_sock_getpeername4",
    "skiff_sock_connect4",
    "skiff_sock_sendmsg4",
];

/// The cookie of the calling thread's network namespace.
pub fn netns_cookie() -> io::Result<u64> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
    let mut cookie = 0u64;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: a valid socket; `cookie` and `len` describe a u64 buffer.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cookie)
}

/// Where the link of hook `program` is pinned.
fn pin_path(dirs: &PinDirs, program: &str) -> PathBuf {
    let hook = program.strip_prefix("skiff_sock_").unwrap_or(program);
    dirs.node.join(format!("sock-{hook}"))
}

/// Loads the hooks, attaches them to the cgroup v2 root (shared with any
/// other program there) and pins their links in place of those a previous
/// agent left. Returns the root. On any error every hook's pin is removed,
/// so no mix of old and new hooks (or a previous agent's) stays behind.
pub fn attach(loaded: &mut Loaded, dirs: &PinDirs) -> Result<PathBuf, DataplaneError> {
    let res = attach_all(loaded, dirs);
    if res.is_err() {
        if let Err(e) = detach(dirs) {
            log::warn!("socket-level load balancing: removing pinned hooks: {e}");
        }
    }
    res
}

fn attach_all(loaded: &mut Loaded, dirs: &PinDirs) -> Result<PathBuf, DataplaneError> {
    let root = cgroups::v2_root().ok_or(DataplaneError::NoCgroup2)?;
    let dir = File::open(&root).map_err(|source| DataplaneError::ReadDir {
        path: root.clone(),
        source,
    })?;
    let iface = root.display().to_string();
    for name in SOCK_PROGRAMS {
        let prog: &mut CgroupSockAddr = loaded
            .ebpf
            .program_mut(name)
            .ok_or(DataplaneError::ProgramMissing { name })?
            .try_into()
            .map_err(|source| DataplaneError::Program { name, source })?;
        prog.load()
            .map_err(|source| DataplaneError::Program { name, source })?;
        // A cgroup bpf_link is always one of many (the kernel refuses
        // attach flags on it): `Single` only means "no flags" here.
        let id = prog
            .attach(&dir, CgroupAttachMode::Single)
            .map_err(|source| DataplaneError::Program { name, source })?;
        let link = prog
            .take_link(id)
            .map_err(|source| DataplaneError::Program { name, source })?;
        let fd = FdLink::try_from(link).map_err(|source| DataplaneError::Link {
            iface: iface.clone(),
            source,
        })?;
        // The old link (if any) goes with its pin, once the new one runs.
        let pin = pin_path(dirs, name);
        remove_file(&pin)?;
        fd.pin(&pin).map_err(|source| DataplaneError::PinLink {
            iface: iface.clone(),
            path: pin,
            source,
        })?;
    }
    Ok(root)
}

/// Removes the hooks' pins (and so the hooks, once no agent holds them).
/// Returns how many there were.
pub fn detach(dirs: &PinDirs) -> Result<usize, DataplaneError> {
    let mut removed = 0;
    for name in SOCK_PROGRAMS {
        let pin = pin_path(dirs, name);
        if pin.exists() {
            remove_file(&pin)?;
            removed += 1;
        }
    }
    Ok(removed)
}
