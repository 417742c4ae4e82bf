//! The per-container shim: forked from the agent (never exec'd), it lives
//! outside the container, in its own session, so containers survive agent
//! restarts. It unshares a pid namespace for its child, forks the container
//! process (pid 1 there, see [`super::child`]), pumps that process's
//! stdout/stderr into the log file, reaps it and records its exit status in
//! `exit.json` — which is how an agent that re-adopted the container (and so
//! cannot waitpid it) learns how it ended.
//!
//! Signals and zombies: the container's main process is pid 1 of its pid
//! namespace, as in Kubernetes. The kernel delivers a signal sent from the
//! host to it only if it installed a handler (SIGKILL always), so SIGTERM
//! reaches a process that handles it and the caller follows up with
//! SIGKILL after the grace period, as the kubelet does. Orphans inside are
//! re-parented to that pid 1; when it exits the kernel kills everything left
//! in the namespace and the shim reaps pid 1 itself.

use std::os::fd::RawFd;
use std::path::PathBuf;

use super::child::{self, Plan};
use super::logs::{LogWriter, Stream};
use super::sys;

/// The descriptors and paths the shim works with, made before fork.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ShimArgs {
    /// shim → agent: the container process's host pid (4 bytes LE).
    pub ready_w: RawFd,
    /// agent → container process: one byte once it is in its cgroup.
    pub go_r: RawFd,
    /// container process → agent: setup error text; EOF on exec.
    pub err_w: RawFd,
    pub netns: Option<RawFd>,
    pub log_path: PathBuf,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// `<state>/<id>/exit.json` and its temporary name.
    pub exit_path: PathBuf,
    pub exit_tmp: PathBuf,
}

/// The shim's body; never returns.
pub fn run(plan: &Plan, a: &ShimArgs) -> ! {
    // SAFETY: single-threaded forked child; plain syscalls.
    unsafe {
        libc::setsid();
        libc::unshare(libc::CLONE_NEWPID);
    }
    // Only our own pipes and the pod's netns: not the agent's sockets, nor the pipes
    // of containers other threads are starting right now (see `close_fds_except`).
    sys::close_fds_except([a.ready_w, a.go_r, a.err_w, a.netns.unwrap_or(-1)]);
    let mut log = LogWriter::open(&a.log_path, a.log_max_bytes, a.log_max_files).ok();
    let (Ok((out_r, out_w)), Ok((err_r, err_w))) = (sys::pipe(), sys::pipe()) else {
        exit(127)
    };
    // SAFETY: fork in the single-threaded shim.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // The container process.
        for fd in [out_r, err_r, a.ready_w] {
            sys::close(fd);
        }
        // SAFETY: duplicating descriptors we own onto stdio.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            libc::dup2(null, 0);
            libc::dup2(out_w, 1);
            libc::dup2(err_w, 2);
        }
        let message = child::run(plan, a.go_r, a.netns);
        let _ = sys::write_all(a.err_w, message.as_bytes());
        exit(127);
    }
    for fd in [out_w, err_w, a.go_r, a.err_w] {
        sys::close(fd);
    }
    if let Some(fd) = a.netns {
        sys::close(fd);
    }
    if pid < 0 {
        exit(127);
    }
    let _ = sys::write_all(a.ready_w, &(pid as u32).to_le_bytes());
    sys::close(a.ready_w);
    pump(&mut log, out_r, err_r);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    let json = if libc::WIFSIGNALED(status) {
        format!("{{\"signal\":{}}}", libc::WTERMSIG(status))
    } else {
        format!("{{\"code\":{}}}", libc::WEXITSTATUS(status))
    };
    if std::fs::write(&a.exit_tmp, json).is_ok() {
        let _ = std::fs::rename(&a.exit_tmp, &a.exit_path);
    }
    exit(0)
}

/// Copies both pipes into the log until both reach EOF (every process of
/// the container has exited or closed them).
fn pump(log: &mut Option<LogWriter>, out_r: RawFd, err_r: RawFd) {
    let mut fds = [
        libc::pollfd {
            fd: out_r,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: err_r,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let mut buf = vec![0u8; 32 * 1024];
    while fds.iter().any(|p| p.fd >= 0) {
        // SAFETY: two valid pollfds (negative fds are ignored by poll).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        for (i, p) in fds.iter_mut().enumerate() {
            if p.fd < 0 || p.revents == 0 {
                continue;
            }
            match sys::read(p.fd, &mut buf) {
                Ok(0) | Err(_) => {
                    sys::close(p.fd);
                    p.fd = -1;
                }
                Ok(k) => {
                    let stream = if i == 0 {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    };
                    if let Some(l) = log.as_mut() {
                        let _ = l.write_chunk(stream, &buf[..k], sys::now());
                    }
                }
            }
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and stdio flushing that belong to
    // the parent process.
    unsafe { libc::_exit(code) }
}
