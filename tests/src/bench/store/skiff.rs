//! A Skiff cluster of 1 or 3 `skiff server` replicas on 127.0.0.1 (port 0 everywhere,
//! addresses read from the ready lines) and the HTTP client the load uses.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::procs::{Proc, ScratchDir};

const START_TIMEOUT: Duration = Duration::from_secs(60);

struct Replica {
    proc: Proc,
    /// `host:port` of the Kubernetes API.
    api: String,
    /// `host:port` of the Raft service.
    raft: String,
}

pub struct SkiffCluster {
    replicas: Vec<Replica>,
    _dir: ScratchDir,
}

impl SkiffCluster {
    pub fn start(bin: &Path, count: usize) -> Result<Self> {
        let dir = ScratchDir::new(&format!("skiff{count}"))?;
        // A server built with the gRPC agent API serves it on its own port: keep it local.
        let help = Command::new(bin)
            .args(["server", "--help"])
            .output()
            .with_context(|| format!("running {} server --help", bin.display()))?;
        let agent_port = String::from_utf8_lossy(&help.stdout).contains("--agent-listen");
        let mut replicas: Vec<Replica> = Vec::new();
        for id in 1..=count as u64 {
            let mut cmd = Command::new(bin);
            cmd.args(["server", "--listen", "127.0.0.1:0"])
                .args(["--raft-listen", "127.0.0.1:0"])
                .arg("--data-dir")
                .arg(dir.path().join(format!("r{id}")))
                .args(["--node-id", &id.to_string()])
                .env("RUST_LOG", "info");
            if agent_port {
                cmd.args(["--agent-listen", "127.0.0.1:0"]);
            }
            if let Some(first) = replicas.first() {
                cmd.args(["--join", &first.raft]);
            }
            let mut proc = Proc::spawn(&format!("skiff server {id}"), cmd)?;
            let deadline = Instant::now() + START_TIMEOUT;
            let raft = proc.wait_line(deadline, |l| after(l, " serving on "))?;
            let api = proc.wait_line(deadline, |l| after(l, "Kubernetes API on http://"))?;
            replicas.push(Replica { proc, api, raft });
        }
        Ok(Self {
            replicas,
            _dir: dir,
        })
    }

    /// The API address of the replica that leads (writes there skip the follower hop, as
    /// the etcd side writes to its leader). Waits until every replica is a voter.
    pub async fn leader_api(&mut self, client: &HttpJson) -> Result<String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            for r in &mut self.replicas {
                r.proc.check_alive()?;
            }
            let status = client
                .get(&self.replicas[0].api, "/skiff/v1/status")
                .await?;
            let reps = status["replicas"].as_array().cloned().unwrap_or_default();
            let voters = reps
                .iter()
                .filter(|r| matches!(r["role"].as_str(), Some("leader" | "follower")))
                .count();
            let leader = reps
                .iter()
                .find(|r| r["role"] == "leader")
                .and_then(|r| r["address"].as_str());
            if voters == self.replicas.len() {
                if let Some(r) = self
                    .replicas
                    .iter()
                    .find(|r| Some(r.raft.as_str()) == leader)
                {
                    return Ok(r.api.clone());
                }
            }
            if Instant::now() >= deadline {
                bail!("skiff cluster not settled in {START_TIMEOUT:?}: {status}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn after(line: &str, marker: &str) -> Option<String> {
    let i = line.find(marker)?;
    line[i + marker.len()..]
        .split_whitespace()
        .next()
        .map(str::to_string)
}

/// A pooled HTTP/1.1 client (one connection per concurrent request).
#[derive(Clone)]
pub struct HttpJson {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpJson {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            inner: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(1024)
                .build(connector),
        }
    }
}

impl HttpJson {
    /// `POST` a JSON body; Ok only on `201 Created`.
    pub async fn post(&self, addr: &str, path: &str, body: Bytes) -> Result<()> {
        let req = hyper::Request::post(format!("http://{addr}{path}"))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .with_context(|| format!("building POST {path}"))?;
        let resp = self
            .inner
            .request(req)
            .await
            .with_context(|| format!("POST http://{addr}{path}"))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if status != hyper::StatusCode::CREATED {
            bail!(
                "POST http://{addr}{path}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(())
    }

    pub async fn get(&self, addr: &str, path: &str) -> Result<serde_json::Value> {
        let req = hyper::Request::get(format!("http://{addr}{path}"))
            .body(Full::new(Bytes::new()))
            .with_context(|| format!("building GET {path}"))?;
        let resp = self
            .inner
            .request(req)
            .await
            .with_context(|| format!("GET http://{addr}{path}"))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("GET http://{addr}{path}: HTTP {status}");
        }
        serde_json::from_slice(&bytes).with_context(|| format!("decoding GET {path}"))
    }
}
