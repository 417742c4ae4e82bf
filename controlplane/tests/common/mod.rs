//! Helpers for in-process replicas on loopback ephemeral ports.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use skiff_controlplane::types::NodeId;
use skiff_controlplane::{ControlPlane, NodeConfig};
use tokio::time::Instant;

/// Fast timings so elections settle quickly on a busy 2-core machine; small snapshot
/// interval so snapshots and log compaction happen during the tests.
pub fn config(id: NodeId, dir: &Path) -> NodeConfig {
    let mut cfg = NodeConfig::new(id, dir, "127.0.0.1:0".parse().unwrap());
    cfg.heartbeat = Duration::from_millis(50);
    cfg.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
    cfg.snapshot_every = 20;
    cfg.keep_logs = 5;
    cfg.request_timeout = Duration::from_secs(10);
    cfg
}

pub async fn start(id: NodeId, dir: &Path) -> ControlPlane {
    ControlPlane::start(config(id, dir))
        .await
        .expect("start replica")
}

/// Poll `cond` until it returns `Some` or `timeout` passes (then panic with `what`).
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until `node` has applied at least `revision`.
pub async fn applied(node: &ControlPlane, revision: u64) {
    node.raft()
        .wait(Some(Duration::from_secs(10)))
        .applied_index_at_least(Some(revision), "applied")
        .await
        .unwrap_or_else(|e| panic!("replica {} did not apply {revision}: {e}", node.id()));
}
