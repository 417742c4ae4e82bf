//! The `kubernetes` Service in `default` (the first address of the service CIDR, port 443
//! to the API server) with its Endpoints and EndpointSlice naming the API server.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Ranges;
use crate::api::{ApiClient, ApiError};
use crate::ControlPlane;

const NAME: &str = "kubernetes";
const NS: &str = "default";

fn meta(labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(NAME.into()),
        namespace: Some(NS.into()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

/// Create `obj`, or replace the stored one's content with it.
async fn put<K>(
    client: &ApiClient,
    obj: K,
    set_rv: fn(&mut K, Option<String>),
) -> Result<(), ApiError>
where
    K: k8s_openapi::Resource + Serialize + DeserializeOwned + Clone,
{
    match client.create(Some(NS), &obj).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => {
            let cur: K = client.get(Some(NS), NAME).await?;
            let rv = serde_json::to_value(&cur).ok().and_then(|v| {
                v["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_string)
            });
            let mut obj = obj;
            set_rv(&mut obj, rv);
            client.update(&obj).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Ensure the `kubernetes` Service, Endpoints and EndpointSlice: `api_addr` is the address
/// clients of the service reach the API server at.
pub async fn ensure(
    cp: &ControlPlane,
    client: &ApiClient,
    api_addr: Ipv4Addr,
    api_port: u16,
) -> Result<(), ApiError> {
    let ip = Ranges::load(cp)
        .await
        .service()
        .nth(1)
        .ok_or_else(|| ApiError::internal("service CIDR has no first address"))?
        .to_string();
    let labels = [("component", "apiserver"), ("provider", "kubernetes")];
    let svc = Service {
        metadata: meta(&labels),
        spec: Some(ServiceSpec {
            cluster_ip: Some(ip.clone()),
            ports: Some(vec![ServicePort {
                name: Some("https".into()),
                port: 443,
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::Int(api_port.into())),
                ..Default::default()
            }]),
            session_affinity: Some("None".into()),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let exists = match client.get::<Service>(Some(NS), NAME).await {
        Ok(_) => true,
        Err(e) if e.code == 404 => false,
        Err(e) => return Err(e),
    };
    if !exists {
        match client.create(Some(NS), &svc).await {
            Ok(_) => log::info!("created Service default/kubernetes at {ip}:443"),
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    let ep = Endpoints {
        metadata: meta(&[("endpointslice.kubernetes.io/skip-mirror", "true")]),
        subsets: Some(vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress {
                ip: api_addr.to_string(),
                ..Default::default()
            }]),
            ports: Some(vec![EndpointPort {
                name: Some("https".into()),
                port: api_port.into(),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }]),
    };
    put(client, ep, |o, rv| o.metadata.resource_version = rv).await?;
    let slice = EndpointSlice {
        metadata: meta(&[("kubernetes.io/service-name", NAME)]),
        address_type: "IPv4".into(),
        endpoints: vec![Endpoint {
            addresses: vec![api_addr.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            ..Default::default()
        }],
        ports: Some(vec![SlicePort {
            name: Some("https".into()),
            port: Some(api_port.into()),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    };
    put(client, slice, |o, rv| o.metadata.resource_version = rv).await
}
