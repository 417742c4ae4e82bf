//! QoS classes and the cgroup resources of pods and containers, derived as
//! Kubernetes does (`ComputePodQOS`, `ResourceConfigForPod`,
//! kuberuntime's container resources). Pure functions over k8s-openapi types.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use skiff_controlplane::scheduler::quantity::Quantity;

use super::convert::{milli_cpu_to_quota, milli_cpu_to_shares, MIN_SHARES, QUOTA_PERIOD_US};

/// A pod's QoS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The name Kubernetes writes in `status.qosClass`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guaranteed => "Guaranteed",
            Self::Burstable => "Burstable",
            Self::BestEffort => "BestEffort",
        }
    }
}

/// Limits to write into one cgroup; `None` means no limit (or the kernel
/// default for shares). The default has Kubernetes' 100 ms CFS period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupResources {
    pub cpu_shares: Option<u64>,
    pub cpu_quota_us: Option<i64>,
    pub cpu_period_us: u64,
    pub memory_limit: Option<i64>,
    pub pids_limit: Option<i64>,
}

impl Default for CgroupResources {
    fn default() -> Self {
        Self {
            cpu_shares: None,
            cpu_quota_us: None,
            cpu_period_us: QUOTA_PERIOD_US,
            memory_limit: None,
            pids_limit: None,
        }
    }
}

const CPU: &str = "cpu";
const MEMORY: &str = "memory";

/// A quantity in the unit a resource is counted in (millicores, bytes);
/// an unparsable quantity (validation rejects those) counts as zero.
fn amount(resource: &str, q: &K8sQuantity) -> i64 {
    Quantity::parse(&q.0).map_or(0, |q| {
        if resource == CPU {
            q.milli_value()
        } else {
            q.value()
        }
    })
}

/// Positive cpu/memory amounts of a list, with requests defaulted from
/// limits as the API server's defaulting does (so undefaulted pods get the
/// class Kubernetes would give them).
fn effective(
    r: Option<&ResourceRequirements>,
) -> (BTreeMap<&'static str, i64>, BTreeMap<&'static str, i64>) {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    let Some(r) = r else {
        return (requests, limits);
    };
    for name in [CPU, MEMORY] {
        let lim = r
            .limits
            .as_ref()
            .and_then(|m| m.get(name))
            .map(|q| amount(name, q));
        let req = r
            .requests
            .as_ref()
            .and_then(|m| m.get(name))
            .map(|q| amount(name, q))
            .or(lim);
        if let Some(v) = req.filter(|v| *v > 0) {
            requests.insert(name, v);
        }
        if let Some(v) = lim.filter(|v| *v > 0) {
            limits.insert(name, v);
        }
    }
    (requests, limits)
}

/// `ComputePodQOS`: over all (init and app) containers, or the pod-level
/// resources when set. BestEffort: no cpu/memory request or limit anywhere.
/// Guaranteed: every container limits both cpu and memory, and the summed
/// requests equal the summed limits. Otherwise Burstable.
pub fn qos_class(pod: &Pod) -> QosClass {
    let spec = pod.spec.as_ref();
    let mut requests: BTreeMap<&str, i64> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i64> = BTreeMap::new();
    let mut guaranteed = true;
    let mut add = |r: Option<&ResourceRequirements>| {
        let (req, lim) = effective(r);
        for (k, v) in req {
            *requests.entry(k).or_default() += v;
        }
        if !(lim.contains_key(CPU) && lim.contains_key(MEMORY)) {
            guaranteed = false;
        }
        for (k, v) in lim {
            *limits.entry(k).or_default() += v;
        }
    };
    match spec.and_then(|s| s.resources.as_ref()) {
        Some(pod_level) => add(Some(pod_level)),
        None => {
            let containers = spec.map(|s| s.containers.iter()).into_iter().flatten();
            let inits = spec
                .and_then(|s| s.init_containers.as_ref())
                .into_iter()
                .flatten();
            for c in containers.chain(inits) {
                add(c.resources.as_ref());
            }
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    let equal =
        requests.len() == limits.len() && requests.iter().all(|(k, v)| limits.get(k) == Some(v));
    if guaranteed && equal {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// The container cgroup's resources (kuberuntime): shares from the cpu
/// request (or limit), quota from the cpu limit, memory limit.
pub fn container_resources(c: &Container) -> CgroupResources {
    let (req, lim) = effective(c.resources.as_ref());
    let cpu_req = req.get(CPU).copied().unwrap_or(0);
    CgroupResources {
        cpu_shares: Some(milli_cpu_to_shares(cpu_req)),
        cpu_quota_us: lim
            .get(CPU)
            .and_then(|m| milli_cpu_to_quota(*m, QUOTA_PERIOD_US)),
        cpu_period_us: QUOTA_PERIOD_US,
        memory_limit: lim.get(MEMORY).copied(),
        pids_limit: None,
    }
}

/// The pod cgroup's resources (`ResourceConfigForPod`): requests summed over
/// app containers (an init container's larger request wins), limits summed
/// only when every container sets one; BestEffort gets minimal shares.
pub fn pod_resources(pod: &Pod) -> CgroupResources {
    let qos = qos_class(pod);
    let mut out = CgroupResources::default();
    if qos == QosClass::BestEffort {
        out.cpu_shares = Some(MIN_SHARES);
        return out;
    }
    let Some(spec) = pod.spec.as_ref() else {
        return out;
    };
    let (mut cpu_req, mut cpu_lim, mut mem_lim) = (0i64, Some(0i64), Some(0i64));
    for c in &spec.containers {
        let (req, lim) = effective(c.resources.as_ref());
        cpu_req += req.get(CPU).copied().unwrap_or(0);
        cpu_lim = cpu_lim.zip(lim.get(CPU).copied()).map(|(a, b)| a + b);
        mem_lim = mem_lim.zip(lim.get(MEMORY).copied()).map(|(a, b)| a + b);
    }
    for c in spec.init_containers.iter().flatten() {
        let (req, lim) = effective(c.resources.as_ref());
        cpu_req = cpu_req.max(req.get(CPU).copied().unwrap_or(0));
        cpu_lim = cpu_lim.zip(lim.get(CPU).copied()).map(|(a, b)| a.max(b));
        mem_lim = mem_lim.zip(lim.get(MEMORY).copied()).map(|(a, b)| a.max(b));
    }
    out.cpu_shares = Some(milli_cpu_to_shares(cpu_req));
    out.cpu_quota_us = cpu_lim.and_then(|m| milli_cpu_to_quota(m, QUOTA_PERIOD_US));
    out.memory_limit = mem_lim.filter(|m| *m > 0);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": containers}}),
        )
        .unwrap()
    }

    fn c(requests: serde_json::Value, limits: serde_json::Value) -> serde_json::Value {
        json!({"name": "c", "resources": {"requests": requests, "limits": limits}})
    }

    #[test]
    fn best_effort_has_no_requests_or_limits() {
        assert_eq!(
            qos_class(&pod(json!([{"name": "a"}]))),
            QosClass::BestEffort
        );
        // Zero quantities and other resources do not count.
        let p = pod(json!([c(
            json!({"cpu": "0", "ephemeral-storage": "1Gi"}),
            json!({})
        )]));
        assert_eq!(qos_class(&p), QosClass::BestEffort);
        assert_eq!(pod_resources(&p).cpu_shares, Some(2));
    }

    #[test]
    fn guaranteed_needs_equal_cpu_and_memory_limits_everywhere() {
        let g = c(
            json!({"cpu": "500m", "memory": "64Mi"}),
            json!({"cpu": "0.5", "memory": "64Mi"}),
        );
        assert_eq!(
            qos_class(&pod(json!([g.clone(), g.clone()]))),
            QosClass::Guaranteed
        );
        // Limits only: requests default to them.
        let limits_only = c(json!({}), json!({"cpu": "1", "memory": "1Gi"}));
        assert_eq!(qos_class(&pod(json!([limits_only]))), QosClass::Guaranteed);
        // A second container without limits makes it Burstable.
        assert_eq!(
            qos_class(&pod(json!([g.clone(), {"name": "b"}]))),
            QosClass::Burstable
        );
        // Request below limit.
        let b = c(
            json!({"cpu": "100m", "memory": "64Mi"}),
            json!({"cpu": "200m", "memory": "64Mi"}),
        );
        assert_eq!(qos_class(&pod(json!([b]))), QosClass::Burstable);
        // Memory limit only.
        assert_eq!(
            qos_class(&pod(json!([c(json!({}), json!({"memory": "1Gi"}))]))),
            QosClass::Burstable
        );
    }

    #[test]
    fn init_containers_count() {
        let g = c(json!({}), json!({"cpu": "1", "memory": "1Gi"}));
        let mut p = pod(json!([g]));
        p.spec.as_mut().unwrap().init_containers = Some(vec![serde_json::from_value(
            json!({"name": "i", "resources": {"requests": {"cpu": "1"}}}),
        )
        .unwrap()]);
        assert_eq!(qos_class(&p), QosClass::Burstable);
    }

    #[test]
    fn container_and_pod_cgroup_resources() {
        let a = c(
            json!({"cpu": "100m"}),
            json!({"cpu": "200m", "memory": "32Mi"}),
        );
        let b = c(json!({"cpu": "300m"}), json!({"memory": "32Mi"}));
        let p = pod(json!([a.clone(), b]));
        let ca: Container = serde_json::from_value(a).unwrap();
        let r = container_resources(&ca);
        assert_eq!(r.cpu_shares, Some(102));
        assert_eq!(r.cpu_quota_us, Some(20_000));
        assert_eq!(r.memory_limit, Some(32 << 20));
        let pr = pod_resources(&p);
        assert_eq!(pr.cpu_shares, Some(409));
        assert_eq!(pr.cpu_quota_us, None, "b has no cpu limit");
        assert_eq!(pr.memory_limit, Some(64 << 20));
        assert_eq!(
            container_resources(&serde_json::from_value(json!({"name": "x"})).unwrap()).cpu_shares,
            Some(2)
        );
    }
}
