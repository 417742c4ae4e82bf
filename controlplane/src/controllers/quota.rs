//! ResourceQuotas (kube-controller-manager's resourcequota controller): each quota's
//! `status` — `hard` as its spec says, `used` counted from its namespace's objects — is
//! recounted when the quota comes or its spec changes, when objects of its namespace go or
//! change spec, when a pod finishes, and at every resync. Admission raises `used` as it admits writes (`api::objects::admit`); the
//! recount is what lowers it again, for deleted objects and finished pods, and corrects a
//! charge whose write then failed.

use std::sync::Arc;

use serde_json::Value;

use super::cache::{key_of, Cache};
use super::owners;
use super::queue::WorkQueue;
use super::runtime::{Action, Controller};
use super::ControllerError;
use crate::api::admission::quota::pod_counts;
use crate::api::objects::Objects;

pub struct Quotas {
    pub objects: Objects,
}

impl Controller for Quotas {
    fn name(&self) -> &'static str {
        "resourcequota"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        if let Some((ns, name)) = key.split_once('/') {
            self.objects.recount_quota(ns, name).await?;
        }
        Ok(Action::Done)
    }
}

/// Whether a change can lower what an object uses: it went, its spec changed, or it
/// finished (a pod's phase). (An arrival was charged by admission in the same write. Caches
/// of metadata only see no spec: their updates are left to the resync.)
fn may_lower_usage(old: Option<&Value>, new: Option<&Value>) -> bool {
    match (old, new) {
        (Some(o), Some(n)) => o.get("spec") != n.get("spec") || pod_counts(o) != pod_counts(n),
        (Some(_), None) => true,
        _ => false,
    }
}

/// Recount a quota when it comes or its spec changes (not on its status writes, the
/// charges and recounts themselves), and the quotas of a namespace when one of `caches`'
/// objects in it may use less.
pub fn watch(caches: &[Arc<Cache>], quotas: &Arc<Cache>, queue: &Arc<WorkQueue>) {
    for cache in caches {
        let is_quotas = Arc::ptr_eq(cache, quotas);
        let (q, quotas) = (queue.clone(), quotas.clone());
        cache.on_change(Arc::new(move |old, new| {
            let Some(obj) = new.or(old) else {
                return;
            };
            if is_quotas {
                if old.and_then(|o| o.get("spec")) != new.and_then(|n| n.get("spec")) {
                    q.add(&key_of(obj));
                }
                // A quota gone lowers the others' `resourcequotas` count.
                if new.is_some() {
                    return;
                }
            }
            if !may_lower_usage(old, new) {
                return;
            }
            if let Some(ns) = owners::namespace(obj) {
                for quota in quotas.list(Some(ns)) {
                    q.add(&key_of(&quota));
                }
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn departures_and_spec_or_phase_changes_recount() {
        let pod = json!({"spec": {"containers": []}, "status": {"phase": "Running"}});
        let mut labelled = pod.clone();
        labelled["metadata"] = json!({"labels": {"a": "b"}});
        let mut done = pod.clone();
        done["status"]["phase"] = json!("Succeeded");
        assert!(!may_lower_usage(None, Some(&pod)), "admission charged it");
        assert!(may_lower_usage(Some(&pod), None));
        assert!(!may_lower_usage(Some(&pod), Some(&labelled)));
        assert!(may_lower_usage(Some(&pod), Some(&done)));
    }
}
