//! The HorizontalPodAutoscaler controller (autoscaling/v2, `Resource` metrics): every 15 s
//! it reads the target's scale, measures its ready pods' CPU (a rate between two reads)
//! or memory from their kubelets' `/metrics/resource` ([`usage`]), asks for the replicas
//! each metric's target implies and applies the default behaviour ([`compute`]), scales
//! through the target's scale subresource, and writes the status `kubectl get hpa` shows.
//! A metric without a value yet (the first CPU read) or a pod without a request for a
//! `Utilization` target leaves the scale alone, with `ScalingActive=False` saying why.
//! Not yet: `Pods`, `Object`, `External` and `ContainerResource` metrics, and custom
//! `behavior` (the defaults apply).

pub mod compute;
pub mod usage;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::cache::Cache;
use super::events::{Involved, Recorder};
use super::owners;
use super::pods::{is_active, is_ready};
use super::runtime::{Action, Controller};
use super::ControllerError;
use crate::api::http::kubelet_address;
use crate::api::objects::{Objects, ScaleChange, WriteOptions};
use crate::api::patch::PatchType;
use crate::api::registry::{self, Subresource};
use crate::api::selector::LabelSelector;
use crate::scheduler::Quantity;
use compute::{normalize, replicas_for, Behavior, Limit, Memory};
use usage::{PodKey, Rates, Sample};

/// How often each autoscaler is evaluated (`--horizontal-pod-autoscaler-sync-period`).
const SYNC: Duration = Duration::from_secs(15);
/// After a first CPU read, the second comes sooner.
const FIRST_RATE: Duration = Duration::from_secs(5);

pub struct Autoscalers {
    pub objects: Objects,
    pub hpas: Arc<Cache>,
    pub pods: Arc<Cache>,
    pub nodes: Arc<Cache>,
    pub state: Mutex<State>,
    pub events: Recorder,
}

/// Why an autoscaler went from `current` to `desired` replicas, in the words of the
/// `SuccessfulRescale` event of Kubernetes (`cpu resource utilization (percentage of
/// request) above target`).
fn rescale_reason(
    current: u32,
    desired: u32,
    (min, max): (u32, u32),
    top: Option<&Value>,
) -> String {
    if current < min {
        return "Current number of replicas below Spec.MinReplicas".into();
    }
    if current > max {
        return "Current number of replicas above Spec.MaxReplicas".into();
    }
    if desired < current {
        return "All metrics below target".into();
    }
    let name = top
        .and_then(|m| m.pointer("/resource/name"))
        .and_then(Value::as_str)
        .unwrap_or("cpu");
    let utilization = top
        .and_then(|m| m.pointer("/resource/current/averageUtilization"))
        .is_some();
    if utilization {
        format!("{name} resource utilization (percentage of request) above target")
    } else {
        format!("{name} resource above target")
    }
}

#[derive(Default)]
pub struct State {
    rates: Rates,
    /// Recent recommendations and scale events per autoscaler (the behaviour's windows
    /// and rate policies).
    memory: HashMap<String, Memory>,
}

/// One metric's reading against its target.
struct Reading {
    /// The replicas it asks for.
    replicas: u32,
    /// Its `status.currentMetrics` entry.
    status: Value,
}

fn condition(type_: &str, ok: bool, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": if ok {"True"} else {"False"}, "reason": reason,
           "message": message})
}

/// The pod's total request of `resource` (milli-units for cpu, units otherwise); `None`
/// when a container has none.
fn request(pod: &Value, resource: &str) -> Option<f64> {
    let containers = pod.pointer("/spec/containers")?.as_array()?;
    containers.iter().try_fold(0.0, |sum, c| {
        let q = c
            .pointer(&format!("/resources/requests/{resource}"))?
            .as_str()?;
        let q = Quantity::parse(q).ok()?;
        let v = if resource == "cpu" {
            q.milli_value()
        } else {
            q.value()
        };
        Some(sum + v as f64)
    })
}

fn quantity(v: Option<&Value>, milli: bool) -> Option<f64> {
    let q = Quantity::parse(v?.as_str()?).ok()?;
    Some(if milli { q.milli_value() } else { q.value() } as f64)
}

/// A usage as a Kubernetes quantity string (`250m` cores, bytes).
fn format_usage(v: f64, milli: bool) -> String {
    if milli {
        format!("{}m", v.round() as i64)
    } else {
        format!("{}", v.round() as i64)
    }
}

/// One `Resource` metric over the measured pods: `(pod, usage)` with usage in milli-cores
/// for cpu, bytes for memory.
fn read_metric(metric: &Value, current: u32, pods: &[(&Value, f64)]) -> Result<Reading, String> {
    let name = metric
        .pointer("/resource/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let milli = name == "cpu";
    let target = metric
        .pointer("/resource/target")
        .cloned()
        .unwrap_or(json!({}));
    if pods.is_empty() {
        return Err(format!("no ready pods with {name} usage yet"));
    }
    let n = pods.len() as u32;
    let used: f64 = pods.iter().map(|(_, u)| u).sum();
    let average = used / f64::from(n);
    let (ratio, current_status) = match target.get("type").and_then(Value::as_str) {
        Some("Utilization") => {
            let want = target
                .get("averageUtilization")
                .and_then(Value::as_f64)
                .filter(|w| *w > 0.0)
                .ok_or("a Utilization target needs averageUtilization")?;
            let requested: Option<f64> = pods.iter().map(|(p, _)| request(p, name)).sum();
            let requested = requested
                .filter(|r| *r > 0.0)
                .ok_or_else(|| format!("missing request for {name}"))?;
            let utilization = 100.0 * used / requested;
            (
                utilization / want,
                json!({"averageUtilization": utilization.round() as i64,
                       "averageValue": format_usage(average, milli)}),
            )
        }
        Some("AverageValue") => {
            let want = quantity(target.get("averageValue"), milli)
                .filter(|w| *w > 0.0)
                .ok_or("an AverageValue target needs averageValue")?;
            (
                average / want,
                json!({"averageValue": format_usage(average, milli)}),
            )
        }
        other => return Err(format!("unsupported target type {other:?}")),
    };
    Ok(Reading {
        replicas: replicas_for(current, n, ratio),
        status: json!({"type": "Resource",
                       "resource": {"name": name, "current": current_status}}),
    })
}

impl Autoscalers {
    /// The usage of `pods` from their nodes' kubelets, by pod.
    async fn samples(&self, pods: &[Value]) -> HashMap<PodKey, Sample> {
        let mut nodes: Vec<&str> = pods
            .iter()
            .filter_map(|p| p.pointer("/spec/nodeName").and_then(Value::as_str))
            .collect();
        nodes.sort();
        nodes.dedup();
        let reads = nodes.into_iter().filter_map(|n| {
            let node = self.nodes.get_named(None, n)?;
            let addr = kubelet_address(&node).ok()?;
            Some(async move { (n, usage::scrape(&addr).await) })
        });
        let mut out = HashMap::new();
        for (node, r) in futures_util::future::join_all(reads).await {
            match r {
                Ok(m) => out.extend(m),
                Err(e) => log::debug!("autoscaler: node {node}: {e}"),
            }
        }
        out
    }

    async fn write_status(&self, hpa: &Value, status: Value) -> Result<(), ControllerError> {
        owners::write_status_if_changed(&self.objects, self.hpas.info, hpa, status).await
    }
}

impl Controller for Autoscalers {
    fn name(&self) -> &'static str {
        "horizontalpodautoscalers"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(hpa) = self.hpas.get(key) else {
            self.state.lock().unwrap().memory.remove(key);
            return Ok(Action::Done);
        };
        let ns = owners::namespace(&hpa);
        let target = hpa
            .pointer("/spec/scaleTargetRef")
            .cloned()
            .unwrap_or(json!({}));
        let (av, kind, name) = (
            target["apiVersion"].as_str().unwrap_or(""),
            target["kind"].as_str().unwrap_or(""),
            target["name"].as_str().unwrap_or(""),
        );
        let mut status = json!({
            "observedGeneration": hpa.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "currentReplicas": 0, "desiredReplicas": 0,
        });
        for k in ["lastScaleTime", "currentMetrics"] {
            if let Some(v) = hpa.pointer(&format!("/status/{k}")) {
                status[k] = v.clone();
            }
        }
        // A built-in kind, or a custom one with a scale subresource.
        let scalable = registry::by_kind(av, kind)
            .or_else(|| self.objects.custom_kinds().by_kind(av, kind))
            .filter(|i| i.subresources.contains(&Subresource::Scale));
        let scale = match scalable {
            Some(info) => self
                .objects
                .get_scale(info, ns, name)
                .await
                .ok()
                .map(|s| (info, s)),
            None => None,
        };
        let Some((info, scale)) = scale else {
            let msg = format!(
                "the HPA controller was unable to get the target's current scale: {kind}/{name}"
            );
            status["conditions"] = json!([condition("AbleToScale", false, "FailedGetScale", &msg)]);
            self.write_status(&hpa, status).await?;
            return Ok(Action::RequeueAfter(SYNC));
        };
        let current = scale
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(0) as u32;
        status["currentReplicas"] = json!(current);
        status["desiredReplicas"] = json!(current);
        let able = condition(
            "AbleToScale",
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        );
        if current == 0 {
            let off = condition(
                "ScalingActive",
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            );
            status["conditions"] = json!([able, off]);
            self.write_status(&hpa, status).await?;
            return Ok(Action::RequeueAfter(SYNC));
        }
        let sel = scale
            .pointer("/status/selector")
            .and_then(Value::as_str)
            .and_then(|s| LabelSelector::parse(s).ok());
        let pods: Vec<Value> = self
            .pods
            .list(ns)
            .into_iter()
            .filter(|p| sel.as_ref().is_some_and(|s| !s.is_empty() && s.matches(p)))
            .filter(|p| is_active(p) && is_ready(p))
            .collect();
        let samples = self.samples(&pods).await;
        let now = Instant::now();
        // Per pod: (cpu rate in milli-cores if known, memory bytes).
        let mut measured: BTreeMap<String, (Option<f64>, Option<f64>)> = BTreeMap::new();
        {
            let mut st = self.state.lock().unwrap();
            for p in &pods {
                let pod_key = (
                    ns.unwrap_or("default").to_string(),
                    crate::api::meta::name(p).to_string(),
                );
                let Some(s) = samples.get(&pod_key) else {
                    continue;
                };
                let rate = st.rates.observe(owners::uid(p), s.cpu_seconds, now);
                measured.insert(
                    owners::uid(p).to_string(),
                    (rate.map(|r| r * 1000.0), Some(s.memory_bytes)),
                );
            }
        }
        let metrics = hpa
            .pointer("/spec/metrics")
            .and_then(Value::as_array)
            .cloned()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| {
                vec![json!({"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}})]
            });
        let mut readings = Vec::new();
        let mut failure = None;
        for m in &metrics {
            if m.get("type").and_then(Value::as_str) != Some("Resource") {
                failure = Some(format!("metric type {} is not supported", m["type"]));
                continue;
            }
            let cpu = m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu");
            let usable: Vec<(&Value, f64)> = pods
                .iter()
                .filter_map(|p| {
                    let (c, mem) = measured.get(owners::uid(p))?;
                    Some((p, if cpu { (*c)? } else { (*mem)? }))
                })
                .collect();
            match read_metric(m, current, &usable) {
                Ok(r) => readings.push(r),
                Err(e) => failure = Some(e),
            }
        }
        let (min, max) = (
            hpa.pointer("/spec/minReplicas")
                .and_then(Value::as_u64)
                .unwrap_or(1) as u32,
            hpa.pointer("/spec/maxReplicas")
                .and_then(Value::as_u64)
                .unwrap_or(1) as u32,
        );
        if readings.is_empty() {
            let msg = failure.unwrap_or_else(|| "no metrics".into());
            let inactive = condition("ScalingActive", false, "FailedGetResourceMetric", &msg);
            status["conditions"] = json!([able, inactive]);
            self.write_status(&hpa, status).await?;
            let first = measured.values().any(|(c, _)| c.is_none());
            return Ok(Action::RequeueAfter(if first { FIRST_RATE } else { SYNC }));
        }
        let wanted = readings.iter().map(|r| r.replicas).max().unwrap_or(current);
        let (desired, limit) = {
            let mut st = self.state.lock().unwrap();
            st.rates.expire(now);
            let behavior = Behavior::from_spec(hpa.pointer("/spec/behavior"));
            let memory = st.memory.entry(key.to_string()).or_default();
            normalize(current, wanted, (min, max), &behavior, memory, now)
        };
        if desired != current {
            let patch = json!({"spec": {"replicas": desired}});
            self.objects
                .update_scale(
                    info,
                    ns,
                    name,
                    ScaleChange::Patch(PatchType::Merge, &patch),
                    WriteOptions::default(),
                )
                .await?;
            let mut st = self.state.lock().unwrap();
            if let Some(memory) = st.memory.get_mut(key) {
                memory.scaled(current, desired, now);
            }
            drop(st);
            status["lastScaleTime"] = json!(crate::api::meta::now());
            let top = readings
                .iter()
                .max_by_key(|r| r.replicas)
                .map(|r| &r.status);
            let reason = rescale_reason(current, desired, (min, max), top);
            log::info!(
                "autoscaler {key}: {kind}/{name} {current} -> {desired} replicas ({reason})"
            );
            let message = format!("New size: {desired}; reason: {reason}");
            self.events
                .normal(Involved::of(&hpa), "SuccessfulRescale", message);
        }
        status["desiredReplicas"] = json!(desired);
        status["currentMetrics"] = json!(readings
            .iter()
            .map(|r| r.status.clone())
            .collect::<Vec<_>>());
        let limited = match limit {
            Limit::Within => condition(
                "ScalingLimited",
                false,
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            ),
            Limit::TooMany => condition(
                "ScalingLimited",
                true,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            ),
            Limit::TooFew => condition(
                "ScalingLimited",
                true,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            ),
            Limit::ScaleUpLimit => condition(
                "ScalingLimited",
                true,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            ),
            Limit::ScaleDownLimit => condition(
                "ScalingLimited",
                true,
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate",
            ),
        };
        let active = condition(
            "ScalingActive",
            true,
            "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count from the metrics",
        );
        status["conditions"] = json!([able, active, limited]);
        self.write_status(&hpa, status).await?;
        Ok(Action::RequeueAfter(SYNC))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_reasons_are_kubernetes_words() {
        let cpu = json!({"type": "Resource",
            "resource": {"name": "cpu", "current": {"averageUtilization": 150}}});
        let memory = json!({"type": "Resource",
            "resource": {"name": "memory", "current": {"averageValue": "300Mi"}}});
        assert_eq!(
            rescale_reason(2, 4, (1, 10), Some(&cpu)),
            "cpu resource utilization (percentage of request) above target"
        );
        assert_eq!(
            rescale_reason(2, 3, (1, 10), Some(&memory)),
            "memory resource above target"
        );
        assert_eq!(
            rescale_reason(4, 2, (1, 10), Some(&cpu)),
            "All metrics below target"
        );
        assert_eq!(
            rescale_reason(1, 2, (2, 10), Some(&cpu)),
            "Current number of replicas below Spec.MinReplicas"
        );
        assert_eq!(
            rescale_reason(12, 10, (2, 10), Some(&cpu)),
            "Current number of replicas above Spec.MaxReplicas"
        );
    }
}
