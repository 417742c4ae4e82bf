//! The RPCs of `skiff.agent.v1.Agent` over the in-process [`ApiClient`].

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Node, PersistentVolume, PersistentVolumeClaim, Pod, PodStatus, Secret,
    Service,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch as signal;
use tonic::{Request, Response, Status};

use super::convert::{decode, encode, required, resource_version, status};
use super::proto::agent_server::Agent;
use super::proto::{
    DeletePodRequest, GetObjectRequest, HeartbeatReply, HeartbeatRequest, ListNodesRequest, Object,
    ObjectList, RecordEventRequest, RegisterNodeRequest, UpdatePodStatusRequest, WatchPodsRequest,
    WatchServicesRequest,
};
use super::watch::{self, EventStream};
use super::{heartbeat, node, pod_status};
use crate::api::client::{DeleteOutcome, Selectors};
use crate::api::objects::DeleteOptions;
use crate::api::ApiClient;

/// The agent API service.
#[derive(Clone)]
pub struct AgentService {
    client: ApiClient,
    /// How long RegisterNode waits for node IPAM to set `spec.podCIDR`.
    cidr_wait: Duration,
    stop: signal::Receiver<bool>,
}

impl AgentService {
    /// `stop` turning `true` ends every open watch (server shutdown).
    pub fn new(client: ApiClient, stop: signal::Receiver<bool>) -> Self {
        Self {
            client,
            cidr_wait: Duration::from_secs(10),
            stop,
        }
    }

    async fn get<K>(&self, ns: Option<&str>, name: &str) -> Result<Vec<u8>, Status>
    where
        K: k8s_openapi::Resource + DeserializeOwned + Serialize,
    {
        encode(&self.client.get::<K>(ns, name).await.map_err(status)?)
    }
}

fn object(json: Vec<u8>) -> Response<Object> {
    Response::new(Object { json })
}

#[tonic::async_trait]
impl Agent for AgentService {
    async fn register_node(
        &self,
        req: Request<RegisterNodeRequest>,
    ) -> Result<Response<Object>, Status> {
        let n: Node = decode(&req.into_inner().node, "the Node")?;
        let stored = node::register(&self.client, n, self.cidr_wait)
            .await
            .map_err(status)?;
        Ok(object(encode(&stored)?))
    }

    async fn heartbeat(
        &self,
        req: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatReply>, Status> {
        let req = req.into_inner();
        let name = required(&req.node_name, "nodeName")?;
        let lease = heartbeat::heartbeat(&self.client, name, req.lease_duration_seconds)
            .await
            .map_err(status)?;
        Ok(Response::new(HeartbeatReply {
            lease: encode(&lease)?,
        }))
    }

    type WatchPodsStream = EventStream;

    async fn watch_pods(
        &self,
        req: Request<WatchPodsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let req = req.into_inner();
        let name = required(&req.node_name, "nodeName")?;
        let rv = resource_version(&req.resource_version)?;
        let s = watch::pods(&self.client, name, rv, self.stop.clone()).await?;
        Ok(Response::new(s))
    }

    type WatchServicesStream = EventStream;

    async fn watch_services(
        &self,
        req: Request<WatchServicesRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let rv = resource_version(&req.into_inner().resource_version)?;
        let s = watch::services(&self.client, rv, self.stop.clone()).await?;
        Ok(Response::new(s))
    }

    async fn update_pod_status(
        &self,
        req: Request<UpdatePodStatusRequest>,
    ) -> Result<Response<Object>, Status> {
        let req = req.into_inner();
        let ns = required(&req.namespace, "namespace")?;
        let name = required(&req.name, "name")?;
        let st: PodStatus = decode(&req.status, "the PodStatus")?;
        let rv = (!req.resource_version.is_empty()).then_some(req.resource_version);
        let pod = pod_status::update(&self.client, ns, name, st, rv)
            .await
            .map_err(status)?;
        Ok(object(encode(&pod)?))
    }

    async fn record_event(
        &self,
        req: Request<RecordEventRequest>,
    ) -> Result<Response<Object>, Status> {
        let mut ev: Event = decode(&req.into_inner().event, "the Event")?;
        let ns = ev
            .metadata
            .namespace
            .clone()
            .or_else(|| ev.involved_object.namespace.clone())
            .unwrap_or_else(|| "default".into());
        ev.metadata.namespace = Some(ns.clone());
        if ev.metadata.name.is_none() && ev.metadata.generate_name.is_none() {
            let base = ev
                .involved_object
                .name
                .clone()
                .unwrap_or_else(|| "event".into());
            ev.metadata.generate_name = Some(format!("{base}."));
        }
        let created = self.client.create(Some(&ns), &ev).await.map_err(status)?;
        Ok(object(encode(&created)?))
    }

    async fn get_object(&self, req: Request<GetObjectRequest>) -> Result<Response<Object>, Status> {
        let req = req.into_inner();
        let name = required(&req.name, "name")?;
        let ns = || required(&req.namespace, "namespace").map(Some);
        let json = match req.kind.as_str() {
            "ConfigMap" => self.get::<ConfigMap>(ns()?, name).await?,
            "Secret" => self.get::<Secret>(ns()?, name).await?,
            "Service" => self.get::<Service>(ns()?, name).await?,
            "Pod" => self.get::<Pod>(ns()?, name).await?,
            "Node" => self.get::<Node>(None, name).await?,
            "PersistentVolumeClaim" => self.get::<PersistentVolumeClaim>(ns()?, name).await?,
            "PersistentVolume" => self.get::<PersistentVolume>(None, name).await?,
            other => {
                return Err(Status::invalid_argument(format!(
                    "kind: Unsupported value: {other:?}: supported values: \"ConfigMap\", \
                     \"Secret\", \"Service\", \"Pod\", \"Node\", \"PersistentVolumeClaim\", \
                     \"PersistentVolume\""
                )))
            }
        };
        Ok(object(json))
    }

    async fn list_nodes(
        &self,
        _req: Request<ListNodesRequest>,
    ) -> Result<Response<ObjectList>, Status> {
        let list = self
            .client
            .list::<Node>(None, &Selectors::default())
            .await
            .map_err(status)?;
        let items = list.items.iter().map(encode).collect::<Result<_, _>>()?;
        Ok(Response::new(ObjectList {
            items,
            resource_version: list.resource_version.to_string(),
        }))
    }

    async fn delete_pod(&self, req: Request<DeletePodRequest>) -> Result<Response<Object>, Status> {
        let req = req.into_inner();
        let ns = required(&req.namespace, "namespace")?;
        let name = required(&req.name, "name")?;
        let opts = DeleteOptions {
            grace_period_seconds: Some(0),
            precondition_uid: (!req.uid.is_empty()).then(|| req.uid.clone()),
            ..Default::default()
        };
        let pod = match self
            .client
            .delete::<Pod>(Some(ns), name, &opts)
            .await
            .map_err(status)?
        {
            DeleteOutcome::Gone(p) | DeleteOutcome::Pending(p) => p,
        };
        Ok(object(encode(&pod)?))
    }
}
