//! A watched cache per kind (a reflector): list, then watch from the list's revision,
//! resume after a watch ends, relist when the revision is gone (410) or the watch fails.
//! Every change is handed to the registered handlers, which only enqueue keys.
//!
//! Kinds that no controller reads in full (ConfigMaps, Secrets, ...) are cached as metadata
//! only (`apiVersion`, `kind`, `metadata`: what the garbage collector needs), as Kubernetes'
//! garbage collector uses metadata informers: a copy of every Secret's data has no business in
//! the controllers' memory. Objects are kept behind `Arc`s, so handing one to the handlers
//! copies nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::api::meta;
use crate::api::objects::{ListOptions, Objects, WatchOptions};
use crate::api::registry::ResourceInfo;

/// Called with the previous and the new state of an object (`None`: absent).
pub type Handler = Arc<dyn Fn(Option<&Value>, Option<&Value>) + Send + Sync>;

/// How long one watch request lives before it is resumed.
const WATCH_SPAN: Duration = Duration::from_secs(300);
/// Pause after a failed list or watch.
const RETRY: Duration = Duration::from_millis(500);

/// The cache key of an object: `ns/name`, or `name` for cluster-scoped kinds.
pub fn key_of(obj: &Value) -> String {
    match meta::str_field(obj, "namespace").filter(|n| !n.is_empty()) {
        Some(ns) => format!("{ns}/{}", meta::name(obj)),
        None => meta::name(obj).to_string(),
    }
}

/// Namespace and name from a cache key.
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}

pub struct Cache {
    pub info: &'static ResourceInfo,
    items: RwLock<BTreeMap<String, Arc<Value>>>,
    /// Only `apiVersion`, `kind` and `metadata` are kept.
    metadata_only: bool,
    revision: AtomicU64,
    synced: watch::Sender<bool>,
    handlers: RwLock<Vec<Handler>>,
}

impl Cache {
    pub fn new(info: &'static ResourceInfo) -> Arc<Self> {
        Self::with_content(info, false)
    }

    /// A cache that keeps only the objects' `apiVersion`, `kind` and `metadata`.
    pub fn metadata_only(info: &'static ResourceInfo) -> Arc<Self> {
        Self::with_content(info, true)
    }

    fn with_content(info: &'static ResourceInfo, metadata_only: bool) -> Arc<Self> {
        Arc::new(Self {
            info,
            items: RwLock::default(),
            metadata_only,
            revision: AtomicU64::new(0),
            synced: watch::channel(false).0,
            handlers: RwLock::default(),
        })
    }

    /// Register a handler; do it before [`reflect`] starts.
    pub fn on_change(&self, h: Handler) {
        self.handlers.write().unwrap().push(h);
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        self.items.read().unwrap().get(key).map(|v| (**v).clone())
    }

    pub fn get_named(&self, ns: Option<&str>, name: &str) -> Option<Value> {
        match ns.filter(|_| self.info.namespaced) {
            Some(ns) => self.get(&format!("{ns}/{name}")),
            None => self.get(name),
        }
    }

    /// Objects in `ns` (every object with `None`).
    pub fn list(&self, ns: Option<&str>) -> Vec<Value> {
        let items = self.items.read().unwrap();
        match ns {
            None => items.values().map(|v| (**v).clone()).collect(),
            Some(ns) => {
                let prefix = format!("{ns}/");
                items
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(_, v)| (**v).clone())
                    .collect()
            }
        }
    }

    pub fn keys(&self) -> Vec<String> {
        self.items.read().unwrap().keys().cloned().collect()
    }

    /// The store revision this cache has caught up with.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    fn notify(&self, old: Option<&Value>, new: Option<&Value>) {
        let handlers = self.handlers.read().unwrap().clone();
        for h in handlers {
            h(old, new);
        }
    }

    fn bump(&self, rev: u64) {
        self.revision.fetch_max(rev, Ordering::AcqRel);
    }

    /// The object as this cache keeps it.
    fn kept(&self, obj: Value) -> Arc<Value> {
        if !self.metadata_only {
            return Arc::new(obj);
        }
        let Value::Object(mut map) = obj else {
            return Arc::new(obj);
        };
        map.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata"));
        Arc::new(Value::Object(map))
    }

    fn upsert(&self, obj: Value) {
        let rev = meta::resource_version(&obj).ok().flatten().unwrap_or(0);
        let obj = self.kept(obj);
        let old = self
            .items
            .write()
            .unwrap()
            .insert(key_of(&obj), obj.clone());
        self.bump(rev);
        self.notify(old.as_deref(), Some(&obj));
    }

    fn remove(&self, obj: &Value) {
        let rev = meta::resource_version(obj).ok().flatten().unwrap_or(0);
        let old = self.items.write().unwrap().remove(&key_of(obj));
        self.bump(rev);
        if let Some(old) = old {
            self.notify(Some(&old), None);
        }
    }

    /// Replace everything with a fresh list.
    fn replace(&self, items: Vec<Value>, rev: u64) {
        let fresh: BTreeMap<String, Arc<Value>> = items
            .into_iter()
            .map(|o| (key_of(&o), self.kept(o)))
            .collect();
        let old = std::mem::replace(&mut *self.items.write().unwrap(), fresh.clone());
        self.bump(rev);
        for (k, v) in &old {
            if !fresh.contains_key(k) {
                self.notify(Some(v), None);
            }
        }
        for (k, v) in &fresh {
            if old.get(k) != Some(v) {
                self.notify(old.get(k).map(|o| &**o), Some(v));
            }
        }
    }
}

/// Keep `cache` in step with the store, forever.
pub async fn reflect(cache: Arc<Cache>, objects: Objects) {
    let info = cache.info;
    loop {
        let listed = match objects.list(info, None, &ListOptions::default()).await {
            Ok(l) => l,
            Err(e) => {
                log::warn!("listing {}: {e}", info.plural);
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let mut rev = listed.revision;
        cache.replace(listed.items, rev);
        cache.synced.send_replace(true);
        'watch: loop {
            let opts = WatchOptions {
                labels: Default::default(),
                fields: Default::default(),
                resource_version: Some(rev.to_string()),
                bookmarks: true,
                timeout: WATCH_SPAN,
            };
            let mut stream = match objects.watch(info, None, opts).await {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("watching {}: {e}", info.plural);
                    tokio::time::sleep(RETRY).await;
                    break 'watch;
                }
            };
            while let Some(ev) = stream.next().await {
                let obj_rev = meta::resource_version(&ev.object).ok().flatten();
                match ev.kind {
                    "ADDED" | "MODIFIED" => cache.upsert(ev.object),
                    "DELETED" => cache.remove(&ev.object),
                    "BOOKMARK" => cache.bump(obj_rev.unwrap_or(0)),
                    _ => {
                        log::info!("watch of {} ended: {}; relisting", info.plural, ev.object);
                        break 'watch;
                    }
                }
                rev = rev.max(obj_rev.unwrap_or(0));
            }
        }
    }
}
