//! The processes of a lab cluster: `skiff server`, `skiff agent`, `skiff image import`,
//! each logging to `<work>/logs/<name>.log`, and a tiny HTTP GET for readiness.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{AGENT_PORT, API_PORT, KUBELET_PORT, RAFT_PORT};
use crate::lab::{Node, Proc};

pub fn log_path(work: &Path, name: &str) -> PathBuf {
    work.join("logs").join(format!("{name}.log"))
}

fn logged(mut cmd: Command, work: &Path, name: &str) -> Result<Command> {
    let path = log_path(work, name);
    let log = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or("info".into()),
        );
    Ok(cmd)
}

/// Replica `i` on `node`; replicas after the first join through `seed`'s Raft address.
pub fn server(
    skiff: &Path,
    node: &Node,
    i: usize,
    seed: Ipv4Addr,
    work: &Path,
    extra: &[String],
) -> Result<Proc> {
    let ip = node.addr();
    let mut cmd = Command::new(skiff);
    cmd.arg("server")
        .arg("--data-dir")
        .arg(work.join(format!("server-{i}")))
        .arg("--listen")
        .arg(format!("{ip}:{API_PORT}"))
        .arg("--raft-listen")
        .arg(format!("{ip}:{RAFT_PORT}"))
        .arg("--agent-listen")
        .arg(format!("{ip}:{AGENT_PORT}"))
        .arg("--advertise-address")
        .arg(ip.to_string())
        .arg("--node-id")
        .arg((i + 1).to_string());
    if i > 0 {
        cmd.arg("--join").arg(format!("{seed}:{RAFT_PORT}"));
    }
    cmd.args(extra);
    let cmd = logged(cmd, work, &format!("server-{i}"))?;
    Ok(node.netns().spawn(cmd)?)
}

/// The agent (kubelet and service proxy) of `node`, talking to the replica at `server`.
pub fn agent(
    skiff: &Path,
    node: &Node,
    server: Ipv4Addr,
    state: &Path,
    work: &Path,
    extra: &[String],
) -> Result<Proc> {
    let mut cmd = Command::new(skiff);
    cmd.arg("agent")
        .args(["--node-name", node.name()])
        .arg("--server")
        .arg(format!("http://{server}:{AGENT_PORT}"))
        .arg("--node-ip")
        .arg(node.addr().to_string())
        .arg("--state-dir")
        .arg(state)
        .arg("--netns-dir")
        .arg(state.join("netns"))
        .arg("--cgroup-parent")
        .arg(super::cgroup_parent(node))
        // The agent pins under `<bpffs>/<node name>`, i.e. `node.bpffs_dir()`.
        .arg("--bpffs")
        .arg(node.bpffs_dir().parent().expect("a pin root"))
        .args(["--pod-veth-prefix", "lxc"])
        .arg("--kubelet-listen")
        .arg(format!("{}:{KUBELET_PORT}", node.addr()))
        .args(extra);
    let cmd = logged(cmd, work, &format!("agent-{}", node.index()))?;
    Ok(node.netns().spawn(cmd)?)
}

/// `skiff image import` of `archive` into the node state `state`.
pub fn import(skiff: &Path, state: &Path, archive: &Path) -> Result<()> {
    let out = Command::new(skiff)
        .arg("image")
        .arg("--state-dir")
        .arg(state)
        .arg("import")
        .arg(archive)
        .output()
        .context("running skiff image import")?;
    if !out.status.success() {
        bail!(
            "importing {}: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// One `GET path` over HTTP/1.1 (`Connection: close`): status code and body.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let timeout = Duration::from_secs(2);
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    Ok((code, body.unwrap_or_default()))
}

/// Remove the (empty, once the pods are gone) cgroup tree `name` from every hierarchy:
/// each v1 controller under /sys/fs/cgroup, or the unified one.
pub fn remove_cgroups(name: &str) {
    fn rmdir_tree(dir: &Path) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rmdir_tree(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    let root = Path::new("/sys/fs/cgroup");
    rmdir_tree(&root.join(name));
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        rmdir_tree(&e.path().join(name));
    }
}
