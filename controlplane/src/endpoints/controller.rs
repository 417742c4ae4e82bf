//! The EndpointSlice and Endpoints controller: a work queue of Service keys fed by Service
//! and Pod changes; each sync writes the difference between [`desired`] and the store,
//! stamped with the time of the change that caused it ([`trigger`]).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use super::desired::{self, desired, Desired, MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use super::reflector::{self, Change, Store};
use super::trigger;
use crate::api::client::{DeleteOutcome, Selectors};
use crate::api::objects::DeleteOptions;
use crate::api::{ApiClient, ApiError};

/// Full resync period (every Service is synced again).
const RESYNC: Duration = Duration::from_secs(30);

/// Services affected by a pod change.
fn services_of(services: &Store<Service>, change: &Change<Pod>) -> Vec<String> {
    let s = services.read().expect("cache lock");
    s.iter()
        .filter(|(_, svc)| {
            [&change.old, &change.new]
                .into_iter()
                .flatten()
                .any(|p| p.metadata.namespace == svc.metadata.namespace && desired::selects(svc, p))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// Queues `key` for a sync, merging the time of the change that caused it (`None` for a
/// resync) into the earliest not yet synced one.
fn mark(dirty: &mut BTreeMap<String, Option<SystemTime>>, key: String, t: Option<SystemTime>) {
    let pending = dirty.entry(key).or_default();
    *pending = trigger::merge(*pending, t);
}

/// Run the controller until its task is dropped.
pub async fn run(client: ApiClient) {
    let (svc_tx, mut svc_rx) = mpsc::unbounded_channel::<Change<Service>>();
    let (pod_tx, mut pod_rx) = mpsc::unbounded_channel::<Change<Pod>>();
    let (services, svc_task) = reflector::spawn::<Service>(client.clone(), svc_tx);
    let (pods, pod_task) = reflector::spawn::<Pod>(client.clone(), pod_tx);
    // Service key → when the earliest change not yet synced was observed.
    let mut dirty: BTreeMap<String, Option<SystemTime>> = BTreeMap::new();
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        tokio::select! {
            Some(c) = svc_rx.recv() => mark(&mut dirty, c.key, Some(c.observed)),
            Some(c) = pod_rx.recv() => {
                for key in services_of(&services, &c) {
                    mark(&mut dirty, key, Some(c.observed));
                }
            }
            _ = resync.tick() => {
                let keys: Vec<String> = services.read().expect("cache lock").keys().cloned().collect();
                for key in keys {
                    mark(&mut dirty, key, None);
                }
            }
            else => break,
        }
        // Drain what is queued before syncing, so a burst of changes syncs once.
        while let Ok(c) = svc_rx.try_recv() {
            mark(&mut dirty, c.key, Some(c.observed));
        }
        while let Ok(c) = pod_rx.try_recv() {
            for key in services_of(&services, &c) {
                mark(&mut dirty, key, Some(c.observed));
            }
        }
        // Services sync concurrently: one pod change often touches several Services (all
        // selecting it), and their writes then share Raft entries instead of queueing.
        // A failed sync keeps its trigger time: the retry's write still answers that change.
        let syncs = std::mem::take(&mut dirty).into_iter().map(|(key, t)| {
            let (client, services, pods) = (&client, &services, &pods);
            async move {
                let r = sync(client, services, pods, &key, t).await;
                (key, t, r)
            }
        });
        let mut failed = BTreeMap::new();
        for (key, t, r) in futures_util::future::join_all(syncs).await {
            if let Err(e) = r {
                log::warn!("endpoints of {key}: {}", e.message);
                failed.insert(key, t);
            }
        }
        if !failed.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for (key, t) in failed {
                mark(&mut dirty, key, t);
            }
        }
    }
    svc_task.abort();
    pod_task.abort();
}

/// Reconcile the endpoints of Service `key` (`namespace/name`). What is written is stamped
/// with `trigger`, the earliest change it answers ([`trigger`]); what already matches is
/// not written, so its annotation stays.
pub async fn sync(
    client: &ApiClient,
    services: &Store<Service>,
    pods: &Store<Pod>,
    key: &str,
    trigger: Option<SystemTime>,
) -> Result<(), ApiError> {
    let Some((ns, name)) = key.split_once('/') else {
        return Ok(());
    };
    let svc = services.read().expect("cache lock").get(key).cloned();
    let sel = Selectors {
        labels: format!("{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}"),
        ..Default::default()
    };
    let existing = client.list::<EndpointSlice>(Some(ns), &sel).await?.items;
    let Some(svc) = svc.filter(desired::has_selector) else {
        for s in existing {
            delete::<EndpointSlice>(client, ns, s.metadata.name.as_deref().unwrap_or("")).await?;
        }
        if services.read().expect("cache lock").get(key).is_none() {
            delete::<Endpoints>(client, ns, name).await?;
        }
        return Ok(());
    };
    let want: Desired = {
        let p = pods.read().expect("cache lock");
        let prefix = format!("{ns}/");
        desired(
            &svc,
            p.range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| v),
        )
    };
    // The slices (what agents program from) and the legacy Endpoints are independent
    // objects: written concurrently.
    let slices = write_slices(client, ns, existing, want.slices, trigger);
    let endpoints = write_endpoints(client, ns, name, want.endpoints, trigger);
    tokio::try_join!(slices, endpoints)?;
    Ok(())
}

/// Writes the `want`ed slices that differ from `existing`, deletes the others.
async fn write_slices(
    client: &ApiClient,
    ns: &str,
    existing: Vec<EndpointSlice>,
    want: Vec<EndpointSlice>,
    trigger: Option<SystemTime>,
) -> Result<(), ApiError> {
    let mut stale: BTreeMap<String, EndpointSlice> = existing
        .into_iter()
        .map(|s| (s.metadata.name.clone().unwrap_or_default(), s))
        .collect();
    for slice in want {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let cur = stale.remove(&name);
        if let Some(slice) = trigger::slice_to_write(cur.as_ref(), slice, trigger) {
            write(
                client,
                ns,
                slice,
                cur.and_then(|c| c.metadata.resource_version),
            )
            .await?;
        }
    }
    for name in stale.keys() {
        delete::<EndpointSlice>(client, ns, name).await?;
    }
    Ok(())
}

/// Writes the legacy Endpoints `name` when it differs from `want`.
async fn write_endpoints(
    client: &ApiClient,
    ns: &str,
    name: &str,
    want: Endpoints,
    trigger: Option<SystemTime>,
) -> Result<(), ApiError> {
    let cur = match client.get::<Endpoints>(Some(ns), name).await {
        Ok(e) => Some(e),
        Err(e) if e.code == 404 => None,
        Err(e) => return Err(e),
    };
    if let Some(endpoints) = trigger::endpoints_to_write(cur.as_ref(), want, trigger) {
        write(
            client,
            ns,
            endpoints,
            cur.and_then(|c| c.metadata.resource_version),
        )
        .await?;
    }
    Ok(())
}

/// Create `obj`, or update it at resource version `rv` when it exists.
async fn write<K>(
    client: &ApiClient,
    ns: &str,
    mut obj: K,
    rv: Option<String>,
) -> Result<(), ApiError>
where
    K: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>
        + Serialize
        + DeserializeOwned,
{
    match rv {
        None => client.create(Some(ns), &obj).await.map(|_| ()),
        Some(rv) => {
            obj.metadata_mut().resource_version = Some(rv);
            client.update(&obj).await.map(|_| ())
        }
    }
}

async fn delete<K: k8s_openapi::Resource + DeserializeOwned>(
    client: &ApiClient,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    match client
        .delete::<K>(Some(ns), name, &DeleteOptions::default())
        .await
    {
        Ok(DeleteOutcome::Gone(_) | DeleteOutcome::Pending(_)) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
