//! Adoption and release (Kubernetes' `ClaimPods`): a controller with a label selector owns
//! the pods carrying its controller reference that still match, adopts matching orphans
//! and releases owned pods that stopped matching.

use serde_json::Value;

use super::cache::Cache;
use super::owners::{self, controller_ref, controller_ref_to};
use super::runtime::Expectations;
use super::ControllerError;
use crate::api::meta;
use crate::api::objects::Objects;
use crate::api::registry::ResourceInfo;
use crate::api::selector::LabelSelector;

/// The revision an object was written at (0 if unknown).
pub(super) fn written_rev(obj: &Value) -> u64 {
    meta::resource_version(obj).ok().flatten().unwrap_or(0)
}

/// The pods `owner` (of kind `info`, selecting with `sel`) owns after adopting orphans and
/// releasing non-matching ones; every write is recorded in `expectations` under `key`.
pub(super) async fn claim_pods(
    objects: &Objects,
    (info, owner): (&ResourceInfo, &Value),
    sel: Option<&LabelSelector>,
    pods: &Cache,
    (expectations, key): (&Expectations, &str),
) -> Result<Vec<Value>, ControllerError> {
    let uid = owners::uid(owner);
    let mut owned = Vec::new();
    for pod in pods.list(owners::namespace(owner)) {
        let matches = sel.is_some_and(|s| s.matches(&pod));
        match controller_ref(&pod) {
            Some(r) if r.get("uid").and_then(Value::as_str) == Some(uid) => {
                if matches {
                    owned.push(pod);
                } else if !meta::is_deleting(&pod) {
                    let w = owners::release(objects, pods.info, &pod, uid).await?;
                    expectations.expect(key, written_rev(&w));
                }
            }
            Some(_) => {}
            None if matches && !meta::is_deleting(&pod) && !meta::is_deleting(owner) => {
                let mut refs = owners::owner_refs(&pod);
                refs.push(controller_ref_to(info, owner));
                let w = owners::set_owner_refs(objects, pods.info, &pod, refs).await?;
                expectations.expect(key, written_rev(&w));
                owned.push(w);
            }
            None => {}
        }
    }
    Ok(owned)
}
