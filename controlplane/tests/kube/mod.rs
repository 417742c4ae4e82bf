//! Harness for API server tests: a one-replica store plus the API server on loopback, a
//! temporary kubeconfig, and bounded runs of the real `kubectl`.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use skiff_controlplane::api::{self, ApiServer};
use skiff_controlplane::{ControlPlane, NodeConfig};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Deadline of one kubectl run.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub server: ApiServer,
    pub cp: Arc<ControlPlane>,
    pub kubeconfig: PathBuf,
}

/// Output of a finished command.
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub async fn start() -> Cluster {
    start_with_history(10_000).await
}

/// A cluster whose store keeps `history` events for watch resumption.
pub async fn start_with_history(history: usize) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::new(1, dir.path().join("store"), "127.0.0.1:0".parse().unwrap());
    cfg.watch_history = history;
    cfg.heartbeat = Duration::from_millis(50);
    cfg.election_timeout = (Duration::from_millis(150), Duration::from_millis(300));
    let cp = ControlPlane::start(cfg).await.expect("start store");
    cp.bootstrap().await.expect("bootstrap store");
    let cp = Arc::new(cp);
    let server = tokio::time::timeout(
        Duration::from_secs(20),
        api::serve(cp.clone(), "127.0.0.1:0".parse().unwrap()),
    )
    .await
    .expect("API server start timed out")
    .expect("API server start");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kubeconfig_text(&server)).unwrap();
    Cluster {
        dir,
        server,
        cp,
        kubeconfig,
    }
}

pub fn kubeconfig_text(server: &ApiServer) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: \
         http://{}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: \
         skiff\n    namespace: default\ncurrent-context: skiff\nusers:\n- name: skiff\n  user: {{}}\n",
        server.local_addr()
    )
}

impl Cluster {
    pub fn url(&self) -> String {
        format!("http://{}", self.server.local_addr())
    }

    fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("kube-cache")
    }

    /// `kubectl` with this cluster's kubeconfig and a private discovery cache.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache_dir())
            .args(args)
            .env("HOME", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Run kubectl to completion (bounded), feeding `stdin`.
    pub async fn kubectl_in(&self, args: &[&str], stdin: &str) -> Out {
        let mut child = self.kubectl_cmd(args).spawn().expect("spawn kubectl");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let out = tokio::time::timeout(KUBECTL_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub async fn kubectl(&self, args: &[&str]) -> Out {
        self.kubectl_in(args, "").await
    }

    /// Run kubectl and require success; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    /// `kubectl apply -f -` of `manifest`; returns stdout.
    pub async fn apply(&self, manifest: &str, extra: &[&str]) -> Out {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.kubectl_in(&args, manifest).await
    }

    /// `kubectl <args> -o json`, parsed.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a).await).expect("kubectl -o json")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Header cells of a table printed by kubectl.
pub fn header(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or("")
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
