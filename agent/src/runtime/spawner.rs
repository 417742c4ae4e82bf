//! The spawner: a small single-threaded process the agent forks at start,
//! before it has any other thread, and that forks the container shims.
//!
//! Forking the agent itself once per container cost what the agent had
//! grown to by then: fork copies the page tables of every thread stack and
//! heap arena, holds the agent's `mmap_lock` for writing meanwhile (its
//! other threads stall on their next page fault), write-protects every
//! private page, which on a threaded process means a TLB-shootdown IPI to
//! each CPU running one of them (a VM exit each in a guest), and leaves each
//! shim holding a copy-on-write image of the agent that every later write by
//! the agent has to copy. In a burst of 100 pod starts that was a fifth of
//! the node's CPU. The spawner is forked while the agent is small and
//! single-threaded, and stays so: a shim forked from it costs little, and so
//! does the shim's own fork of the container process.
//!
//! Protocol, over a `SOCK_SEQPACKET` socket pair: the agent sends the shim's
//! [`Plan`] and [`ShimArgs`] as JSON with the shim's descriptors attached
//! (`SCM_RIGHTS`: the three pipe ends, then the pod's netns if any); the
//! spawner forks the shim and answers with its pid (or `-errno`). The
//! spawner reaps the shims it forked (the agent sees a shim end through its
//! pid, its start time and `exit.json`, as for containers it re-adopted). It
//! exits when its socket reaches end of file: the agent exited or died (no
//! `PR_SET_PDEATHSIG`, which fires when the forking *thread* ends).
//! Any failure to reach it falls back to forking in the agent.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use super::child::Plan;
use super::shim::{self, ShimArgs};
use super::sys;

/// Descriptors per request: ready_w, go_r, err_w, netns.
const MAX_FDS: usize = 4;
/// Largest request: a container's argv and environment, JSON-encoded.
const MAX_REQUEST: usize = 1 << 20;
/// How long the agent waits for the spawner's answer.
const REPLY_TIMEOUT_MS: i32 = 10_000;
/// How often the idle spawner reaps exited shims.
const REAP_EVERY_MS: i32 = 100;

static SPAWNER: OnceLock<Spawner> = OnceLock::new();

#[derive(Serialize, Deserialize)]
struct Request {
    plan: Plan,
    args: ShimArgs,
}

/// The agent's end of the spawner.
pub struct Spawner {
    pid: u32,
    sock: Mutex<RawFd>,
    broken: AtomicBool,
}

/// Forks the spawner, once per process; containers started later fork
/// their shims there. Best called before the process has a second thread,
/// while its image is small; a threaded caller works too (the child only
/// makes syscalls and allocates, which the allocator keeps usable after
/// fork: jemalloc, like glibc, resets its locks in the child).
pub fn start() -> io::Result<()> {
    static START: Mutex<()> = Mutex::new(());
    let _once = START.lock().unwrap_or_else(|e| e.into_inner());
    if SPAWNER.get().is_some() {
        return Ok(());
    }
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    sys::check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    let [ours, theirs] = fds;
    // Room for a large environment in one message.
    let size: libc::c_int = 2 * MAX_REQUEST as libc::c_int;
    // SAFETY: setsockopt reads one int; failure only leaves the default size.
    unsafe {
        libc::setsockopt(
            ours,
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    // SAFETY: the child runs only `serve`: syscalls and allocation.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = io::Error::last_os_error();
        sys::close(ours);
        sys::close(theirs);
        return Err(e);
    }
    if pid == 0 {
        sys::close(ours);
        serve(theirs);
    }
    sys::close(theirs);
    let spawner = Spawner {
        pid: pid as u32,
        sock: Mutex::new(ours),
        broken: AtomicBool::new(false),
    };
    let _ = SPAWNER.set(spawner);
    Ok(())
}

/// The spawner's pid, if [`start`] ran.
pub fn pid() -> Option<u32> {
    SPAWNER.get().map(|s| s.pid)
}

/// The spawner, if [`start`] ran and it still answers.
pub(super) fn get() -> Option<&'static Spawner> {
    SPAWNER.get().filter(|s| !s.broken.load(Ordering::Relaxed))
}

impl Spawner {
    /// Has the spawner fork a shim for `plan` with `args`' descriptors;
    /// returns the shim's pid. The caller keeps (and closes) its descriptors.
    pub(super) fn spawn(&self, plan: &Plan, args: &ShimArgs) -> io::Result<u32> {
        // InvalidInput: nothing was sent, the caller may fork the shim itself.
        let body = serde_json::to_vec(&RequestRef { plan, args })
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if body.len() > MAX_REQUEST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "request too large for the spawner",
            ));
        }
        let mut fds = vec![args.ready_w, args.go_r, args.err_w];
        fds.extend(args.netns);
        let sock = self.sock.lock().unwrap_or_else(|e| e.into_inner());
        let answer = (|| {
            send_with_fds(*sock, &body, &fds)?;
            if !sys::poll_readable(*sock, REPLY_TIMEOUT_MS)? {
                return Err(io::Error::from(io::ErrorKind::TimedOut));
            }
            let mut reply = [0u8; 4];
            if sys::read(*sock, &mut reply)? != 4 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            Ok(i32::from_le_bytes(reply))
        })();
        match answer {
            Ok(pid) if pid > 0 => Ok(pid as u32),
            Ok(errno) => Err(io::Error::from_raw_os_error(-errno)),
            Err(e) => {
                // Out of step or gone: every later start forks in the agent.
                self.broken.store(true, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

#[derive(Serialize)]
struct RequestRef<'a> {
    plan: &'a Plan,
    args: &'a ShimArgs,
}

/// The spawner's loop; never returns.
fn serve(sock: RawFd) -> ! {
    let mut buf = vec![0u8; MAX_REQUEST + 1];
    loop {
        reap();
        match sys::poll_readable(sock, REAP_EVERY_MS) {
            Ok(false) => continue,
            Ok(true) => {}
            // SAFETY: _exit ends the spawner only.
            Err(_) => unsafe { libc::_exit(1) },
        }
        let (n, fds) = match recv_with_fds(sock, &mut buf) {
            Ok((0, _)) | Err(_) => unsafe { libc::_exit(0) },
            Ok(got) => got,
        };
        let reply = match serde_json::from_slice::<Request>(&buf[..n]) {
            Ok(req) => fork_shim(req, &fds),
            Err(_) => -libc::EINVAL,
        };
        for fd in fds {
            sys::close(fd);
        }
        if sys::write_all(sock, &reply.to_le_bytes()).is_err() {
            // SAFETY: as above.
            unsafe { libc::_exit(0) };
        }
    }
}

/// Forks the shim with the received descriptors in place of the agent's
/// numbers; its pid or `-errno`.
fn fork_shim(req: Request, fds: &[RawFd]) -> i32 {
    let Request { plan, mut args } = req;
    let want = 3 + usize::from(args.netns.is_some());
    if fds.len() != want {
        return -libc::EBADMSG;
    }
    args.ready_w = fds[0];
    args.go_r = fds[1];
    args.err_w = fds[2];
    args.netns = fds.get(3).copied();
    // SAFETY: the spawner is single-threaded.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        shim::run(&plan, &args);
    }
    if pid < 0 {
        -io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        pid
    }
}

/// Reaps every exited shim without blocking.
fn reap() {
    let mut status = 0;
    // SAFETY: waitpid on our own children.
    while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {}
}

const CMSG_SPACE: usize = 64;

fn send_with_fds(sock: RawFd, body: &[u8], fds: &[RawFd]) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS);
    let mut iov = libc::iovec {
        iov_base: body.as_ptr() as *mut libc::c_void,
        iov_len: body.len(),
    };
    let mut cbuf = [0u64; CMSG_SPACE / 8];
    let fd_bytes = std::mem::size_of_val(fds) as u32;
    // SAFETY: msghdr points at live buffers; CMSG_* stay inside cbuf, which
    // is large enough for MAX_FDS descriptors.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(fd_bytes) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(fd_bytes) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast(), fds.len());
        loop {
            if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<RawFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; CMSG_SPACE / 8];
    // SAFETY: msghdr points at live buffers; the kernel writes at most
    // msg_controllen bytes of control data; CMSG_* walk only what it wrote.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = CMSG_SPACE;
        let n = loop {
            let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        let mut fds = Vec::new();
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let len = (*c).cmsg_len - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    fds.push(data.add(i).read_unaligned());
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
            for fd in fds {
                sys::close(fd);
            }
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        Ok((n, fds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_and_bytes_cross_a_socket_pair() {
        let mut sp = [0; 2];
        // SAFETY: room for two descriptors.
        sys::check(unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                sp.as_mut_ptr(),
            )
        })
        .unwrap();
        let (r, w) = sys::pipe().unwrap();
        send_with_fds(sp[0], b"hello", &[w]).unwrap();
        let mut buf = [0u8; 16];
        let (n, fds) = recv_with_fds(sp[1], &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 1);
        assert_ne!(fds[0], w, "a new descriptor for the same pipe");
        sys::write_all(fds[0], b"x").unwrap();
        let mut one = [0u8; 1];
        assert_eq!(sys::read(r, &mut one).unwrap(), 1);
        assert_eq!(&one, b"x");
        for fd in [r, w, fds[0], sp[0], sp[1]] {
            sys::close(fd);
        }
    }
}
