//! The per-container shim: forked from the agent (never exec'd), it lives
//! outside the container, in its own session, so containers survive agent
//! restarts. It unshares a pid namespace for its child, forks the container
//! process (pid 1 there, see [`super::child`]), pumps that process's
//! stdout/stderr (or terminal) into the log file, serves its console to attaches
//! ([`super::console`]), reaps it and records its exit status in
//! `exit.json` — which is how an agent that re-adopted the container (and so
//! cannot waitpid it) learns how it ended.
//!
//! Signals and zombies: the container's main process is pid 1 of its pid
//! namespace, as in Kubernetes. The kernel delivers a signal sent from the
//! host to it only if it installed a handler (SIGKILL always), so SIGTERM
//! reaches a process that handles it and the caller follows up with
//! SIGKILL after the grace period, as the kubelet does. Orphans inside are
//! re-parented to that pid 1; when it exits the kernel kills everything left
//! in the namespace and the shim reaps pid 1 itself. With the pod's `hostPID`
//! there is no new pid namespace: the container shares the node's, is not pid
//! 1, and the kernel does not kill what it leaves behind when it exits.

use std::os::fd::RawFd;
use std::path::PathBuf;

use super::child::{self, Plan};
use super::console::serve::Console;
use super::console::Stdio;
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
    /// What the container's stdin is; with one, its console is served in `dir`.
    pub stdio: Stdio,
    /// The container's state directory.
    pub dir: PathBuf,
}

/// The container's stdio, made before the fork: what the container gets as 0, 1 and 2
/// (`child` side) and what the shim keeps (`ours`: output to pump, stdin to feed).
struct Streams {
    child: [RawFd; 3],
    out: RawFd,
    err: RawFd,
    input: RawFd,
    master: RawFd,
}

impl Streams {
    fn open(stdio: Stdio) -> std::io::Result<Self> {
        if stdio.tty {
            let (master, slave) = sys::openpty()?;
            let input = if stdio.stdin { dup(master)? } else { -1 };
            return Ok(Self {
                child: [slave; 3],
                out: master,
                err: -1,
                input,
                master: dup(master)?,
            });
        }
        let (out_r, out_w) = sys::pipe()?;
        let (err_r, err_w) = sys::pipe()?;
        let (stdin_r, input) = if stdio.stdin {
            sys::pipe()?
        } else {
            // SAFETY: opening /dev/null.
            let null =
                unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            (sys::check(null)?, -1)
        };
        Ok(Self {
            child: [stdin_r, out_w, err_w],
            out: out_r,
            err: err_r,
            input,
            master: -1,
        })
    }

    /// In the container process: its ends onto 0, 1, 2 (a terminal also becomes its
    /// controlling tty, in a session of its own); ours closed.
    fn install_in_child(&self, tty: bool) {
        for fd in [self.out, self.err, self.input, self.master] {
            if fd >= 0 {
                sys::close(fd);
            }
        }
        // SAFETY: duplicating descriptors we own onto stdio; setsid and TIOCSCTTY in
        // the forked child, which is no process group leader.
        unsafe {
            if tty {
                libc::setsid();
            }
            for (target, fd) in self.child.iter().enumerate() {
                libc::dup2(*fd, target as RawFd);
            }
            if tty {
                libc::ioctl(0, libc::TIOCSCTTY, 0);
            }
        }
        let mut fds = self.child;
        fds.sort_unstable();
        for (i, fd) in fds.iter().enumerate() {
            if *fd > 2 && (i == 0 || fds[i - 1] != *fd) {
                sys::close(*fd);
            }
        }
    }
}

/// A close-on-exec duplicate of `fd`.
fn dup(fd: RawFd) -> std::io::Result<RawFd> {
    // SAFETY: fcntl on a descriptor we own.
    sys::check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })
}

/// The shim's body; never returns.
pub fn run(plan: &Plan, a: &ShimArgs) -> ! {
    // SAFETY: single-threaded forked child; plain syscalls.
    unsafe {
        libc::setsid();
        if !plan.host.pid {
            libc::unshare(libc::CLONE_NEWPID);
        }
    }
    // Only our own pipes and the pod's netns: not the agent's sockets, nor the pipes
    // of containers other threads are starting right now (see `close_fds_except`).
    sys::close_fds_except([a.ready_w, a.go_r, a.err_w, a.netns.unwrap_or(-1)]);
    let mut log = LogWriter::open(&a.log_path, a.log_max_bytes, a.log_max_files).ok();
    let Ok(streams) = Streams::open(a.stdio) else {
        exit(127)
    };
    // SAFETY: fork in the single-threaded shim.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // The container process.
        sys::close(a.ready_w);
        streams.install_in_child(a.stdio.tty);
        let message = child::run(plan, a.go_r, a.netns);
        let _ = sys::write_all(a.err_w, message.as_bytes());
        exit(127);
    }
    let mut closing = vec![a.go_r, a.err_w];
    closing.extend(streams.child);
    closing.sort_unstable();
    closing.dedup();
    for fd in closing {
        sys::close(fd);
    }
    if let Some(fd) = a.netns {
        sys::close(fd);
    }
    if pid < 0 {
        exit(127);
    }
    // Listening before the agent hears of the container: an attach right after its
    // start finds the socket. Without one the container still runs; attaches fail.
    let console = if a.stdio.attachable() {
        Console::listen(&a.dir, a.stdio, streams.input, streams.master).ok()
    } else {
        None
    };
    let _ = sys::write_all(a.ready_w, &(pid as u32).to_le_bytes());
    sys::close(a.ready_w);
    pump(&mut log, streams.out, streams.err, console);
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

/// Copies the output (both pipes, or the terminal) into the log until it reaches EOF
/// (every process of the container has exited or closed it), serving the console
/// meanwhile.
fn pump(log: &mut Option<LogWriter>, out_r: RawFd, err_r: RawFd, mut console: Option<Console>) {
    let mut outs = [out_r, err_r];
    let mut buf = vec![0u8; 32 * 1024];
    let mut fds = Vec::with_capacity(16);
    while outs.iter().any(|fd| *fd >= 0) {
        fds.clear();
        fds.extend(outs.iter().map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }));
        if let Some(c) = console.as_mut() {
            c.register(&mut fds);
        }
        // SAFETY: valid pollfds (negative fds are ignored by poll).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        for (i, fd) in outs.iter_mut().enumerate() {
            if *fd < 0 || fds[i].revents == 0 {
                continue;
            }
            match sys::read(*fd, &mut buf) {
                // A terminal's master shares the console's non-blocking input.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // EOF; a terminal reports EIO once no process holds its slave side.
                Ok(0) | Err(_) => {
                    sys::close(*fd);
                    *fd = -1;
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
        if let Some(c) = console.as_mut() {
            c.handle(&fds[2..]);
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and stdio flushing that belong to
    // the parent process.
    unsafe { libc::_exit(code) }
}
