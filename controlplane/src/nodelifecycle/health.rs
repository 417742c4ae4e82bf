//! Heartbeat bookkeeping and the node status and taint writes.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::{Config, LEASE_NAMESPACE, NOT_READY_TAINT, UNREACHABLE_TAINT};
use crate::api::patch::PatchType;
use crate::api::ApiClient;

/// A node found unhealthy: its name and its NoExecute taint's key and time added.
#[derive(Debug, Clone)]
pub struct Unhealthy {
    pub node: String,
    pub taint: &'static str,
    pub since: Option<Time>,
}

/// When each node's heartbeat was last seen to change.
#[derive(Debug, Default)]
pub struct Tracker {
    seen: HashMap<String, (String, Instant)>,
}

fn ready(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The node's heartbeat as a comparable string (lease renew time + Ready heartbeat).
fn heartbeat(node: &Node, leases: &BTreeMap<String, Lease>) -> String {
    let name = node.metadata.name.as_deref().unwrap_or("");
    let lease = leases
        .get(&format!("{LEASE_NAMESPACE}/{name}"))
        .and_then(|l| l.spec.as_ref()?.renew_time.as_ref())
        .map(|t| t.0.to_rfc3339())
        .unwrap_or_default();
    let hb = ready(node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0.to_rfc3339())
        .unwrap_or_default();
    format!("{lease}|{hb}")
}

impl Tracker {
    /// Update node conditions and taints; return the nodes whose pods may need eviction.
    pub async fn check(
        &mut self,
        client: &ApiClient,
        cfg: &Config,
        nodes: &[Node],
        leases: &BTreeMap<String, Lease>,
    ) -> Vec<Unhealthy> {
        let now = Instant::now();
        self.seen
            .retain(|n, _| nodes.iter().any(|x| x.metadata.name.as_ref() == Some(n)));
        let mut out = Vec::new();
        for node in nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let hb = heartbeat(node, leases);
            let entry = self.seen.entry(name.clone()).or_insert((hb.clone(), now));
            if entry.0 != hb {
                *entry = (hb, now);
            }
            let stale = now.duration_since(entry.1) > cfg.grace;
            let status = ready(node).map(|c| c.status.as_str()).unwrap_or("Unknown");
            if stale && ready(node).is_none_or(|c| c.status != "Unknown") {
                mark_unknown(client, node).await;
                continue; // the taint follows on the next pass, from the new status
            }
            let want = match status {
                "True" => None,
                "False" => Some(NOT_READY_TAINT),
                _ if stale || ready(node).is_some() => Some(UNREACHABLE_TAINT),
                _ => None, // never reported and not yet past the grace
            };
            let taints = node
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default();
            let ours = |t: &Taint| {
                t.effect == "NoExecute" && (t.key == UNREACHABLE_TAINT || t.key == NOT_READY_TAINT)
            };
            let mut kept: Vec<Taint> = taints.iter().filter(|t| !ours(t)).cloned().collect();
            let current = taints.iter().find(|t| ours(t));
            match (want, current) {
                (Some(w), Some(c)) if c.key == w => out.push(Unhealthy {
                    node: name,
                    taint: w,
                    since: c.time_added.clone(),
                }),
                (None, None) => {}
                (w, _) => {
                    if let Some(w) = w {
                        kept.push(Taint {
                            key: w.into(),
                            effect: "NoExecute".into(),
                            time_added: Some(Time(chrono::Utc::now())),
                            value: None,
                        });
                        log::info!("node {name}: tainted {w}:NoExecute");
                    }
                    let patch = json!({"spec": {"taints": kept}});
                    if let Err(e) = client
                        .patch::<Node>(None, &name, PatchType::Merge, &patch, false)
                        .await
                    {
                        log::warn!("tainting node {name}: {}", e.message);
                    }
                }
            }
        }
        out
    }
}

/// Set every condition of `node` to Unknown (`NodeStatusUnknown`).
async fn mark_unknown(client: &ApiClient, node: &Node) {
    let name = node.metadata.name.clone().unwrap_or_default();
    let now = Time(chrono::Utc::now());
    let mut conds = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if !conds.iter().any(|c| c.type_ == "Ready") {
        conds.push(NodeCondition {
            type_: "Ready".into(),
            reason: Some("NodeStatusNeverUpdated".into()),
            ..Default::default()
        });
    }
    for c in &mut conds {
        if c.status != "Unknown" {
            c.last_transition_time = Some(now.clone());
        }
        c.status = "Unknown".into();
        if c.reason.as_deref() != Some("NodeStatusNeverUpdated") {
            c.reason = Some("NodeStatusUnknown".into());
        }
        c.message = Some("Kubelet stopped posting node status.".into());
    }
    let patch = json!({"status": {"conditions": conds}});
    match client
        .patch::<Node>(None, &name, PatchType::Merge, &patch, true)
        .await
    {
        Ok(_) => log::info!("node {name}: heartbeat lost, Ready=Unknown"),
        Err(e) => log::warn!("marking node {name} Unknown: {}", e.message),
    }
}
