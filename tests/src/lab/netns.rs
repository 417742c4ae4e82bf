//! A named network namespace (`/run/netns/<name>`) and ways to run code in it.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{cleanup, LabError};

/// Where iproute2 keeps named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// A network namespace of a lab. Cheap to clone; the lab removes it.
#[derive(Debug, Clone)]
pub struct Netns {
    name: String,
    lab: String,
}

impl Netns {
    pub(crate) fn new(name: String, lab: &str) -> Self {
        Self {
            name,
            lab: lab.to_owned(),
        }
    }

    /// The netns name (an entry of `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `ifname` in this netns has an XDP program attached.
    pub fn xdp_attached(&self, ifname: &str) -> Result<bool, LabError> {
        let out = super::ip_output(&["-n", &self.name, "link", "show", ifname])?;
        Ok(String::from_utf8_lossy(&out.stdout).contains("xdp"))
    }

    /// Prefix of the lab this netns belongs to.
    pub fn lab(&self) -> &str {
        &self.lab
    }

    /// `/run/netns/<name>`, usable with `nsenter --net=` or `setns(2)`.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// Runs `f` on a fresh thread that has joined this netns and returns its
    /// result. Sockets created inside stay in this netns and may be used from
    /// any thread afterwards. A panic in `f` is propagated.
    pub fn run<T, F>(&self, f: F) -> Result<T, LabError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let file = self.open()?;
        std::thread::scope(|s| {
            let handle = s.spawn(move || -> Result<T, LabError> {
                enter(&file).map_err(|source| LabError::Setns {
                    netns: self.name.clone(),
                    source,
                })?;
                Ok(f())
            });
            match handle.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Starts `cmd` inside this netns. The child is tracked: the lab kills
    /// it when it is torn down (drop, Ctrl-C), and it gets SIGKILL if the
    /// spawning thread dies first (`PR_SET_PDEATHSIG`), so spawn from the
    /// thread that owns the lab.
    pub fn spawn(&self, mut cmd: Command) -> Result<Proc, LabError> {
        let file = self.open()?;
        let fd = file.as_raw_fd();
        let program = format!("{:?}", cmd.get_program());
        // SAFETY: the closure only makes async-signal-safe syscalls.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            program: program.clone(),
            netns: self.name.clone(),
            source,
        })?;
        drop(file);
        let proc = Proc {
            inner: Arc::new(Mutex::new(child)),
            program,
            netns: self.name.clone(),
        };
        cleanup::track(&self.lab, proc.clone());
        Ok(proc)
    }

    fn open(&self) -> Result<File, LabError> {
        let path = self.path();
        File::open(&path).map_err(|source| LabError::Io {
            what: "open netns",
            path,
            source,
        })
    }
}

/// Moves the calling thread into the network namespace `file` refers to.
pub(crate) fn enter(file: &File) -> std::io::Result<()> {
    // SAFETY: plain syscall on a valid fd; only this thread changes netns.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A process started with [`Netns::spawn`]. Clones share the same child.
#[derive(Debug, Clone)]
pub struct Proc {
    inner: Arc<Mutex<Child>>,
    program: String,
    netns: String,
}

impl Proc {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    /// The netns the process was started in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Access to the `std::process::Child`, e.g. to take its stdout.
    pub fn child(&self) -> MutexGuard<'_, Child> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Exit status if the process has exited (reaps it).
    pub fn try_wait(&self) -> Option<ExitStatus> {
        self.child().try_wait().ok().flatten()
    }

    /// Sends `signal` unless the process has already been reaped (so a
    /// recycled pid is never signalled).
    pub fn signal(&self, signal: libc::c_int) -> std::io::Result<()> {
        let mut child = self.child();
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(child.id()).map_err(std::io::Error::other)?;
        // SAFETY: the pid is our unreaped child.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; waits for the exit.
    pub fn stop(&self, grace: Duration) -> Option<ExitStatus> {
        let _ = self.signal(libc::SIGTERM);
        if let Some(status) = self.wait_timeout(grace) {
            return Some(status);
        }
        self.kill()
    }

    /// SIGKILL and reap.
    pub fn kill(&self) -> Option<ExitStatus> {
        let mut child = self.child();
        let _ = child.kill();
        child.wait().ok()
    }

    /// `"<program>" in <netns>`, for messages.
    pub fn describe(&self) -> String {
        format!("{} in {}", self.program, self.netns)
    }
}
