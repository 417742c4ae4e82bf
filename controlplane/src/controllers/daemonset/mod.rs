//! The DaemonSet controller: one pod of the set on every node it fits ([`placement`]),
//! pinned there by a required node affinity so the scheduler binds it; pods on nodes it no
//! longer fits are deleted, failed ones replaced, and a template change rolls out node by
//! node ([`plan`]), failed ones after a per-node [`backoff`]. Status carries the counts
//! `kubectl rollout status daemonset` reads; it is written even when a pod could not be
//! created or deleted.

pub mod backoff;
pub mod placement;
pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::cache::Cache;
use super::claim::claim_pods;
use super::deployment::hash::template_hash;
use super::events::Recorder;
use super::history;
use super::owners::{self, controller_ref_to};
use super::replicas::{create_all, delete_pods, pod_from_template, selector, EXPECTATION_WAIT};
use super::runtime::{Action, Controller, Expectations};
use super::ControllerError;
use crate::api::meta;
use crate::api::objects::Objects;
use plan::{Input, HASH_LABEL};

pub struct DaemonSets {
    pub objects: Objects,
    pub sets: Arc<Cache>,
    pub nodes: Arc<Cache>,
    pub pods: Arc<Cache>,
    /// ControllerRevisions (`kubectl rollout history/undo daemonset`).
    pub revisions: Arc<Cache>,
    pub expectations: Expectations,
    pub failed_backoff: backoff::FailedPodBackoff,
    pub events: Recorder,
}

impl DaemonSets {
    /// The set's pod for no node in particular: template, hash label, daemon tolerations.
    fn template_pod(&self, ds: &Value, hash: &str) -> Value {
        let mut pod = pod_from_template(ds, controller_ref_to(self.sets.info, ds));
        pod["metadata"]["labels"][HASH_LABEL] = json!(hash);
        placement::add_daemon_tolerations(&mut pod);
        pod
    }
}

impl DaemonSets {
    /// Revisions, then the plan's deletions and creations.
    async fn sync_pods(
        &self,
        key: &str,
        ds: &Value,
        pods: &[Value],
        hash: &str,
        pod: &Value,
        p: &plan::Plan,
    ) -> Result<(), ControllerError> {
        let info = self.sets.info;
        let owned = history::sync(&self.objects, &self.revisions, (info, ds)).await?;
        let name = meta::name(ds);
        let used: Vec<String> = pods
            .iter()
            .filter_map(|p| p.pointer(&format!("/metadata/labels/{HASH_LABEL}")))
            .filter_map(Value::as_str)
            .chain([hash])
            .map(|h| format!("{name}-{h}"))
            .collect();
        let keep: Vec<&str> = used.iter().map(String::as_str).collect();
        history::trim(&self.objects, (self.revisions.info, ds), &owned, &keep).await?;
        let by = (&self.objects, &self.events);
        delete_pods(by, self.pods.info, &self.expectations, key, &p.delete).await?;
        let pinned = p.create_on.iter().map(|node| {
            let mut pinned = pod.clone();
            placement::pin_to_node(&mut pinned, node);
            pinned
        });
        let to = (self.pods.info, owners::namespace(ds));
        create_all(by, to, &self.expectations, key, pinned.collect()).await
    }
}

impl Controller for DaemonSets {
    fn name(&self) -> &'static str {
        "daemonsets"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(ds) = self.sets.get(key) else {
            self.failed_backoff.forget(key);
            return Ok(Action::Done);
        };
        if !self.expectations.satisfied(key, &self.pods) {
            return Ok(Action::RequeueAfter(EXPECTATION_WAIT));
        }
        let info = self.sets.info;
        let template = ds.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template);
        let pod = self.template_pod(&ds, &hash);
        // A template that does not parse decides nothing: no pod is deleted over it.
        let pod_info = placement::pod_info(&pod)
            .map_err(|e| ControllerError::Invalid(format!("spec.template: {e}")))?;
        let sel = selector(info.kind, &ds);
        let pods = claim_pods(
            &self.objects,
            (info, &ds),
            &self.pods,
            |p| sel.as_ref().is_some_and(|s| s.matches(p)),
            (&self.expectations, key),
        )
        .await?;
        let nodes: BTreeMap<String, placement::Fit> = self
            .nodes
            .list(None)
            .iter()
            .map(|n| (meta::name(n).to_string(), placement::fit(&pod_info, n)))
            .collect();
        let mut p = plan::plan(&Input {
            ds: &ds,
            nodes: &nodes,
            pods: &pods,
            hash: &hash,
            now: chrono::Utc::now(),
        });
        let mut requeue = p.requeue;
        let now = Instant::now();
        for (node, failed) in std::mem::take(&mut p.failed) {
            match self.failed_backoff.check(key, &node, now) {
                None => {
                    log::info!(
                        "daemonsets {key}: pod {} failed on node {node}, replacing it",
                        meta::name(&failed)
                    );
                    p.delete.push(failed);
                }
                Some(wait) => requeue = Some(requeue.map_or(wait, |r| r.min(wait))),
            }
        }
        let synced = if meta::is_deleting(&ds) {
            Ok(())
        } else {
            self.sync_pods(key, &ds, &pods, &hash, &pod, &p).await
        };
        owners::write_status_if_changed(&self.objects, info, &ds, p.status).await?;
        synced?;
        Ok(requeue.map_or(Action::Done, Action::RequeueAfter))
    }
}
