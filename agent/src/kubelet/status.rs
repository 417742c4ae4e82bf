//! The pod's status as the kubelet reports it, computed from what the node has (a pure
//! function of the pod, a [`PodView`] and the previously reported status, so condition
//! transition times move only when a condition changes).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A container's state as the node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: DateTime<Utc>,
    },
    Terminated(Terminated),
}

/// How a container instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`, `ContainerCannotRun`.
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    pub container_id: Option<String>,
}

/// One container as the node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub state: CState,
    pub last: Option<Terminated>,
    pub restart_count: u32,
    pub image: String,
    pub image_id: String,
    /// `skiff://<runtime id>` of the current instance.
    pub container_id: Option<String>,
    /// Running and (no readiness probe, or it succeeds).
    pub ready: bool,
}

/// A pod as the node sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodView {
    pub init: Vec<ContainerView>,
    pub containers: Vec<ContainerView>,
    /// Ephemeral containers: reported, not part of the pod's phase or readiness.
    pub ephemeral: Vec<ContainerView>,
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Option<Ipv4Addr>,
    pub start_time: Option<DateTime<Utc>>,
    pub sandbox_ready: bool,
    /// QoS class name (`Guaranteed`, `Burstable`, `BestEffort`).
    pub qos_class: String,
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Kubernetes' `getPhase`.
pub fn phase(pod: &Pod, view: &PodView) -> &'static str {
    let policy = restart_policy(pod);
    let (mut pending_init, mut failed_init) = (0, 0);
    let init_specs = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .map_or(0, Vec::len);
    for i in 0..init_specs {
        match view.init.get(i).map(|c| &c.state) {
            Some(CState::Terminated(t)) if t.exit_code == 0 => {}
            Some(CState::Terminated(_)) => failed_init += 1,
            Some(CState::Waiting { .. })
                if view.init[i].last.as_ref().is_some_and(|t| t.exit_code != 0) =>
            {
                failed_init += 1
            }
            _ => pending_init += 1,
        }
    }
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    if pending_init > 0 || failed_init > 0 {
        return "Pending";
    }
    let (mut running, mut stopped, mut succeeded, mut waiting) = (0, 0, 0, 0);
    for c in &view.containers {
        match &c.state {
            CState::Running { .. } => running += 1,
            CState::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            CState::Waiting { .. } if c.last.is_some() => stopped += 1,
            CState::Waiting { .. } => waiting += 1,
        }
    }
    if view.containers.is_empty() || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    match policy {
        "Always" => "Running",
        _ if stopped == succeeded => "Succeeded",
        "Never" => "Failed",
        _ => "Running",
    }
}

fn condition(
    prev: Option<&PodStatus>,
    now: DateTime<Utc>,
    type_: &str,
    ok: bool,
    reason: Option<String>,
    message: Option<String>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let old = prev
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
    let since = match old {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => None,
    };
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: Some(since.unwrap_or(Time(now))),
        reason: if ok { None } else { reason },
        message: if ok { None } else { message },
        last_probe_time: None,
    }
}

fn terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(Time),
        finished_at: Some(Time(t.finished_at)),
        container_id: t.container_id.clone(),
    }
}

fn container_status(c: &ContainerView) -> ContainerStatus {
    let state = match &c.state {
        CState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        CState::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..Default::default()
        },
        CState::Terminated(t) => ContainerState {
            terminated: Some(terminated(t)),
            ..Default::default()
        },
    };
    ContainerStatus {
        name: c.name.clone(),
        state: Some(state),
        last_state: Some(ContainerState {
            terminated: c.last.as_ref().map(terminated),
            ..Default::default()
        }),
        ready: c.ready,
        started: Some(matches!(c.state, CState::Running { .. })),
        restart_count: c.restart_count as i32,
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id: c.container_id.clone(),
        ..Default::default()
    }
}

fn names_where(cs: &[ContainerView], f: impl Fn(&ContainerView) -> bool) -> Vec<&str> {
    cs.iter()
        .filter(|c| f(c))
        .map(|c| c.name.as_str())
        .collect()
}

/// The status to report.
pub fn compute(
    pod: &Pod,
    view: &PodView,
    prev: Option<&PodStatus>,
    now: DateTime<Utc>,
) -> PodStatus {
    let phase = phase(pod, view);
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let init_done =
        |c: &ContainerView| matches!(&c.state, CState::Terminated(t) if t.exit_code == 0);
    let not_init = names_where(&view.init, |c| !init_done(c));
    let unready = names_where(&view.containers, |c| !c.ready);
    let list = |v: &[&str]| format!("[{}]", v.join(" "));
    let (init_reason, ready_reason) = if terminal {
        ("PodCompleted", "PodCompleted")
    } else {
        ("ContainersNotInitialized", "ContainersNotReady")
    };
    let initialized = not_init.is_empty() || (terminal && phase == "Succeeded");
    let ready = unready.is_empty() && !view.containers.is_empty() && !terminal;
    let ready_msg = format!("containers with unready status: {}", list(&unready));
    let conditions = vec![
        condition(
            prev,
            now,
            "PodReadyToStartContainers",
            view.sandbox_ready,
            None,
            None,
        ),
        condition(
            prev,
            now,
            "Initialized",
            initialized,
            Some(init_reason.into()),
            Some(format!(
                "containers with incomplete status: {}",
                list(&not_init)
            )),
        ),
        condition(
            prev,
            now,
            "Ready",
            ready,
            Some(ready_reason.into()),
            Some(ready_msg.clone()),
        ),
        condition(
            prev,
            now,
            "ContainersReady",
            ready,
            Some(ready_reason.into()),
            Some(ready_msg),
        ),
        condition(prev, now, "PodScheduled", true, None, None),
    ];
    let statuses = |cs: &[ContainerView]| -> Option<Vec<ContainerStatus>> {
        (!cs.is_empty()).then(|| cs.iter().map(container_status).collect())
    };
    let pod_ip = view.pod_ip.map(|ip| ip.to_string());
    let host_ip = view.host_ip.map(|ip| ip.to_string());
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        container_statuses: statuses(&view.containers),
        init_container_statuses: statuses(&view.init),
        ephemeral_container_statuses: statuses(&view.ephemeral),
        pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip,
        host_ips: host_ip.clone().map(|ip| vec![HostIP { ip }]),
        host_ip,
        start_time: view.start_time.map(Time),
        qos_class: Some(view.qos_class.clone()),
        ..Default::default()
    }
}

/// The condition statuses by type (for logs and tests).
pub fn condition_map(s: &PodStatus) -> BTreeMap<String, String> {
    s.conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.status.clone()))
        .collect()
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
