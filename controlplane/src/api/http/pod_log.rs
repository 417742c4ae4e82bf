//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: the API server proxies to
//! the kubelet of the pod's node (`http://<node InternalIP>:<daemonEndpoints
//! .kubeletEndpoint.Port>/containerLogs/{ns}/{pod}/{container}?…`) and
//! streams its body back, so `kubectl logs -f` follows. The container
//! defaults as in Kubernetes (the only one; otherwise 400 listing them).

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::api::error::ApiError;
use crate::api::objects::Objects;
use crate::api::registry;

/// The kubelet port when a node does not publish one.
const DEFAULT_KUBELET_PORT: u64 = 10250;
/// How long the kubelet may take to answer (not to finish the body).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest kubelet error body relayed.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// An HTTP/1 client for the cluster's own endpoints (kubelets, pods): no Nagle delay, a
/// 5 s connect timeout.
pub(crate) fn cluster_client<B>() -> Client<HttpConnector, B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new()).build(c)
}

/// The shared HTTP client for kubelets (logs here, resource metrics for the autoscaler).
pub(crate) fn kubelet_client() -> &'static Client<HttpConnector, Empty<Bytes>> {
    static CLIENT: OnceLock<Client<HttpConnector, Empty<Bytes>>> = OnceLock::new();
    CLIENT.get_or_init(cluster_client)
}

fn names(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
        .collect()
}

/// The container to read: the requested one if the pod has it, else the
/// only app container; errors as Kubernetes words them.
pub fn pick_container(
    pod: &Value,
    name: &str,
    requested: Option<&str>,
) -> Result<String, ApiError> {
    let app = names(pod.pointer("/spec/containers"));
    let init = names(pod.pointer("/spec/initContainers"));
    let ephemeral = names(pod.pointer("/spec/ephemeralContainers"));
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if app.iter().chain(&init).chain(&ephemeral).any(|x| x == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if app.len() == 1 => Ok(app[0].clone()),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                app.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

/// `host:port` of a node's kubelet.
pub fn kubelet_address(node: &Value) -> Result<String, ApiError> {
    let name = node
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let addresses = node.pointer("/status/addresses").and_then(Value::as_array);
    let ip = addresses
        .into_iter()
        .flatten()
        .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
        .and_then(|a| a.get("address").and_then(Value::as_str))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "node {name} has no InternalIP address to reach its kubelet"
            ))
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| (1..=65535).contains(p))
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok(if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    })
}

/// The query forwarded to the kubelet: everything but `container`.
pub(super) fn forwarded_query(raw: Option<&str>) -> String {
    let kept: Vec<&str> = raw
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter(|kv| kv.split('=').next() != Some("container"))
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    }
}

pub(super) fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub(super) fn reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    }
}

/// The container a request for pod `ns/name` is about (`container` in the
/// raw query, defaulted as Kubernetes does) and its node's kubelet address.
pub(super) async fn locate(
    objects: &Objects,
    ns: &str,
    name: &str,
    raw_query: Option<&str>,
) -> Result<(String, String), ApiError> {
    let pod = objects.get(pods_resource()?, Some(ns), name).await?;
    let container = {
        let requested = raw_query.unwrap_or("").split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == "container").then(|| {
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned()
            })
        });
        pick_container(&pod, name, requested.as_deref())?
    };
    Ok((container, kubelet_of(objects, &pod, name).await?))
}

pub(super) fn pods_resource() -> Result<&'static registry::ResourceInfo, ApiError> {
    registry::lookup("", "v1", "pods").ok_or_else(|| ApiError::internal("no pods resource"))
}

/// The `host:port` of the kubelet of `pod` (named `name`).
pub(super) async fn kubelet_of(
    objects: &Objects,
    pod: &Value,
    name: &str,
) -> Result<String, ApiError> {
    let nodes = registry::lookup("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("no nodes resource"))?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {name} does not have a host assigned"))
        })?;
    let node = objects.get(nodes, None, node_name).await?;
    kubelet_address(&node)
}

/// Serves the log of pod `ns/name` with the request's raw query.
pub async fn serve(
    objects: &Objects,
    ns: &str,
    name: &str,
    raw_query: Option<&str>,
) -> Result<Response, ApiError> {
    let (container, addr) = locate(objects, ns, name, raw_query).await?;
    let url = format!(
        "http://{addr}/containerLogs/{}/{}/{}{}",
        segment(ns),
        segment(name),
        segment(&container),
        forwarded_query(raw_query)
    );
    let req = hyper::Request::get(&url)
        .body(Empty::new())
        .map_err(|e| ApiError::internal(format!("building the request to {url}: {e}")))?;
    let resp = tokio::time::timeout(HEADER_TIMEOUT, kubelet_client().request(req))
        .await
        .map_err(|_| {
            ApiError::internal(format!(
                "Get \"{url}\": no answer within {HEADER_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| ApiError::internal(format!("Get \"{url}\": {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        let code = status.as_u16();
        let body = Limited::new(resp.into_body(), MAX_ERROR_BODY)
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
            .unwrap_or_default();
        return Err(ApiError::new(code, reason(code), body));
    }
    let mut out = Response::new(Body::new(resp.into_body()));
    out.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_container_defaults_as_in_kubernetes() {
        let one = json!({"spec": {"containers": [{"name": "app"}]}});
        assert_eq!(pick_container(&one, "p", None).unwrap(), "app");
        let two = json!({"spec": {
            "containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "init"}],
        }});
        let e = pick_container(&two, "p", None).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [init]"
        );
        assert_eq!(pick_container(&two, "p", Some("init")).unwrap(), "init");
        let e = pick_container(&two, "p", Some("zz")).unwrap_err();
        assert_eq!(e.message, "container zz is not valid for pod p");
    }

    #[test]
    fn the_kubelet_is_found_from_the_node_status() {
        let node = json!({"metadata": {"name": "n1"}, "status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.2"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10555}},
        }});
        assert_eq!(kubelet_address(&node).unwrap(), "10.0.0.2:10555");
        let bare = json!({"metadata": {"name": "n1"}, "status": {
            "addresses": [{"type": "InternalIP", "address": "10.0.0.3"}]}});
        assert_eq!(kubelet_address(&bare).unwrap(), "10.0.0.3:10250");
        assert!(kubelet_address(&json!({})).is_err());
        assert_eq!(
            forwarded_query(Some("container=a&follow=true&tailLines=2")),
            "?follow=true&tailLines=2"
        );
        assert_eq!(forwarded_query(None), "");
    }
}
