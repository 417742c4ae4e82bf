//! Node IPAM: give every node a pod CIDR (a `/node_cidr_mask` subnet of the cluster CIDR)
//! in `spec.podCIDR` and `spec.podCIDRs`, claimed in the store like every allocation.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::claims::{self, Claim, Owner, POD_CIDRS};
use super::{Cidr, Ranges};
use crate::api::patch::PatchType;
use crate::api::{ApiClient, ApiError};
use crate::endpoints::reflector;
use crate::ControlPlane;

/// A node's pod CIDR (`spec.podCIDR`), if set.
pub fn pod_cidr(node: &Value) -> Option<String> {
    node.pointer("/spec/podCIDR")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

/// The claim key suffix of a CIDR (`/` is the key separator).
pub fn claim_value(cidr: &str) -> String {
    cidr.replace('/', "-")
}

/// Allocate and set the pod CIDR of `node` (no-op if it has one).
pub async fn assign(cp: &ControlPlane, client: &ApiClient, node: &Node) -> Result<(), ApiError> {
    if node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_some()
    {
        return Ok(());
    }
    let name = node.metadata.name.clone().unwrap_or_default();
    let owner = Owner {
        name: name.clone(),
        uid: node.metadata.uid.clone().unwrap_or_default(),
    };
    let ranges = Ranges::load(cp).await;
    let cluster: Cidr = ranges.cluster();
    let mask = ranges.node_cidr_mask;
    let mut chosen = None;
    'search: for _ in 0..8 {
        let taken = claims::list(cp, POD_CIDRS).await?;
        // A claim this node already holds (a crash between claim and patch) is reused.
        if let Some((v, _)) = taken.iter().find(|(_, (o, _))| o.uid == owner.uid) {
            chosen = Some(v.replace('-', "/"));
            break;
        }
        for i in 0..cluster.subnets(mask) {
            let Some(subnet) = cluster.subnet(mask, i) else {
                break;
            };
            let value = claim_value(&subnet.to_string());
            if taken.contains_key(&value) {
                continue;
            }
            match claims::claim(cp, POD_CIDRS, &value, &owner).await? {
                Claim::New | Claim::Held => {
                    chosen = Some(subnet.to_string());
                    break 'search;
                }
                Claim::Taken(_) => continue 'search,
            }
        }
        return Err(ApiError::new(
            500,
            "InternalError",
            format!("no pod CIDR left in {cluster} for node {name}"),
        ));
    }
    let Some(cidr) = chosen else {
        return Err(ApiError::internal("lost every race for a pod CIDR"));
    };
    let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
    match client
        .patch::<Node>(None, &name, PatchType::Merge, &patch, false)
        .await
    {
        Ok(_) => {
            log::info!("node {name}: pod CIDR {cidr}");
            Ok(())
        }
        Err(e) => {
            claims::release(cp, POD_CIDRS, &claim_value(&cidr), &owner.uid).await;
            Err(e)
        }
    }
}

/// The node IPAM controller: assign pod CIDRs to nodes as they appear; release them when
/// nodes go away.
pub async fn run(cp: Arc<ControlPlane>, client: ApiClient) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_store, task) = reflector::spawn::<Node>(client.clone(), tx);
    while let Some(change) = rx.recv().await {
        match (&change.old, &change.new) {
            (_, Some(node)) => {
                if let Err(e) = assign(&cp, &client, node).await {
                    if e.code != 404 {
                        log::warn!("node IPAM for {}: {}", change.key, e.message);
                    }
                }
            }
            (Some(gone), None) => {
                if let Some(c) = gone.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()) {
                    let uid = gone.metadata.uid.clone().unwrap_or_default();
                    claims::release(&cp, POD_CIDRS, &claim_value(c), &uid).await;
                }
            }
            (None, None) => {}
        }
    }
    task.abort();
}
