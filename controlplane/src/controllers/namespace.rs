//! Namespaces: every live namespace has its `default` ServiceAccount (made again if
//! deleted, as kube-controller-manager's serviceaccount controller does). Once a namespace
//! has a deletionTimestamp, delete every namespaced object in it (every served kind, custom
//! kinds included), and
//! when none is left remove `kubernetes` from `spec.finalizers` through the `finalize`
//! subresource, so the store drops the namespace.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::cache::Cache;
use super::owners;
use super::runtime::{Action, Controller};
use super::ControllerError;
use crate::api::meta;
use crate::api::objects::{Objects, WriteOptions};
use crate::api::registry::{self, Subresource};

/// Re-check a namespace whose objects are still going away.
const POLL: Duration = Duration::from_millis(500);

/// The ServiceAccount every namespace has.
pub const DEFAULT_ACCOUNT: &str = "default";

pub struct Namespaces {
    pub objects: Objects,
    pub namespaces: Arc<Cache>,
    pub accounts: Arc<Cache>,
}

impl Namespaces {
    /// Creates the namespace's `default` ServiceAccount if it has none.
    async fn ensure_account(&self, ns: &str) -> Result<(), ControllerError> {
        if self.accounts.get_named(Some(ns), DEFAULT_ACCOUNT).is_some() {
            return Ok(());
        }
        let account = json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT_ACCOUNT, "namespace": ns},
        });
        match self
            .objects
            .create(
                self.accounts.info,
                Some(ns),
                account,
                WriteOptions::default(),
            )
            .await
        {
            Ok(_) => log::info!("namespace {ns}: created ServiceAccount {DEFAULT_ACCOUNT}"),
            // Exists already, or the namespace began terminating meanwhile.
            Err(e) if e.code == 409 || e.code == 403 || e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Delete what is left in `ns`; returns how many objects still exist.
    async fn empty(&self, ns: &str) -> Result<usize, ControllerError> {
        let mut left = 0;
        self.objects.refresh_custom_kinds().await?;
        let custom = self.objects.custom_kinds().stored();
        let kinds = registry::RESOURCES.iter().chain(custom);
        for info in kinds.filter(|i| i.namespaced) {
            left += owners::delete_all(&self.objects, info, Some(ns)).await?;
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
            self.ensure_account(key).await?;
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
