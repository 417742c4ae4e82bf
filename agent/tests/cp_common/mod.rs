//! Helpers for the agent API tests: a real in-process server on loopback ephemeral ports,
//! the real client, and deadline-bound waits.

#![allow(dead_code, reason = "each test uses a different subset")]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use skiff_agent::cpclient::{ConnectOptions, CpClient, ResumingWatch, WatchItem};
use skiff_controlplane::api::ApiClient;
use skiff_controlplane::nodelifecycle;
use skiff_controlplane::server::{Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

pub const DEADLINE: Duration = Duration::from_secs(30);

/// A server with its data directory (removed on drop).
pub struct TestServer {
    pub server: Option<Server>,
    dir: PathBuf,
}

impl TestServer {
    pub async fn start(tag: &str, grace: Duration, history: Option<usize>) -> Self {
        let dir = std::env::temp_dir().join(format!("skiff-agentapi-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lo = "127.0.0.1:0".parse().unwrap();
        let mut cfg = ServerConfig::new(&dir, lo, lo);
        cfg.fast_raft = true;
        cfg.lifecycle = nodelifecycle::Config::with(grace, Duration::from_secs(600));
        cfg.watch_history = history;
        let server = Server::start(cfg).await.expect("start server");
        Self {
            server: Some(server),
            dir,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    pub fn api(&self) -> ApiClient {
        self.server().api().client()
    }

    pub async fn client(&self) -> CpClient {
        let addr = self.server().agent_addr().to_string();
        CpClient::connect(&addr, ConnectOptions::default())
            .await
            .expect("connect to the agent API")
    }

    /// GET `path` from the Kubernetes HTTP API (what kubectl sees) as JSON.
    pub async fn http_get(&self, path: &str) -> serde_json::Value {
        let addr = self.server().api_addr();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "GET {path}: {head}\n{body}"
        );
        serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Poll `cond` until it returns `Some` or `DEADLINE` passes (then panic with `what`).
pub async fn eventually<T, F, Fut>(what: &str, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The next watch item, within the deadline.
pub async fn next(w: &mut ResumingWatch, what: &str) -> WatchItem {
    tokio::time::timeout(DEADLINE, w.next())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|e| panic!("watch failed waiting for {what}: {e}"))
}

/// Skip items until `f` returns `Some`, within the deadline.
pub async fn until<T>(
    w: &mut ResumingWatch,
    what: &str,
    mut f: impl FnMut(&WatchItem) -> Option<T>,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let item = tokio::time::timeout(left, w.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|e| panic!("watch failed waiting for {what}: {e}"));
        if let Some(v) = f(&item) {
            return v;
        }
    }
}

pub fn node(name: &str) -> Node {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        },
    }))
    .unwrap()
}

/// A pod in `default`, bound to `node` at creation when given.
pub fn pod(name: &str, node: Option<&str>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: node.map(str::to_string),
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.local/app:1".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}
