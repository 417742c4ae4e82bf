//! Pods of unhealthy nodes: marked not ready at once, deleted after the eviction grace (or
//! their toleration's `tolerationSeconds`; a toleration without it keeps the pod), and
//! force-deleted once their own grace period has passed too, since no kubelet confirms.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::health::Unhealthy;
use super::Config;
use crate::api::objects::DeleteOptions;
use crate::api::patch::PatchType;
use crate::api::ApiClient;

/// How long `pod` tolerates `taint` (`None`: forever).
fn tolerated_for(pod: &Pod, taint: &str, default: Duration) -> Option<Duration> {
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_ref());
    let matching = tolerations.into_iter().flatten().find(|t| {
        let key_ok = t.key.as_deref().is_none_or(|k| k.is_empty() || k == taint)
            && (t.key.is_some() || t.operator.as_deref() == Some("Exists"));
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == "NoExecute");
        key_ok && effect_ok
    });
    match matching {
        None => Some(default),
        Some(t) => t
            .toleration_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64)),
    }
}

/// One pass over the pods of `unhealthy` nodes.
pub async fn pass(client: &ApiClient, cfg: &Config, unhealthy: &[Unhealthy], pods: &[Pod]) {
    let now = chrono::Utc::now();
    for u in unhealthy {
        let since = u.since.as_ref().map(|t| t.0).unwrap_or(now);
        let tainted_for = (now - since).to_std().unwrap_or_default();
        let on_node = pods.iter().filter(|p| {
            p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(u.node.as_str())
        });
        for pod in on_node {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            if crate::pod_status::is_ready(pod) {
                mark_not_ready(client, pod, &ns, &name).await;
            }
            if let Some(deleting) = &pod.metadata.deletion_timestamp {
                // Graceful deletion waits for a kubelet that is gone: finish it.
                if deleting.0 <= now {
                    let opts = DeleteOptions {
                        grace_period_seconds: Some(0),
                        ..Default::default()
                    };
                    log::info!("node {}: force-deleting pod {ns}/{name}", u.node);
                    let _ = client.delete::<Pod>(Some(&ns), &name, &opts).await;
                }
                continue;
            }
            let Some(limit) = tolerated_for(pod, u.taint, cfg.eviction) else {
                continue;
            };
            if tainted_for >= limit {
                log::info!("node {}: evicting pod {ns}/{name}", u.node);
                if let Err(e) = client
                    .delete::<Pod>(Some(&ns), &name, &DeleteOptions::default())
                    .await
                {
                    if e.code != 404 {
                        log::warn!("evicting pod {ns}/{name}: {}", e.message);
                    }
                }
            }
        }
    }
}

async fn mark_not_ready(client: &ApiClient, pod: &Pod, ns: &str, name: &str) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let conds: Vec<serde_json::Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            if c.type_ == "Ready" || c.type_ == "ContainersReady" {
                v["status"] = json!("False");
                v["lastTransitionTime"] = json!(now);
                v["reason"] = json!("NodeNotReady");
            }
            v
        })
        .collect();
    let patch = json!({"status": {"conditions": conds}});
    if let Err(e) = client
        .patch::<Pod>(Some(ns), name, PatchType::Merge, &patch, true)
        .await
    {
        log::debug!("marking pod {ns}/{name} not ready: {}", e.message);
    }
}
