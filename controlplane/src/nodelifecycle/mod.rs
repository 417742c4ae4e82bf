//! Node lifecycle: nodes whose heartbeat (their Lease in `kube-node-lease`, or the Ready
//! condition's `lastHeartbeatTime`) has not moved for a grace period become Ready=Unknown
//! (`NodeStatusUnknown`) with the taint `node.kubernetes.io/unreachable:NoExecute`; their
//! pods are marked not ready, then deleted after the eviction grace (or the pod's own
//! `tolerationSeconds`) so their owners replace them.
//!
//! Heartbeats are judged by when this controller *saw* them change (local monotonic time),
//! as Kubernetes does, so clock skew between nodes and servers does not matter.
//! [`health`] owns the heartbeat bookkeeping and node status/taint writes, [`eviction`]
//! the pods.

pub mod eviction;
pub mod health;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use tokio::sync::mpsc;

use crate::api::ApiClient;
use crate::endpoints::reflector;

pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Timing of the controller.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// A heartbeat older than this makes the node Unknown (Kubernetes: 40 s).
    pub grace: Duration,
    /// Pods of an unreachable node are deleted this long after the taint (Kubernetes: 300 s
    /// through the default `tolerationSeconds`).
    pub eviction: Duration,
    /// How often nodes are checked.
    pub period: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(40),
            eviction: Duration::from_secs(300),
            period: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// Defaults with `grace` and `eviction`, checked often enough for short test graces.
    pub fn with(grace: Duration, eviction: Duration) -> Self {
        Self {
            grace,
            eviction,
            period: (grace / 8).clamp(Duration::from_millis(100), Duration::from_secs(5)),
        }
    }
}

/// Run the controller until its task is dropped.
pub async fn run(client: ApiClient, cfg: Config) {
    let (node_tx, mut node_rx) = mpsc::unbounded_channel();
    let (lease_tx, mut lease_rx) = mpsc::unbounded_channel();
    let (pod_tx, mut pod_rx) = mpsc::unbounded_channel();
    let (nodes, t1) = reflector::spawn::<Node>(client.clone(), node_tx);
    let (leases, t2) = reflector::spawn::<Lease>(client.clone(), lease_tx);
    let (pods, t3) = reflector::spawn::<Pod>(client.clone(), pod_tx);
    let mut tracker = health::Tracker::default();
    let mut tick = tokio::time::interval(cfg.period);
    loop {
        tokio::select! {
            Some(_) = node_rx.recv() => {}
            Some(_) = lease_rx.recv() => {}
            Some(_) = pod_rx.recv() => {}
            _ = tick.tick() => {
                let nodes: Vec<Node> = nodes.read().expect("cache lock").values().cloned().collect();
                let leases = leases.read().expect("cache lock").clone();
                let unhealthy = tracker.check(&client, &cfg, &nodes, &leases).await;
                let pods: Vec<Pod> = pods.read().expect("cache lock").values().cloned().collect();
                eviction::pass(&client, &cfg, &unhealthy, &pods).await;
            }
            else => break,
        }
    }
    t1.abort();
    t2.abort();
    t3.abort();
}
