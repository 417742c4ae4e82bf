//! A container's console: what its stdin is, and how `kubectl attach` reaches it.
//!
//! A container whose spec asks for `stdin` gets a pipe as its stdin; one asking for `tty`
//! gets a terminal (a pty: its controlling tty, stdout and stderr too). The shim holds
//! our end and serves it on a Unix socket in the container's state directory,
//! `attach.sock` ([`serve`]), so the console outlives agent restarts like the container
//! does. An attach connects there ([`connect`]) and sends [`frame::Frame`]s: stdin bytes,
//! the end of its input, terminal resizes. Output never flows back on the socket: it
//! reaches attaches through the container's log, which the shim writes.
//!
//! `stdinOnce`: the container's stdin closes when the first attach session ends (or ends
//! its input), as in Kubernetes; otherwise it stays open for the next attach.

pub mod frame;
pub(super) mod serve;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The pod spec's `stdin`, `stdinOnce` and `tty` of a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stdio {
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
}

impl Stdio {
    /// Whether the container has a console to attach to.
    pub fn attachable(&self) -> bool {
        self.stdin || self.tty
    }
}

const SOCKET: &str = "attach.sock";

/// A path to `name` in `dir` short enough for a Unix socket address (108 bytes) however
/// deep `dir` is: through `/proc/self/fd` of an `O_PATH` descriptor, returned with it
/// (keep it open while the path is used).
pub(super) fn short_path(dir: &Path, name: &str) -> io::Result<(OwnedFd, PathBuf)> {
    let c = super::sys::cstr(dir);
    // SAFETY: a valid path; the descriptor is owned from here on.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    super::sys::check(fd)?;
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let path = PathBuf::from(format!("/proc/self/fd/{}/{name}", fd.as_raw_fd()));
    Ok((fd, path))
}

/// Connects to the console of the container whose state directory is `dir`.
pub async fn connect(dir: &Path) -> io::Result<tokio::net::UnixStream> {
    let (_dir_fd, path) = short_path(dir, SOCKET)?;
    tokio::net::UnixStream::connect(path).await
}
