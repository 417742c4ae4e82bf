//! Repair: reconcile the claim keys with the stored objects that hold the values.
//!
//! A claim whose owner no longer holds the value (a crash between claim and write, a
//! removal through finalizers) is released once it has been seen orphaned, unchanged, on
//! two passes in a row (a claim of a write still in flight gets written meanwhile). A value
//! held by an object without a claim (a store restored from elsewhere) is claimed again.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;

use super::claims::{self, Claim, Owner, NODE_PORTS, POD_CIDRS, SERVICE_IPS};
use super::{podcidr, service};
use crate::api::ApiError;
use crate::{Consistency, ControlPlane, Op};

/// How often the repair pass runs.
pub const REPAIR_EVERY: Duration = Duration::from_secs(10);

/// Claims seen orphaned on the last pass: key → claim revision.
#[derive(Debug, Default)]
pub struct Repair {
    suspects: HashMap<String, u64>,
}

async fn stored(cp: &ControlPlane, resource: &str) -> Result<Vec<Value>, ApiError> {
    let prefix = crate::keys::resource_prefix("", resource, None);
    let page = cp
        .list(&prefix, 0, None, Consistency::Linearizable)
        .await
        .map_err(|e| ApiError::internal(format!("listing {resource}: {e}")))?;
    Ok(page
        .items
        .iter()
        .filter_map(|kv| serde_json::from_str(&kv.value).ok())
        .collect())
}

fn owner_of(obj: &Value, namespaced: bool) -> Owner {
    let m = &obj["metadata"];
    let name = m["name"].as_str().unwrap_or("");
    Owner {
        name: if namespaced {
            format!("{}/{name}", m["namespace"].as_str().unwrap_or(""))
        } else {
            name.to_string()
        },
        uid: m["uid"].as_str().unwrap_or("").to_string(),
    }
}

impl Repair {
    /// One pass over services (cluster IPs, NodePorts) and nodes (pod CIDRs).
    pub async fn pass(&mut self, cp: &ControlPlane) -> Result<(), ApiError> {
        let services = stored(cp, "services").await?;
        let nodes = stored(cp, "nodes").await?;
        let mut held: HashMap<(&str, String), Owner> = HashMap::new();
        for svc in &services {
            let o = owner_of(svc, true);
            if let Some(ip) = service::cluster_ip(svc) {
                held.insert((SERVICE_IPS, ip), o.clone());
            }
            if matches!(
                svc.pointer("/spec/type").and_then(Value::as_str),
                Some("NodePort" | "LoadBalancer")
            ) {
                for p in service::node_ports(svc) {
                    held.insert((NODE_PORTS, p.to_string()), o.clone());
                }
            }
        }
        for node in &nodes {
            if let Some(c) = podcidr::pod_cidr(node) {
                held.insert((POD_CIDRS, podcidr::claim_value(&c)), owner_of(node, false));
            }
        }
        let mut seen = HashSet::new();
        for prefix in [SERVICE_IPS, NODE_PORTS, POD_CIDRS] {
            for (value, (owner, rev)) in claims::list(cp, prefix).await? {
                let key = format!("{prefix}{value}");
                let holder = held.get(&(prefix, value.clone()));
                if holder.is_some_and(|h| h.uid == owner.uid) {
                    continue;
                }
                seen.insert(key.clone());
                if self.suspects.get(&key) == Some(&rev) {
                    log::info!("releasing {key}: {} no longer holds it", owner.name);
                    let op = Op::Delete {
                        key: key.clone(),
                        expected_revision: Some(rev),
                    };
                    if let Err(e) = cp.apply(op).await {
                        log::debug!("releasing {key}: {e}");
                    }
                } else {
                    self.suspects.insert(key, rev);
                }
            }
        }
        self.suspects.retain(|k, _| seen.contains(k));
        for ((prefix, value), owner) in held {
            if let Claim::New = claims::claim(cp, prefix, &value, &owner).await? {
                log::warn!(
                    "claimed {prefix}{value} for {}: it had no claim",
                    owner.name
                );
            }
        }
        Ok(())
    }
}

/// Run repair passes until the task is dropped; only the Raft leader's pass writes.
pub async fn run(cp: std::sync::Arc<ControlPlane>) {
    let mut repair = Repair::default();
    loop {
        if cp.leader().is_some_and(|(id, _)| id == cp.id()) {
            if let Err(e) = repair.pass(&cp).await {
                log::warn!("allocation repair: {}", e.message);
            }
        }
        tokio::time::sleep(REPAIR_EVERY).await;
    }
}
