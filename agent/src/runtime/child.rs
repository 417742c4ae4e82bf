//! The container process between fork and exec. Its setup, in this fixed
//! order (runs as pid 1 of the new pid namespace the shim made, or in the
//! node's with `hostPID`):
//!
//! 1. wait for the agent's "go" byte — the agent moves us into the
//!    container's cgroup first, so everything after is charged there;
//! 2. `setns(pod netns)`, then `unshare(mount | uts | ipc)` (not ipc with
//!    `hostIPC`);
//! 3. `sethostname`;
//! 4. mounts: make every mount private (`MS_REC|MS_PRIVATE` on `/`: nothing
//!    propagates back to the host), bind the rootfs onto itself (pivot_root
//!    needs a mount point), `proc` (our pid namespace's view), a tmpfs
//!    `/dev` with null, zero, full, random, urandom, tty, `pts` (a new devpts
//!    instance), `shm` and the fd/stdio links, `sysfs` read-only, then the
//!    volumes (bind, remounted read-only where asked);
//! 5. `chdir(rootfs); pivot_root(".", "."); umount2(".", MNT_DETACH)`: the
//!    old root is stacked under the new one and detached (runc's sequence,
//!    no put_old directory needed); `chdir("/")`;
//! 6. groups, gid, uid; working directory; signal mask and dispositions
//!    back to defaults (Rust ignores SIGPIPE); `execve`.
//!
//! A failure before exec writes its message to the error pipe (closed on
//! exec, so EOF there means the exec happened) and exits 127.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::RawFd;
use std::path::{Component, Path, PathBuf};

use super::spec::{ContainerSpec, HostNamespaces, DEFAULT_PATH};
use super::sys::{self, check, cstr, mount};

/// The spec turned into C strings before fork, so the child allocates little.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// Candidate paths for argv[0] (PATH lookup done up front).
    pub exe: Vec<CString>,
    pub rootfs: PathBuf,
    pub cwd: CString,
    pub hostname: Option<CString>,
    pub user: Option<(u32, u32)>,
    pub mounts: Vec<(PathBuf, PathBuf, bool)>,
    /// The node's pid and ipc namespaces are kept instead of new ones.
    pub host: HostNamespaces,
}

impl Plan {
    pub fn new(spec: &ContainerSpec) -> Result<Self, String> {
        let c = |s: &str| CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"));
        let argv0 = spec.args.first().ok_or("no command to run (empty args)")?;
        let path = spec
            .env
            .iter()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        let exe = if argv0.contains('/') {
            vec![c(argv0)?]
        } else {
            path.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| c(&format!("{d}/{argv0}")))
                .collect::<Result<_, _>>()?
        };
        let mut mounts = Vec::new();
        for m in &spec.mounts {
            let rel = contained(&m.container_path).ok_or_else(|| {
                format!(
                    "mount path {} must be absolute without ..",
                    m.container_path.display()
                )
            })?;
            mounts.push((m.host_path.clone(), rel, m.read_only));
        }
        Ok(Self {
            argv: spec.args.iter().map(|a| c(a)).collect::<Result<_, _>>()?,
            envp: spec.env.iter().map(|e| c(e)).collect::<Result<_, _>>()?,
            exe,
            rootfs: spec.rootfs.clone(),
            cwd: c(if spec.cwd.is_empty() { "/" } else { &spec.cwd })?,
            hostname: spec.hostname.as_deref().map(c).transpose()?,
            user: spec.user,
            mounts,
            host: spec.host,
        })
    }
}

/// `/a/b` → `a/b`; None for relative paths or `..`.
fn contained(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            _ => return None,
        }
    }
    Some(out)
}

fn ctx(what: &str) -> impl FnOnce(io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Runs steps 1–6; returns only on failure.
pub fn run(plan: &Plan, go: RawFd, netns: Option<RawFd>) -> String {
    let mut b = [0u8; 1];
    match sys::read(go, &mut b) {
        Ok(1) => {}
        _ => return "the agent did not release the container (it exited or failed)".into(),
    }
    sys::close(go);
    match setup(plan, netns) {
        Ok(()) => exec(plan),
        Err(e) => e,
    }
}

fn setup(plan: &Plan, netns: Option<RawFd>) -> Result<(), String> {
    // SAFETY: plain syscalls on valid descriptors and flags.
    unsafe {
        if let Some(fd) = netns {
            check(libc::setns(fd, libc::CLONE_NEWNET))
                .map_err(ctx("setns(pod network namespace)"))?;
            libc::close(fd);
        }
        let ipc = if plan.host.ipc { 0 } else { libc::CLONE_NEWIPC };
        check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS | ipc))
            .map_err(ctx("unshare(mount, uts, ipc)"))?;
        if let Some(h) = &plan.hostname {
            check(libc::sethostname(h.as_ptr(), h.as_bytes().len())).map_err(ctx("sethostname"))?;
        }
    }
    mounts(plan)?;
    pivot(&plan.rootfs)?;
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        if let Some((uid, gid)) = plan.user {
            let groups = [gid];
            check(libc::setgroups(1, groups.as_ptr())).map_err(ctx("setgroups"))?;
            check(libc::setgid(gid)).map_err(ctx("setgid"))?;
            check(libc::setuid(uid)).map_err(ctx("setuid"))?;
        }
        check(libc::chdir(plan.cwd.as_ptr())).map_err(|e| format!("chdir {:?}: {e}", plan.cwd))?;
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
    Ok(())
}

fn mkdir(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))
}

fn mount_at(
    src: Option<&CStr>,
    target: &Path,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Result<(), String> {
    mount(src, &cstr(target), fstype, flags, data)
        .map_err(|e| format!("mount {:?} on {}: {e}", fstype.or(src), target.display()))
}

fn mounts(plan: &Plan) -> Result<(), String> {
    let root = &plan.rootfs;
    mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(ctx("make / private"))?;
    let r = cstr(root);
    mount(Some(&r), &r, None, libc::MS_BIND | libc::MS_REC, None)
        .map_err(|e| format!("bind rootfs {}: {e}", root.display()))?;
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let proc_dir = root.join("proc");
    mkdir(&proc_dir)?;
    mount_at(Some(c"proc"), &proc_dir, Some(c"proc"), nosuid, None)?;
    dev(&root.join("dev"))?;
    let sys_dir = root.join("sys");
    mkdir(&sys_dir)?;
    if mount_at(
        Some(c"sysfs"),
        &sys_dir,
        Some(c"sysfs"),
        nosuid | libc::MS_RDONLY,
        None,
    )
    .is_err()
    {
        mount_at(
            Some(c"/sys"),
            &sys_dir,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )?;
        mount_at(
            None,
            &sys_dir,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
        )?;
    }
    for (host, rel, ro) in &plan.mounts {
        let target = root.join(rel);
        if host.is_dir() {
            mkdir(&target)?;
        } else {
            mkdir(target.parent().unwrap_or(root))?;
            if !target.exists() {
                std::fs::write(&target, b"")
                    .map_err(|e| format!("create {}: {e}", target.display()))?;
            }
        }
        mount_at(
            Some(&cstr(host)),
            &target,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )?;
        if *ro {
            mount_at(
                None,
                &target,
                None,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                None,
            )?;
        }
    }
    Ok(())
}

fn dev(dev: &Path) -> Result<(), String> {
    mkdir(dev)?;
    mount_at(
        Some(c"tmpfs"),
        dev,
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_STRICTATIME,
        Some(c"mode=755,size=65536k"),
    )?;
    let nodes: [(&str, u32, u32); 6] = [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ];
    for (name, major, minor) in nodes {
        let p = cstr(&dev.join(name));
        // SAFETY: valid path; mode and device numbers are plain integers.
        unsafe {
            check(libc::mknod(
                p.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(major, minor),
            ))
            .map_err(|e| format!("mknod /dev/{name}: {e}"))?;
            libc::chmod(p.as_ptr(), 0o666);
        }
    }
    let pts = dev.join("pts");
    mkdir(&pts)?;
    mount_at(
        Some(c"devpts"),
        &pts,
        Some(c"devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(c"newinstance,ptmxmode=0666,mode=0620"),
    )?;
    let shm = dev.join("shm");
    mkdir(&shm)?;
    mount_at(
        Some(c"shm"),
        &shm,
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some(c"mode=1777,size=65536k"),
    )?;
    let links = [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    for (name, target) in links {
        std::os::unix::fs::symlink(target, dev.join(name))
            .map_err(|e| format!("symlink /dev/{name}: {e}"))?;
    }
    Ok(())
}

fn pivot(root: &Path) -> Result<(), String> {
    let r = cstr(root);
    // SAFETY: plain syscalls with valid NUL-terminated paths.
    unsafe {
        check(libc::chdir(r.as_ptr())).map_err(ctx("chdir rootfs"))?;
        check(libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) as libc::c_int)
            .map_err(ctx("pivot_root"))?;
        check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))
            .map_err(ctx("unmount the old root"))?;
        check(libc::chdir(c"/".as_ptr())).map_err(ctx("chdir /"))?;
    }
    Ok(())
}

fn exec(plan: &Plan) -> String {
    let mut argv: Vec<*const libc::c_char> = plan.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = plan.envp.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut last = io::Error::from_raw_os_error(libc::ENOENT);
    for exe in &plan.exe {
        // SAFETY: NULL-terminated arrays of valid C strings.
        unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOENT) {
            last = e;
        }
    }
    format!("exec {:?}: {last}", plan.argv[0])
}
