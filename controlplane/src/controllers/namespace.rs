//! Namespace deletion: once a namespace has a deletionTimestamp, delete every namespaced
//! object in it (every served kind), and when none is left remove `kubernetes` from
//! `spec.finalizers` through the `finalize` subresource, so the store drops the namespace.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::cache::Cache;
use super::runtime::{Action, Controller};
use super::ControllerError;
use crate::api::meta;
use crate::api::objects::{DeleteOptions, ListOptions, Objects, WriteOptions};
use crate::api::registry::{self, Subresource};

/// Re-check a namespace whose objects are still going away.
const POLL: Duration = Duration::from_millis(500);

pub struct Namespaces {
    pub objects: Objects,
    pub namespaces: Arc<Cache>,
}

impl Namespaces {
    /// Delete what is left in `ns`; returns how many objects still exist.
    async fn empty(&self, ns: &str) -> Result<usize, ControllerError> {
        let mut left = 0;
        for info in registry::RESOURCES.iter().filter(|i| i.namespaced) {
            let items = self
                .objects
                .list(info, Some(ns), &ListOptions::default())
                .await?
                .items;
            left += items.len();
            for item in items.iter().filter(|i| !meta::is_deleting(i)) {
                let opts = DeleteOptions {
                    propagation_policy: Some("Background".into()),
                    ..Default::default()
                };
                match self
                    .objects
                    .delete(info, Some(ns), meta::name(item), &opts)
                    .await
                {
                    Err(e) if e.code != 404 => return Err(e.into()),
                    _ => {}
                }
            }
        }
        Ok(left)
    }
}

impl Controller for Namespaces {
    fn name(&self) -> &'static str {
        "namespace"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(ns) = self.namespaces.get(key) else {
            return Ok(Action::Done);
        };
        if !meta::is_deleting(&ns) {
            return Ok(Action::Done);
        }
        if self.empty(key).await? > 0 {
            return Ok(Action::RequeueAfter(POLL));
        }
        let finalizers: Vec<Value> = ns
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if finalizers.iter().any(|f| f == "kubernetes") {
            let mut body = ns.clone();
            let rest: Vec<Value> = finalizers
                .into_iter()
                .filter(|f| f != "kubernetes")
                .collect();
            body["spec"]["finalizers"] = json!(rest);
            self.objects
                .update(
                    self.namespaces.info,
                    None,
                    key,
                    body,
                    Some(Subresource::Finalize),
                    WriteOptions::default(),
                )
                .await?;
        }
        Ok(Action::Done)
    }
}
