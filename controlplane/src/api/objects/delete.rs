//! Deletes: graceful pod deletion, finalizers and propagation policies (the garbage
//! collector honours `orphan` and `foregroundDeletion` later), delete-collection.

use serde_json::{json, Value};

use super::update::By;
use super::{key, served, ListOptions, Objects, WriteOptions};
use crate::api::error::ApiError;
use crate::api::meta;
use crate::api::registry::ResourceInfo;
use crate::{Consistency, Op, OpError};

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

/// `DeleteOptions` (body or query).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    /// `Orphan`, `Background` or `Foreground`.
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<u64>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// From a `DeleteOptions` JSON body (missing fields stay as they are).
    pub fn merge_body(&mut self, body: &Value) {
        if let Some(g) = body.get("gracePeriodSeconds").and_then(Value::as_i64) {
            self.grace_period_seconds = Some(g);
        }
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
            self.propagation_policy = Some(p.to_string());
        }
        if body.get("orphanDependents") == Some(&json!(true)) {
            self.propagation_policy
                .get_or_insert_with(|| "Orphan".into());
        }
        if let Some(u) = body.pointer("/preconditions/uid").and_then(Value::as_str) {
            self.precondition_uid = Some(u.to_string());
        }
        if let Some(rv) = body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
        {
            self.precondition_resource_version = Some(rv);
        }
        if body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|d| d == "All"))
        {
            self.dry_run = true;
        }
    }
}

/// The outcome of a delete: the object is gone, or it stays (finalizers, grace period).
#[derive(Debug, Clone)]
pub enum Deleted {
    Gone(Value),
    Pending(Value),
}

/// Finalizers after applying a propagation policy.
fn finalizers_for(obj: &Value, policy: Option<&str>) -> Vec<String> {
    let mut f = meta::finalizers(obj);
    let (add, drop): (&[&str], &[&str]) = match policy {
        Some("Orphan") => (&[ORPHAN], &[FOREGROUND]),
        Some("Foreground") => (&[FOREGROUND], &[ORPHAN]),
        Some("Background") => (&[], &[ORPHAN, FOREGROUND]),
        _ => (&[], &[]),
    };
    f.retain(|x| !drop.contains(&x.as_str()));
    for a in add {
        if !f.iter().any(|x| x == a) {
            f.push(a.to_string());
        }
    }
    f
}

/// Grace period of a pod bound to a node (`None`: delete at once).
fn pod_grace(info: &ResourceInfo, obj: &Value, opts: &DeleteOptions) -> Option<i64> {
    if info.builtin_kind() != "Pod" {
        return None;
    }
    let bound = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let terminal = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    let grace = opts.grace_period_seconds.unwrap_or_else(|| {
        obj.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30)
    });
    (bound && !terminal && grace > 0).then_some(grace)
}

impl Objects {
    pub async fn delete(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        // A lost race with another writer is retried unless the client set preconditions.
        let preconditioned =
            opts.precondition_uid.is_some() || opts.precondition_resource_version.is_some();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.delete_once(info, ns, name, opts).await {
                Err(e) if e.reason == "Conflict" && !preconditioned && attempt < 5 => {}
                other => return other,
            }
        }
    }

    async fn delete_once(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let kv = self
            .get_kv(info, ns, name, Consistency::Linearizable)
            .await?;
        let cur = served(info, &kv)?;
        if opts
            .precondition_uid
            .as_deref()
            .is_some_and(|u| Some(u) != meta::str_field(&cur, "uid"))
            || opts
                .precondition_resource_version
                .is_some_and(|rv| rv != kv.mod_revision)
        {
            return Err(ApiError::conflict(info, name));
        }
        let policy = opts.propagation_policy.as_deref();
        let grace = pod_grace(info, &cur, opts);
        let held = !finalizers_for(&cur, policy).is_empty()
            || grace.is_some()
            || (info.builtin_kind() == "Namespace"
                && cur
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty()));
        if held {
            let wopts = WriteOptions {
                dry_run: opts.dry_run,
                ..Default::default()
            };
            let kind = info.builtin_kind();
            let written = self
                .guaranteed_update(info, ns, name, wopts, By::Server, |cur| {
                    let finalizers = finalizers_for(cur, policy);
                    let mut new = cur.clone();
                    let m = meta::meta_mut(&mut new);
                    if finalizers.is_empty() {
                        m.remove("finalizers");
                    } else {
                        m.insert("finalizers".into(), json!(finalizers));
                    }
                    let g = grace.unwrap_or(0);
                    if !meta::is_deleting(cur) || grace.is_some() {
                        m.insert("deletionTimestamp".into(), json!(meta::now_plus(g)));
                        m.insert("deletionGracePeriodSeconds".into(), json!(g));
                    }
                    if kind == "Namespace" {
                        new["status"]["phase"] = json!("Terminating");
                    }
                    Ok((new, None, Vec::new()))
                })
                .await;
            return written.map(|w| Deleted::Pending(w.object));
        }
        if opts.dry_run {
            return Ok(Deleted::Gone(cur));
        }
        let op = Op::Delete {
            key: key(info, ns, name),
            expected_revision: Some(kv.mod_revision),
        };
        match self.cp.apply(op).await {
            Ok((rev, _)) => {
                crate::alloc::hooks::written(&self.cp, info.builtin_kind(), &cur, None).await;
                let mut gone = cur;
                meta::set_resource_version(&mut gone, rev);
                Ok(Deleted::Gone(gone))
            }
            Err(crate::Error::Op(OpError::Conflict { .. })) => Err(ApiError::conflict(info, name)),
            Err(e) => Err(ApiError::from_store(e, info, name)),
        }
    }

    /// Delete every object matching `list` (in `ns`); returns the deleted ones.
    pub async fn delete_collection(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let items = self.list(info, ns, list).await?.items;
        let mut out = Vec::new();
        for item in items {
            let item_ns = meta::str_field(&item, "namespace").map(str::to_string);
            match self
                .delete(info, item_ns.as_deref(), meta::name(&item), opts)
                .await
            {
                Ok(Deleted::Gone(v) | Deleted::Pending(v)) => out.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
