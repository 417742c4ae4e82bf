//! A minimal reflector: list + watch one kind through the in-process API client into a
//! shared cache, and report each change on a channel. Re-lists (and reports the
//! difference) whenever the watch ends or expires. Used by the endpoints controller, node
//! lifecycle and node IPAM.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api::client::{Event, Selectors};
use crate::api::ApiClient;

/// One changed object: its `namespace/name` key, its state before and after, and when the
/// reflector saw the change (the watch event's arrival, or the list's for a relist).
#[derive(Debug, Clone)]
pub struct Change<K> {
    pub key: String,
    pub old: Option<K>,
    pub new: Option<K>,
    pub observed: SystemTime,
}

/// The cached objects by `namespace/name` (or `name` for cluster-scoped kinds).
pub type Store<K> = Arc<RwLock<BTreeMap<String, K>>>;

/// `namespace/name` of an object.
pub fn key_of<K: Metadata<Ty = ObjectMeta>>(obj: &K) -> String {
    let m = obj.metadata();
    match m.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", m.name.as_deref().unwrap_or("")),
        _ => m.name.clone().unwrap_or_default(),
    }
}

/// Start reflecting kind `K`; changes go to `tx` after the cache holds them. The task ends
/// when `tx`'s receiver is dropped.
pub fn spawn<K>(
    client: ApiClient,
    tx: mpsc::UnboundedSender<Change<K>>,
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource + Metadata<Ty = ObjectMeta> + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let store: Store<K> = Arc::default();
    let task = tokio::spawn(run(client, store.clone(), tx));
    (store, task)
}

async fn run<K>(client: ApiClient, store: Store<K>, tx: mpsc::UnboundedSender<Change<K>>)
where
    K: Resource + Metadata<Ty = ObjectMeta> + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let sel = Selectors::default();
    loop {
        if tx.is_closed() {
            return;
        }
        let list = match client.list::<K>(None, &sel).await {
            Ok(l) => l,
            Err(e) => {
                log::warn!("listing {}: {}", K::KIND, e.message);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let observed = SystemTime::now();
        let mut fresh: BTreeMap<String, K> =
            list.items.into_iter().map(|o| (key_of(&o), o)).collect();
        let old = std::mem::take(&mut *store.write().expect("cache lock"));
        *store.write().expect("cache lock") = fresh.clone();
        for (key, o) in old {
            let new = fresh.remove(&key);
            let _ = tx.send(Change {
                key,
                old: Some(o),
                new,
                observed,
            });
        }
        for (key, n) in fresh {
            let _ = tx.send(Change {
                key,
                old: None,
                new: Some(n),
                observed,
            });
        }
        let mut watch = match client
            .watch::<K>(None, &sel, Some(list.resource_version))
            .await
        {
            Ok(w) => w,
            Err(e) => {
                log::warn!("watching {}: {}", K::KIND, e.message);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(ev) = watch.next().await {
            let observed = SystemTime::now();
            let (obj, deleted) = match ev {
                Ok(Event::Added(o) | Event::Modified(o)) => (o, false),
                Ok(Event::Deleted(o)) => (o, true),
                Ok(Event::Bookmark(_)) => continue,
                Err(e) => {
                    log::debug!("watch of {} ended: {}", K::KIND, e.message);
                    break;
                }
            };
            let key = key_of(&obj);
            let old = {
                let mut s = store.write().expect("cache lock");
                if deleted {
                    s.remove(&key)
                } else {
                    s.insert(key.clone(), obj.clone())
                }
            };
            let new = (!deleted).then_some(obj);
            let change = Change {
                key,
                old,
                new,
                observed,
            };
            if tx.send(change).is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
