//! The Services the kubelet knows (for the Service environment variables and the cluster
//! DNS) and their EndpointSlices (for headless names), kept from the control plane's
//! WatchServices stream; a relist replaces the cache only once complete.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use skiff_controlplane::agentapi::proto::EventType;
use tokio::sync::watch;

use crate::cpclient::{CpClient, WatchItem, WatchObject};

type Key = (String, String);

/// The label naming an EndpointSlice's Service.
use crate::proxy::translate::SERVICE_NAME_LABEL as SERVICE_NAME;

#[derive(Debug, Default)]
struct Known {
    services: BTreeMap<Key, Service>,
    slices: BTreeMap<Key, EndpointSlice>,
}

/// A ready endpoint of a Service, as DNS names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyEndpoint {
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
    /// The ports its EndpointSlices give it (SRV records).
    pub ports: Vec<EndpointPort>,
}

/// A port of an endpoint: the Service port's name, its protocol, the number it listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPort {
    pub name: String,
    pub protocol: String,
    pub port: u16,
}

/// A shared, always-current copy of the cluster's Services and EndpointSlices.
#[derive(Clone, Debug)]
pub struct ServiceCache {
    map: Arc<RwLock<Known>>,
    synced: watch::Receiver<bool>,
}

fn key(m: &ObjectMeta) -> Key {
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

impl Known {
    fn apply(&mut self, kind: EventType, object: WatchObject) {
        let deleted = kind == EventType::Deleted;
        match object {
            WatchObject::Service(s) if deleted => {
                self.services.remove(&key(&s.metadata));
            }
            WatchObject::Service(s) => {
                self.services.insert(key(&s.metadata), *s);
            }
            WatchObject::EndpointSlice(e) if deleted => {
                self.slices.remove(&key(&e.metadata));
            }
            WatchObject::EndpointSlice(e) => {
                self.slices.insert(key(&e.metadata), *e);
            }
            WatchObject::Pod(_) => {}
        }
    }
}

/// The ready IPv4 endpoints in `slices` (of one Service), de-duplicated by address.
pub fn ready_endpoints<'a>(slices: impl Iterator<Item = &'a EndpointSlice>) -> Vec<ReadyEndpoint> {
    let mut out: Vec<ReadyEndpoint> = Vec::new();
    for s in slices.filter(|s| s.address_type == "IPv4") {
        let ports: Vec<EndpointPort> = s
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(EndpointPort {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    port: u16::try_from(p.port?).ok()?,
                })
            })
            .collect();
        for e in &s.endpoints {
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            for ip in e.addresses.iter().filter_map(|a| a.parse().ok()) {
                if !ready {
                    continue;
                }
                // The same endpoint in another slice (of other ports): one, with all ports.
                match out
                    .iter_mut()
                    .find(|o| o.ip == ip && o.hostname == e.hostname)
                {
                    Some(o) => {
                        for p in &ports {
                            if !o.ports.contains(p) {
                                o.ports.push(p.clone());
                            }
                        }
                    }
                    None => out.push(ReadyEndpoint {
                        ip,
                        hostname: e.hostname.clone(),
                        ports: ports.clone(),
                    }),
                }
            }
        }
    }
    out
}

impl ServiceCache {
    /// Starts the watch task (ends with `stop`).
    pub fn spawn(client: &CpClient, mut stop: watch::Receiver<bool>) -> Self {
        let map = Arc::new(RwLock::new(Known::default()));
        let (tx, synced) = watch::channel(false);
        let shared = map.clone();
        let mut w = client.watch_services();
        tokio::spawn(async move {
            let mut listing: Option<Known> = None;
            loop {
                let item = tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    item = w.next() => item,
                };
                match item {
                    Ok(WatchItem::Relist) => listing = Some(Known::default()),
                    Ok(WatchItem::Synced { .. }) => {
                        if let Some(fresh) = listing.take() {
                            *shared.write().expect("service cache lock") = fresh;
                        }
                        let _ = tx.send(true);
                    }
                    Ok(WatchItem::Event { kind, object, .. }) => match listing.as_mut() {
                        Some(l) => l.apply(kind, object),
                        None => shared
                            .write()
                            .expect("service cache lock")
                            .apply(kind, object),
                    },
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
        let known = self.map.read().expect("service cache lock");
        known.services.values().cloned().collect()
    }

    /// Service `name` of namespace `ns`, if known.
    pub fn get(&self, ns: &str, name: &str) -> Option<Service> {
        let known = self.map.read().expect("service cache lock");
        known
            .services
            .get(&(ns.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The ready endpoints of Service `name` in `ns` (from its EndpointSlices).
    pub fn endpoints(&self, ns: &str, name: &str) -> Vec<ReadyEndpoint> {
        let known = self.map.read().expect("service cache lock");
        let of_service = known
            .slices
            .range((ns.to_owned(), String::new())..)
            .take_while(|((n, _), _)| n == ns)
            .map(|(_, s)| s)
            .filter(|s| {
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME))
                    .is_some_and(|n| n == name)
            });
        ready_endpoints(of_service)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ready_endpoints_skip_not_ready_and_repeated_endpoints() {
        let slices: Vec<EndpointSlice> = [
            json!({"addressType": "IPv4", "endpoints": [
                {"addresses": ["10.0.0.1"], "hostname": "a", "conditions": {"ready": true}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                {"addresses": ["10.0.0.3"]}]}),
            json!({"addressType": "IPv4", "endpoints": [
                {"addresses": ["10.0.0.1"], "hostname": "a"},
                // Host-network pods share an address but keep their names.
                {"addresses": ["10.0.0.1"], "hostname": "b"}]}),
            json!({"addressType": "IPv6", "endpoints": [{"addresses": ["fd00::1"]}]}),
        ]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
        let got = ready_endpoints(slices.iter());
        let want = [
            ("10.0.0.1", Some("a")),
            ("10.0.0.3", None),
            ("10.0.0.1", Some("b")),
        ];
        assert_eq!(got.len(), want.len());
        for (g, (ip, host)) in got.iter().zip(want) {
            assert_eq!(g.ip.to_string(), ip);
            assert_eq!(g.hostname.as_deref(), host);
        }
    }
}
