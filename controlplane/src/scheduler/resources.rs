//! What a pod consumes on a node: CPU/memory requests (kube-scheduler's aggregation rules)
//! and host ports.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::quantity::{Quantity, QuantityError};

/// Default CPU a container without a CPU request counts as when *scoring* (not fitting).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Default memory a container without a memory request counts as when scoring (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 << 20;

/// CPU (millicores) and memory (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
}

impl Resources {
    pub fn add(&mut self, o: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(o.milli_cpu);
        self.memory = self.memory.saturating_add(o.memory);
    }

    pub fn sub(&mut self, o: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(o.milli_cpu);
        self.memory = self.memory.saturating_sub(o.memory);
    }

    fn max(&mut self, o: Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
    }

    /// `cpu`/`memory` (and `pods`) of a resource list such as `status.allocatable`.
    pub fn from_list(
        list: &BTreeMap<String, K8sQuantity>,
    ) -> Result<(Self, Option<i64>), QuantityError> {
        let get = |k: &str| list.get(k).map(|q| Quantity::parse(&q.0)).transpose();
        Ok((
            Self {
                milli_cpu: get("cpu")?.map_or(0, |q| q.milli_value()),
                memory: get("memory")?.map_or(0, |q| q.value()),
            },
            get("pods")?.map(|q| q.value()),
        ))
    }
}

/// A pod's requests: what fits are checked with, and the non-zero variant scores use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodRequests {
    pub requests: Resources,
    /// As `requests`, but a container that sets no CPU (memory) request counts as
    /// [`DEFAULT_MILLI_CPU_REQUEST`] ([`DEFAULT_MEMORY_REQUEST`]).
    pub non_zero: Resources,
}

/// One container's request pair; a missing request falls back to the limit (the API server's
/// defaulting), and for `non_zero` to the scoring defaults.
fn container_requests(c: &Container) -> Result<PodRequests, QuantityError> {
    let res = c.resources.as_ref();
    let lookup = |name: &str| -> Result<Option<Quantity>, QuantityError> {
        let q = res
            .and_then(|r| r.requests.as_ref().and_then(|m| m.get(name)))
            .or_else(|| res.and_then(|r| r.limits.as_ref().and_then(|m| m.get(name))));
        q.map(|q| Quantity::parse(&q.0)).transpose()
    };
    let cpu = lookup("cpu")?.map(|q| q.milli_value());
    let mem = lookup("memory")?.map(|q| q.value());
    Ok(PodRequests {
        requests: Resources {
            milli_cpu: cpu.unwrap_or(0),
            memory: mem.unwrap_or(0),
        },
        non_zero: Resources {
            milli_cpu: cpu.unwrap_or(DEFAULT_MILLI_CPU_REQUEST),
            memory: mem.unwrap_or(DEFAULT_MEMORY_REQUEST),
        },
    })
}

/// Effective pod requests: `max(sum(app containers) + sum(sidecars), max(init containers
/// with the sidecars started before them)) + overhead`, as kube-scheduler aggregates them.
pub fn pod_requests(spec: &PodSpec) -> Result<PodRequests, QuantityError> {
    let mut total = PodRequests::default();
    for c in &spec.containers {
        let r = container_requests(c)?;
        total.requests.add(r.requests);
        total.non_zero.add(r.non_zero);
    }
    let mut sidecars = PodRequests::default();
    let mut init_max = PodRequests::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c)?;
        let step = if c.restart_policy.as_deref() == Some("Always") {
            // A sidecar keeps running: it adds to the pod's total and to every later init step.
            total.requests.add(r.requests);
            total.non_zero.add(r.non_zero);
            sidecars.requests.add(r.requests);
            sidecars.non_zero.add(r.non_zero);
            sidecars
        } else {
            let mut step = r;
            step.requests.add(sidecars.requests);
            step.non_zero.add(sidecars.non_zero);
            step
        };
        init_max.requests.max(step.requests);
        init_max.non_zero.max(step.non_zero);
    }
    total.requests.max(init_max.requests);
    total.non_zero.max(init_max.non_zero);
    if let Some(overhead) = &spec.overhead {
        let (o, _) = Resources::from_list(overhead)?;
        total.requests.add(o);
        total.non_zero.add(o);
    }
    Ok(total)
}

/// Transport protocol of a host port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

/// One `hostPort` a pod binds on its node. `ip == None` is the wildcard (all addresses).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: Option<String>,
    pub protocol: Protocol,
    pub port: i32,
}

impl HostPort {
    /// Two bindings conflict on the same protocol and port when either is the wildcard or
    /// both name the same address.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip.is_none() || other.ip.is_none() || self.ip == other.ip)
    }
}

/// Host ports of every container (init containers included) with `hostPort > 0`.
pub fn host_ports(spec: &PodSpec) -> Vec<HostPort> {
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut out = Vec::new();
    for p in containers.flat_map(|c| c.ports.iter().flatten()) {
        let Some(port) = p.host_port.filter(|&hp| hp > 0) else {
            continue;
        };
        let protocol = match p.protocol.as_deref() {
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            _ => Protocol::Tcp,
        };
        let ip = p
            .host_ip
            .as_deref()
            .filter(|ip| !matches!(*ip, "" | "0.0.0.0" | "::"))
            .map(str::to_string);
        let hp = HostPort { ip, protocol, port };
        if !out.contains(&hp) {
            out.push(hp);
        }
    }
    out
}
