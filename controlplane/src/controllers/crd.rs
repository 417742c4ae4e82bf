//! CustomResourceDefinition deletion: a deleted CRD keeps its cleanup finalizer until every
//! object of its kind is gone (as kube-apiextensions' finalizer controller does). Meanwhile
//! the API server refuses new objects of the kind.

use std::sync::Arc;
use std::time::Duration;

use super::cache::Cache;
use super::owners;
use super::runtime::{Action, Controller};
use super::ControllerError;
use crate::api::custom::definition::CLEANUP_FINALIZER;
use crate::api::meta;
use crate::api::objects::Objects;

/// Re-check a CRD whose objects are still going away.
const POLL: Duration = Duration::from_millis(500);

pub struct Definitions {
    pub objects: Objects,
    pub crds: Arc<Cache>,
}

impl Definitions {
    /// Delete the objects of CRD `name`; how many still exist.
    async fn empty(&self, name: &str) -> Result<usize, ControllerError> {
        self.objects.refresh_custom_kinds().await?;
        let Some(info) = self.objects.custom_kinds().stored_of(name) else {
            return Ok(0);
        };
        owners::delete_all(&self.objects, info, None).await
    }
}

impl Controller for Definitions {
    fn name(&self) -> &'static str {
        "customresourcedefinition"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(crd) = self.crds.get(key) else {
            return Ok(Action::Done);
        };
        let finalizing = meta::is_deleting(&crd)
            && crd
                .pointer("/metadata/finalizers")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|f| f.iter().any(|f| f == CLEANUP_FINALIZER));
        if !finalizing {
            return Ok(Action::Done);
        }
        let left = self.empty(key).await?;
        if left > 0 {
            log::info!("customresourcedefinition {key}: waiting for {left} objects to go");
            return Ok(Action::RequeueAfter(POLL));
        }
        owners::remove_finalizer(&self.objects, self.crds.info, &crd, CLEANUP_FINALIZER).await?;
        log::info!("customresourcedefinition {key}: objects deleted, finalizer removed");
        Ok(Action::Done)
    }
}
