//! The DaemonSet controller: one pod of the set on every node it fits ([`placement`]),
//! pinned there by a required node affinity so the scheduler binds it; pods on nodes it no
//! longer fits are deleted, failed ones replaced, and a template change rolls out node by
//! node ([`plan`]). Status carries the counts `kubectl rollout status daemonset` reads.

pub mod placement;
pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::cache::Cache;
use super::claim::claim_pods;
use super::deployment::hash::template_hash;
use super::history;
use super::owners::{self, controller_ref_to};
use super::replicas::{create_all, delete_pods, pod_from_template, selector, EXPECTATION_WAIT};
use super::runtime::{Action, Controller, Expectations};
use super::ControllerError;
use crate::api::meta;
use crate::api::objects::Objects;
use crate::api::registry::Subresource;
use plan::{Input, HASH_LABEL};

pub struct DaemonSets {
    pub objects: Objects,
    pub sets: Arc<Cache>,
    pub nodes: Arc<Cache>,
    pub pods: Arc<Cache>,
    /// ControllerRevisions (`kubectl rollout history/undo daemonset`).
    pub revisions: Arc<Cache>,
    pub expectations: Expectations,
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

impl Controller for DaemonSets {
    fn name(&self) -> &'static str {
        "daemonsets"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(ds) = self.sets.get(key) else {
            return Ok(Action::Done);
        };
        if !self.expectations.satisfied(key, &self.pods) {
            return Ok(Action::RequeueAfter(EXPECTATION_WAIT));
        }
        let info = self.sets.info;
        let sel = selector(info.kind, &ds);
        let pods = claim_pods(
            &self.objects,
            (info, &ds),
            &self.pods,
            |p| sel.as_ref().is_some_and(|s| s.matches(p)),
            (&self.expectations, key),
        )
        .await?;
        let template = ds.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let hash = template_hash(&template);
        let pod = self.template_pod(&ds, &hash);
        let nodes: BTreeMap<String, placement::Fit> = self
            .nodes
            .list(None)
            .iter()
            .map(|n| (meta::name(n).to_string(), placement::fit(&pod, n)))
            .collect();
        let p = plan::plan(&Input {
            ds: &ds,
            nodes: &nodes,
            pods: &pods,
            hash: &hash,
            now: chrono::Utc::now(),
        });
        if !meta::is_deleting(&ds) {
            let owned = history::sync(&self.objects, &self.revisions, (info, &ds)).await?;
            let name = meta::name(&ds);
            let used: Vec<String> = pods
                .iter()
                .filter_map(|p| p.pointer(&format!("/metadata/labels/{HASH_LABEL}")))
                .filter_map(Value::as_str)
                .chain([hash.as_str()])
                .map(|h| format!("{name}-{h}"))
                .collect();
            let keep: Vec<&str> = used.iter().map(String::as_str).collect();
            history::trim(&self.objects, (self.revisions.info, &ds), &owned, &keep).await?;
            delete_pods(
                &self.objects,
                self.pods.info,
                &self.expectations,
                key,
                &p.delete,
            )
            .await?;
            let pinned = p.create_on.iter().map(|node| {
                let mut pinned = pod.clone();
                placement::pin_to_node(&mut pinned, node);
                pinned
            });
            let to = (self.pods.info, owners::namespace(&ds));
            create_all(&self.objects, to, &self.expectations, key, pinned.collect()).await?;
        }
        let old = ds.get("status").cloned().unwrap_or(json!({}));
        let changed = p
            .status
            .as_object()
            .expect("an object")
            .iter()
            .any(|(k, v)| old.get(k) != Some(v));
        if changed {
            let patch = json!({ "status": p.status });
            owners::merge_patch(&self.objects, info, &ds, &patch, Some(Subresource::Status))
                .await?;
        }
        Ok(p.requeue.map_or(Action::Done, Action::RequeueAfter))
    }
}
