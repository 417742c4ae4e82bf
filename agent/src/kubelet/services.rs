//! The Services the kubelet knows (for the Service environment variables), kept from the
//! control plane's WatchServices stream; a relist replaces the cache only once complete.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use skiff_controlplane::agentapi::proto::EventType;
use tokio::sync::watch;

use crate::cpclient::{CpClient, WatchItem, WatchObject};

type Key = (String, String);

/// A shared, always-current copy of the cluster's Services.
#[derive(Clone, Debug)]
pub struct ServiceCache {
    map: Arc<RwLock<BTreeMap<Key, Service>>>,
    synced: watch::Receiver<bool>,
}

fn key(s: &Service) -> Key {
    (
        s.metadata.namespace.clone().unwrap_or_default(),
        s.metadata.name.clone().unwrap_or_default(),
    )
}

impl ServiceCache {
    /// Starts the watch task (ends with `stop`).
    pub fn spawn(client: &CpClient, mut stop: watch::Receiver<bool>) -> Self {
        let map = Arc::new(RwLock::new(BTreeMap::new()));
        let (tx, synced) = watch::channel(false);
        let shared = map.clone();
        let mut w = client.watch_services();
        tokio::spawn(async move {
            let mut listing: Option<BTreeMap<Key, Service>> = None;
            loop {
                let item = tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    item = w.next() => item,
                };
                match item {
                    Ok(WatchItem::Relist) => listing = Some(BTreeMap::new()),
                    Ok(WatchItem::Synced { .. }) => {
                        if let Some(fresh) = listing.take() {
                            *shared.write().expect("service cache lock") = fresh;
                        }
                        let _ = tx.send(true);
                    }
                    Ok(WatchItem::Event {
                        kind,
                        object: WatchObject::Service(s),
                        ..
                    }) => {
                        let k = key(&s);
                        let mut guard;
                        let target = match listing.as_mut() {
                            Some(l) => l,
                            None => {
                                guard = shared.write().expect("service cache lock");
                                &mut *guard
                            }
                        };
                        if kind == EventType::Deleted {
                            target.remove(&k);
                        } else {
                            target.insert(k, *s);
                        }
                    }
                    Ok(WatchItem::Event { .. }) => {}
                    Err(e) => {
                        log::warn!("kubelet: watch of Services: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Self { map, synced }
    }

    /// Every known Service.
    pub fn list(&self) -> Vec<Service> {
        self.map
            .read()
            .expect("service cache lock")
            .values()
            .cloned()
            .collect()
    }

    /// Service `name` of namespace `ns`, if known.
    pub fn get(&self, ns: &str, name: &str) -> Option<Service> {
        self.map
            .read()
            .expect("service cache lock")
            .get(&(ns.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Whether the first list is complete.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the first list is complete (at most `timeout`): `false` if it is not.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut rx = self.synced.clone();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}
