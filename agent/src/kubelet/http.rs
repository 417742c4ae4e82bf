//! The agent's HTTP server (the kubelet's port, 10250 by default):
//!
//! - `GET /containerLogs/{ns}/{pod}/{container}` with kubectl's query
//!   (`follow`, `tailLines`, `previous`, `timestamps`, `sinceSeconds`,
//!   `sinceTime`, `limitBytes`), streamed as `text/plain`;
//! - `GET|POST /exec/{ns}/{pod}/{container}`: `kubectl exec` over a
//!   WebSocket ([`exec`]);
//! - `GET|POST /attach/{ns}/{pod}/{container}`: `kubectl attach` (and `run -i`),
//!   the container's output over the same channels ([`attach`]);
//! - `GET /portForward/{ns}/{pod}`: `kubectl port-forward`, SPDY/3.1 in a
//!   WebSocket ([`portforward`]);
//! - `GET /metrics` (and `/metrics/resource`): Prometheus text;
//! - `GET /healthz`.
//!
//! Pods are found through [`PodLookup`] and usage through
//! [`metrics::StatsSource`], both implemented by the pod manager
//! ([`super::lookup`]).

pub mod attach;
pub mod exec;
pub mod metrics;
pub mod node_usage;
pub mod portforward;
pub mod spdy;

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::logs::{self, LogOptions};
pub use super::lookup::{ContainerInfo, PodInfo, PodLookup};
use crate::runtime::cgroups::CgroupManager;
pub use metrics::{ContainerUsage, Histogram, Registry, StatsSource};

/// The default `--kubelet-listen`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:10250";

/// What the server needs.
#[derive(Clone)]
pub struct KubeletHttp {
    /// The agent's state directory (logs live under `<state>/pods`).
    pub state_dir: PathBuf,
    pub pods: Arc<dyn PodLookup>,
    pub stats: Arc<dyn StatsSource>,
    pub metrics: Arc<Registry>,
    /// Joined by exec'd commands (the container's cgroup).
    pub cgroups: Option<&'static dyn CgroupManager>,
}

/// The routes.
pub fn router(s: KubeletHttp) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics_handler))
        .route("/metrics/resource", get(metrics_handler))
        .route("/containerLogs/{ns}/{pod}/{container}", get(logs_handler))
        .route(
            "/exec/{ns}/{pod}/{container}",
            get(exec::handler).post(exec::handler),
        )
        .route(
            "/attach/{ns}/{pod}/{container}",
            get(attach::handler).post(attach::handler),
        )
        .route(
            "/portForward/{ns}/{pod}",
            get(portforward::handler).post(portforward::handler),
        )
        .with_state(s)
}

/// Serves on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, s: KubeletHttp) -> std::io::Result<()> {
    axum::serve(listener, router(s)).await
}

async fn metrics_handler(State(s): State<KubeletHttp>) -> Response {
    let stats = s.stats.clone();
    let (node, usage) =
        tokio::task::spawn_blocking(move || (node_usage::read(), stats.container_usage()))
            .await
            .unwrap_or_default();
    let mut resp = s.metrics.render(node, &usage).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

fn error(code: StatusCode, message: String) -> Response {
    log::info!("kubelet http: refused ({code}): {message}");
    (code, message).into_response()
}

/// Whether instance `restart` of `container` in pod `ns/pod` (uid `uid`) still runs.
pub(super) fn instance_running(
    s: &KubeletHttp,
    (ns, pod): (String, String),
    uid: String,
    container: String,
    restart: u32,
) -> Arc<dyn Fn() -> bool + Send + Sync> {
    let pods = s.pods.clone();
    Arc::new(move || {
        pods.pod(&ns, &pod).is_some_and(|p| {
            p.uid == uid
                && p.containers
                    .iter()
                    .any(|x| x.name == container && x.restart_count == restart && x.running)
        })
    })
}

/// `a=b&c=d` percent-decoded (the last of a repeated key wins).
fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    parse_query_all(q).into_iter().collect()
}

/// `a=b&c=d` percent-decoded, in order, repeated keys kept.
fn parse_query_all(q: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    q.unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The log options and `previous` from the kubelet's query parameters.
pub fn log_options(
    q: &HashMap<String, String>,
    now: logs::Timestamp,
) -> Result<(LogOptions, bool), String> {
    let flag = |k: &str| {
        q.get(k)
            .is_some_and(|v| matches!(v.as_str(), "true" | "True" | "TRUE" | "1" | "t" | "T"))
    };
    let int = |k: &str| -> Result<Option<i64>, String> {
        q.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().map_err(|_| format!("{k}: invalid integer {v:?}")))
            .transpose()
    };
    let since_seconds = int("sinceSeconds")?;
    let since_time = q.get("sinceTime").filter(|v| !v.is_empty());
    let since = match (since_seconds, since_time) {
        (Some(_), Some(_)) => {
            return Err("at most one of sinceTime or sinceSeconds may be specified".into())
        }
        (Some(s), None) if s < 1 => return Err("sinceSeconds must be greater than 0".into()),
        (Some(s), None) => Some((now.0 - s, now.1)),
        (None, Some(t)) => Some(
            logs::cri::parse_rfc3339(t)
                .ok_or_else(|| format!("sinceTime: invalid RFC3339 time {t:?}"))?,
        ),
        (None, None) => None,
    };
    let tail = int("tailLines")?;
    if tail.is_some_and(|t| t < 0) {
        return Err("tailLines must be greater than or equal to 0".into());
    }
    let limit = int("limitBytes")?;
    if limit.is_some_and(|l| l < 1) {
        return Err("limitBytes must be greater than 0".into());
    }
    let opts = LogOptions {
        follow: flag("follow"),
        tail_lines: tail.map(|t| t as u64),
        timestamps: flag("timestamps"),
        since,
        limit_bytes: limit.map(|l| l as u64),
        channels: false,
    };
    Ok((opts, flag("previous")))
}

fn now() -> logs::Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos())
}

async fn logs_handler(
    State(s): State<KubeletHttp>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let (mut opts, previous) = match log_options(&parse_query(query.as_deref()), now()) {
        Ok(o) => o,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Some(info) = s.pods.pod(&ns, &pod) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("pod \"{ns}/{pod}\" not found on this node"),
        );
    };
    let Some(c) = info.containers.iter().find(|c| c.name == container) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("container \"{container}\" in pod \"{pod}\" not found"),
        );
    };
    let restart = if previous {
        let prev = c
            .restart_count
            .checked_sub(1)
            .map(|r| logs::path(&s.state_dir, &info.uid, &container, r));
        match prev {
            Some(p) if p.exists() => c.restart_count - 1,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                    ),
                )
            }
        }
    } else {
        c.restart_count
    };
    let path = logs::path(&s.state_dir, &info.uid, &container, restart);
    if !previous && !c.running && !path.exists() {
        return error(
            StatusCode::BAD_REQUEST,
            format!("container \"{container}\" in pod \"{pod}\" is waiting to start"),
        );
    }
    let running: Arc<dyn Fn() -> bool + Send + Sync> = if previous || !c.running {
        opts.follow = opts.follow && !previous && c.running;
        Arc::new(|| false)
    } else {
        instance_running(&s, (ns, pod), info.uid.clone(), container, restart)
    };
    let rx = logs::stream(path, opts, running);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    });
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

#[cfg(test)]
mod tests;
