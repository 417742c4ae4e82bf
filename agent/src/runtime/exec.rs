//! Running a command inside a running container (exec probes, preStop
//! hooks, later `kubectl exec`).
//!
//! Sequence, nsenter's: the agent opens the target's namespace files,
//! `/proc/<pid>/root` and `/proc/<pid>/cwd` (re-checking the pid's start
//! time so a reused pid is never entered), then forks a helper. The agent
//! moves the helper into the container's cgroup and releases it; the helper
//! joins ipc, uts, net, pid and mount namespaces (in that order; a pid
//! namespace applies to children only), `fchdir(root); chroot(".")`,
//! `fchdir(cwd)`, and forks the command, which takes the container main
//! process's env, uid, gid and groups, and execs. The helper reports the
//! command's host pid and its exit status on a pipe. The agent captures
//! stdout/stderr (bounded), and on timeout SIGKILLs the command
//! (the helper reaps it and exits).
//!
//! [`exec_streaming`] (`kubectl exec`) gives the command a pipe as stdin and
//! sends its output as it comes instead of keeping it.

mod child;
mod prepare;

use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::Sender;

use super::cgroups::{CgroupError, CgroupManager};
use super::state::{ContainerState, ExitStatus};
use super::sys;
use child::helper_main;
use prepare::prepare;

/// How long output is still read after the command exited (a process it
/// left behind may hold stdout open).
const DRAIN: Duration = Duration::from_millis(200);

/// The container to run in.
#[derive(Debug, Clone)]
pub struct ExecTarget {
    pub id: String,
    /// Host pid of the container's main process and its start time.
    pub pid: u32,
    pub pid_start: u64,
    /// The container's cgroup (joined when both it and `cgroups` are set).
    pub cgroup: Option<String>,
    pub cgroups: Option<&'static dyn CgroupManager>,
}

impl ExecTarget {
    /// The target for a started container (`Container::state`).
    pub fn of(state: &ContainerState, cgroups: Option<&'static dyn CgroupManager>) -> Self {
        Self {
            id: state.id.clone(),
            pid: state.pid,
            pid_start: state.pid_start,
            cgroup: state.cgroup.clone(),
            cgroups,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// argv; `argv[0]` without `/` is looked up in the container's PATH.
    pub argv: Vec<String>,
    pub timeout: Duration,
    /// Bytes kept per stream; the rest is read and dropped.
    pub max_output: usize,
}

/// How the command ended, with what it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Some output was dropped (over `max_output`).
    pub truncated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("exec in container {id}: the container is not running")]
    NotRunning { id: String },
    #[error("exec in container {id}: {op}: {source}")]
    Sys {
        id: String,
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("exec in container {id}: {source}")]
    Cgroup {
        id: String,
        #[source]
        source: CgroupError,
    },
    #[error("exec in container {id}: {message}")]
    Setup { id: String, message: String },
    #[error("exec in container {id}: command timed out after {timeout:?}")]
    Timeout { id: String, timeout: Duration },
    #[error("exec in container {id}: the exec task failed: {message}")]
    Task { id: String, message: String },
}

/// The streams of an interactive exec.
#[derive(Debug)]
pub struct ExecIo {
    /// Read end of a pipe that becomes the command's stdin (`None`:
    /// `/dev/null`).
    pub stdin: Option<OwnedFd>,
    /// Output chunks as they are read: (1 stdout or 2 stderr, bytes). A full
    /// queue makes the command wait; when the receiver is gone (the client
    /// left) the command is killed.
    pub output: Sender<(u8, Vec<u8>)>,
    /// A terminal's master side: `stdin` is then its slave, which the command gets as
    /// stdin, stdout and stderr (its controlling terminal); output is read from here
    /// and sent as stdout.
    pub terminal: Option<OwnedFd>,
}

/// How often a streaming exec checks that its client is still there.
const CLIENT_CHECK: Duration = Duration::from_millis(500);

/// Runs `req` in `target` with `io`, blocking the calling thread until the
/// command exits (or `req.timeout`, or the client leaves); the output went
/// to `io.output`, so the result's buffers are empty.
pub fn exec_streaming(
    t: &ExecTarget,
    req: &ExecRequest,
    io: ExecIo,
) -> Result<ExecOutput, ExecError> {
    run(t, req, Some(io))
}

/// Runs `req` in `target` on a blocking thread.
pub async fn exec(target: ExecTarget, req: ExecRequest) -> Result<ExecOutput, ExecError> {
    let id = target.id.clone();
    tokio::task::spawn_blocking(move || exec_blocking(&target, &req))
        .await
        .map_err(|e| ExecError::Task {
            id,
            message: e.to_string(),
        })?
}

/// Runs `req` in `target`, blocking the calling thread.
pub fn exec_blocking(t: &ExecTarget, req: &ExecRequest) -> Result<ExecOutput, ExecError> {
    run(t, req, None)
}

fn run(t: &ExecTarget, req: &ExecRequest, io: Option<ExecIo>) -> Result<ExecOutput, ExecError> {
    let mut prepared = prepare(t, req)?;
    let (stdin, output, terminal) = match io {
        Some(io) => (io.stdin, Some(io.output), io.terminal),
        None => (None, None, None),
    };
    if let Some(fd) = stdin {
        // The command's fd 0; closed on our side with the rest of `prepared`.
        sys::close(prepared.null);
        prepared.null = fd.into_raw_fd();
        prepared.terminal = terminal.is_some();
    }
    let id = &t.id;
    let sys_err = |op: &str| {
        let (id, op) = (id.clone(), op.to_owned());
        move |source| ExecError::Sys { id, op, source }
    };
    let pipes = (|| {
        Ok::<_, std::io::Error>([
            sys::pipe()?,
            sys::pipe()?,
            sys::pipe()?,
            sys::pipe()?,
            sys::pipe()?,
        ])
    })()
    .map_err(sys_err("pipe"))?;
    let [(go_r, go_w), (out_r, out_w), (err_r, err_w), (msg_r, msg_w), (info_r, info_w)] = pipes;
    // SAFETY: the child only makes syscalls on descriptors and strings
    // prepared above, and never returns.
    let helper = unsafe { libc::fork() };
    if helper == 0 {
        for fd in [go_w, out_r, err_r, msg_r, info_r] {
            sys::close(fd);
        }
        // Nothing of the agent's or of concurrent container starts (see
        // `sys::close_fds_except`); at most 5 namespaces.
        let mut keep = [-1; 13];
        for (k, (fd, _)) in keep.iter_mut().zip(&prepared.ns) {
            *k = *fd;
        }
        keep[5..].copy_from_slice(&[
            prepared.root,
            prepared.cwd,
            prepared.null,
            go_r,
            out_w,
            err_w,
            msg_w,
            info_w,
        ]);
        sys::close_fds_except(keep);
        let message = helper_main(&prepared, go_r, out_w, err_w, msg_w, info_w);
        let _ = sys::write_all(msg_w, message.as_bytes());
        // SAFETY: leave the forked child without running the parent's
        // atexit handlers.
        unsafe { libc::_exit(127) };
    }
    for fd in [go_r, out_w, err_w, msg_w, info_w] {
        sys::close(fd);
    }
    drop(prepared);
    let ours = [go_w, out_r, err_r, msg_r, info_r];
    let close_ours = || ours.into_iter().for_each(sys::close);
    if helper < 0 {
        close_ours();
        return Err(sys_err("fork")(std::io::Error::last_os_error()));
    }
    // With a terminal, output comes from its master side (the stdout pipe's write end
    // was closed in the helper, so that pipe just ends).
    let out = terminal
        .as_ref()
        .map_or(out_r, std::os::fd::AsRawFd::as_raw_fd);
    let result = supervise(
        t,
        req,
        helper,
        go_w,
        [out, err_r, msg_r, info_r],
        output.as_ref(),
    );
    drop(terminal);
    close_ours();
    let mut status = 0;
    // SAFETY: reaping our own child (killed on every error path).
    unsafe { libc::waitpid(helper, &mut status, 0) };
    result
}

/// The agent's side: cgroup, release, collect output and status.
fn supervise(
    t: &ExecTarget,
    req: &ExecRequest,
    helper: libc::pid_t,
    go_w: RawFd,
    [out_r, err_r, msg_r, info_r]: [RawFd; 4],
    output: Option<&Sender<(u8, Vec<u8>)>>,
) -> Result<ExecOutput, ExecError> {
    let id = &t.id;
    let kill = |pid: libc::pid_t| {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    };
    if let (Some(path), Some(m)) = (&t.cgroup, t.cgroups) {
        if let Err(source) = m.add_process(path, helper as u32) {
            kill(helper);
            return Err(ExecError::Cgroup {
                id: id.clone(),
                source,
            });
        }
    }
    if let Err(source) = sys::write_all(go_w, b"g") {
        kill(helper);
        return Err(ExecError::Sys {
            id: id.clone(),
            op: "release the exec helper".into(),
            source,
        });
    }
    let mut deadline = Instant::now() + req.timeout;
    let mut finished = false;
    let mut bufs: [Vec<u8>; 4] = Default::default();
    let mut truncated = false;
    let mut fds = [out_r, err_r, msg_r, info_r].map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    let mut chunk = vec![0u8; 16 * 1024];
    while fds.iter().any(|p| p.fd >= 0) {
        if output.is_some_and(|tx| tx.is_closed()) {
            // The client left: stop the command as a timeout would.
            deadline = Instant::now();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() && finished {
            // The command exited but something it started still holds
            // stdout/stderr open: stop reading.
            break;
        }
        if left.is_zero() {
            // Kill the command and let the helper reap it (killing the
            // helper too would leave a zombie for the container's pid 1);
            // without a command yet, kill the helper.
            if bufs[3].len() < 4
                && fds[3].fd >= 0
                && sys::poll_readable(fds[3].fd, 0).unwrap_or(false)
            {
                if let Ok(k) = sys::read(fds[3].fd, &mut chunk) {
                    bufs[3].extend_from_slice(&chunk[..k.min(12)]);
                }
            }
            match bufs[3].get(..4) {
                Some(b) => {
                    // The command's process group (it leads one), else itself.
                    let pid = u32::from_le_bytes(b.try_into().unwrap_or_default()) as libc::pid_t;
                    // SAFETY: kill has no memory preconditions.
                    if pid <= 0 || unsafe { libc::kill(-pid, libc::SIGKILL) } != 0 {
                        kill(pid)
                    }
                }
                None => kill(helper),
            }
            return Err(ExecError::Timeout {
                id: id.clone(),
                timeout: req.timeout,
            });
        }
        let wait = match output {
            Some(_) => left.min(CLIENT_CHECK),
            None => left,
        };
        let ms = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: four valid pollfds (negative fds are ignored).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 4, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            kill(helper);
            return Err(ExecError::Sys {
                id: id.clone(),
                op: "poll".into(),
                source: e,
            });
        }
        for (i, p) in fds.iter_mut().enumerate() {
            if p.fd < 0 || p.revents == 0 {
                continue;
            }
            match sys::read(p.fd, &mut chunk) {
                Ok(0) | Err(_) => {
                    p.fd = -1;
                    if i == 3 && !finished {
                        finished = true;
                        deadline = deadline.min(Instant::now() + DRAIN);
                    }
                }
                Ok(k) if i < 2 && output.is_some() => {
                    // Waits while the client is behind (this is a blocking thread).
                    if output.is_some_and(|tx| {
                        tx.blocking_send((i as u8 + 1, chunk[..k].to_vec()))
                            .is_err()
                    }) {
                        deadline = Instant::now();
                    }
                }
                Ok(k) => {
                    let room = if i < 2 { req.max_output } else { 4096 };
                    let keep = k.min(room.saturating_sub(bufs[i].len()));
                    truncated |= i < 2 && keep < k;
                    bufs[i].extend_from_slice(&chunk[..keep]);
                }
            }
        }
    }
    let [stdout, stderr, msg, info] = bufs;
    if !msg.is_empty() {
        return Err(ExecError::Setup {
            id: id.clone(),
            message: String::from_utf8_lossy(&msg).into_owned(),
        });
    }
    let status = match info.get(4..12) {
        Some(s) => {
            let kind = u32::from_le_bytes(s[..4].try_into().unwrap_or_default());
            let v = i32::from_le_bytes(s[4..].try_into().unwrap_or_default());
            if kind == 1 {
                ExitStatus::Signal(v)
            } else {
                ExitStatus::Code(v)
            }
        }
        None => {
            return Err(ExecError::Setup {
                id: id.clone(),
                message: "the exec helper exited without reporting a status".into(),
            })
        }
    };
    Ok(ExecOutput {
        status,
        stdout,
        stderr,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_pid_is_not_entered() {
        let t = ExecTarget {
            id: "c".into(),
            pid: std::process::id(),
            pid_start: sys::proc_start_time(std::process::id()).unwrap() + 1,
            cgroup: None,
            cgroups: None,
        };
        let req = ExecRequest {
            argv: vec!["true".into()],
            timeout: Duration::from_secs(1),
            max_output: 10,
        };
        assert!(matches!(
            exec_blocking(&t, &req),
            Err(ExecError::NotRunning { .. })
        ));
    }
}
