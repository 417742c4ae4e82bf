//! Tearing labs down: the registry of live labs of this process, the Ctrl-C /
//! SIGTERM handler that empties it, and removal of leftovers of dead runs.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, Once};

use super::netns::{Proc, NETNS_DIR};
use super::{names, LabError};

/// Where the agent pins its maps and links, one directory per node name.
pub const BPFFS_DIR: &str = "/sys/fs/bpf/skiff";

/// Where the agent binds pod network namespaces (`sandbox::DEFAULT_NETNS_DIR`);
/// tests name their pods `<lab>-<name>`, so a lab's entries are found by name.
pub const SANDBOX_NETNS_DIR: &str = "/run/skiff/netns";

/// Live labs of this process and the processes they started.
static REGISTRY: Mutex<BTreeMap<String, Vec<Proc>>> = Mutex::new(BTreeMap::new());
static HANDLER: Once = Once::new();
/// Set by the signal handler: no new netns may be created from then on.
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
/// Held while a netns is created, and by the signal handler until exit, so
/// no netns can appear after the handler has listed what to remove.
static CREATE: Mutex<()> = Mutex::new(());

fn registry() -> std::sync::MutexGuard<'static, BTreeMap<String, Vec<Proc>>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records a lab before anything of it exists, and installs the signal
/// handler once per process.
pub(crate) fn register(lab: &str) {
    install_handler();
    registry().entry(lab.to_owned()).or_default();
}

pub(crate) fn track(lab: &str, proc: Proc) {
    registry().entry(lab.to_owned()).or_default().push(proc);
}

/// Permission to create a netns; fails once the process is being torn down.
pub(crate) fn creation_guard() -> Result<MutexGuard<'static, ()>, LabError> {
    let guard = CREATE.lock().unwrap_or_else(|e| e.into_inner());
    if SHUTTING_DOWN.load(Ordering::SeqCst) {
        return Err(LabError::Interrupted);
    }
    Ok(guard)
}

fn install_handler() {
    HANDLER.call_once(|| {
        let result = ctrlc::set_handler(|| {
            SHUTTING_DOWN.store(true, Ordering::SeqCst);
            let _hold = CREATE.lock().unwrap_or_else(|e| e.into_inner());
            // Not eprintln!: the test harness may capture this thread's prints.
            let _ = writeln!(
                std::io::stderr(),
                "skiff lab: interrupted, tearing down labs"
            );
            let labs: Vec<String> = registry().keys().cloned().collect();
            for lab in labs {
                teardown(&lab);
            }
            // Children still starting die with us (PR_SET_PDEATHSIG).
            std::process::exit(130);
        });
        if let Err(e) = result {
            let _ = writeln!(
                std::io::stderr(),
                "skiff lab: no Ctrl-C cleanup handler ({e}); a previous one is in place"
            );
        }
    });
}

/// Kills the processes of lab `lab` that live in netns `netns` (tracked
/// ones and any other).
pub(crate) fn kill_netns_procs(lab: &str, netns: &str) {
    let mine: Vec<Proc> = match registry().get_mut(lab) {
        Some(procs) => {
            let (here, rest) = procs.drain(..).partition(|p| p.netns() == netns);
            *procs = rest;
            here
        }
        None => Vec::new(),
    };
    for proc in mine {
        proc.kill();
    }
    kill_netns_pids(netns);
}

/// Removes everything of lab `lab`: its processes, every netns named after
/// it, its bpffs pin directories and temp directories. Idempotent; errors are reported on stderr
/// and do not stop the rest of the teardown.
pub fn teardown(lab: &str) {
    let procs = registry().remove(lab).unwrap_or_default();
    for proc in procs.iter().rev() {
        proc.kill();
    }
    let mut netns: Vec<String> = list_netns()
        .into_iter()
        .filter(|n| names::belongs_to(n, lab))
        .collect();
    // Pods before nodes before the underlay: longest names first.
    netns.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in &netns {
        kill_netns_pids(name);
    }
    for name in &netns {
        // Another teardown (a parallel cleanup_stale) may have been first.
        if Path::new(NETNS_DIR).join(name).exists() {
            run_quiet(Command::new("ip").args(["netns", "del", name]));
        }
    }
    // Pod netns bound by the agent's sandbox code for this lab's pods.
    for name in list_dir(Path::new(SANDBOX_NETNS_DIR)) {
        if names::belongs_to(&name, lab) {
            unbind_netns(&Path::new(SANDBOX_NETNS_DIR).join(name));
        }
    }
    // Pin dirs of agents that ran as lab nodes, and temp dirs (manifests).
    for base in [Path::new(BPFFS_DIR).to_path_buf(), std::env::temp_dir()] {
        for dir in list_dir(&base) {
            if names::belongs_to(&dir, lab) {
                let path = base.join(&dir);
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    eprintln!("skiff lab: removing {}: {e}", path.display());
                }
            }
        }
    }
}

/// Removes leftovers (`skf-<pid>-*` netns, bpffs and temp dirs) whose owner pid is
/// dead, or of every lab when `all` (also live ones of other processes).
/// Returns the lab prefixes it removed.
pub fn cleanup_stale(all: bool) -> Vec<String> {
    let mut labs: Vec<String> = list_netns()
        .into_iter()
        .chain(list_dir(Path::new(BPFFS_DIR)))
        .chain(list_dir(Path::new(SANDBOX_NETNS_DIR)))
        .chain(list_dir(&std::env::temp_dir()))
        .filter_map(|n| names::parse(&n))
        .filter(|n| all || !names::pid_alive(n.pid))
        .map(|n| n.lab)
        .collect();
    labs.sort();
    labs.dedup();
    for lab in &labs {
        teardown(lab);
    }
    labs
}

/// Names of `ip netns list` (the entries of /run/netns).
pub fn list_netns() -> Vec<String> {
    list_dir(Path::new(NETNS_DIR))
}

fn list_dir(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

/// Unmounts a bound netns file and removes it.
fn unbind_netns(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) {
        // SAFETY: plain syscall on a NUL-terminated path; failure (not a
        // mount) is fine, the file is removed below either way.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
    if let Err(e) = std::fs::remove_file(path) {
        eprintln!("skiff lab: removing {}: {e}", path.display());
    }
}

/// Kills every process living in netns `name` (e.g. left by a dead run).
fn kill_netns_pids(name: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() else {
        return;
    };
    let me = std::process::id();
    for pid in String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<libc::pid_t>().ok())
    {
        if u32::try_from(pid).is_ok_and(|p| p != me) && pid > 1 {
            // SAFETY: plain kill(2); the process lives in a lab netns.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn run_quiet(cmd: &mut Command) {
    match cmd.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "skiff lab: {cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => eprintln!("skiff lab: {cmd:?}: {e}"),
    }
}
