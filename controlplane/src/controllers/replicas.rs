//! The ReplicationController and ReplicaSet controller (one implementation for both
//! kinds): adopt matching orphans, release owned pods that stop matching, create or delete
//! pods towards `spec.replicas` (creates in slow-start batches), then write the status.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::cache::Cache;
use super::claim::claim_pods;
use super::events::{self, Involved, Recorder};
use super::owners::{self, controller_ref_to};
use super::pods::{deletion_order, is_active};
use super::replica_status;
use super::runtime::{Action, Controller, Expectations};
use super::ControllerError;
use crate::api::meta;
use crate::api::objects::{DeleteOptions, Deleted, Objects, WriteOptions};
use crate::api::registry::ResourceInfo;
use crate::api::selector::{string_map, LabelSelector};

/// Most pods created or deleted by one reconcile.
pub(super) const BURST: usize = 500;
/// Re-check a key whose own writes the caches have not shown yet.
pub(super) const EXPECTATION_WAIT: Duration = Duration::from_secs(1);

pub struct Replicas {
    pub objects: Objects,
    /// ReplicationControllers or ReplicaSets.
    pub owners: Arc<Cache>,
    pub pods: Arc<Cache>,
    pub expectations: Expectations,
    pub events: Recorder,
}

/// The pod selector of a ReplicationController (a map) or a ReplicaSet (a LabelSelector).
pub fn selector(kind: &str, obj: &Value) -> Option<LabelSelector> {
    let sel = obj.pointer("/spec/selector")?;
    let s = if kind == "ReplicationController" {
        LabelSelector::from_map(&string_map(Some(sel)))
    } else {
        LabelSelector::from_object(sel)
    };
    (!s.is_empty()).then_some(s)
}

/// A pod from the template of `owner` (named `<owner>-<random>`).
pub(super) fn pod_from_template(owner: &Value, oref: Value) -> Value {
    let t = owner.pointer("/spec/template").unwrap_or(&Value::Null);
    let mut pod = pod_of(t, oref);
    pod["metadata"]["generateName"] = json!(format!("{}-", meta::name(owner)));
    pod
}

/// A pod from `template` (its labels, annotations and spec) controlled by `oref`, unnamed.
pub(super) fn pod_of(template: &Value, oref: Value) -> Value {
    let mut m = json!({ "ownerReferences": [oref] });
    for f in ["labels", "annotations"] {
        if let Some(v) = template.pointer(&format!("/metadata/{f}")) {
            m[f] = v.clone();
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": m,
           "spec": template.get("spec").cloned().unwrap_or(json!({}))})
}

/// Creates `pods` in namespace `ns` (in slow-start batches: 1, 2, 4, ...), each recorded
/// in `expectations` under `key` and as a `SuccessfulCreate` event on its controller; the
/// first error stops it (a `FailedCreate` event says why).
pub(super) async fn create_all(
    (objects, events): (&Objects, &Recorder),
    (info, ns): (&ResourceInfo, Option<&str>),
    expectations: &Expectations,
    key: &str,
    pods: Vec<Value>,
) -> Result<(), ControllerError> {
    let mut pods = pods.into_iter().peekable();
    let mut batch = 1;
    while pods.peek().is_some() {
        let chunk: Vec<Value> = pods.by_ref().take(batch).collect();
        let writes = chunk
            .iter()
            .map(|p| objects.create(info, ns, p.clone(), WriteOptions::default()));
        let results = futures_util::future::join_all(writes).await;
        // Every pod that was created is expected before an error returns, or the next
        // reconcile would not wait for it and create it again.
        let mut first_err = None;
        for (r, pod) in results.into_iter().zip(&chunk) {
            match r {
                Ok(w) => {
                    expectations.expect_written(key, &w.object);
                    if let Some(on) = Involved::controller_of(&w.object, ns) {
                        let message = events::created(&on, meta::name(&w.object));
                        events.normal(on, "SuccessfulCreate", message);
                    }
                }
                Err(e) => {
                    if first_err.is_none() && e.code != 409 {
                        owners::failed_create(events, ns, pod, &e);
                    }
                    first_err = first_err.or(Some(e));
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e.into());
        }
        batch *= 2;
    }
    Ok(())
}

/// Deletes `victims` (by uid: a replaced pod of the same name is left alone), each
/// recorded in `expectations` under `key`.
pub(super) async fn delete_pods(
    to: (&Objects, &Recorder),
    pods: &ResourceInfo,
    expectations: &Expectations,
    key: &str,
    victims: &[Value],
) -> Result<(), ControllerError> {
    delete_each(to, (pods, None), expectations, key, victims).await
}

/// Deletes `victims` of kind `info` by uid, with the propagation policy `propagation`
/// (`None`: the kind's default), each recorded in `expectations` under `key` and as a
/// `SuccessfulDelete` event on its controller.
pub(super) async fn delete_each(
    (objects, events): (&Objects, &Recorder),
    (info, propagation): (&ResourceInfo, Option<&str>),
    expectations: &Expectations,
    key: &str,
    victims: &[Value],
) -> Result<(), ControllerError> {
    for obj in victims {
        let opts = DeleteOptions {
            precondition_uid: Some(owners::uid(obj).to_string()),
            propagation_policy: propagation.map(str::to_string),
            ..Default::default()
        };
        match objects
            .delete(info, owners::namespace(obj), meta::name(obj), &opts)
            .await
        {
            Ok(Deleted::Gone(v) | Deleted::Pending(v)) => {
                expectations.expect_written(key, &v);
                if let Some(on) = Involved::controller_of(obj, None) {
                    let message = events::deleted(&on, meta::name(obj));
                    events.normal(on, "SuccessfulDelete", message);
                }
            }
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl Controller for Replicas {
    fn name(&self) -> &'static str {
        self.owners.info.plural
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(owner) = self.owners.get(key) else {
            return Ok(Action::Done);
        };
        if !self.expectations.satisfied(key, &self.pods) {
            return Ok(Action::RequeueAfter(EXPECTATION_WAIT));
        }
        let sel = selector(self.owners.info.kind, &owner);
        let owned = claim_pods(
            &self.objects,
            (self.owners.info, &owner),
            &self.pods,
            |p| sel.as_ref().is_some_and(|s| s.matches(p)),
            (&self.expectations, key),
        )
        .await?;
        let mut active: Vec<Value> = owned.iter().filter(|p| is_active(p)).cloned().collect();
        let mut failed = None;
        if !meta::is_deleting(&owner) {
            let want = owner
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                .max(0) as usize;
            if active.len() < want {
                let pod = pod_from_template(&owner, controller_ref_to(self.owners.info, &owner));
                let n = (want - active.len()).min(BURST);
                let to = (self.pods.info, owners::namespace(&owner));
                // Refused (a quota, a LimitRange): said in the status, then retried.
                let pods = vec![pod; n];
                let by = (&self.objects, &self.events);
                if let Err(e) = create_all(by, to, &self.expectations, key, pods).await {
                    failed = Some(e);
                }
            } else if active.len() > want {
                active.sort_by(deletion_order);
                let surplus = (active.len() - want).min(BURST);
                let victims = &active[..surplus];
                delete_pods(
                    (&self.objects, &self.events),
                    self.pods.info,
                    &self.expectations,
                    key,
                    victims,
                )
                .await?;
                active.drain(..surplus);
            }
        }
        let why = failed
            .as_ref()
            .filter(|e| !e.is_conflict())
            .map(|e| match e {
                ControllerError::Api(e) => e.message.clone(),
                other => other.to_string(),
            });
        let written = replica_status::update(
            &self.objects,
            self.owners.info,
            &owner,
            &active,
            why.as_deref(),
        )
        .await;
        match failed {
            Some(e) => Err(e),
            None => written,
        }
    }
}
