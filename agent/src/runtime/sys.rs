//! Thin libc wrappers used on both sides of fork. Everything here is a
//! direct syscall: safe to call in a forked child of a threaded process.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

pub fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A pipe `(read, write)`, both close-on-exec.
pub fn pipe() -> io::Result<(RawFd, RawFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok((fds[0], fds[1]))
}

/// A terminal: (master, slave), both close-on-exec.
pub fn openpty() -> io::Result<(RawFd, RawFd)> {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors; the other arguments may be null.
    check(unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    })?;
    for fd in [master, slave] {
        // SAFETY: fcntl on a fresh descriptor.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok((master, slave))
}

/// Calls `f(first, last)` for each range of descriptors from 3 up to `u32::MAX` not
/// in `keep` (sorted in place; negative entries ignored). No allocation.
pub fn for_each_fd_gap(keep: &mut [RawFd], mut f: impl FnMut(u32, u32)) {
    keep.sort_unstable();
    let mut next = 3u32;
    for &fd in keep.iter() {
        let Ok(fd) = u32::try_from(fd) else { continue };
        if fd < next {
            continue;
        }
        if fd > next {
            f(next, fd - 1);
        }
        next = fd.saturating_add(1);
    }
    f(next, u32::MAX);
}

/// Closes every descriptor above stdio except `keep`. For a child forked from the
/// threaded agent: fork copies the descriptors every other thread had open at that
/// instant — among them the pipe ends of containers being started concurrently.
/// A shim that kept another container's setup-error pipe would hold it open for
/// its whole life, and that container's start would wait for an EOF that never
/// comes. `close_range(2)` (Linux 5.9+), else `close` one by one up to the limit.
pub fn close_fds_except<const N: usize>(mut keep: [RawFd; N]) {
    for_each_fd_gap(&mut keep, close_range);
}

fn close_range(first: u32, last: u32) {
    // SAFETY: close_range only closes descriptors; no memory is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            libc::c_long::from(first),
            libc::c_long::from(last),
            0 as libc::c_long,
        )
    };
    if rc == 0 {
        return;
    }
    // SAFETY: sysconf has no preconditions.
    let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
    let max = u32::try_from(max).unwrap_or(65_536).min(1 << 20);
    for fd in first..=last.min(max) {
        // SAFETY: closing descriptors this (forked) process owns.
        unsafe { libc::close(fd as RawFd) };
    }
}

pub fn close(fd: RawFd) {
    // SAFETY: closing a descriptor this code owns.
    unsafe { libc::close(fd) };
}

pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Waits until `fd` is readable (or hung up) for at most `timeout_ms`;
/// false on timeout.
pub fn poll_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

pub fn mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let p = |c: Option<&CStr>| c.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: every pointer is null or a valid NUL-terminated string.
    check(unsafe { libc::mount(p(src), target.as_ptr(), p(fstype), flags, p(data).cast()) })
        .map(|_| ())
}

/// `starttime` (field 22 of /proc/<pid>/stat, clock ticks after boot):
/// with the pid, it names one process even across pid reuse.
pub fn proc_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and ')': fields follow the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The process state letter (R, S, Z, …) from /proc/<pid>/stat.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

pub fn now() -> (i64, u32) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_our_own_start_time() {
        let me = std::process::id();
        assert!(super::proc_start_time(me).is_some());
        assert_eq!(super::proc_start_time(me), super::proc_start_time(me));
        assert!(matches!(super::proc_state(me), Some('R' | 'S')));
    }

    #[test]
    fn fd_gaps_skip_stdio_and_what_is_kept() {
        let gaps = |keep: &mut [i32]| {
            let mut out = Vec::new();
            super::for_each_fd_gap(keep, |a, b| out.push((a, b)));
            out
        };
        assert_eq!(gaps(&mut []), [(3, u32::MAX)]);
        assert_eq!(
            gaps(&mut [9, 3, 5, -1, 1]),
            [(4, 4), (6, 8), (10, u32::MAX)]
        );
        assert_eq!(gaps(&mut [4, 4]), [(3, 3), (5, u32::MAX)]);
    }
}
