//! The kubelet under test: `skiff agent --no-proxy` (a release build) as its own process in
//! the lab node's netns, so its memory is its own: [`AgentProc::rss_mb`] reads VmRSS of
//! that one process from /proc (the container shims are separate processes, not counted).

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use skiff_tests::lab::{Node, Proc};

pub struct AgentProc {
    proc: Proc,
    log: PathBuf,
}

/// What the agent needs to know.
pub struct AgentOpts<'a> {
    pub bin: &'a Path,
    pub server: String,
    pub state_dir: &'a Path,
    pub node_ip: Ipv4Addr,
    pub log: PathBuf,
}

impl AgentProc {
    pub fn start(node: &Node, o: AgentOpts<'_>) -> Result<Self> {
        let mut cmd = Command::new(o.bin);
        cmd.args(["agent", "--no-proxy", "--node-name", node.name()])
            .args(["--server", &o.server])
            .arg("--state-dir")
            .arg(o.state_dir)
            .args(["--node-ip", &o.node_ip.to_string()])
            .args(["--heartbeat-interval-ms", "2000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let proc = node
            .netns()
            .spawn(cmd)
            .with_context(|| format!("starting {} agent", o.bin.display()))?;
        let stderr = proc.child().stderr.take().context("agent stderr")?;
        let mut file = std::fs::File::create(&o.log)
            .with_context(|| format!("creating {}", o.log.display()))?;
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
            }
        });
        Ok(Self { proc, log: o.log })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Fails with the end of the agent's log if it has exited.
    pub fn check_alive(&self) -> Result<()> {
        if let Some(status) = self.proc.try_wait() {
            anyhow::bail!(
                "skiff agent exited ({status}); the end of its log ({}):\n{}",
                self.log.display(),
                self.log_tail(30)
            );
        }
        Ok(())
    }

    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Resident memory of the agent process (VmRSS), MiB.
    pub fn rss_mb(&self) -> Result<f64> {
        status_kb(self.pid(), "VmRSS:").map(|kb| kb as f64 / 1024.0)
    }

    /// Peak resident memory (VmHWM), MiB.
    pub fn peak_rss_mb(&self) -> Result<f64> {
        status_kb(self.pid(), "VmHWM:").map(|kb| kb as f64 / 1024.0)
    }

    /// SIGTERM, then SIGKILL after 10 s. Pods keep running (the kubelet re-adopts them).
    pub fn stop(&self) {
        self.proc.stop(Duration::from_secs(10));
    }
}

fn status_kb(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {key} in {path}"))
}
