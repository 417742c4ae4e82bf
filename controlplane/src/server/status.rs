//! `/skiff/v1/status`: the replicas of the store (id, address, role, log index), the
//! leader, and the nodes (name, Ready status, pod CIDR, creation time) as JSON.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::objects::{ListOptions, Objects};
use crate::api::registry;
use crate::api::ApiError;

/// One replica of the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Replica {
    pub id: u64,
    pub address: String,
    /// `leader`, `follower` or `learner`.
    pub role: String,
    /// Last applied log index (this replica), or the last index known replicated to it (the
    /// others, when this replica leads). `None`: unknown here.
    pub last_applied: Option<u64>,
}

/// One node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    pub name: String,
    /// The Ready condition's status (`Ready`, `NotReady`, `Unknown`).
    pub status: String,
    pub pod_cidr: Option<String>,
    pub created: Option<String>,
}

/// The whole status document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The replica that answered.
    pub replica: u64,
    pub leader: Option<u64>,
    pub replicas: Vec<Replica>,
    pub nodes: Vec<NodeRow>,
}

fn node_row(n: &Value) -> NodeRow {
    let ready = n
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str());
    let status = match ready {
        Some("True") => "Ready",
        Some("False") => "NotReady",
        _ => "Unknown",
    };
    let s = |p: &str| n.pointer(p).and_then(Value::as_str).map(str::to_string);
    NodeRow {
        name: s("/metadata/name").unwrap_or_default(),
        status: status.into(),
        pod_cidr: s("/spec/podCIDR"),
        created: s("/metadata/creationTimestamp"),
    }
}

/// Compute the status as seen by this replica.
pub async fn status(objects: &Objects) -> Result<Status, ApiError> {
    let cp = objects.control_plane();
    let m = cp.raft().metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let replicas = membership
        .nodes()
        .map(|(id, node)| {
            let role = if Some(*id) == m.current_leader {
                "leader"
            } else if voters.contains(id) {
                "follower"
            } else {
                "learner"
            };
            let last_applied = if *id == m.id {
                m.last_applied.map(|l| l.index)
            } else {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(id).cloned().flatten())
                    .map(|l| l.index)
            };
            Replica {
                id: *id,
                address: node.addr.clone(),
                role: role.into(),
                last_applied,
            }
        })
        .collect();
    let info = registry::by_kind("v1", "Node").expect("nodes are served");
    let opts = ListOptions {
        any_version: true,
        ..Default::default()
    };
    let nodes = objects.list(info, None, &opts).await?.items;
    Ok(Status {
        replica: m.id,
        leader: m.current_leader,
        replicas,
        nodes: nodes.iter().map(node_row).collect(),
    })
}

/// The HTTP handler's body.
pub async fn serve(objects: &Objects) -> Result<Value, ApiError> {
    let s = status(objects).await?;
    serde_json::to_value(s).map_err(|e| ApiError::internal(e.to_string()))
}
