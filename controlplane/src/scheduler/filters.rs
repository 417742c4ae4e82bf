//! Filter plugins: may the pod run on this node at all? Run in table order; the first plugin
//! that fails decides the node's reasons (a plugin may report several, as resources fit does).

use super::node_info::Candidate;
use super::pod_info::PodInfo;
use super::taints::{tolerated, Effect, Taint};

/// Why a node was filtered out: a set of reasons, plus which taint was not tolerated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failure {
    bits: u16,
    /// Index into the node's taints when `bits` has [`Reason::UntoleratedTaint`].
    pub taint: u16,
}

/// Reasons, with kube-scheduler's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Reason {
    NotReady = 1,
    Unschedulable = 1 << 1,
    NodeName = 1 << 2,
    UntoleratedTaint = 1 << 3,
    NodeAffinity = 1 << 4,
    HostPorts = 1 << 5,
    InsufficientCpu = 1 << 6,
    InsufficientMemory = 1 << 7,
    TooManyPods = 1 << 8,
    VolumeNodeAffinity = 1 << 9,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::NotReady,
        Reason::Unschedulable,
        Reason::NodeName,
        Reason::UntoleratedTaint,
        Reason::NodeAffinity,
        Reason::HostPorts,
        Reason::InsufficientCpu,
        Reason::InsufficientMemory,
        Reason::TooManyPods,
        Reason::VolumeNodeAffinity,
    ];

    /// The message fragment (the taint reason is completed with the taint itself).
    pub fn message(self) -> &'static str {
        match self {
            Reason::NotReady => "node(s) were not ready",
            Reason::Unschedulable => "node(s) were unschedulable",
            Reason::NodeName => "node(s) didn't match the requested node name",
            Reason::UntoleratedTaint => "node(s) had untolerated taint",
            Reason::NodeAffinity => "node(s) didn't match Pod's node affinity/selector",
            Reason::HostPorts => "node(s) didn't have free ports for the requested pod ports",
            Reason::InsufficientCpu => "Insufficient cpu",
            Reason::InsufficientMemory => "Insufficient memory",
            Reason::TooManyPods => "Too many pods",
            Reason::VolumeNodeAffinity => "node(s) had volume node affinity conflict",
        }
    }
}

impl Failure {
    pub fn of(reason: Reason) -> Self {
        Self {
            bits: reason as u16,
            taint: 0,
        }
    }

    pub fn has(&self, reason: Reason) -> bool {
        self.bits & reason as u16 != 0
    }

    fn add(&mut self, reason: Reason) {
        self.bits |= reason as u16;
    }

    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    pub fn reasons(self) -> impl Iterator<Item = Reason> {
        Reason::ALL.into_iter().filter(move |r| self.has(*r))
    }
}

pub type FilterFn = fn(&PodInfo, Candidate<'_>) -> Result<(), Failure>;

pub struct FilterPlugin {
    pub name: &'static str,
    pub run: FilterFn,
}

/// The filters, in kube-scheduler's order.
pub const FILTERS: &[FilterPlugin] = &[
    FilterPlugin {
        name: "NodeReady",
        run: node_ready,
    },
    FilterPlugin {
        name: "NodeUnschedulable",
        run: node_unschedulable,
    },
    FilterPlugin {
        name: "NodeName",
        run: node_name,
    },
    FilterPlugin {
        name: "TaintToleration",
        run: taint_toleration,
    },
    FilterPlugin {
        name: "NodeAffinity",
        run: node_affinity,
    },
    FilterPlugin {
        name: "NodePorts",
        run: node_ports,
    },
    FilterPlugin {
        name: "NodeResourcesFit",
        run: resources_fit,
    },
    FilterPlugin {
        name: "VolumeBinding",
        run: volume_binding,
    },
];

/// Run every filter; `Err` carries the first failing plugin's reasons.
pub fn run_filters(pod: &PodInfo, c: Candidate<'_>) -> Result<(), Failure> {
    FILTERS.iter().try_for_each(|f| (f.run)(pod, c))
}

const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Whether the pod tolerates the `NoSchedule` taint Kubernetes puts on such nodes.
fn tolerates_no_schedule(pod: &PodInfo, key: &str) -> bool {
    let taint = Taint {
        key: key.to_string(),
        value: String::new(),
        effect: Effect::NoSchedule,
    };
    tolerated(&pod.tolerations, &taint)
}

/// The node's `Ready` condition is `True` (or the pod tolerates the not-ready taint).
pub fn node_ready(pod: &PodInfo, c: Candidate<'_>) -> Result<(), Failure> {
    if c.node.ready || tolerates_no_schedule(pod, NOT_READY_TAINT) {
        Ok(())
    } else {
        Err(Failure::of(Reason::NotReady))
    }
}

/// The node is not cordoned (or the pod tolerates the unschedulable taint).
pub fn node_unschedulable(pod: &PodInfo, c: Candidate<'_>) -> Result<(), Failure> {
    if !c.node.unschedulable || tolerates_no_schedule(pod, UNSCHEDULABLE_TAINT) {
        Ok(())
    } else {
        Err(Failure::of(Reason::Unschedulable))
    }
}

/// A pod that names a node fits only there.
pub fn node_name(pod: &PodInfo, c: Candidate<'_>) -> Result<(), Failure> {
    match &pod.node_name {
        Some(n) if **n != *c.node.name => Err(Failure::of(Reason::NodeName)),
        _ => Ok(()),
    }
}

/// Every `NoSchedule`/`NoExecute` taint is tolerated; the first one that is not is reported.
pub fn taint_toleration(pod: &PodInfo, c: Candidate<'_>) -> Result<(), Failure> {
    let blocking = c.node.taints.iter().position(|t| {
        matches!(t.effect, Effect::NoSchedule | Effect::NoExecute)
            && !tolerated(&pod.tolerations, t)
    });
    match blocking {
        None => Ok(()),
        Some(i) => Err(Failure {
            bits: Reason::UntoleratedTaint as u16,
            taint: i as u16,
        }),
    }
}

/// `nodeSelector` labels all match, and any required node-affinity term matches.
pub fn node_affinity(pod: &PodInfo, c: Candidate<'_>) -> Result<(), Failure> {
    let labels = &c.node.labels;
    let selector_ok = pod
        .node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v.as_str()));
    let required_ok = pod
        .required
        .as_ref()
        .is_none_or(|terms| terms.iter().any(|t| t.matches(labels, &c.node.name)));
    if selector_ok && required_ok {
        Ok(())
    } else {
        Err(Failure::of(Reason::NodeAffinity))
    }
}

/// Every volume of the pod is reachable from the node (its node affinity matches).
pub fn volume_binding(pod: &PodInfo, c: Candidate<'_>) -> Result<(), Failure> {
    let reachable = pod.volume_terms.iter().all(|terms| {
        terms
            .iter()
            .any(|t| t.matches(&c.node.labels, &c.node.name))
    });
    if reachable {
        Ok(())
    } else {
        Err(Failure::of(Reason::VolumeNodeAffinity))
    }
}

/// No requested host port conflicts with one already used on the node.
pub fn node_ports(pod: &PodInfo, c: Candidate<'_>) -> Result<(), Failure> {
    let conflict = pod
        .host_ports
        .iter()
        .any(|want| c.usage.ports.iter().any(|(used, _)| want.conflicts(used)));
    if conflict {
        Err(Failure::of(Reason::HostPorts))
    } else {
        Ok(())
    }
}

/// CPU, memory and pod count all fit; reports every resource that does not.
pub fn resources_fit(pod: &PodInfo, c: Candidate<'_>) -> Result<(), Failure> {
    let mut f = Failure::default();
    if !fits_pod_count(c) {
        f.add(Reason::TooManyPods);
    }
    let (cpu, mem) = fits_requests(pod, c);
    if !cpu {
        f.add(Reason::InsufficientCpu);
    }
    if !mem {
        f.add(Reason::InsufficientMemory);
    }
    if f.is_empty() {
        Ok(())
    } else {
        Err(f)
    }
}

/// One more pod stays within `allocatable.pods`.
pub fn fits_pod_count(c: Candidate<'_>) -> bool {
    c.usage.pods < c.node.allowed_pods
}

/// `(cpu fits, memory fits)`: a zero request always fits.
pub fn fits_requests(pod: &PodInfo, c: Candidate<'_>) -> (bool, bool) {
    let free = |alloc: i64, used: i64| alloc.saturating_sub(used);
    let req = pod.requests;
    (
        req.milli_cpu <= 0
            || req.milli_cpu <= free(c.node.allocatable.milli_cpu, c.usage.requested.milli_cpu),
        req.memory <= 0 || req.memory <= free(c.node.allocatable.memory, c.usage.requested.memory),
    )
}
