//! The Deployment controller: one ReplicaSet per pod template (`<deploy>-<hash>`), rolled
//! with the RollingUpdate (maxSurge/maxUnavailable) or Recreate strategy, old ReplicaSets
//! kept up to `revisionHistoryLimit`, paused deployments only scaled, and the status
//! `kubectl rollout status` waits on.

pub mod hash;
pub mod rolling;
pub mod status;
mod sync;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::cache::Cache;
use super::events::{Involved, Recorder};
use super::owners;
use super::runtime::{Action, Controller, Expectations};
use super::ControllerError;
use crate::api::meta;
use crate::api::objects::{DeleteOptions, Objects};
use crate::api::registry::Subresource;
use crate::api::selector::LabelSelector;

/// Re-check while ReplicaSets have not caught up with our writes.
const SETTLE: Duration = Duration::from_secs(1);

pub struct Deployments {
    objects: Objects,
    deploys: Arc<Cache>,
    rss: Arc<Cache>,
    expectations: Expectations,
    events: Recorder,
}

fn replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// Has the ReplicaSet controller seen the latest spec of `rs`?
fn settled(rs: &Value) -> bool {
    let generation = rs.pointer("/metadata/generation").and_then(Value::as_i64);
    let observed = rs
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    generation.unwrap_or(0) <= observed.unwrap_or(0)
}

impl Deployments {
    pub fn new(objects: Objects, deploys: Arc<Cache>, rss: Arc<Cache>, events: Recorder) -> Self {
        Self {
            objects,
            deploys,
            rss,
            expectations: Expectations::default(),
            events,
        }
    }

    /// The `ScalingReplicaSet` event of `deploy` for `rs` going from `from` to `to` replicas.
    fn scaled(&self, deploy: &Value, rs: &str, from: i64, to: i64) {
        if from != to {
            let way = if from < to { "up" } else { "down" };
            let message = format!("Scaled {way} replica set {rs} from {from} to {to}");
            self.events
                .normal(Involved::of(deploy), "ScalingReplicaSet", message);
        }
    }

    /// Set `spec.replicas` (and the desired/max annotations) of `rs`.
    async fn scale(
        &self,
        key: &str,
        deploy: &Value,
        rs: &Value,
        n: i64,
        surge: i64,
    ) -> Result<Value, ControllerError> {
        let desired = replicas(deploy);
        let patch = json!({
            "metadata": {"annotations": {
                hash::DESIRED: desired.to_string(),
                hash::MAX: (desired + surge).to_string(),
            }},
            "spec": {"replicas": n},
        });
        let written = owners::merge_patch(&self.objects, self.rss.info, rs, &patch, None).await?;
        self.expectations.expect_written(key, &written);
        self.scaled(deploy, meta::name(rs), replicas(rs), n);
        Ok(written)
    }

    async fn write_status(&self, deploy: &Value, status: &Value) -> Result<(), ControllerError> {
        if status::differs(deploy.get("status"), status) {
            let patch = json!({"status": status});
            let status = Some(Subresource::Status);
            owners::merge_patch(&self.objects, self.deploys.info, deploy, &patch, status).await?;
        }
        Ok(())
    }

    /// Delete old, empty ReplicaSets beyond `revisionHistoryLimit` (lowest revisions first).
    async fn cleanup(&self, deploy: &Value, olds: &[Value]) -> Result<(), ControllerError> {
        let Some(limit) = deploy
            .pointer("/spec/revisionHistoryLimit")
            .and_then(Value::as_i64)
        else {
            return Ok(());
        };
        let mut idle: Vec<&Value> = olds
            .iter()
            .filter(|rs| {
                replicas(rs) == 0
                    && rs
                        .pointer("/status/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                        == 0
            })
            .collect();
        idle.sort_by_key(|rs| hash::revision(rs));
        let surplus = idle.len().saturating_sub(limit.max(0) as usize);
        for rs in &idle[..surplus] {
            let opts = DeleteOptions {
                precondition_uid: Some(owners::uid(rs).to_string()),
                ..Default::default()
            };
            match self
                .objects
                .delete(self.rss.info, owners::namespace(rs), meta::name(rs), &opts)
                .await
            {
                Err(e) if e.code != 404 => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }
}

impl Deployments {
    /// The ReplicaSets of `deploy`: owned ones still matching its selector, plus adopted
    /// orphans that match; owned ones that stopped matching are released.
    async fn claim(&self, key: &str, deploy: &Value) -> Result<Vec<Value>, ControllerError> {
        let uid = owners::uid(deploy);
        let sel = deploy
            .pointer("/spec/selector")
            .map(LabelSelector::from_object)
            .filter(|s| !s.is_empty());
        let mut out = Vec::new();
        for rs in self.rss.list(owners::namespace(deploy)) {
            if meta::is_deleting(&rs) {
                continue;
            }
            let matches = sel.as_ref().is_some_and(|s| s.matches(&rs));
            match owners::controller_ref(&rs) {
                Some(r) if r.get("uid").and_then(Value::as_str) == Some(uid) => {
                    if matches {
                        out.push(rs);
                    } else {
                        let w = owners::release(&self.objects, self.rss.info, &rs, uid).await?;
                        self.expectations.expect_written(key, &w);
                    }
                }
                None if matches => {
                    let mut refs = owners::owner_refs(&rs);
                    refs.push(owners::controller_ref_to(self.deploys.info, deploy));
                    let w = owners::set_owner_refs(&self.objects, self.rss.info, &rs, refs).await?;
                    self.expectations.expect_written(key, &w);
                    out.push(w);
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

impl Controller for Deployments {
    fn name(&self) -> &'static str {
        "deployments"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(deploy) = self.deploys.get(key) else {
            return Ok(Action::Done);
        };
        if meta::is_deleting(&deploy) {
            return Ok(Action::Done);
        }
        if !self.expectations.satisfied(key, &self.rss) {
            return Ok(Action::RequeueAfter(SETTLE));
        }
        let all = self.claim(key, &deploy).await?;
        if !all.iter().all(settled) {
            return Ok(Action::RequeueAfter(SETTLE));
        }
        self.sync(key, &deploy, all).await
    }
}
