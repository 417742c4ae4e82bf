//! Before fork: everything the exec helper and the command need, opened
//! and converted while the agent can still allocate and report errors.

use std::ffi::CString;
use std::os::fd::RawFd;

use super::super::spec::DEFAULT_PATH;
use super::super::sys::{self, check};
use super::{ExecError, ExecRequest, ExecTarget};

/// Everything the forked processes need, built before fork.
pub(super) struct Prepared {
    pub(super) ns: Vec<(RawFd, libc::c_int)>,
    pub(super) root: RawFd,
    pub(super) cwd: RawFd,
    pub(super) null: RawFd,
    pub(super) argv: Vec<CString>,
    pub(super) envp: Vec<CString>,
    pub(super) exe: Vec<CString>,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) groups: Vec<libc::gid_t>,
    /// `null` is a terminal's slave side: the command gets it as stdin, stdout and stderr,
    /// in a new session with it as controlling terminal.
    pub(super) terminal: bool,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        for (fd, _) in &self.ns {
            sys::close(*fd);
        }
        for fd in [self.root, self.cwd, self.null] {
            if fd >= 0 {
                sys::close(fd);
            }
        }
    }
}

fn open(path: &str, flags: libc::c_int) -> std::io::Result<RawFd> {
    let c = CString::new(path).unwrap_or_default();
    // SAFETY: valid NUL-terminated path.
    check(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) })
}

/// `Uid:`/`Gid:` (real ids) and `Groups:` of a process.
pub(super) fn ids_of(status: &str) -> (u32, u32, Vec<u32>) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| {
                v.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_else(Vec::new)
    };
    let uid: Vec<u32> = field("Uid:");
    let gid: Vec<u32> = field("Gid:");
    (
        uid.first().copied().unwrap_or(0),
        gid.first().copied().unwrap_or(0),
        field("Groups:"),
    )
}

pub(super) fn prepare(t: &ExecTarget, req: &ExecRequest) -> Result<Prepared, ExecError> {
    let id = &t.id;
    let alive = || sys::proc_start_time(t.pid) == Some(t.pid_start);
    if !alive() {
        return Err(ExecError::NotRunning { id: id.clone() });
    }
    let err = |op: String| {
        let id = id.clone();
        move |source| ExecError::Sys { id, op, source }
    };
    let c = |s: &str| {
        CString::new(s).map_err(|_| ExecError::Setup {
            id: id.clone(),
            message: format!("{s:?} contains a NUL byte"),
        })
    };
    let argv0 = req.argv.first().ok_or_else(|| ExecError::Setup {
        id: id.clone(),
        message: "no command to run (empty argv)".into(),
    })?;
    let proc = format!("/proc/{}", t.pid);
    let environ =
        std::fs::read(format!("{proc}/environ")).map_err(err(format!("read {proc}/environ")))?;
    let status = std::fs::read_to_string(format!("{proc}/status"))
        .map_err(err(format!("read {proc}/status")))?;
    let (uid, gid, groups) = ids_of(&status);
    let env: Vec<&[u8]> = environ
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .collect();
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix(b"PATH="))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_else(|| DEFAULT_PATH.into());
    let exe = if argv0.contains('/') {
        vec![c(argv0)?]
    } else {
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| c(&format!("{d}/{argv0}")))
            .collect::<Result<_, _>>()?
    };
    let mut p = Prepared {
        ns: Vec::new(),
        root: -1,
        cwd: -1,
        null: -1,
        terminal: false,
        argv: req.argv.iter().map(|a| c(a)).collect::<Result<_, _>>()?,
        envp: env
            .iter()
            .map(|e| CString::new(*e).unwrap_or_default())
            .collect(),
        exe,
        uid,
        gid,
        groups,
    };
    for (name, flag) in [
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("net", libc::CLONE_NEWNET),
        ("pid", libc::CLONE_NEWPID),
        ("mnt", libc::CLONE_NEWNS),
    ] {
        let path = format!("{proc}/ns/{name}");
        let fd = open(&path, libc::O_RDONLY).map_err(err(format!("open {path}")))?;
        p.ns.push((fd, flag));
    }
    p.root = open(&format!("{proc}/root"), libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(err(format!("open {proc}/root")))?;
    p.cwd = open(&format!("{proc}/cwd"), libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(err(format!("open {proc}/cwd")))?;
    p.null = open("/dev/null", libc::O_RDWR).map_err(err("open /dev/null".into()))?;
    if !alive() {
        return Err(ExecError::NotRunning { id: id.clone() });
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ids_from_proc_status() {
        let status = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGid:\t2000\t2000\t2000\t2000\nGroups:\t2000 3000 \n";
        assert_eq!(ids_of(status), (1000, 2000, vec![2000, 3000]));
        assert_eq!(ids_of("Uid:\t0\t0\t0\t0\nGroups:\n"), (0, 0, vec![]));
    }
}
