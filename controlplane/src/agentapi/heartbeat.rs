//! Heartbeats: renew the node's Lease in `kube-node-lease` and its `Ready=True` condition
//! (`lastHeartbeatTime`), the two signals [`crate::nodelifecycle`] watches; when heartbeats
//! stop, that controller marks the node Unknown and taints it.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};

use super::node::{merge_conditions, retry_conflicts};
use crate::api::{ApiClient, ApiError};
use crate::nodelifecycle::LEASE_NAMESPACE;

/// Lease duration when the agent names none (Kubernetes' default).
pub const DEFAULT_LEASE_SECONDS: i32 = 40;

/// Renew the Lease of `node` (created on the first heartbeat, owned by the Node) and its
/// Ready condition. Returns the Lease.
pub async fn heartbeat(client: &ApiClient, node: &str, seconds: i32) -> Result<Lease, ApiError> {
    let seconds = if seconds > 0 {
        seconds
    } else {
        DEFAULT_LEASE_SECONDS
    };
    let current: Node = client.get(None, node).await?;
    let lease = retry_conflicts(|| async {
        let now = MicroTime(chrono::Utc::now());
        match client.get::<Lease>(Some(LEASE_NAMESPACE), node).await {
            Ok(mut l) => {
                let spec = l.spec.get_or_insert_with(Default::default);
                spec.renew_time = Some(now);
                spec.lease_duration_seconds = Some(seconds);
                spec.holder_identity = Some(node.to_string());
                client.update(&l).await
            }
            Err(e) if e.code == 404 => {
                let l = new_lease(&current, node, seconds, now);
                match client.create(Some(LEASE_NAMESPACE), &l).await {
                    // Created by a racing heartbeat: renew it on the next try.
                    Err(e) if e.reason == "AlreadyExists" => {
                        Err(ApiError::new(409, "Conflict", e.message))
                    }
                    r => r,
                }
            }
            Err(e) => Err(e),
        }
    })
    .await?;
    let mut first = Some(current);
    retry_conflicts(|| {
        let cur = first.take();
        async move {
            let mut cur = match cur {
                Some(n) => n,
                None => client.get(None, node).await?,
            };
            set_ready(&mut cur);
            client.update_status(&cur).await
        }
    })
    .await?;
    Ok(lease)
}

fn new_lease(owner: &Node, node: &str, seconds: i32, now: MicroTime) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            owner_references: owner.metadata.uid.clone().map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: node.to_string(),
                    uid,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_string()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..Default::default()
        }),
    }
}

/// Set `Ready=True` (`KubeletReady`) with a fresh heartbeat time.
fn set_ready(node: &mut Node) {
    let now = Time(chrono::Utc::now());
    let status = node.status.get_or_insert_with(Default::default);
    let conds = status.conditions.get_or_insert_with(Vec::new);
    let transition = match conds.iter().find(|c| c.type_ == "Ready") {
        Some(c) if c.status == "True" => c.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    merge_conditions(
        conds,
        vec![NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("KubeletReady".into()),
            message: Some("skiff agent is posting ready status".into()),
            last_heartbeat_time: Some(now),
            last_transition_time: transition,
        }],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_keeps_its_transition_time_while_true() {
        let mut n = Node::default();
        set_ready(&mut n);
        let c = |n: &Node| n.status.as_ref().unwrap().conditions.as_ref().unwrap()[0].clone();
        let first = c(&n);
        assert_eq!(
            (first.status.as_str(), first.reason.as_deref()),
            ("True", Some("KubeletReady"))
        );
        set_ready(&mut n);
        assert_eq!(c(&n).last_transition_time, first.last_transition_time);
    }
}
