//! The closed-loop load: `concurrency` workers each create ConfigMaps one after the other
//! until the row's write count or time budget is spent (whichever first), timing each.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hyper::body::Bytes;
use tonic::transport::Channel;

use super::etcd_rpc::EtcdRpc;
use super::skiff::HttpJson;

/// Where the writes go.
#[derive(Clone)]
pub enum Target {
    /// `POST /api/v1/namespaces/default/configmaps` on this API address.
    Skiff { client: Box<HttpJson>, api: String },
    /// `KV.Put` of `/registry/configmaps/default/<name>`, workers spread over the channels.
    Etcd { channels: Vec<Channel> },
}

impl Target {
    async fn write(&self, worker: usize, name: &str, body: Bytes) -> Result<()> {
        match self {
            Target::Skiff { client, api } => {
                client
                    .post(api, "/api/v1/namespaces/default/configmaps", body)
                    .await
            }
            Target::Etcd { channels } => {
                let mut rpc = EtcdRpc::new(channels[worker % channels.len()].clone());
                let key = format!("/registry/configmaps/default/{name}").into_bytes();
                rpc.put(key, body.to_vec())
                    .await
                    .map_err(|e| anyhow::anyhow!("etcd Put {name}: {e}"))?;
                Ok(())
            }
        }
    }
}

/// The body of ConfigMap `name`: the same bytes are POSTed to Skiff and Put to etcd.
pub fn configmap(name: &str, data_bytes: usize) -> Bytes {
    let obj = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "store-bench"}},
        "data": {"payload": "x".repeat(data_bytes)},
    });
    Bytes::from(serde_json::to_vec(&obj).expect("a JSON value serializes"))
}

/// Bounds of one row.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub max_writes: u64,
    pub max_time: Duration,
}

/// What one row measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub writes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub secs: f64,
    /// Sorted latencies of the successful writes.
    pub latencies: Vec<Duration>,
}

impl Measured {
    pub fn writes_per_s(&self) -> f64 {
        if self.secs > 0.0 {
            self.writes as f64 / self.secs
        } else {
            0.0
        }
    }

    /// The `q` quantile (0..=1) in milliseconds, nearest rank.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        quantile(&self.latencies, q).map(|d| d.as_secs_f64() * 1e3)
    }
}

/// Nearest-rank quantile of sorted `xs`.
pub fn quantile(xs: &[Duration], q: f64) -> Option<Duration> {
    if xs.is_empty() {
        return None;
    }
    let rank = (q * xs.len() as f64).ceil() as usize;
    Some(xs[rank.clamp(1, xs.len()) - 1])
}

/// Run `concurrency` workers against `target`; names are `<prefix>-<n>`. More than 100
/// failures in one worker end the row early (a broken target fails fast).
pub async fn run(
    target: &Target,
    prefix: &str,
    concurrency: usize,
    budget: Budget,
    data_bytes: usize,
) -> Measured {
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + budget.max_time;
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let (target, next, stop, prefix) = (
            target.clone(),
            next.clone(),
            stop.clone(),
            prefix.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= budget.max_writes {
                    break;
                }
                let name = format!("{prefix}-{n}");
                let body = configmap(&name, data_bytes);
                let t = Instant::now();
                let left = deadline.saturating_duration_since(t) + Duration::from_secs(10);
                match tokio::time::timeout(left, target.write(worker, &name, body)).await {
                    Ok(Ok(())) => lat.push(t.elapsed()),
                    Ok(Err(e)) => errors.push(format!("{e:#}")),
                    Err(_) => errors.push(format!("{name}: no answer within {left:?}")),
                }
                if errors.len() > 100 {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            (lat, errors)
        }));
    }
    let mut m = Measured::default();
    for t in tasks {
        match t.await {
            Ok((lat, errors)) => {
                m.latencies.extend(lat);
                m.errors += errors.len() as u64;
                if m.first_error.is_none() {
                    m.first_error = errors.into_iter().next();
                }
            }
            Err(e) => {
                m.errors += 1;
                m.first_error
                    .get_or_insert_with(|| format!("worker panicked: {e}"));
            }
        }
    }
    m.secs = start.elapsed().as_secs_f64();
    m.writes = m.latencies.len() as u64;
    m.latencies.sort_unstable();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let xs: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&xs, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(quantile(&xs, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(quantile(&xs, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(quantile(&xs[..1], 0.99), Some(Duration::from_millis(1)));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn configmap_body_is_a_named_configmap() {
        let b = configmap("bench-1", 16);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["kind"], "ConfigMap");
        assert_eq!(v["metadata"]["name"], "bench-1");
        assert_eq!(v["data"]["payload"].as_str().unwrap().len(), 16);
    }
}
