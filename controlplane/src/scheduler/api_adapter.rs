//! [`SchedulerApi`] for the in-process API client: the scheduler talks to the store through
//! the same request logic (defaulting, validation, subresources) as HTTP clients.

use k8s_openapi::api::core::v1::{
    Event, EventSource, Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::chrono::Utc;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::mpsc;

use super::api::{ApiError, Listed, SchedulerApi, SchedulingEvent, WatchEvent, WatchStream};
use super::DEFAULT_SCHEDULER_NAME;
use crate::api::client::{ApiClient, Event as ClientEvent, Selectors};
use crate::api::patch::PatchType;
use crate::api::ApiError as ServerError;

fn convert(what: &str, e: ServerError) -> ApiError {
    match e.code {
        404 => ApiError::NotFound(what.to_string()),
        409 => ApiError::Conflict(what.to_string(), e.message),
        410 => ApiError::Gone(e.message),
        _ => ApiError::Other(
            what.to_string(),
            format!("{} {}: {}", e.code, e.reason, e.message),
        ),
    }
}

fn ns_name(pod: &Pod) -> (&str, &str) {
    (
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or(""),
    )
}

async fn list<K>(client: &ApiClient, what: &str) -> Result<Listed<K>, ApiError>
where
    K: k8s_openapi::Resource + DeserializeOwned,
{
    let l = client
        .list::<K>(None, &Selectors::default())
        .await
        .map_err(|e| convert(what, e))?;
    Ok(Listed {
        items: l.items,
        resource_version: l.resource_version.to_string(),
    })
}

/// Forward a client watch into a channel; the channel closes when the watch ends or fails.
async fn watch<K>(
    client: &ApiClient,
    what: &'static str,
    rv: &str,
) -> Result<WatchStream<K>, ApiError>
where
    K: k8s_openapi::Resource + DeserializeOwned + Send + 'static,
{
    let rv = rv
        .parse::<u64>()
        .map_err(|_| ApiError::Gone(rv.to_string()))?;
    let mut w = client
        .watch::<K>(None, &Selectors::default(), Some(rv))
        .await
        .map_err(|e| convert(what, e))?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            // Stop as soon as the scheduler drops the stream, not at the next event.
            let ev = tokio::select! {
                _ = tx.closed() => return,
                ev = w.next() => ev,
            };
            let Some(ev) = ev else {
                return;
            };
            let ev = match ev {
                Ok(ClientEvent::Added(o)) => WatchEvent::Added(o),
                Ok(ClientEvent::Modified(o)) => WatchEvent::Modified(o),
                Ok(ClientEvent::Deleted(o)) => WatchEvent::Deleted(o),
                Ok(ClientEvent::Bookmark(_)) => continue,
                Err(e) => {
                    log::info!("scheduler: {what} watch ended: {}", e.message);
                    return;
                }
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

impl SchedulerApi for ApiClient {
    async fn list_nodes(&self) -> Result<Listed<Node>, ApiError> {
        list(self, "nodes").await
    }

    async fn list_pods(&self) -> Result<Listed<Pod>, ApiError> {
        list(self, "pods").await
    }

    async fn watch_nodes(&self, resource_version: &str) -> Result<WatchStream<Node>, ApiError> {
        watch(self, "nodes", resource_version).await
    }

    async fn watch_pods(&self, resource_version: &str) -> Result<WatchStream<Pod>, ApiError> {
        watch(self, "pods", resource_version).await
    }

    async fn bind(&self, pod: &Pod, node: &str) -> Result<(), ApiError> {
        let (ns, name) = ns_name(pod);
        ApiClient::bind(self, ns, name, node)
            .await
            .map_err(|e| convert(&format!("pod {ns}/{name}"), e))
    }

    async fn set_unschedulable(&self, pod: &Pod, message: &str) -> Result<(), ApiError> {
        let (ns, name) = ns_name(pod);
        // Conditions merge by `type` in a strategic merge patch: the others stay.
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": Time(Utc::now()),
        }]}});
        self.patch::<Pod>(Some(ns), name, PatchType::Strategic, &patch, true)
            .await
            .map(drop)
            .map_err(|e| convert(&format!("pod {ns}/{name}"), e))
    }

    async fn claim(&self, ns: &str, name: &str) -> Result<Option<PersistentVolumeClaim>, ApiError> {
        match self.get::<PersistentVolumeClaim>(Some(ns), name).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(convert(&format!("persistentvolumeclaim {ns}/{name}"), e)),
        }
    }

    async fn volumes(&self) -> Result<Vec<PersistentVolume>, ApiError> {
        Ok(list::<PersistentVolume>(self, "persistentvolumes")
            .await?
            .items)
    }

    async fn storage_classes(&self) -> Result<Vec<StorageClass>, ApiError> {
        Ok(list::<StorageClass>(self, "storageclasses").await?.items)
    }

    async fn select_node(&self, ns: &str, name: &str, node: &str) -> Result<(), ApiError> {
        let patch = json!({"metadata": {"annotations": {super::volumes::SELECTED_NODE: node}}});
        self.patch::<PersistentVolumeClaim>(Some(ns), name, PatchType::Merge, &patch, false)
            .await
            .map(drop)
            .map_err(|e| convert(&format!("persistentvolumeclaim {ns}/{name}"), e))
    }

    async fn emit_event(&self, ev: SchedulingEvent) -> Result<(), ApiError> {
        let now = Utc::now();
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", ev.pod_name)),
                namespace: Some(ev.namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(ev.namespace.clone()),
                name: Some(ev.pod_name.clone()),
                uid: Some(ev.pod_uid.clone()),
                ..ObjectReference::default()
            },
            reason: Some(ev.reason.to_string()),
            message: Some(ev.message),
            type_: Some(ev.type_.as_str().to_string()),
            source: Some(EventSource {
                component: Some(DEFAULT_SCHEDULER_NAME.into()),
                host: None,
            }),
            reporting_component: Some(DEFAULT_SCHEDULER_NAME.into()),
            reporting_instance: Some(DEFAULT_SCHEDULER_NAME.into()),
            action: Some(
                if ev.reason == "Scheduled" {
                    "Binding"
                } else {
                    "Scheduling"
                }
                .into(),
            ),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            ..Event::default()
        };
        self.create(Some(&ev.namespace), &event)
            .await
            .map(drop)
            .map_err(|e| {
                convert(
                    &format!("event for pod {}/{}", ev.namespace, ev.pod_name),
                    e,
                )
            })
    }
}
