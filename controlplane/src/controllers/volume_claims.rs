//! Node-local volume provisioning (the role k3s gives its `local-path` provisioner): every
//! PersistentVolumeClaim is bound at once, with the capacity and access modes it asks for.
//! The volume itself is a directory the kubelet of whichever node runs the claiming pod
//! creates under its state directory, keyed by the claim's uid; the scheduler pins a claim
//! to the node that first used it (`volume.kubernetes.io/selected-node`), so later pods of
//! the claim find its data there. Not yet: reclaiming the directory of a deleted claim,
//! and PersistentVolume objects.

use std::sync::Arc;

use serde_json::{json, Value};

use super::cache::Cache;
use super::owners;
use super::runtime::{Action, Controller};
use super::ControllerError;
use crate::api::meta;
use crate::api::objects::Objects;
use crate::api::registry::Subresource;

pub struct VolumeClaims {
    pub objects: Objects,
    pub claims: Arc<Cache>,
}

/// The status of a bound claim: what it asked for (pure: unit-tested).
pub fn bound_status(claim: &Value) -> Value {
    let modes = claim
        .pointer("/spec/accessModes")
        .cloned()
        .unwrap_or(json!(["ReadWriteOnce"]));
    let mut status = json!({"phase": "Bound", "accessModes": modes});
    if let Some(size) = claim.pointer("/spec/resources/requests/storage") {
        status["capacity"] = json!({"storage": size});
    }
    status
}

impl Controller for VolumeClaims {
    fn name(&self) -> &'static str {
        "persistentvolumeclaims"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(claim) = self.claims.get(key) else {
            return Ok(Action::Done);
        };
        let bound = claim.pointer("/status/phase") == Some(&json!("Bound"));
        if bound || meta::is_deleting(&claim) {
            return Ok(Action::Done);
        }
        let patch = json!({"status": bound_status(&claim)});
        let info = self.claims.info;
        owners::merge_patch(
            &self.objects,
            info,
            &claim,
            &patch,
            Some(Subresource::Status),
        )
        .await?;
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_gets_what_it_asked_for() {
        let claim = json!({"spec": {"accessModes": ["ReadWriteOnce"],
                                    "resources": {"requests": {"storage": "1Gi"}}}});
        assert_eq!(
            bound_status(&claim),
            json!({"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                   "capacity": {"storage": "1Gi"}})
        );
    }
}
