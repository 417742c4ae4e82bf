//! The garbage collector: deletes objects whose owners are all gone (a uid mismatch counts
//! as gone), drops references to vanished owners, and finishes the `orphan` and
//! `foregroundDeletion` finalizers the API server adds for propagation policies.
//! Keys are `<registry index>|<cache key>`; a reverse index maps owner uids to dependents.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::cache::{key_of, Cache};
use super::owners::{self, owner_refs};
use super::runtime::{Action, Controller};
use super::ControllerError;
use crate::api::meta;
use crate::api::objects::{DeleteOptions, ListOptions, Objects};
use crate::api::registry::{self, ResourceInfo};

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

pub struct GarbageCollector {
    pub objects: Objects,
    /// One cache per entry of [`registry::RESOURCES`], same order.
    pub caches: Vec<Arc<Cache>>,
    /// Owner uid → keys of its dependents.
    dependents: Mutex<HashMap<String, HashSet<String>>>,
}

fn ref_uid(r: &Value) -> &str {
    r.get("uid").and_then(Value::as_str).unwrap_or("")
}

impl GarbageCollector {
    pub fn new(objects: Objects, caches: Vec<Arc<Cache>>) -> Self {
        Self {
            objects,
            caches,
            dependents: Mutex::default(),
        }
    }

    /// Index a change of an object of cache `idx`; returns the keys to reconcile.
    pub fn observe(&self, idx: usize, old: Option<&Value>, new: Option<&Value>) -> Vec<String> {
        let mut out = Vec::new();
        let obj = new.or(old).expect("a change has a side");
        let key = format!("{idx}|{}", key_of(obj));
        let mut deps = self.dependents.lock().unwrap();
        for r in old.map(owner_refs).unwrap_or_default() {
            if let Some(s) = deps.get_mut(ref_uid(&r)) {
                s.remove(&key);
            }
        }
        for r in new.map(owner_refs).unwrap_or_default() {
            deps.entry(ref_uid(&r).to_string())
                .or_default()
                .insert(key.clone());
        }
        match new {
            Some(n) => {
                if !owner_refs(n).is_empty() || meta::is_deleting(n) {
                    out.push(key);
                }
            }
            None => {
                // Gone: its dependents may be dangling; owners waiting on it re-check.
                let uid = old.map(owners::uid).unwrap_or("");
                out.extend(deps.remove(uid).into_iter().flatten());
                for r in old.map(owner_refs).unwrap_or_default() {
                    out.extend(self.owner_key(obj, &r));
                }
            }
        }
        out
    }

    /// The queue key of the owner `r` of `obj`, if its kind is served.
    fn owner_key(&self, obj: &Value, r: &Value) -> Option<String> {
        let av = r.get("apiVersion").and_then(Value::as_str)?;
        let kind = r.get("kind").and_then(Value::as_str)?;
        let idx = registry::RESOURCES
            .iter()
            .position(|i| i.kind == kind && i.api_version() == av)?;
        let name = r.get("name").and_then(Value::as_str)?;
        let info = &registry::RESOURCES[idx];
        Some(match owners::namespace(obj).filter(|_| info.namespaced) {
            Some(ns) => format!("{idx}|{ns}/{name}"),
            None => format!("{idx}|{name}"),
        })
    }

    fn lookup(&self, key: &str) -> Option<(&Arc<Cache>, Value)> {
        let (idx, k) = key.split_once('|')?;
        let cache = self.caches.get(idx.parse::<usize>().ok()?)?;
        Some((cache, cache.get(k)?))
    }

    /// Dependents of `owner` read from the store, not the caches: a dependent created just
    /// before the owner's deletion must not be missed when a finalizer is lifted.
    async fn dependents_of(
        &self,
        owner: &Value,
    ) -> Result<Vec<(&'static ResourceInfo, Value)>, ControllerError> {
        let uid = owners::uid(owner);
        let ns = owners::namespace(owner);
        let mut out = Vec::new();
        for info in registry::RESOURCES {
            if ns.is_some() && !info.namespaced {
                continue;
            }
            let items = self
                .objects
                .list(
                    info,
                    ns.filter(|_| info.namespaced),
                    &ListOptions::default(),
                )
                .await?
                .items;
            out.extend(
                items
                    .into_iter()
                    .filter(|o| owner_refs(o).iter().any(|r| ref_uid(r) == uid))
                    .map(|o| (info, o)),
            );
        }
        Ok(out)
    }

    /// Does the owner `r` of `obj` exist with the referenced uid? (Unknown kinds: yes.)
    async fn owner_alive(&self, obj: &Value, r: &Value) -> Result<bool, ControllerError> {
        let Some(key) = self.owner_key(obj, r) else {
            return Ok(true);
        };
        if let Some((_, owner)) = self.lookup(&key) {
            if owners::uid(&owner) == ref_uid(r) {
                return Ok(true);
            }
        }
        // The cache may lag behind: confirm with a read from the store.
        let (idx, _) = key.split_once('|').unwrap_or_default();
        let info = &registry::RESOURCES[idx.parse::<usize>().unwrap_or(0)];
        let ns = owners::namespace(obj).filter(|_| info.namespaced);
        let name = r.get("name").and_then(Value::as_str).unwrap_or("");
        match self.objects.get(info, ns, name).await {
            Ok(o) => Ok(owners::uid(&o) == ref_uid(r)),
            Err(e) if e.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(
        &self,
        info: &ResourceInfo,
        obj: &Value,
        policy: &str,
    ) -> Result<(), ControllerError> {
        let opts = DeleteOptions {
            propagation_policy: Some(policy.into()),
            precondition_uid: Some(owners::uid(obj).to_string()),
            ..Default::default()
        };
        match self
            .objects
            .delete(info, owners::namespace(obj), meta::name(obj), &opts)
            .await
        {
            Err(e) if e.code != 404 => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn finish_orphan(&self, cache: &Cache, obj: &Value) -> Result<Action, ControllerError> {
        let uid = owners::uid(obj);
        for (info, dep) in self.dependents_of(obj).await? {
            owners::release(&self.objects, info, &dep, uid).await?;
        }
        owners::remove_finalizer(&self.objects, cache.info, obj, ORPHAN).await?;
        Ok(Action::Done)
    }

    async fn finish_foreground(
        &self,
        cache: &Cache,
        obj: &Value,
    ) -> Result<Action, ControllerError> {
        let uid = owners::uid(obj);
        let mut blocking = 0;
        for (info, dep) in self.dependents_of(obj).await? {
            let blocks = owner_refs(&dep).iter().any(|r| {
                ref_uid(r) == uid && r.get("blockOwnerDeletion") == Some(&Value::Bool(true))
            });
            if !meta::is_deleting(&dep) {
                let policy = if blocks { "Foreground" } else { "Background" };
                self.delete(info, &dep, policy).await?;
            }
            blocking += usize::from(blocks);
        }
        if blocking == 0 {
            owners::remove_finalizer(&self.objects, cache.info, obj, FOREGROUND).await?;
        }
        Ok(Action::Done)
    }
}

impl Controller for GarbageCollector {
    fn name(&self) -> &'static str {
        "garbage-collector"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some((cache, obj)) = self.lookup(key) else {
            return Ok(Action::Done);
        };
        let finalizers = meta::finalizers(&obj);
        if meta::is_deleting(&obj) {
            if finalizers.iter().any(|f| f == ORPHAN) {
                return self.finish_orphan(cache, &obj).await;
            }
            if finalizers.iter().any(|f| f == FOREGROUND) {
                return self.finish_foreground(cache, &obj).await;
            }
        }
        let refs = owner_refs(&obj);
        if refs.is_empty() {
            return Ok(Action::Done);
        }
        let mut dangling = Vec::new();
        for r in &refs {
            if !self.owner_alive(&obj, r).await? {
                dangling.push(ref_uid(r).to_string());
            }
        }
        if dangling.len() == refs.len() {
            if !meta::is_deleting(&obj) {
                self.delete(cache.info, &obj, "Background").await?;
            }
        } else if !dangling.is_empty() {
            let keep = refs
                .into_iter()
                .filter(|r| !dangling.iter().any(|d| d == ref_uid(r)))
                .collect();
            owners::set_owner_refs(&self.objects, cache.info, &obj, keep).await?;
        }
        Ok(Action::Done)
    }
}
