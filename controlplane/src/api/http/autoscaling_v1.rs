//! `autoscaling/v1` HorizontalPodAutoscalers (what `kubectl autoscale` posts), served by
//! converting to and from the stored `autoscaling/v2` object as the kube-apiserver does:
//! `targetCPUUtilizationPercentage` is the v2 CPU `Utilization` metric, and
//! `currentCPUUtilizationPercentage` its current value. Create, get, list, replace and
//! delete; watches and patches go through `autoscaling/v2`, the preferred version, which
//! discovery lists alone.

use axum::body::Bytes;
use axum::http::Method;
use axum::response::Response;
use serde_json::{json, Value};

use super::response;
use crate::api::decode;
use crate::api::error::ApiError;
use crate::api::objects::{DeleteOptions, Deleted, ListOptions, Objects, WriteOptions};
use crate::api::registry;

pub const PREFIX: &str = "/apis/autoscaling/v1/";

/// A v1 object as the stored v2 one.
pub fn to_v2(v1: &Value) -> Value {
    let mut out = v1.clone();
    out["apiVersion"] = json!("autoscaling/v2");
    let spec = v1.get("spec").cloned().unwrap_or(json!({}));
    let mut s = json!({});
    for k in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        if let Some(v) = spec.get(k) {
            s[k] = v.clone();
        }
    }
    if let Some(cpu) = spec.get("targetCPUUtilizationPercentage") {
        s["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": cpu}}}]);
    }
    out["spec"] = s;
    if let Some(o) = out.as_object_mut() {
        o.remove("status");
    }
    out
}

fn cpu_metric<'a>(metrics: Option<&'a Value>, field: &str) -> Option<&'a Value> {
    metrics?.as_array()?.iter().find_map(|m| {
        let r = m.get("resource")?;
        (r.get("name")? == "cpu").then(|| r.pointer(field))?
    })
}

/// A stored v2 object as v1.
pub fn to_v1(v2: &Value) -> Value {
    let mut out = v2.clone();
    out["apiVersion"] = json!("autoscaling/v1");
    let spec = v2.get("spec").cloned().unwrap_or(json!({}));
    let mut s = json!({});
    for k in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        if let Some(v) = spec.get(k) {
            s[k] = v.clone();
        }
    }
    if let Some(t) = cpu_metric(spec.get("metrics"), "/target/averageUtilization") {
        s["targetCPUUtilizationPercentage"] = t.clone();
    }
    out["spec"] = s;
    let status = v2.get("status").cloned().unwrap_or(json!({}));
    let mut st = json!({});
    for k in [
        "observedGeneration",
        "lastScaleTime",
        "currentReplicas",
        "desiredReplicas",
    ] {
        if let Some(v) = status.get(k) {
            st[k] = v.clone();
        }
    }
    let current = cpu_metric(status.get("currentMetrics"), "/current/averageUtilization");
    if let Some(c) = current {
        st["currentCPUUtilizationPercentage"] = c.clone();
    }
    out["status"] = st;
    out
}

/// `(namespace, name)` from the path after [`PREFIX`].
fn parse(rest: &str) -> Result<(Option<String>, Option<String>), ApiError> {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["horizontalpodautoscalers"] => Ok((None, None)),
        ["namespaces", ns, "horizontalpodautoscalers"] => Ok((Some(ns.to_string()), None)),
        ["namespaces", ns, "horizontalpodautoscalers", name] => {
            Ok((Some(ns.to_string()), Some(name.to_string())))
        }
        _ => Err(ApiError::no_such_resource()),
    }
}

fn ok(code: u16, v: &Value) -> Response {
    response::json_response(code, v, &[], "application/json")
}

/// Serves one `autoscaling/v1` request (`path` starts with [`PREFIX`]).
pub async fn serve(
    objects: &Objects,
    method: &Method,
    path: &str,
    content_type: &str,
    body: Bytes,
) -> Result<Response, ApiError> {
    let info = registry::by_kind("autoscaling/v2", "HorizontalPodAutoscaler")
        .expect("autoscaling/v2 HorizontalPodAutoscalers are served");
    let (ns, name) = parse(&path[PREFIX.len()..])?;
    let body_json = || decode::parse_body(content_type, &body);
    let (ns, name) = (ns.as_deref(), name.as_deref());
    match (method.as_str(), name) {
        ("POST", None) if ns.is_some() => {
            let w = objects
                .create(info, ns, to_v2(&body_json()?), WriteOptions::default())
                .await?;
            Ok(ok(201, &to_v1(&w.object)))
        }
        ("GET", Some(n)) => Ok(ok(200, &to_v1(&objects.get(info, ns, n).await?))),
        ("GET", None) => {
            let listed = objects.list(info, ns, &ListOptions::default()).await?;
            let items: Vec<Value> = listed.items.iter().map(to_v1).collect();
            Ok(ok(
                200,
                &json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscalerList",
                        "metadata": {"resourceVersion": listed.revision.to_string()},
                        "items": items}),
            ))
        }
        ("PUT", Some(n)) => {
            let mut v2 = to_v2(&body_json()?);
            // v1 cannot say what other metrics the object had: keep them.
            let cur = objects.get(info, ns, n).await?;
            if v2.pointer("/spec/metrics").is_none() {
                if let Some(m) = cur.pointer("/spec/metrics") {
                    v2["spec"]["metrics"] = m.clone();
                }
            }
            let w = objects
                .update(info, ns, n, v2, None, WriteOptions::default())
                .await?;
            Ok(ok(200, &to_v1(&w.object)))
        }
        ("DELETE", Some(n)) => match objects
            .delete(info, ns, n, &DeleteOptions::default())
            .await?
        {
            Deleted::Gone(v) | Deleted::Pending(v) => Ok(ok(200, &to_v1(&v))),
        },
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is served for autoscaling/v1 only as create, get, list, update and delete; \
             use autoscaling/v2"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_targets_round_trip_between_versions() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}});
        let v2 = to_v2(&v1);
        assert_eq!(v2["apiVersion"], "autoscaling/v2");
        assert_eq!(
            v2.pointer("/spec/metrics/0/resource/target/averageUtilization"),
            Some(&json!(50))
        );
        let mut stored = v2.clone();
        stored["status"] = json!({"currentReplicas": 2, "desiredReplicas": 3,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": 87}}}]});
        let back = to_v1(&stored);
        assert_eq!(back["spec"], v1["spec"]);
        assert_eq!(back["status"]["currentCPUUtilizationPercentage"], 87);
        assert_eq!(back["status"]["desiredReplicas"], 3);
    }
}
