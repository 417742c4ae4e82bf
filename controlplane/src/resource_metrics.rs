//! A kubelet's resource metrics (`/metrics/resource`, the Prometheus text metrics-server
//! reads): per container `container_cpu_usage_seconds_total` and
//! `container_memory_working_set_bytes`, for the node `node_cpu_usage_seconds_total` and
//! `node_memory_working_set_bytes`. Read by the autoscaler and the metrics API.

use std::collections::HashMap;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;

/// Cumulative CPU seconds and the current working set in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub memory_bytes: f64,
}

/// `(namespace, pod, container)`.
pub type ContainerKey = (String, String, String);

/// One read of one kubelet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    pub containers: HashMap<ContainerKey, Usage>,
    pub node: Option<Usage>,
}

/// The value of `key="..."` in a Prometheus label set (no escapes in the names we read).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"'))
    })
}

/// Parses a `/metrics/resource` body; unknown series and malformed lines are skipped.
pub fn parse(text: &str) -> Scrape {
    let mut out = Scrape::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, labels, value) = match line.split_once('{') {
            Some((series, rest)) => match rest.rsplit_once('}') {
                Some((labels, value)) => (series, labels, value),
                None => continue,
            },
            None => match line.split_once(' ') {
                Some((series, value)) => (series, "", value),
                None => continue,
            },
        };
        let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        let cpu = match series {
            "container_cpu_usage_seconds_total" | "node_cpu_usage_seconds_total" => true,
            "container_memory_working_set_bytes" | "node_memory_working_set_bytes" => false,
            _ => continue,
        };
        let slot = if series.starts_with("node_") {
            out.node.get_or_insert_with(Usage::default)
        } else {
            let key = (
                label(labels, "namespace"),
                label(labels, "pod"),
                label(labels, "container"),
            );
            let (Some(ns), Some(pod), Some(c)) = key else {
                continue;
            };
            out.containers
                .entry((ns.to_string(), pod.to_string(), c.to_string()))
                .or_default()
        };
        if cpu {
            slot.cpu_seconds = v;
        } else {
            slot.memory_bytes = v;
        }
    }
    out
}

/// Reads the kubelet at `addr` (`host:port`).
pub async fn scrape(addr: &str) -> Result<Scrape, String> {
    const TIMEOUT: Duration = Duration::from_secs(5);
    const MAX_BODY: usize = 16 << 20;
    let url = format!("http://{addr}/metrics/resource");
    let req = hyper::Request::get(&url)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(TIMEOUT, crate::api::http::kubelet_client().request(req))
        .await
        .map_err(|_| format!("Get {url}: no answer within {TIMEOUT:?}"))?
        .map_err(|e| format!("Get {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("Get {url}: {}", resp.status()));
    }
    let body = tokio::time::timeout(TIMEOUT, Limited::new(resp.into_body(), MAX_BODY).collect())
        .await
        .map_err(|_| format!("Get {url}: body not read within {TIMEOUT:?}"))?
        .map_err(|e| format!("Get {url}: {e}"))?;
    Ok(parse(&String::from_utf8_lossy(&body.to_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_container_and_node_series() {
        let text = "# HELP x\n# TYPE node_cpu_usage_seconds_total counter\n\
            node_cpu_usage_seconds_total 12.5\n\
            node_memory_working_set_bytes 2048\n\
            container_cpu_usage_seconds_total{container=\"a\",namespace=\"ns\",pod=\"p\"} 1.5\n\
            container_memory_working_set_bytes{container=\"a\",namespace=\"ns\",pod=\"p\"} 1024\n\
            container_cpu_usage_seconds_total{container=\"b\",namespace=\"ns\",pod=\"p\"} 7 1700000000\n\
            programming_latency_bucket{le=\"0.1\"} 3\n\
            garbage line\n";
        let s = parse(text);
        assert_eq!(
            s.node,
            Some(Usage {
                cpu_seconds: 12.5,
                memory_bytes: 2048.0
            })
        );
        let key = |c: &str| ("ns".to_string(), "p".to_string(), c.to_string());
        assert_eq!(
            s.containers[&key("a")],
            Usage {
                cpu_seconds: 1.5,
                memory_bytes: 1024.0
            }
        );
        assert_eq!(s.containers[&key("b")].cpu_seconds, 7.0);
        assert_eq!(s.containers.len(), 2);
    }
}
