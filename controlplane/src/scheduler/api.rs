//! What the scheduler loop needs from the API server, as a small trait: list and watch pods
//! and nodes, bind, mark a pod unschedulable, emit an Event. Implemented by the in-process API
//! client (see `api_adapter`) and by [`super::memory_api::InMemoryApi`].

use std::future::Future;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use tokio::sync::mpsc;

/// One change seen by a watch. A closed channel ends the watch: the loop relists.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<T> {
    Added(T),
    Modified(T),
    Deleted(T),
}

/// A list and the resource version to watch from.
#[derive(Debug, Clone, Default)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub resource_version: String,
}

pub type WatchStream<T> = mpsc::UnboundedReceiver<WatchEvent<T>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0} not found")]
    NotFound(String),
    /// The object changed meanwhile (e.g. the pod is already bound).
    #[error("conflict on {0}: {1}")]
    Conflict(String, String),
    /// The watch resource version is too old: relist.
    #[error("resource version {0} is too old")]
    Gone(String),
    #[error("API request {0} failed: {1}")]
    Other(String, String),
}

/// `Normal` or `Warning`, as in `core/v1` Event `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// An Event about a pod (`Scheduled` / `FailedScheduling`), reported by `default-scheduler`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulingEvent {
    pub namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
}

impl SchedulingEvent {
    pub fn new(pod: &Pod, type_: EventType, reason: &'static str, message: String) -> Self {
        Self {
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            pod_name: pod.metadata.name.clone().unwrap_or_default(),
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            type_,
            reason,
            message,
        }
    }
}

/// The scheduler's boundary to the API server.
pub trait SchedulerApi: Send + Sync + 'static {
    fn list_nodes(&self) -> impl Future<Output = Result<Listed<Node>, ApiError>> + Send;

    /// All pods (bound ones are needed for accounting, unbound ones are the work).
    fn list_pods(&self) -> impl Future<Output = Result<Listed<Pod>, ApiError>> + Send;

    /// Changes after `resource_version` (from the matching list).
    fn watch_nodes(
        &self,
        resource_version: &str,
    ) -> impl Future<Output = Result<WatchStream<Node>, ApiError>> + Send;

    fn watch_pods(
        &self,
        resource_version: &str,
    ) -> impl Future<Output = Result<WatchStream<Pod>, ApiError>> + Send;

    /// `POST pods/<name>/binding` with target `node` (uid precondition from `pod`).
    fn bind(&self, pod: &Pod, node: &str) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// Set condition `PodScheduled=False`, reason `Unschedulable`, with `message`.
    fn set_unschedulable(
        &self,
        pod: &Pod,
        message: &str,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    fn emit_event(
        &self,
        event: SchedulingEvent,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// PersistentVolumeClaim `name` in `ns` (`None`: it does not exist).
    fn claim(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<PersistentVolumeClaim>, ApiError>> + Send;

    /// Every PersistentVolume (for the node affinity of the pod's volumes).
    fn volumes(&self) -> impl Future<Output = Result<Vec<PersistentVolume>, ApiError>> + Send;

    /// Every StorageClass (does an unbound claim wait for its first consumer?).
    fn storage_classes(&self) -> impl Future<Output = Result<Vec<StorageClass>, ApiError>> + Send;

    /// Pin claim `name` in `ns` to `node` (see [`super::volumes`]).
    fn select_node(
        &self,
        ns: &str,
        name: &str,
        node: &str,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}
