//! Harness for controller tests: a cluster (see `kube`) with every controller running,
//! a stand-in for the kubelet that marks pods Running and Ready, and deadline-bounded waits.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use skiff_controlplane::api::client::Selectors;
use skiff_controlplane::api::patch::PatchType;
use skiff_controlplane::api::ApiClient;
use skiff_controlplane::controllers::{self, Controllers};
use tokio::time::Instant;

use crate::kube::{self, Cluster};

pub const WAIT: Duration = Duration::from_secs(30);

pub async fn start() -> (Cluster, Controllers) {
    let c = kube::start().await;
    let ctrl = controllers::spawn_all(&c.server.client());
    (c, ctrl)
}

/// Poll `cond` until it returns `Some` (panics with `what` after [`WAIT`]).
pub async fn eventually<T, F, Fut>(what: &str, cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_within(what, WAIT, cond).await
}

/// Poll `cond` until it returns `Some` (panics with `what` after `wait`).
pub async fn eventually_within<T, F, Fut>(what: &str, wait: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + wait;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pods in `ns` matching `labels`, not being deleted.
pub async fn live_pods(api: &ApiClient, ns: &str, labels: &str) -> Vec<Pod> {
    let sel = Selectors {
        labels: labels.into(),
        ..Default::default()
    };
    api.list::<Pod>(Some(ns), &sel)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What a kubelet would report: the pod runs and is ready (through the status subresource).
pub async fn mark_ready(api: &ApiClient, ns: &str, name: &str) {
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True",
         "lastTransitionTime": chrono_now()}]}});
    let r = api
        .patch::<Pod>(Some(ns), name, PatchType::Merge, &status, true)
        .await;
    if let Err(e) = r {
        assert_eq!(e.code, 404, "marking {name} ready: {e}");
    }
}

/// Mark every not-ready pod matching `labels` ready; returns how many are ready now.
pub async fn ready_all(api: &ApiClient, ns: &str, labels: &str) -> usize {
    let pods = live_pods(api, ns, labels).await;
    for p in pods.iter().filter(|p| !is_ready(p)) {
        mark_ready(api, ns, p.metadata.name.as_deref().unwrap()).await;
    }
    pods.len()
}

/// The revision numbers `kubectl rollout history` lists.
pub fn revisions(history: &str) -> Vec<&str> {
    history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect()
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
