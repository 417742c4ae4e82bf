//! One pass over a Deployment: find or create the new ReplicaSet (fixing its revision),
//! move replicas with the Recreate or RollingUpdate strategy, clean up history, write
//! the status.

use serde_json::{json, Value};

use super::rolling::{fenceposts, new_rs_replicas, scale_down_olds, Counts};
use super::{hash, replicas, status, Deployments};
use crate::api::meta;
use crate::api::objects::WriteOptions;
use crate::controllers::owners::{self, controller_ref_to};
use crate::controllers::runtime::Action;
use crate::controllers::ControllerError;

fn counts(rs: &Value) -> Counts {
    let available = rs
        .pointer("/status/availableReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    Counts {
        replicas: replicas(rs),
        available: available.min(replicas(rs)),
    }
}

impl Deployments {
    /// The ReplicaSet for the current template, created with `initial` replicas if missing;
    /// its revision is made the highest.
    async fn ensure_new(
        &self,
        key: &str,
        deploy: &Value,
        new: Option<Value>,
        olds: &[Value],
        initial: i64,
        surge: i64,
    ) -> Result<Value, ControllerError> {
        let next_rev = olds.iter().map(hash::revision).max().unwrap_or(0) + 1;
        let desired = replicas(deploy);
        let annotations = json!({
            hash::REVISION: next_rev.to_string(),
            hash::DESIRED: desired.to_string(),
            hash::MAX: (desired + surge).to_string(),
        });
        let rs = match new {
            Some(rs) if hash::revision(&rs) >= next_rev => rs,
            Some(rs) => {
                let patch = json!({"metadata": {"annotations": annotations}});
                let written =
                    owners::merge_patch(&self.objects, self.rss.info, &rs, &patch, None).await?;
                self.expectations.expect_written(key, &written);
                written
            }
            None => self.create_new(key, deploy, annotations, initial).await?,
        };
        let rev = hash::revision(&rs);
        if hash::revision(deploy) != rev {
            let patch = json!({"metadata": {"annotations": {hash::REVISION: rev.to_string()}}});
            owners::merge_patch(&self.objects, self.deploys.info, deploy, &patch, None).await?;
        }
        Ok(rs)
    }

    async fn create_new(
        &self,
        key: &str,
        deploy: &Value,
        annotations: Value,
        initial: i64,
    ) -> Result<Value, ControllerError> {
        let template = deploy
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(json!({}));
        let h = hash::template_hash(&template);
        let mut t = template.clone();
        t["metadata"]["labels"][hash::HASH_LABEL] = json!(h);
        let mut selector = deploy
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or(json!({}));
        selector["matchLabels"][hash::HASH_LABEL] = json!(h);
        let name = format!("{}-{h}", meta::name(deploy));
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "labels": t["metadata"]["labels"],
                "annotations": annotations,
                "ownerReferences": [controller_ref_to(self.deploys.info, deploy)],
            },
            "spec": {
                "replicas": initial,
                "minReadySeconds": deploy.pointer("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
                "selector": selector,
                "template": t,
            },
        });
        let ns = owners::namespace(deploy);
        match self
            .objects
            .create(self.rss.info, ns, rs, WriteOptions::default())
            .await
        {
            Ok(w) => {
                self.expectations.expect_written(key, &w.object);
                self.scaled(deploy, &name, 0, initial);
                Ok(w.object)
            }
            Err(e) if e.code == 409 => {
                let cur = self.objects.get(self.rss.info, ns, &name).await?;
                let ours = owners::controller_ref(&cur).is_some_and(|r| {
                    r.get("uid").and_then(Value::as_str) == Some(owners::uid(deploy))
                });
                let same = hash::same_template(
                    cur.pointer("/spec/template").unwrap_or(&Value::Null),
                    &template,
                );
                if ours && same {
                    Ok(cur)
                } else {
                    Err(ControllerError::Invalid(format!(
                        "ReplicaSet {name} exists with another template or owner"
                    )))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn sync(
        &self,
        key: &str,
        deploy: &Value,
        mut all: Vec<Value>,
    ) -> Result<Action, ControllerError> {
        let template = deploy
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(json!({}));
        all.sort_by_key(|rs| {
            (
                hash::revision(rs),
                meta::str_field(rs, "creationTimestamp").map(str::to_string),
            )
        });
        let new_idx = all.iter().position(|rs| {
            hash::same_template(
                rs.pointer("/spec/template").unwrap_or(&Value::Null),
                &template,
            )
        });
        let mut new = new_idx.map(|i| all.remove(i));
        let olds = all;
        let desired = replicas(deploy);
        let recreate = deploy.pointer("/spec/strategy/type") == Some(&json!("Recreate"));
        let (surge, unavailable) = if recreate {
            (0, 0)
        } else {
            fenceposts(deploy, desired)
        };
        let paused = deploy.pointer("/spec/paused") == Some(&json!(true));
        let olds_active = olds.iter().any(|rs| replicas(rs) > 0);

        if paused {
            if let Some(rs) = &new {
                if !olds_active && replicas(rs) != desired {
                    new = Some(self.scale(key, deploy, rs, desired, surge).await?);
                }
            }
        } else if recreate {
            if olds_active {
                for rs in olds.iter().filter(|rs| replicas(rs) > 0) {
                    self.scale(key, deploy, rs, 0, surge).await?;
                }
            } else if olds.iter().all(|rs| {
                rs.pointer("/status/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    == 0
            }) {
                let rs = self
                    .ensure_new(key, deploy, new.take(), &olds, desired, surge)
                    .await?;
                new = Some(if replicas(&rs) != desired {
                    self.scale(key, deploy, &rs, desired, surge).await?
                } else {
                    rs
                });
            }
        } else {
            let total: i64 =
                olds.iter().map(replicas).sum::<i64>() + new.as_ref().map_or(0, replicas);
            let initial = new_rs_replicas(desired, surge, total, 0);
            let rs = self
                .ensure_new(key, deploy, new.take(), &olds, initial, surge)
                .await?;
            let target = new_rs_replicas(desired, surge, total, replicas(&rs));
            let rs = if target != replicas(&rs) {
                self.scale(key, deploy, &rs, target, surge).await?
            } else {
                let old_counts: Vec<Counts> = olds.iter().map(counts).collect();
                let targets = scale_down_olds(desired, unavailable, counts(&rs), &old_counts);
                for (old, t) in olds.iter().zip(targets) {
                    if t != replicas(old) {
                        self.scale(key, deploy, old, t, surge).await?;
                    }
                }
                rs
            };
            new = Some(rs);
        }

        let mut with_new = olds.clone();
        with_new.extend(new.clone());
        let st = status::compute(deploy, new.as_ref(), &with_new, unavailable);
        if !paused && status::complete(deploy, &st) {
            self.cleanup(deploy, &olds).await?;
        }
        self.write_status(deploy, &st).await?;
        Ok(Action::Done)
    }
}
