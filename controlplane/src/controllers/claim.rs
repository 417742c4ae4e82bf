//! Claiming pods (Kubernetes' `ClaimPods`): a controller's pods are those carrying its
//! controller reference that still match it; matching orphans are adopted and owned pods
//! that stopped matching are released. Every write is recorded in the controller's
//! expectations.

use serde_json::Value;

use super::cache::Cache;
use super::owners::{self, controller_ref, controller_ref_to};
use super::runtime::Expectations;
use super::ControllerError;
use crate::api::meta;
use crate::api::objects::Objects;
use crate::api::registry::ResourceInfo;

/// The pods of `owner` (of kind `info`) after adopting the orphans `matches` accepts and
/// releasing owned pods it rejects; writes are expected under `key`. A deleting owner
/// adopts nothing.
pub async fn claim_pods(
    objects: &Objects,
    (info, owner): (&ResourceInfo, &Value),
    pods: &Cache,
    matches: impl Fn(&Value) -> bool,
    (expectations, key): (&Expectations, &str),
) -> Result<Vec<Value>, ControllerError> {
    let uid = owners::uid(owner);
    let mut owned = Vec::new();
    for pod in pods.list(owners::namespace(owner)) {
        let fits = matches(&pod);
        match controller_ref(&pod) {
            Some(r) if r.get("uid").and_then(Value::as_str) == Some(uid) => {
                if fits {
                    owned.push(pod);
                } else if !meta::is_deleting(&pod) {
                    let w = owners::release(objects, pods.info, &pod, uid).await?;
                    expectations.expect_written(key, &w);
                }
            }
            Some(_) => {}
            None if fits && !meta::is_deleting(&pod) && !meta::is_deleting(owner) => {
                let mut refs = owners::owner_refs(&pod);
                refs.push(controller_ref_to(info, owner));
                let w = owners::set_owner_refs(objects, pods.info, &pod, refs).await?;
                expectations.expect_written(key, &w);
                owned.push(w);
            }
            None => {}
        }
    }
    Ok(owned)
}
