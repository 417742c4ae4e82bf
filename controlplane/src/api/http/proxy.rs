//! `…/pods/{name}/proxy/{path}` and `…/services/{name}/proxy/{path}` (what `kubectl proxy`
//! users and dashboards reach pods and Services through): the API server forwards the HTTP
//! request to the pod's IP, or to a ready endpoint of the Service, and streams the answer
//! back. `{name}` is `name`, `name:port` or `http:name:port`, as in Kubernetes: a pod's port
//! is a number or the name of a container port (none: 80); a Service's port is its name or
//! number (none: the Service's only port, or its unnamed one). Plain HTTP only; upgrades
//! (WebSockets) through the proxy are not relayed.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderName, Uri};
use axum::response::Response;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::Value;

use crate::api::error::ApiError;
use crate::api::objects::Objects;
use crate::api::registry;

/// How long the target may take to answer (not to finish the body).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers that belong to one hop, never forwarded (RFC 9110 §7.6.1), and the caller's
/// credentials for this server.
const NOT_FORWARDED: [HeaderName; 8] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::AUTHORIZATION,
];

/// What a proxy path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Pod,
    Service,
}

fn client() -> &'static Client<HttpConnector, Body> {
    static CLIENT: OnceLock<Client<HttpConnector, Body>> = OnceLock::new();
    CLIENT.get_or_init(super::pod_log::cluster_client)
}

/// `[scheme:]name[:port]` → (scheme, name, port).
pub fn split_name(s: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = s.splitn(3, ':').collect();
    match parts.as_slice() {
        [name] => ("", name, ""),
        [name, port] => ("", name, port),
        [scheme, name, port] => (scheme, name, port),
        _ => ("", s, ""),
    }
}

fn unavailable(msg: String) -> ApiError {
    ApiError::new(503, "ServiceUnavailable", msg)
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `ip:port` of pod `pod` (its object) for `port` (number, container port name, or none).
pub fn pod_address(pod: &Value, name: &str, port: &str) -> Result<String, ApiError> {
    let ip = str_at(pod, "/status/podIP")
        .ok_or_else(|| unavailable(format!("pod {name} has no IP address yet")))?;
    let number = if port.is_empty() {
        80
    } else if let Ok(n) = port.parse::<u16>() {
        n
    } else {
        let containers = pod.pointer("/spec/containers").and_then(Value::as_array);
        containers
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("ports")?.as_array())
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(port))
            .and_then(|p| p.get("containerPort")?.as_u64())
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!("pod {name} has no container port named {port:?}"))
            })?
    };
    Ok(format!("{ip}:{number}"))
}

/// `ip:port` of a ready endpoint of Service `svc` (its object and its Endpoints) for
/// `port` (the Service port's name or number, or none).
pub fn service_address(
    svc: &Value,
    endpoints: Option<&Value>,
    name: &str,
    port: &str,
) -> Result<String, ApiError> {
    let ports: Vec<&Value> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let port_name = |p: &Value| {
        p.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let chosen = match port {
        "" if ports.len() == 1 => Some(ports[0]),
        "" => ports.iter().copied().find(|p| port_name(p).is_empty()),
        want => ports.iter().copied().find(|p| {
            port_name(p) == want
                || p.get("port")
                    .and_then(Value::as_u64)
                    .map(|n| n.to_string())
                    .as_deref()
                    == Some(want)
        }),
    };
    let Some(chosen) = chosen else {
        return Err(ApiError::bad_request(format!(
            "no service port {port:?} found for service {name:?}"
        )));
    };
    let want = port_name(chosen);
    let no_endpoints = || unavailable(format!("no endpoints available for service {name:?}"));
    let subsets = endpoints
        .and_then(|e| e.get("subsets")?.as_array())
        .ok_or_else(no_endpoints)?;
    for subset in subsets {
        let Some(number) = subset
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == want)
            .and_then(|p| p.get("port")?.as_u64())
        else {
            continue;
        };
        let ips: Vec<&str> = subset
            .get("addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("ip")?.as_str())
            .collect();
        if !ips.is_empty() {
            return Ok(format!("{}:{number}", ips[fastrand::usize(..ips.len())]));
        }
    }
    Err(no_endpoints())
}

/// Forwards `req` (`/api/v1/namespaces/{ns}/{pods|services}/{name_port}/proxy/…`).
pub async fn serve(
    objects: &Objects,
    target: Target,
    ns: &str,
    name_port: &str,
    req: Request,
) -> Result<Response, ApiError> {
    // What follows `…/{name}/proxy`, still percent-encoded.
    let rest = req
        .uri()
        .path()
        .splitn(8, '/')
        .nth(7)
        .and_then(|r| r.strip_prefix("proxy"))
        .unwrap_or("")
        .to_owned();
    let (scheme, name, port) = split_name(name_port);
    if !scheme.is_empty() && scheme != "http" {
        return Err(ApiError::bad_request(format!(
            "the proxy speaks plain HTTP only, not {scheme:?}"
        )));
    }
    let lookup = |plural: &str| {
        registry::lookup("", "v1", plural)
            .ok_or_else(|| ApiError::internal(format!("no {plural} resource")))
    };
    let addr = match target {
        Target::Pod => {
            let pod = objects.get(lookup("pods")?, Some(ns), name).await?;
            pod_address(&pod, name, port)?
        }
        Target::Service => {
            let svc = objects.get(lookup("services")?, Some(ns), name).await?;
            let eps = objects.get(lookup("endpoints")?, Some(ns), name).await.ok();
            service_address(&svc, eps.as_ref(), name, port)?
        }
    };
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let uri: Uri = format!("http://{addr}/{}{query}", rest.trim_start_matches('/'))
        .parse()
        .map_err(|e| ApiError::bad_request(format!("bad proxy path: {e}")))?;
    let (mut parts, body) = req.into_parts();
    parts.uri = uri.clone();
    for h in &NOT_FORWARDED {
        parts.headers.remove(h);
    }
    parts.headers.remove(header::HOST);
    let out = hyper::Request::from_parts(parts, body);
    let resp = tokio::time::timeout(HEADER_TIMEOUT, client().request(out))
        .await
        .map_err(|_| unavailable(format!("{uri}: no answer within {HEADER_TIMEOUT:?}")))?
        .map_err(|e| unavailable(format!("error trying to reach {uri}: {e}")))?;
    let (mut parts, body) = resp.into_parts();
    for h in &NOT_FORWARDED {
        parts.headers.remove(h);
    }
    Ok(Response::from_parts(parts, Body::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_carry_scheme_and_port() {
        assert_eq!(split_name("web"), ("", "web", ""));
        assert_eq!(split_name("web:http"), ("", "web", "http"));
        assert_eq!(split_name("https:web:443"), ("https", "web", "443"));
    }

    #[test]
    fn pod_ports_by_number_name_or_default() {
        let pod = json!({"spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8080}]}]},
                         "status": {"podIP": "10.244.1.5"}});
        assert_eq!(pod_address(&pod, "p", "").unwrap(), "10.244.1.5:80");
        assert_eq!(pod_address(&pod, "p", "9000").unwrap(), "10.244.1.5:9000");
        assert_eq!(pod_address(&pod, "p", "http").unwrap(), "10.244.1.5:8080");
        assert_eq!(pod_address(&pod, "p", "grpc").unwrap_err().code, 400);
        assert_eq!(pod_address(&json!({}), "p", "").unwrap_err().code, 503);
    }

    #[test]
    fn service_ports_map_to_ready_endpoints() {
        let svc = json!({"spec": {"ports": [{"name": "http", "port": 80}, {"name": "admin", "port": 9000}]}});
        let eps = json!({"subsets": [{"addresses": [{"ip": "10.244.2.7"}],
                                      "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9001}]}]});
        assert_eq!(
            service_address(&svc, Some(&eps), "s", "http").unwrap(),
            "10.244.2.7:8080"
        );
        assert_eq!(
            service_address(&svc, Some(&eps), "s", "9000").unwrap(),
            "10.244.2.7:9001"
        );
        // Two named ports: one must be named.
        assert_eq!(
            service_address(&svc, Some(&eps), "s", "").unwrap_err().code,
            400
        );
        assert_eq!(
            service_address(&svc, None, "s", "http").unwrap_err().code,
            503
        );
        let one = json!({"spec": {"ports": [{"port": 80}]}});
        let eps1 =
            json!({"subsets": [{"addresses": [{"ip": "10.244.0.3"}], "ports": [{"port": 8080}]}]});
        assert_eq!(
            service_address(&one, Some(&eps1), "s", "").unwrap(),
            "10.244.0.3:8080"
        );
    }
}
