//! The StatefulSet controller: pods with stable names (`<set>-<ordinal>`), hostnames and
//! PersistentVolumeClaims (created from `volumeClaimTemplates`; kept on scale-down and
//! delete unless [`retention`] says otherwise), created in ordinal order once their predecessors are Running and Ready
//! (`OrderedReady`) or all at once (`Parallel`), scaled down highest first, replaced when
//! finished, and rolled to a new template highest first down to the partition
//! (`RollingUpdate`) or only as they are deleted (`OnDelete`). Each template is recorded as
//! a ControllerRevision ([`history`]); the status carries the current and update revisions
//! `kubectl rollout status` reads.
//!
//! The decisions are pure ([`plan`], [`status`], [`identity`]); this module does the
//! writes. Not yet: `maxUnavailable`,
//! hash collisions (`collisionCount` stays 0), and status conditions.

pub mod history;
pub mod identity;
pub mod plan;
pub mod retention;
pub mod status;

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::cache::Cache;
use super::claim::claim_pods;
use super::events::{self, Involved, Recorder};
use super::owners::{self, controller_ref_to};
use super::replica_status;
use super::replicas::{delete_pods, selector, EXPECTATION_WAIT};
use super::runtime::{Action, Controller, Expectations};
use super::ControllerError;
use crate::api::meta;
use crate::api::objects::{Objects, WriteOptions};
use plan::{Rev, Spec};

pub struct StatefulSets {
    pub objects: Objects,
    pub sets: Arc<Cache>,
    pub pods: Arc<Cache>,
    pub revisions: Arc<Cache>,
    /// PersistentVolumeClaims (metadata is enough: only their existence is checked).
    pub claims: Arc<Cache>,
    pub expectations: Expectations,
    pub events: Recorder,
}

impl StatefulSets {
    /// Create the missing PersistentVolumeClaims of pod `ordinal`.
    async fn create_claims(
        &self,
        set: &Value,
        spec: &Spec,
        ordinal: i64,
    ) -> Result<(), ControllerError> {
        let ns = owners::namespace(set);
        for mut claim in identity::claims(set, ordinal) {
            if self.claims.get_named(ns, meta::name(&claim)).is_some() {
                continue;
            }
            let owners = retention::wanted(set, spec, None, ordinal);
            if !owners.is_empty() {
                claim["metadata"]["ownerReferences"] = Value::Array(owners);
            }
            let info = self.claims.info;
            let name = meta::name(&claim).to_string();
            match self
                .objects
                .create(info, ns, claim, WriteOptions::default())
                .await
            {
                Ok(_) => {
                    let (set_name, on) = (meta::name(set), Involved::of(set));
                    let message = format!(
                        "create Claim {name} Pod {set_name}-{ordinal} in StatefulSet {set_name} success"
                    );
                    self.events.normal(on, "SuccessfulCreate", message);
                }
                Err(e) if e.code != 409 => return Err(e.into()),
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Give the claims of `pods` the owner references the retention policy asks for
    /// (before a condemned pod is deleted, so its claims go with it).
    async fn sync_claim_owners(
        &self,
        set: &Value,
        spec: &Spec,
        pods: &[Value],
    ) -> Result<(), ControllerError> {
        let ns = owners::namespace(set);
        for pod in pods.iter().filter(|p| !meta::is_deleting(p)) {
            let Some(ordinal) = identity::ordinal(&spec.name, pod) else {
                continue;
            };
            let wanted = retention::wanted(set, spec, Some(pod), ordinal);
            for template in identity::claims(set, ordinal) {
                let Some(claim) = self.claims.get_named(ns, meta::name(&template)) else {
                    continue;
                };
                if let Some(refs) = retention::updated(&claim, set, Some(pod), &wanted) {
                    let patch = serde_json::json!({"metadata": {"ownerReferences": refs}});
                    owners::merge_patch(&self.objects, self.claims.info, &claim, &patch, None)
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn create_pod(&self, key: &str, set: &Value, pod: Value) -> Result<(), ControllerError> {
        let (info, ns) = (self.pods.info, owners::namespace(set));
        let w = match self
            .objects
            .create(info, ns, pod.clone(), WriteOptions::default())
            .await
        {
            Ok(w) => w,
            Err(e) => {
                if e.code != 409 {
                    owners::failed_create(&self.events, ns, &pod, &e);
                }
                return Err(e.into());
            }
        };
        self.expectations.expect_written(key, &w.object);
        let on = Involved::of(set);
        let message = events::created(&on, meta::name(&w.object));
        self.events.normal(on, "SuccessfulCreate", message);
        Ok(())
    }

    /// Give owned pods (adopted ones, or relabelled) their identity labels back.
    async fn fix_identity(
        &self,
        key: &str,
        set: &Value,
        pods: &mut [Value],
    ) -> Result<(), ControllerError> {
        for pod in pods.iter_mut().filter(|p| !meta::is_deleting(p)) {
            if let Some(patch) = identity::missing_labels(meta::name(set), pod) {
                let w =
                    owners::merge_patch(&self.objects, self.pods.info, pod, &patch, None).await?;
                self.expectations.expect_written(key, &w);
                *pod = w;
            }
        }
        Ok(())
    }
}

impl Controller for StatefulSets {
    fn name(&self) -> &'static str {
        "statefulsets"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(set) = self.sets.get(key) else {
            return Ok(Action::Done);
        };
        // The garbage collector removes the pods of a deleted set.
        if meta::is_deleting(&set) {
            return Ok(Action::Done);
        }
        if !self.expectations.satisfied(key, &self.pods) {
            return Ok(Action::RequeueAfter(EXPECTATION_WAIT));
        }
        let info = self.sets.info;
        let spec = Spec::of(&set);
        let sel = selector(info.kind, &set);
        let member = |p: &Value| {
            sel.as_ref().is_some_and(|s| s.matches(p)) && identity::ordinal(&spec.name, p).is_some()
        };
        let expect = (&self.expectations, key);
        let mut pods = claim_pods(&self.objects, (info, &set), &self.pods, member, expect).await?;
        self.fix_identity(key, &set, &mut pods).await?;
        let revs = self.revisions(&set, &pods).await?;
        let now = chrono::Utc::now();
        let todo = plan::plan(&spec, &pods, &revs.update, now);
        for &(ord, rev) in &todo.create {
            let (template, name) = match rev {
                Rev::Current => (&revs.current_template, &revs.current),
                Rev::Update => (
                    set.pointer("/spec/template").unwrap_or(&Value::Null),
                    &revs.update,
                ),
            };
            self.create_claims(&set, &spec, ord).await?;
            let pod = identity::pod(&set, template, ord, name, controller_ref_to(info, &set));
            self.create_pod(key, &set, pod).await?;
        }
        self.sync_claim_owners(&set, &spec, &pods).await?;
        let pods_info = self.pods.info;
        delete_pods(
            (&self.objects, &self.events),
            pods_info,
            &self.expectations,
            key,
            &todo.delete,
        )
        .await?;
        let deleted: HashSet<&str> = todo.delete.iter().map(owners::uid).collect();
        let left: Vec<Value> = pods
            .iter()
            .filter(|p| !deleted.contains(owners::uid(p)))
            .cloned()
            .collect();
        let st = status::compute(&set, &left, (&revs.current, &revs.update), now);
        replica_status::write(&self.objects, info, &set, st).await
    }
}
