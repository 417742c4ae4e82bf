//! [`Runtime`] starts and re-adopts containers; [`Container`] is one of
//! them: `pid`, `kill`, `wait`, cgroup `stats`, `destroy`.

use std::fs;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cgroups::{CgroupManager, CgroupStats};
use super::child::Plan;
use super::shim::{self, ShimArgs};
use super::spawner;
use super::state::{read_exit, ContainerState, ExitStatus};
use super::sys::{self, cstr, proc_start_time};
use super::{ContainerSpec, RuntimeError};

/// How long a container process may take from fork to exec.
const SETUP_TIMEOUT_MS: i32 = 30_000;

/// Starts containers and finds them again after a restart.
#[derive(Debug)]
pub struct Runtime {
    dir: PathBuf,
    cgroups: Option<&'static dyn CgroupManager>,
}

/// A running or finished container.
#[derive(Debug)]
pub struct Container {
    state: ContainerState,
    dir: PathBuf,
    /// Whether the shim is our child (so we reap it).
    owned: bool,
    exit: Option<ExitStatus>,
    cgroups: Option<&'static dyn CgroupManager>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl Runtime {
    /// A runtime keeping per-container state under `dir`
    /// (`<agent state>/containers`). `cgroups` is needed for containers
    /// with a cgroup.
    pub fn new(
        dir: &Path,
        cgroups: Option<&'static dyn CgroupManager>,
    ) -> Result<Self, RuntimeError> {
        fs::create_dir_all(dir).map_err(RuntimeError::io("create directory", dir))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            cgroups,
        })
    }

    fn container_dir(&self, id: &str) -> Result<PathBuf, RuntimeError> {
        if !valid_id(id) {
            return Err(RuntimeError::Spec {
                id: id.to_owned(),
                reason: "id must be [A-Za-z0-9_.-]{1,128}".into(),
            });
        }
        Ok(self.dir.join(id))
    }

    /// Starts the container: returns once its process has exec'd the
    /// command (or with the setup error that stopped it).
    pub fn start(&self, spec: &ContainerSpec) -> Result<Container, RuntimeError> {
        let id = spec.id.as_str();
        let dir = self.container_dir(id)?;
        if ContainerState::path(&dir).exists() {
            return Err(RuntimeError::Spec {
                id: id.into(),
                reason: format!("{} exists: the id is taken", dir.display()),
            });
        }
        fs::create_dir_all(&dir).map_err(RuntimeError::io("create directory", &dir))?;
        // A failed earlier attempt's shim may have recorded an exit here.
        let _ = fs::remove_file(dir.join("exit.json"));
        let plan = Plan::new(spec).map_err(|reason| RuntimeError::Spec {
            id: id.into(),
            reason,
        })?;
        let cgroups = match (&spec.cgroup, self.cgroups) {
            (Some(_), None) => {
                return Err(RuntimeError::Spec {
                    id: id.into(),
                    reason: "a cgroup is set but the runtime has no cgroup manager".into(),
                })
            }
            (_, m) => m,
        };
        let netns = match &spec.netns {
            Some(p) => {
                let c = cstr(p);
                // SAFETY: valid path.
                let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
                Some(sys::check(fd).map_err(RuntimeError::io("open network namespace", p))?)
            }
            None => None,
        };
        let pipes = (|| Ok::<_, std::io::Error>((sys::pipe()?, sys::pipe()?, sys::pipe()?)))();
        let ((ready_r, ready_w), (go_r, go_w), (err_r, err_w)) =
            pipes.map_err(RuntimeError::sys(id, "pipe"))?;
        let args = ShimArgs {
            ready_w,
            go_r,
            err_w,
            netns,
            log_path: spec.log_path.clone(),
            log_max_bytes: spec.log_max_bytes,
            log_max_files: spec.log_max_files,
            exit_path: dir.join("exit.json"),
            exit_tmp: dir.join("exit.json.tmp"),
            stdio: spec.stdio,
            dir: dir.clone(),
        };
        // The shim comes from the spawner (see there why) if there is one; if
        // it fails, this start fails (it may have forked a shim before it broke:
        // never two shims on the same pipes) and later ones fork here.
        let spawned = match spawner::get().map(|sp| sp.spawn(&plan, &args)) {
            // Not sent (too large, e.g. a huge environment, or not encodable): fork here.
            Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidInput => None,
            other => other,
        };
        let (shim_pid, owned) = match spawned {
            Some(Ok(pid)) => (pid as libc::pid_t, false),
            Some(Err(e)) => {
                for fd in [ready_w, go_r, err_w, ready_r, go_w, err_r] {
                    sys::close(fd);
                }
                if let Some(fd) = netns {
                    sys::close(fd);
                }
                return Err(RuntimeError::sys(id, "spawn the shim")(e));
            }
            None => {
                // SAFETY: the child runs only the shim (syscalls and allocation,
                // which glibc keeps usable after fork) and never returns.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    shim::run(&plan, &args);
                }
                (pid, true)
            }
        };
        for fd in [ready_w, go_r, err_w] {
            sys::close(fd);
        }
        if let Some(fd) = netns {
            sys::close(fd);
        }
        let close_ours = || [ready_r, go_w, err_r].into_iter().for_each(sys::close);
        if shim_pid < 0 {
            close_ours();
            return Err(RuntimeError::sys(id, "fork the shim")(
                std::io::Error::last_os_error(),
            ));
        }
        let shim_pid = shim_pid as u32;
        let shim_start = proc_start_time(shim_pid).unwrap_or(0);
        let result = handshake(id, spec, cgroups, ready_r, go_w, err_r);
        close_ours();
        let pid = match result {
            Ok(pid) => pid,
            Err(e) => {
                if owned {
                    reap(shim_pid);
                }
                return Err(e);
            }
        };
        let state = ContainerState {
            id: id.into(),
            pid,
            pid_start: proc_start_time(pid).unwrap_or(0),
            shim_pid,
            shim_start,
            cgroup: spec.cgroup.clone(),
            log_path: spec.log_path.clone(),
            started_at: sys::now().0,
        };
        state.save(&dir)?;
        Ok(Container {
            state,
            dir,
            owned,
            exit: None,
            cgroups,
        })
    }

    /// Finds container `id` again from its state on disk (after an agent
    /// restart): running if its process (pid + start time) is alive,
    /// finished if the shim recorded an exit status.
    pub fn adopt(&self, id: &str) -> Result<Container, RuntimeError> {
        let dir = self.container_dir(id)?;
        let state = ContainerState::load(&dir, id)?;
        Ok(Container {
            exit: read_exit(&dir),
            state,
            dir,
            owned: false,
            cgroups: self.cgroups,
        })
    }

    /// Ids of the containers with state on disk.
    pub fn list(&self) -> Result<Vec<String>, RuntimeError> {
        let mut ids: Vec<String> = fs::read_dir(&self.dir)
            .map_err(RuntimeError::io("list", &self.dir))?
            .flatten()
            .filter(|e| ContainerState::path(&e.path()).exists())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// Reads the container pid, puts it in its cgroup, releases it, and waits
/// for its exec (EOF on the error pipe) or its setup error.
fn handshake(
    id: &str,
    spec: &ContainerSpec,
    cgroups: Option<&'static dyn CgroupManager>,
    ready_r: RawFd,
    go_w: RawFd,
    err_r: RawFd,
) -> Result<u32, RuntimeError> {
    let setup = |message: String| RuntimeError::Setup {
        id: id.into(),
        message,
    };
    let mut b = [0u8; 4];
    if !sys::poll_readable(ready_r, SETUP_TIMEOUT_MS).map_err(RuntimeError::sys(id, "poll"))? {
        return Err(setup(
            "the shim did not report the container pid in time".into(),
        ));
    }
    if sys::read(ready_r, &mut b).map_err(RuntimeError::sys(id, "read pid"))? != 4 {
        return Err(setup(
            "the shim exited before starting the container process".into(),
        ));
    }
    let pid = u32::from_le_bytes(b);
    if let (Some(path), Some(m)) = (&spec.cgroup, cgroups) {
        if let Err(source) = m.add_process(path, pid) {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            return Err(RuntimeError::Cgroup {
                id: id.into(),
                source,
            });
        }
    }
    sys::write_all(go_w, b"g").map_err(RuntimeError::sys(id, "release the container process"))?;
    let mut message = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if !sys::poll_readable(err_r, SETUP_TIMEOUT_MS).map_err(RuntimeError::sys(id, "poll"))? {
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            return Err(setup(format!("no exec within {SETUP_TIMEOUT_MS} ms")));
        }
        match sys::read(err_r, &mut buf).map_err(RuntimeError::sys(id, "read setup status"))? {
            0 => break,
            n => message.extend_from_slice(&buf[..n]),
        }
    }
    if message.is_empty() {
        Ok(pid)
    } else {
        Err(setup(String::from_utf8_lossy(&message).into_owned()))
    }
}

fn reap(pid: u32) {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid as i32, &mut status, 0) };
}

impl Container {
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// Host pid of the container's main process.
    pub fn pid(&self) -> u32 {
        self.state.pid
    }

    pub fn state(&self) -> &ContainerState {
        &self.state
    }

    /// Sends `signal` to the main process; a no-op once it has exited.
    pub fn kill(&self, signal: i32) -> Result<(), RuntimeError> {
        if self.exit.is_some() || !self.state.pid_alive() {
            return Ok(());
        }
        // SAFETY: kill has no memory preconditions.
        if unsafe { libc::kill(self.state.pid as i32, signal) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(RuntimeError::sys(&self.state.id, "kill")(e));
            }
        }
        Ok(())
    }

    /// The exit status if the container has finished (and its logs are
    /// flushed), without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, RuntimeError> {
        if let Some(s) = self.exit {
            return Ok(Some(s));
        }
        let shim_done = if self.owned {
            let mut status = 0;
            // SAFETY: polling our own child.
            let r =
                unsafe { libc::waitpid(self.state.shim_pid as i32, &mut status, libc::WNOHANG) };
            r != 0
        } else {
            !self.state.shim_alive() || sys::proc_state(self.state.shim_pid) == Some('Z')
        };
        self.exit = read_exit(&self.dir);
        if self.exit.is_none() && shim_done {
            return Err(RuntimeError::Lost {
                id: self.state.id.clone(),
                shim_pid: self.state.shim_pid,
            });
        }
        Ok(self.exit)
    }

    /// Waits at most `timeout` for the container to finish.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, RuntimeError> {
        let end = Instant::now() + timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            let now = Instant::now();
            if now >= end {
                return Ok(None);
            }
            std::thread::sleep(pause.min(end - now));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Waits for the container to finish.
    pub fn wait(&mut self) -> Result<ExitStatus, RuntimeError> {
        loop {
            if let Some(s) = self.wait_timeout(Duration::from_secs(3600))? {
                return Ok(s);
            }
        }
    }

    /// The container cgroup's counters.
    pub fn stats(&self) -> Result<CgroupStats, RuntimeError> {
        let id = &self.state.id;
        let (Some(path), Some(m)) = (&self.state.cgroup, self.cgroups) else {
            return Err(RuntimeError::Spec {
                id: id.clone(),
                reason: "the container has no cgroup".into(),
            });
        };
        m.stats(path).map_err(|source| RuntimeError::Cgroup {
            id: id.clone(),
            source,
        })
    }

    /// Whether the OOM killer killed a process of this container.
    pub fn oom_killed(&self) -> bool {
        self.stats().is_ok_and(|s| s.oom_kills > 0)
    }

    /// Kills the container if needed, waits for it, removes its cgroup and
    /// its state. The rootfs and the log are the caller's.
    pub fn destroy(mut self) -> Result<Option<ExitStatus>, RuntimeError> {
        self.kill(libc::SIGKILL)?;
        let status = match self.wait_timeout(Duration::from_secs(10)) {
            Ok(s) => s,
            Err(RuntimeError::Lost { .. }) => None,
            Err(e) => return Err(e),
        };
        if let (Some(path), Some(m)) = (&self.state.cgroup, self.cgroups) {
            m.remove(path).map_err(|source| RuntimeError::Cgroup {
                id: self.state.id.clone(),
                source,
            })?;
        }
        fs::remove_dir_all(&self.dir).map_err(RuntimeError::io("remove", &self.dir))?;
        Ok(status)
    }
}
