//! The agent's client of the control plane's gRPC API (`skiff.agent.v1.Agent`, see
//! `skiff_controlplane::agentapi`): connection with retry, backoff and a deadline; typed
//! calls taking and returning k8s-openapi types; and [`ResumingWatch`], a watch that
//! resumes from its last resourceVersion when the stream drops and relists when that
//! version is too old.

mod error;
mod watch;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod, PodStatus};
use serde::de::DeserializeOwned;
use serde::Serialize;
use skiff_controlplane::agentapi::proto::agent_client::AgentClient;
use skiff_controlplane::agentapi::proto::{
    DeletePodRequest, GetObjectRequest, HeartbeatRequest, ListNodesRequest, RecordEventRequest,
    RegisterNodeRequest, UpdatePodStatusRequest, WatchEvent, WatchPodsRequest,
    WatchServicesRequest,
};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::Streaming;

pub use error::CpError;
pub use watch::{ResumingWatch, Target, WatchItem, WatchObject};

/// How [`CpClient::connect`] retries.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// Give up after this long.
    pub deadline: Duration,
    /// First pause between attempts; doubled each time up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Each call's own timeout (not watches).
    pub call_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(60),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            call_timeout: Duration::from_secs(30),
        }
    }
}

/// A connection to the control plane's agent API.
#[derive(Clone, Debug)]
pub struct CpClient {
    addr: String,
    inner: AgentClient<Channel>,
    call_timeout: Duration,
}

/// `http://host:port` from `host:port` or a URL.
fn url(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

fn to_json<T: Serialize>(
    call: &'static str,
    what: &'static str,
    v: &T,
) -> Result<Vec<u8>, CpError> {
    serde_json::to_vec(v).map_err(|source| CpError::Encode { call, what, source })
}

fn from_json<T: DeserializeOwned>(
    call: &'static str,
    what: &'static str,
    b: &[u8],
) -> Result<T, CpError> {
    serde_json::from_slice(b).map_err(|source| CpError::Decode { call, what, source })
}

/// Kinds [`CpClient::get`] reads.
pub trait Gettable: k8s_openapi::Resource + DeserializeOwned {}
impl Gettable for k8s_openapi::api::core::v1::ConfigMap {}
impl Gettable for k8s_openapi::api::core::v1::Secret {}
impl Gettable for k8s_openapi::api::core::v1::Service {}
impl Gettable for Pod {}
impl Gettable for Node {}
impl Gettable for k8s_openapi::api::core::v1::PersistentVolumeClaim {}
impl Gettable for k8s_openapi::api::core::v1::PersistentVolume {}

impl CpClient {
    /// Connect to `addr` (`host:port` or `http://host:port`), retrying with exponential
    /// backoff until `opts.deadline`.
    pub async fn connect(addr: &str, opts: ConnectOptions) -> Result<Self, CpError> {
        let endpoint = Endpoint::from_shared(url(addr))
            .map_err(|e| CpError::Address {
                addr: addr.to_string(),
                message: e.to_string(),
            })?
            .connect_timeout(opts.backoff.max(Duration::from_secs(2)))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10));
        let deadline = Instant::now() + opts.deadline;
        let mut pause = opts.backoff;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match endpoint.connect().await {
                Ok(ch) => {
                    log::info!("control plane: connected to {addr}");
                    return Ok(Self {
                        addr: addr.to_string(),
                        inner: AgentClient::new(ch),
                        call_timeout: opts.call_timeout,
                    });
                }
                Err(e) => {
                    let last = format!(
                        "{e}: {}",
                        std::error::Error::source(&e)
                            .map(|s| s.to_string())
                            .unwrap_or_default()
                    );
                    if Instant::now() + pause > deadline {
                        return Err(CpError::Connect {
                            addr: addr.to_string(),
                            attempts,
                            last,
                        });
                    }
                    log::debug!("control plane at {addr}: {last}; retrying in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(opts.max_backoff);
                }
            }
        }
    }

    /// The address connected to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(self.call_timeout);
        r
    }

    /// Create or update `node`; returns it as stored (with `spec.podCIDR` once assigned).
    pub async fn register_node(&self, node: &Node) -> Result<Node, CpError> {
        const CALL: &str = "RegisterNode";
        let req = self.request(RegisterNodeRequest {
            node: to_json(CALL, "Node", node)?,
        });
        let reply = self.inner.clone().register_node(req).await;
        let obj = reply.map_err(|s| CpError::rpc(CALL, s))?.into_inner();
        from_json(CALL, "Node", &obj.json)
    }

    /// Renew the node's Lease and Ready condition; returns the Lease.
    pub async fn heartbeat(&self, node: &str, lease_seconds: i32) -> Result<Lease, CpError> {
        const CALL: &str = "Heartbeat";
        let req = self.request(HeartbeatRequest {
            node_name: node.to_string(),
            lease_duration_seconds: lease_seconds,
        });
        let reply = self.inner.clone().heartbeat(req).await;
        let r = reply.map_err(|s| CpError::rpc(CALL, s))?.into_inner();
        from_json(CALL, "Lease", &r.lease)
    }

    /// Replace the status of pod `ns/name` (`resource_version`: a precondition).
    pub async fn update_pod_status(
        &self,
        ns: &str,
        name: &str,
        status: &PodStatus,
        resource_version: Option<&str>,
    ) -> Result<Pod, CpError> {
        const CALL: &str = "UpdatePodStatus";
        let req = self.request(UpdatePodStatusRequest {
            namespace: ns.to_string(),
            name: name.to_string(),
            status: to_json(CALL, "PodStatus", status)?,
            resource_version: resource_version.unwrap_or_default().to_string(),
        });
        let reply = self.inner.clone().update_pod_status(req).await;
        let obj = reply.map_err(|s| CpError::rpc(CALL, s))?.into_inner();
        from_json(CALL, "Pod", &obj.json)
    }

    /// Record a core/v1 Event; returns it as created.
    pub async fn record_event(&self, event: &Event) -> Result<Event, CpError> {
        const CALL: &str = "RecordEvent";
        let req = self.request(RecordEventRequest {
            event: to_json(CALL, "Event", event)?,
        });
        let reply = self.inner.clone().record_event(req).await;
        let obj = reply.map_err(|s| CpError::rpc(CALL, s))?.into_inner();
        from_json(CALL, "Event", &obj.json)
    }

    /// Read one ConfigMap, Secret, Service, Pod, PersistentVolumeClaim (namespaced), Node or
    /// PersistentVolume (`ns` ignored).
    pub async fn get<K: Gettable>(&self, ns: &str, name: &str) -> Result<K, CpError> {
        const CALL: &str = "GetObject";
        let req = self.request(GetObjectRequest {
            kind: K::KIND.to_string(),
            namespace: ns.to_string(),
            name: name.to_string(),
        });
        let reply = self.inner.clone().get_object(req).await;
        let obj = reply.map_err(|s| CpError::rpc(CALL, s))?.into_inner();
        from_json(CALL, K::KIND, &obj.json)
    }

    /// Every Node.
    pub async fn list_nodes(&self) -> Result<Vec<Node>, CpError> {
        const CALL: &str = "ListNodes";
        let reply = self
            .inner
            .clone()
            .list_nodes(self.request(ListNodesRequest {}))
            .await;
        let list = reply.map_err(|s| CpError::rpc(CALL, s))?.into_inner();
        list.items
            .iter()
            .map(|b| from_json(CALL, "Node", b))
            .collect()
    }

    /// Delete pod `ns/name` now (grace period 0) if its uid is still `uid`: the kubelet's
    /// last step once the pod's containers are stopped.
    pub async fn delete_pod(&self, ns: &str, name: &str, uid: &str) -> Result<Pod, CpError> {
        const CALL: &str = "DeletePod";
        let req = self.request(DeletePodRequest {
            namespace: ns.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
        });
        let reply = self.inner.clone().delete_pod(req).await;
        let obj = reply.map_err(|s| CpError::rpc(CALL, s))?.into_inner();
        from_json(CALL, "Pod", &obj.json)
    }

    /// The raw stream of pods bound to `node`, from `resource_version` (`""`: list first).
    pub async fn watch_pods_raw(
        &self,
        node: &str,
        resource_version: &str,
    ) -> Result<Streaming<WatchEvent>, CpError> {
        let req = WatchPodsRequest {
            node_name: node.to_string(),
            resource_version: resource_version.to_string(),
        };
        let reply = self.inner.clone().watch_pods(req).await;
        Ok(reply
            .map_err(|s| CpError::rpc("WatchPods", s))?
            .into_inner())
    }

    /// The raw stream of Services and EndpointSlices, from `resource_version`.
    pub async fn watch_services_raw(
        &self,
        resource_version: &str,
    ) -> Result<Streaming<WatchEvent>, CpError> {
        let req = WatchServicesRequest {
            resource_version: resource_version.to_string(),
        };
        let reply = self.inner.clone().watch_services(req).await;
        Ok(reply
            .map_err(|s| CpError::rpc("WatchServices", s))?
            .into_inner())
    }

    /// A resuming watch of the pods bound to `node`.
    pub fn watch_pods(&self, node: &str) -> ResumingWatch {
        ResumingWatch::new(self.clone(), Target::Pods(node.to_string()))
    }

    /// A resuming watch of Services and EndpointSlices.
    pub fn watch_services(&self) -> ResumingWatch {
        ResumingWatch::new(self.clone(), Target::Services)
    }
}
