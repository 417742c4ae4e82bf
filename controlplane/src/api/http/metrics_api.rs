//! `metrics.k8s.io/v1beta1`, what `kubectl top` reads, served by the API server itself in
//! metrics-server's role: a sampler reads every node's kubelet `/metrics/resource` (every
//! 15 s, started by the first request, which waits for its first window), and CPU is the
//! rate between the last two reads. PodMetrics (per container) and NodeMetrics, get and
//! list, with label selectors; pods without two reads yet are left out, as metrics-server
//! does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::request::Query;
use super::{kubelet_address, response};
use crate::api::error::ApiError;
use crate::api::objects::{ListOptions, Objects};
use crate::api::registry;
use crate::api::selector::LabelSelector;
use crate::resource_metrics::{self, Scrape, Usage};

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
pub const PREFIX: &str = "/apis/metrics.k8s.io/v1beta1";
/// metrics-server's default resolution.
const INTERVAL: Duration = Duration::from_secs(15);
/// The first window is this short, so the first `kubectl top` has an answer.
const FIRST_WINDOW: Duration = Duration::from_secs(2);

/// Two reads of one node.
struct Reads {
    prev: (Instant, Scrape),
    last: (Instant, Scrape),
    at: DateTime<Utc>,
}

/// Usage over the window between two reads: CPU cores as a rate, memory now.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rate {
    cores: f64,
    memory: f64,
}

fn rate(prev: Option<&Usage>, last: &Usage, secs: f64) -> Option<Rate> {
    let p = prev?;
    (secs > 0.0 && last.cpu_seconds >= p.cpu_seconds).then(|| Rate {
        cores: (last.cpu_seconds - p.cpu_seconds) / secs,
        memory: last.memory_bytes,
    })
}

fn usage(r: Rate) -> Value {
    json!({"cpu": format!("{}n", (r.cores * 1e9).round() as i64),
           "memory": format!("{}Ki", (r.memory / 1024.0).round() as i64)})
}

/// The sampler of one API server.
pub struct Sampler {
    objects: Objects,
    started: AtomicBool,
    /// Nodes read at least twice.
    nodes: Mutex<HashMap<String, Reads>>,
    /// Nodes read once so far.
    pending: Mutex<HashMap<String, (Instant, Scrape)>>,
    first: Notify,
}

impl Sampler {
    pub fn new(objects: Objects) -> Arc<Self> {
        Arc::new(Self {
            objects,
            started: AtomicBool::new(false),
            nodes: Mutex::default(),
            pending: Mutex::default(),
            first: Notify::new(),
        })
    }

    /// Starts the reads on first use, and waits (a few seconds at most) for a window.
    async fn ensure_started(self: &Arc<Self>) {
        if !self.started.swap(true, Ordering::SeqCst) {
            tokio::spawn(run(Arc::downgrade(self)));
        }
        if !self.has_window() {
            let wait = self.first.notified();
            let _ = tokio::time::timeout(FIRST_WINDOW * 3, wait).await;
        }
    }

    async fn read_all(&self) {
        let info = registry::by_kind("v1", "Node").expect("nodes are served");
        let Ok(nodes) = self.objects.list(info, None, &ListOptions::default()).await else {
            return;
        };
        let reads = nodes.items.iter().filter_map(|n| {
            let name = n.pointer("/metadata/name")?.as_str()?.to_string();
            let addr = kubelet_address(n).ok()?;
            Some(async move { (name, resource_metrics::scrape(&addr).await) })
        });
        let now = Instant::now();
        for (name, r) in futures_util::future::join_all(reads).await {
            let Ok(scrape) = r else { continue };
            let last = (now, scrape);
            let mut nodes = self.nodes.lock().unwrap();
            if let Some(r) = nodes.get_mut(&name) {
                r.prev = std::mem::replace(&mut r.last, last);
                r.at = Utc::now();
                continue;
            }
            let mut pending = self.pending.lock().unwrap();
            match pending.remove(&name) {
                Some(prev) => {
                    let at = Utc::now();
                    nodes.insert(name, Reads { prev, last, at });
                }
                None => {
                    pending.insert(name, last);
                }
            }
        }
        if self.has_window() {
            self.first.notify_waiters();
        }
    }

    fn has_window(&self) -> bool {
        !self.nodes.lock().unwrap().is_empty()
    }
}

/// Reads every node until the sampler (its API server) is gone.
async fn run(sampler: Weak<Sampler>) {
    let mut first = true;
    loop {
        let Some(s) = sampler.upgrade() else { return };
        s.read_all().await;
        drop(s);
        let pause = if std::mem::take(&mut first) {
            FIRST_WINDOW
        } else {
            INTERVAL
        };
        tokio::time::sleep(pause).await;
    }
}

fn not_found(what: &str, name: &str) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("{what}.metrics.k8s.io \"{name}\" not found"),
    )
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn window(r: &Reads) -> String {
    format!("{:.3}s", r.last.0.duration_since(r.prev.0).as_secs_f64())
}

fn node_item(name: &str, r: &Reads) -> Option<Value> {
    let secs = r.last.0.duration_since(r.prev.0).as_secs_f64();
    let u = rate(r.prev.1.node.as_ref(), r.last.1.node.as_ref()?, secs)?;
    Some(
        json!({"metadata": {"name": name, "creationTimestamp": stamp(Utc::now())},
                "timestamp": stamp(r.at), "window": window(r), "usage": usage(u)}),
    )
}

fn pod_item(pod: &Value, r: &Reads) -> Option<Value> {
    let ns = pod.pointer("/metadata/namespace")?.as_str()?;
    let name = pod.pointer("/metadata/name")?.as_str()?;
    let secs = r.last.0.duration_since(r.prev.0).as_secs_f64();
    let mut containers: Vec<Value> = r
        .last
        .1
        .containers
        .iter()
        .filter(|((n, p, _), _)| n == ns && p == name)
        .filter_map(|(k, last)| {
            let u = rate(r.prev.1.containers.get(k), last, secs)?;
            Some(json!({"name": k.2, "usage": usage(u)}))
        })
        .collect();
    if containers.is_empty() {
        return None;
    }
    containers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Some(json!({"metadata": {"name": name, "namespace": ns,
                             "labels": pod.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                             "creationTimestamp": stamp(Utc::now())},
                "timestamp": stamp(r.at), "window": window(r), "containers": containers}))
}

fn list_options(q: &Query) -> Result<ListOptions, ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    Ok(ListOptions {
        labels,
        ..Default::default()
    })
}

fn ok(v: &Value) -> Response {
    response::json_response(200, v, &[], "application/json")
}

/// `/apis/metrics.k8s.io/v1beta1/...` (GET only).
pub async fn serve(
    sampler: &Arc<Sampler>,
    path: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    let rest = path[PREFIX.len()..].trim_matches('/');
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if segs.is_empty() {
        return crate::api::discovery::resource_list(GROUP, VERSION, &[])
            .map(|d| ok(&d))
            .ok_or_else(|| not_found("group", GROUP));
    }
    sampler.ensure_started().await;
    let objects = &sampler.objects;
    match segs.as_slice() {
        ["nodes", rest @ ..] if rest.len() <= 1 => {
            let info = registry::by_kind("v1", "Node").expect("nodes are served");
            let listed = objects.list(info, None, &list_options(query)?).await?;
            let reads = sampler.nodes.lock().unwrap();
            let items: Vec<Value> = listed
                .items
                .iter()
                .filter_map(|n| n.pointer("/metadata/name")?.as_str())
                .filter(|n| rest.first().is_none_or(|want| want == n))
                .filter_map(|n| node_item(n, reads.get(n)?))
                .collect();
            respond("Node", "nodes", rest.first().copied(), items)
        }
        ["pods"] | ["namespaces", _, "pods"] | ["namespaces", _, "pods", _] => {
            let ns = (segs[0] == "namespaces").then(|| segs[1]);
            let want = segs.get(3).copied();
            let info = registry::by_kind("v1", "Pod").expect("pods are served");
            let listed = objects.list(info, ns, &list_options(query)?).await?;
            let reads = sampler.nodes.lock().unwrap();
            let items: Vec<Value> = listed
                .items
                .iter()
                .filter(|p| want.is_none_or(|w| p.pointer("/metadata/name") == Some(&json!(w))))
                .filter_map(|p| {
                    let node = p.pointer("/spec/nodeName")?.as_str()?;
                    pod_item(p, reads.get(node)?)
                })
                .collect();
            respond("Pod", "pods", want, items)
        }
        _ => Err(ApiError::no_such_resource()),
    }
}

/// One item (`<Kind>Metrics`) when a name was asked for, else the list.
fn respond(
    kind: &str,
    resource: &str,
    name: Option<&str>,
    items: Vec<Value>,
) -> Result<Response, ApiError> {
    let api_version = format!("{GROUP}/{VERSION}");
    match name {
        Some(name) => {
            let mut item = items
                .into_iter()
                .next()
                .ok_or_else(|| not_found(resource, name))?;
            item["kind"] = json!(format!("{kind}Metrics"));
            item["apiVersion"] = json!(api_version);
            Ok(ok(&item))
        }
        None => Ok(ok(&json!({"kind": format!("{kind}MetricsList"),
            "apiVersion": api_version, "metadata": {}, "items": items}))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_a_rate_over_the_window() {
        let p = Usage {
            cpu_seconds: 10.0,
            memory_bytes: 1.0,
        };
        let l = Usage {
            cpu_seconds: 13.0,
            memory_bytes: 2048.0,
        };
        let r = rate(Some(&p), &l, 15.0).unwrap();
        assert!((r.cores - 0.2).abs() < 1e-9);
        assert_eq!(usage(r), json!({"cpu": "200000000n", "memory": "2Ki"}));
        assert_eq!(rate(None, &l, 15.0), None);
        assert_eq!(rate(Some(&l), &p, 15.0), None, "a counter that went back");
    }
}
