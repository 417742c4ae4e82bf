//! Processes and scratch directories of a run: every one is killed or removed when its
//! guard drops (normal end, error, panic) and, on Ctrl-C or SIGTERM, by a handler that
//! tears down whatever is still registered. Children also get `PR_SET_PDEATHSIG`, so a
//! `kill -9` of the benchmark takes them along.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, Once};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

enum Owned {
    Pid(u32),
    Dir(PathBuf),
}

static LIVE: Mutex<Option<HashMap<u64, Owned>>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(1);
static HANDLER: Once = Once::new();

fn register(what: Owned) -> u64 {
    install_handler();
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.get_or_insert_with(HashMap::new).insert(id, what);
    id
}

fn unregister(id: u64) {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = live.as_mut() {
        m.remove(&id);
    }
}

fn install_handler() {
    HANDLER.call_once(|| {
        let res = ctrlc::set_handler(|| {
            eprintln!("[store-bench] interrupted: killing servers, removing data dirs");
            let live = LIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
            let mut dirs = Vec::new();
            for what in live.into_iter().flat_map(HashMap::into_values) {
                match what {
                    // SAFETY: kill has no memory preconditions; the pid is our own child.
                    Owned::Pid(pid) => unsafe {
                        libc::kill(pid as libc::pid_t, libc::SIGKILL);
                    },
                    Owned::Dir(d) => dirs.push(d),
                }
            }
            // Give the killed processes a moment to release their files before removal.
            std::thread::sleep(Duration::from_millis(200));
            for d in dirs {
                let _ = std::fs::remove_dir_all(d);
            }
            std::process::exit(130);
        });
        if let Err(e) = res {
            eprintln!("[store-bench] no Ctrl-C cleanup handler: {e}");
        }
    });
}

/// A temporary directory, removed on drop.
pub struct ScratchDir {
    path: PathBuf,
    id: u64,
}

impl ScratchDir {
    pub fn new(tag: &str) -> Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "skiff-store-bench-{}-{tag}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        let id = register(Owned::Dir(path.clone()));
        Ok(Self { path, id })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        unregister(self.id);
    }
}

/// A child process killed (SIGKILL) and reaped on drop. Its stderr is drained by a
/// thread; the lines are available through [`Proc::wait_line`] and the last ones are kept
/// for error messages.
pub struct Proc {
    name: String,
    child: Child,
    id: u64,
    lines: mpsc::Receiver<String>,
    tail: std::sync::Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Result<Self> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        let id = register(Owned::Pid(child.id()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        let tail = std::sync::Arc::new(Mutex::new(Vec::new()));
        let keep = tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                {
                    let mut t = keep.lock().unwrap_or_else(|e| e.into_inner());
                    if t.len() >= 20 {
                        t.remove(0);
                    }
                    t.push(line.clone());
                }
                // The receiver may be gone once the caller stopped waiting: keep draining.
                let _ = tx.send(line);
            }
        });
        Ok(Self {
            name: name.to_string(),
            child,
            id,
            lines,
            tail,
        })
    }

    /// Wait (until `deadline`) for a stderr line `pick` returns something for.
    pub fn wait_line<T>(
        &mut self,
        deadline: Instant,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("{} exited ({status}): {}", self.name, self.tail());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "{}: not ready in time; last output: {}",
                    self.name,
                    self.tail()
                );
            }
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(500)))
            {
                Ok(line) => {
                    if let Some(v) = pick(&line) {
                        return Ok(v);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("{} closed its stderr: {}", self.name, self.tail())
                }
            }
        }
    }

    /// Fail if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{} exited ({status}): {}", self.name, self.tail());
        }
        Ok(())
    }

    fn tail(&self) -> String {
        self.tail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join(" | ")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        unregister(self.id);
    }
}

/// A free TCP port on 127.0.0.1 (for programs that cannot be told to pick port 0 and report
/// it, like etcd). The port is released before returning; a clash is unlikely and makes
/// the program fail to start, which the caller reports.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 for a free port")?;
    Ok(l.local_addr()?.port())
}
