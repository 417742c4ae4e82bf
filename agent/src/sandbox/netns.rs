//! Pod network namespaces, bind-mounted at `<dir>/<pod-uid>` so they outlive
//! the agent, and a way to run code inside one.
//!
//! A namespace is created by a short-lived thread that `unshare`s its network
//! namespace and bind-mounts `/proc/thread-self/ns/net` onto the file; code
//! that must run inside a pod's netns runs on a fresh thread that `setns`es
//! into it. The agent's own threads never change namespace. As iproute2 does
//! for `/run/netns`, the directory is made a shared mount so mount namespaces
//! created later (containers) see an unmount and do not pin a dead pod's netns.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::SandboxError;

/// Where the agent keeps its pods' network namespaces.
pub const DEFAULT_NETNS_DIR: &str = "/run/skiff/netns";

/// `f_type` of nsfs, what a bound netns file reports in `statfs`.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// A pod network namespace bound at a path.
#[derive(Debug)]
pub struct PodNetns {
    path: PathBuf,
    file: File,
}

impl PodNetns {
    /// Creates the directory (a shared mount point) if needed.
    pub fn prepare_dir(dir: &Path) -> Result<(), SandboxError> {
        std::fs::create_dir_all(dir).map_err(|e| SandboxError::io("creating", dir, e))?;
        let shared = || mount(None, dir, libc::MS_SHARED | libc::MS_REC);
        match shared() {
            Ok(()) => Ok(()),
            // Not a mount point yet: bind it onto itself, then share it.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                mount(Some(dir), dir, libc::MS_BIND | libc::MS_REC)
                    .and_then(|()| shared())
                    .map_err(|e| SandboxError::io("making a shared mount of", dir, e))
            }
            Err(e) => Err(SandboxError::io("making a shared mount of", dir, e)),
        }
    }

    /// Creates a new network namespace bound at `path` (whose parent must
    /// exist), or opens the one already bound there.
    pub fn create(path: &Path) -> Result<Self, SandboxError> {
        if let Some(ns) = Self::open(path)? {
            return Ok(ns);
        }
        // An empty file left by an interrupted create is reused.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| SandboxError::io("creating netns file", path, e))?;
        let bound = std::thread::scope(|s| {
            s.spawn(|| -> io::Result<()> {
                // SAFETY: only this thread's netns changes; it ends right after.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                mount(
                    Some(Path::new("/proc/thread-self/ns/net")),
                    path,
                    libc::MS_BIND,
                )
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("netns creating thread panicked")))
        });
        if let Err(source) = bound {
            let _ = std::fs::remove_file(path);
            return Err(SandboxError::Netns {
                what: "unshare and bind-mount",
                path: path.to_owned(),
                source,
            });
        }
        Self::open(path)?.ok_or_else(|| SandboxError::Netns {
            what: "bound file is not a netns",
            path: path.to_owned(),
            source: io::Error::from(io::ErrorKind::NotFound),
        })
    }

    /// The namespace bound at `path`, `None` if nothing is bound there.
    pub fn open(path: &Path) -> Result<Option<Self>, SandboxError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SandboxError::io("opening netns", path, e)),
        };
        // SAFETY: statfs on a valid fd into a zeroed struct.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
            let e = io::Error::last_os_error();
            return Err(SandboxError::io("statfs of netns", path, e));
        }
        #[allow(clippy::unnecessary_cast, reason = "f_type's width varies by arch")]
        if st.f_type as i64 != NSFS_MAGIC {
            return Ok(None);
        }
        Ok(Some(Self {
            path: path.to_owned(),
            file,
        }))
    }

    /// Unmounts and removes the file at `path`; fine if already gone.
    pub fn remove(path: &Path) -> Result<(), SandboxError> {
        let c = cstr(path).map_err(|e| SandboxError::io("unmounting netns", path, e))?;
        // SAFETY: plain syscall on a NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            let e = io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) {
                return Err(SandboxError::io("unmounting netns", path, e));
            }
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(SandboxError::io("removing netns file", path, e))
            }
            _ => Ok(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A descriptor of the namespace (e.g. for `IFLA_NET_NS_FD`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Runs `f` on a fresh thread inside this namespace and returns its
    /// result; the caller's thread stays where it is. A panic in `f` is
    /// propagated.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, SandboxError> {
        let fd = self.file.as_raw_fd();
        std::thread::scope(|s| {
            let handle = s.spawn(move || {
                // SAFETY: plain syscall on a valid fd; only this thread moves.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(f())
            });
            match handle.join() {
                Ok(r) => r.map_err(|source| SandboxError::Netns {
                    what: "setns",
                    path: self.path.clone(),
                    source,
                }),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)
}

/// `mount(2)` without a filesystem type or data (binds, propagation).
fn mount(src: Option<&Path>, target: &Path, flags: libc::c_ulong) -> io::Result<()> {
    let src = src.map(cstr).transpose()?;
    let target = cstr(target)?;
    let none = c"none";
    // SAFETY: every pointer is a NUL-terminated string or null.
    let rc = unsafe {
        libc::mount(
            src.as_ref().map_or(none.as_ptr(), |s| s.as_ptr()),
            target.as_ptr(),
            none.as_ptr(),
            flags,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
