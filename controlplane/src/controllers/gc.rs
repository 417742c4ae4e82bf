//! The garbage collector: deletes objects whose owners are all gone (a uid mismatch counts
//! as gone), drops references to vanished owners, and finishes the `orphan` and
//! `foregroundDeletion` finalizers the API server adds for propagation policies.
//! Keys are `<cache index>|<cache key>`; a reverse index maps owner uids to dependents.
//! Cache indices first follow [`registry::RESOURCES`]; the kinds of CRDs get caches of
//! their own as the CRDs come and go ([`GarbageCollector::follow_definition`]), indexed
//! after the built-in ones.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use tokio::task::AbortHandle;

use serde_json::Value;

use super::cache::{key_of, reflect, Cache};
use super::owners::{self, owner_refs};
use super::queue::WorkQueue;
use super::runtime::{Action, Controller};
use super::ControllerError;
use crate::api::custom::kinds::infos_of;
use crate::api::meta;
use crate::api::objects::{DeleteOptions, ListOptions, Objects};
use crate::api::registry::{self, ResourceInfo};

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

pub struct GarbageCollector {
    pub objects: Objects,
    /// One cache per entry of [`registry::RESOURCES`], same order.
    pub caches: Vec<Arc<Cache>>,
    /// Caches of custom kinds (their storage versions), at index `caches.len() + i`; a
    /// CRD's slot stays (without a cache) when it goes.
    custom: RwLock<Followed>,
    /// Owner uid → keys of its dependents.
    dependents: Mutex<HashMap<String, HashSet<String>>>,
}

fn ref_uid(r: &Value) -> &str {
    r.get("uid").and_then(Value::as_str).unwrap_or("")
}

/// The cache of one custom kind and the task filling it.
struct CustomCache {
    crd: String,
    /// The kind as last defined (its storage version); kept once the CRD is gone, so that
    /// references to its objects still resolve (to nothing).
    info: &'static ResourceInfo,
    /// The cache and its reflector; `None` once the CRD is gone.
    live: Option<(Arc<Cache>, AbortHandle)>,
}

/// The custom kinds followed, and whether the controllers stopped.
#[derive(Default)]
struct Followed {
    slots: Vec<CustomCache>,
    stopped: bool,
}

impl GarbageCollector {
    pub fn new(objects: Objects, caches: Vec<Arc<Cache>>) -> Self {
        Self {
            objects,
            caches,
            custom: RwLock::default(),
            dependents: Mutex::default(),
        }
    }

    /// Start following the objects of a CRD's kind (a CRD made again takes its old slot),
    /// take a new definition of it, or stop once `crd` is gone; their changes are observed
    /// as those of the built-in kinds and queued on `queue`.
    pub fn follow_definition(
        self: &Arc<Self>,
        crd: Option<&Value>,
        name: &str,
        queue: &Arc<WorkQueue>,
    ) {
        let mut followed = self.custom.write().unwrap();
        if followed.stopped {
            return;
        }
        let live = followed
            .slots
            .iter()
            .position(|c| c.crd == name && c.live.is_some());
        let info = crd.and_then(|c| {
            infos_of(c)
                .into_iter()
                .find(|i| i.custom.is_some_and(|c| c.storage))
        });
        match (live, info) {
            (Some(i), Some(info)) => {
                // Redefined: the cache (metadata only, by key) stays, so no deletion is
                // missed; the collector's writes use the new schema.
                followed.slots[i].info = info;
            }
            (None, Some(info)) => {
                log::info!("garbage collector: following {}", info.qualified());
                let dead = followed.slots.iter().position(|c| c.crd == name);
                let i = dead.unwrap_or(followed.slots.len());
                let live = Some(self.start_cache(self.caches.len() + i, info, queue));
                match dead {
                    Some(i) => {
                        followed.slots[i].info = info;
                        followed.slots[i].live = live;
                    }
                    None => followed.slots.push(CustomCache {
                        crd: name.to_string(),
                        info,
                        live,
                    }),
                }
            }
            (Some(i), None) => {
                if let Some((_, reflector)) = followed.slots[i].live.take() {
                    reflector.abort();
                }
            }
            (None, None) => {}
        }
    }

    /// A cache of custom kind `info` at index `idx`, observed, and its reflector.
    fn start_cache(
        self: &Arc<Self>,
        idx: usize,
        info: &'static ResourceInfo,
        queue: &Arc<WorkQueue>,
    ) -> (Arc<Cache>, AbortHandle) {
        let cache = Cache::metadata_only(info);
        let (gc, q) = (Arc::downgrade(self), queue.clone());
        cache.on_change(Arc::new(move |old, new| {
            if let Some(gc) = gc.upgrade() {
                for k in gc.observe(idx, old, new) {
                    q.add(&k);
                }
            }
        }));
        let reflector = tokio::spawn(reflect(cache.clone(), self.objects.clone())).abort_handle();
        (cache, reflector)
    }

    /// Stop the reflectors of custom kinds (the controllers stop), and start no more.
    pub fn stop_following(&self) {
        let mut followed = self.custom.write().unwrap();
        followed.stopped = true;
        for slot in &mut followed.slots {
            if let Some((_, reflector)) = slot.live.take() {
                reflector.abort();
            }
        }
    }

    /// The cache at index `idx` (built-in, or a custom kind still defined).
    fn cache_at(&self, idx: usize) -> Option<Arc<Cache>> {
        if let Some(c) = self.caches.get(idx) {
            return Some(c.clone());
        }
        let followed = self.custom.read().unwrap();
        let slot = followed.slots.get(idx - self.caches.len())?;
        slot.live.as_ref().map(|(c, _)| c.clone())
    }

    /// The resource at index `idx`, also of a custom kind whose CRD is gone.
    fn info_at(&self, idx: usize) -> Option<&'static ResourceInfo> {
        if let Some(c) = self.caches.get(idx) {
            return Some(c.info);
        }
        let followed = self.custom.read().unwrap();
        followed.slots.get(idx - self.caches.len()).map(|s| s.info)
    }

    /// The cache index and resource of owner kind `kind` of `api_version`: a built-in
    /// kind, or any version of a custom kind followed (a defined one first).
    fn index_of(&self, api_version: &str, kind: &str) -> Option<(usize, &'static ResourceInfo)> {
        if let Some(i) = registry::RESOURCES
            .iter()
            .position(|i| i.kind == kind && i.api_version() == api_version)
        {
            return Some((i, &registry::RESOURCES[i]));
        }
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let followed = self.custom.read().unwrap();
        let mut matching = followed
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.info.group == group && s.info.kind == kind);
        let first = matching.clone().next();
        let found = matching.find(|(_, s)| s.live.is_some()).or(first)?;
        Some((self.caches.len() + found.0, found.1.info))
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
        let (idx, info) = self.index_of(av, kind)?;
        let name = r.get("name").and_then(Value::as_str)?;
        Some(match owners::namespace(obj).filter(|_| info.namespaced) {
            Some(ns) => format!("{idx}|{ns}/{name}"),
            None => format!("{idx}|{name}"),
        })
    }

    /// The resource and cached object of a queue key. The resource is the kind as now
    /// defined (a custom kind's cache outlives changes of its CRD): writes use its schema.
    fn lookup(&self, key: &str) -> Option<(&'static ResourceInfo, Value)> {
        let (idx, k) = key.split_once('|')?;
        let idx = idx.parse::<usize>().ok()?;
        let obj = self.cache_at(idx)?.get(k)?;
        Some((self.info_at(idx)?, obj))
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
        let custom = self.objects.custom_kinds().stored();
        for info in registry::RESOURCES.iter().chain(custom) {
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
        let Some(info) = self.info_at(idx.parse::<usize>().unwrap_or(0)) else {
            return Ok(true);
        };
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

    async fn finish_orphan(
        &self,
        info: &ResourceInfo,
        obj: &Value,
    ) -> Result<Action, ControllerError> {
        let uid = owners::uid(obj);
        for (info, dep) in self.dependents_of(obj).await? {
            owners::release(&self.objects, info, &dep, uid).await?;
        }
        owners::remove_finalizer(&self.objects, info, obj, ORPHAN).await?;
        Ok(Action::Done)
    }

    async fn finish_foreground(
        &self,
        owner_info: &ResourceInfo,
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
            owners::remove_finalizer(&self.objects, owner_info, obj, FOREGROUND).await?;
        }
        Ok(Action::Done)
    }
}

impl Controller for GarbageCollector {
    fn name(&self) -> &'static str {
        "garbage-collector"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some((info, obj)) = self.lookup(key) else {
            return Ok(Action::Done);
        };
        let finalizers = meta::finalizers(&obj);
        if meta::is_deleting(&obj) {
            if finalizers.iter().any(|f| f == ORPHAN) {
                return self.finish_orphan(info, &obj).await;
            }
            if finalizers.iter().any(|f| f == FOREGROUND) {
                return self.finish_foreground(info, &obj).await;
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
                self.delete(info, &obj, "Background").await?;
            }
        } else if !dangling.is_empty() {
            let keep = refs
                .into_iter()
                .filter(|r| !dangling.iter().any(|d| d == ref_uid(r)))
                .collect();
            owners::set_owner_refs(&self.objects, info, &obj, keep).await?;
        }
        Ok(Action::Done)
    }
}
