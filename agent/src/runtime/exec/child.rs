//! After fork: the helper (joins the namespaces, root and working
//! directory, forks the command, reports its pid and exit status) and the
//! command itself (stdio, ids, signals, exec). Only syscalls on what
//! [`Prepared`] holds.

use std::os::fd::RawFd;

use super::super::sys::{self, check};
use super::prepare::Prepared;

/// The helper (forked, single-threaded): returns only with an error text.
pub(super) fn helper_main(
    p: &Prepared,
    go_r: RawFd,
    out_w: RawFd,
    err_w: RawFd,
    msg_w: RawFd,
    info_w: RawFd,
) -> String {
    let mut b = [0u8; 1];
    if !matches!(sys::read(go_r, &mut b), Ok(1)) {
        return "the agent did not release the exec helper".into();
    }
    for (fd, flag) in &p.ns {
        // SAFETY: setns on a namespace descriptor we opened.
        if let Err(e) = check(unsafe { libc::setns(*fd, *flag) }) {
            return format!("setns({flag:#x}): {e}");
        }
    }
    // SAFETY: plain syscalls on descriptors opened before fork.
    unsafe {
        if let Err(e) = check(libc::fchdir(p.root)) {
            return format!("fchdir(container root): {e}");
        }
        if let Err(e) = check(libc::chroot(c".".as_ptr())) {
            return format!("chroot(container root): {e}");
        }
        if let Err(e) = check(libc::fchdir(p.cwd)) {
            return format!("fchdir(container working directory): {e}");
        }
    }
    // SAFETY: fork in the single-threaded helper.
    let cmd = unsafe { libc::fork() };
    if cmd == 0 {
        let message = command_main(p, out_w, err_w);
        let _ = sys::write_all(msg_w, message.as_bytes());
        // SAFETY: as in the helper.
        unsafe { libc::_exit(127) };
    }
    if cmd < 0 {
        return format!("fork: {}", std::io::Error::last_os_error());
    }
    sys::close(out_w);
    sys::close(err_w);
    let _ = sys::write_all(info_w, &(cmd as u32).to_le_bytes());
    let mut status = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(cmd, &mut status, 0) } < 0 {
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return "waitpid(command) failed".into();
        }
    }
    let (kind, v) = if libc::WIFSIGNALED(status) {
        (1u32, libc::WTERMSIG(status))
    } else {
        (0u32, libc::WEXITSTATUS(status))
    };
    let mut rec = [0u8; 8];
    rec[..4].copy_from_slice(&kind.to_le_bytes());
    rec[4..].copy_from_slice(&v.to_le_bytes());
    let _ = sys::write_all(info_w, &rec);
    // SAFETY: as above.
    unsafe { libc::_exit(0) }
}

/// The command process: stdio, ids, signals, exec.
fn command_main(p: &Prepared, out_w: RawFd, err_w: RawFd) -> String {
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        // Its own process group, so that a timeout or a vanished client
        // stops what it started too; with a terminal, its own session with
        // the terminal as controlling tty (so ^C is a SIGINT, shells prompt).
        if p.terminal {
            libc::setsid();
            libc::dup2(p.null, 0);
            libc::dup2(p.null, 1);
            libc::dup2(p.null, 2);
            libc::ioctl(0, libc::TIOCSCTTY, 0);
        } else {
            libc::setpgid(0, 0);
            libc::dup2(p.null, 0);
            libc::dup2(out_w, 1);
            libc::dup2(err_w, 2);
        }
        if let Err(e) = check(libc::setgroups(p.groups.len(), p.groups.as_ptr())) {
            return format!("setgroups: {e}");
        }
        if let Err(e) = check(libc::setgid(p.gid)) {
            return format!("setgid({}): {e}", p.gid);
        }
        if let Err(e) = check(libc::setuid(p.uid)) {
            return format!("setuid({}): {e}", p.uid);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
    let mut argv: Vec<*const libc::c_char> = p.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = p.envp.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut last = std::io::Error::from_raw_os_error(libc::ENOENT);
    for exe in &p.exe {
        // SAFETY: NULL-terminated arrays of valid C strings.
        unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOENT) {
            last = e;
        }
    }
    format!("exec {:?}: {last}", p.argv[0])
}
