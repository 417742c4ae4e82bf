//! Running the real `skiff agent` inside a lab node.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::lab::{LabError, Node, Proc};

/// Failure to find or start the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "skiff binary not found at {}: build it (`cargo xtask build`, or `cargo build -p skiff-agent`) or set SKIFF_BIN",
        path.display()
    )]
    NotFound { path: PathBuf },
    #[error(transparent)]
    Lab(#[from] LabError),
}

/// The `skiff` binary: `$SKIFF_BIN`, else `<workspace>/target/debug/skiff`.
pub fn skiff_bin() -> Result<PathBuf, AgentError> {
    let path = match std::env::var_os("SKIFF_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/skiff"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(AgentError::NotFound { path })
    }
}

/// A running `skiff agent --node-name <node> --manifests <dir>`; its stderr
/// is collected (and echoed with a prefix).
#[derive(Debug)]
pub struct Agent {
    proc: Proc,
    node: String,
    log: Arc<Mutex<String>>,
}

impl Agent {
    /// Starts the agent in `node`'s netns (`RUST_LOG=info` unless set).
    pub fn start(node: &Node, manifests: &Path) -> Result<Self, AgentError> {
        Self::start_with(node, manifests, &[])
    }

    /// Like [`Agent::start`], with more command-line arguments.
    pub fn start_with(node: &Node, manifests: &Path, extra: &[&str]) -> Result<Self, AgentError> {
        let mut cmd = Command::new(skiff_bin()?);
        cmd.arg("agent")
            .arg("--node-name")
            .arg(node.name())
            .arg("--manifests")
            .arg(manifests)
            .args(["--pod-veth-prefix", "lxc"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let proc = node.netns().spawn(cmd)?;
        let stderr = proc.child().stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (sink, tag) = (log.clone(), node.name().to_owned());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[agent {tag}] {line}");
                let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        Ok(Self {
            proc,
            node: node.name().to_owned(),
            log,
        })
    }

    /// Everything the agent wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn proc(&self) -> &Proc {
        &self.proc
    }

    /// Panics with the agent's log if it has exited.
    pub fn assert_running(&self) {
        if let Some(status) = self.proc.try_wait() {
            panic!(
                "skiff agent for {} exited ({status}); its log:\n{}",
                self.node,
                self.log()
            );
        }
    }

    /// SIGTERM and wait (up to 10 s, then SIGKILL). The agent leaves its maps
    /// and links pinned: the data path keeps running.
    pub fn terminate(&self) -> Option<ExitStatus> {
        self.proc.stop(Duration::from_secs(10))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.proc.kill();
    }
}
