//! Pod status writes from agents: the status replaces the stored one (conditions the agent
//! does not own, such as `PodScheduled`, are kept), after checks of the fields an agent
//! sets, reported as a Kubernetes `Invalid` error naming each field path.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, PodStatus};

use super::node::retry_conflicts;
use crate::api::registry;
use crate::api::{ApiClient, ApiError, FieldError};

const PHASES: &[&str] = &["Pending", "Running", "Succeeded", "Failed", "Unknown"];
const CONDITION_STATUSES: &[&str] = &["True", "False", "Unknown"];

fn ip(errs: &mut Vec<FieldError>, field: String, value: &str) {
    if value.parse::<IpAddr>().is_err() {
        errs.push(FieldError::invalid(
            field,
            value,
            "must be a valid IP address",
        ));
    }
}

/// Problems with `status` for `pod` (whose spec names the containers).
pub fn validate(pod: &Pod, status: &PodStatus) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(p) = status.phase.as_deref() {
        if !PHASES.contains(&p) {
            errs.push(FieldError::not_supported("status.phase", p, PHASES));
        }
    }
    if let Some(v) = status.pod_ip.as_deref().filter(|v| !v.is_empty()) {
        ip(&mut errs, "status.podIP".into(), v);
    }
    if let Some(v) = status.host_ip.as_deref().filter(|v| !v.is_empty()) {
        ip(&mut errs, "status.hostIP".into(), v);
    }
    for (i, p) in status.pod_ips.iter().flatten().enumerate() {
        ip(&mut errs, format!("status.podIPs[{i}].ip"), &p.ip);
    }
    if let (Some(first), Some(single)) = (
        status.pod_ips.as_ref().and_then(|v| v.first()),
        status.pod_ip.as_deref(),
    ) {
        if first.ip != single {
            errs.push(FieldError::invalid(
                "status.podIPs[0].ip",
                &first.ip,
                "must match status.podIP",
            ));
        }
    }
    for (i, c) in status.conditions.iter().flatten().enumerate() {
        if c.type_.is_empty() {
            errs.push(FieldError::required(format!("status.conditions[{i}].type")));
        }
        if !CONDITION_STATUSES.contains(&c.status.as_str()) {
            errs.push(FieldError::not_supported(
                format!("status.conditions[{i}].status"),
                &c.status,
                CONDITION_STATUSES,
            ));
        }
    }
    let spec = pod.spec.as_ref();
    let names = |init: bool| -> Vec<&str> {
        let list = spec.map(|s| {
            if init {
                s.init_containers.as_ref()
            } else {
                Some(&s.containers)
            }
        });
        list.flatten()
            .into_iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect()
    };
    for (list, init) in [
        ("containerStatuses", false),
        ("initContainerStatuses", true),
    ] {
        let statuses = if init {
            &status.init_container_statuses
        } else {
            &status.container_statuses
        };
        let known = names(init);
        for (i, c) in statuses.iter().flatten().enumerate() {
            if !known.contains(&c.name.as_str()) {
                errs.push(FieldError::not_supported(
                    format!("status.{list}[{i}].name"),
                    &c.name,
                    &known,
                ));
            }
        }
    }
    errs
}

/// Replace the status of pod `ns/name`; `rv` (if any) must be the pod's resourceVersion.
pub async fn update(
    client: &ApiClient,
    ns: &str,
    name: &str,
    status: PodStatus,
    rv: Option<String>,
) -> Result<Pod, ApiError> {
    let op = || async {
        let mut pod: Pod = client.get(Some(ns), name).await?;
        let errs = validate(&pod, &status);
        if !errs.is_empty() {
            let info = registry::by_kind("v1", "Pod").expect("pods are served");
            return Err(ApiError::invalid(info, name, &errs));
        }
        let mut new = status.clone();
        let kept: Vec<_> = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|c| !new.conditions.iter().flatten().any(|n| n.type_ == c.type_))
            .collect();
        if !kept.is_empty() {
            let mut conds = kept;
            conds.extend(new.conditions.take().unwrap_or_default());
            new.conditions = Some(conds);
        }
        pod.status = Some(new);
        if rv.is_some() {
            pod.metadata.resource_version = rv.clone();
        }
        client.update_status(&pod).await
    };
    if rv.is_some() {
        op().await
    } else {
        retry_conflicts(op).await
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, ContainerStatus, PodIP, PodSpec};

    use super::*;

    fn pod() -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_status_passes() {
        let s = PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some("10.244.0.5".into()),
            pod_ips: Some(vec![PodIP {
                ip: "10.244.0.5".into(),
            }]),
            container_statuses: Some(vec![ContainerStatus {
                name: "app".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(validate(&pod(), &s), vec![]);
    }

    #[test]
    fn bad_fields_are_named() {
        let s = PodStatus {
            phase: Some("Sleeping".into()),
            pod_ip: Some("10.244.0.999".into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "other".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let fields: Vec<String> = validate(&pod(), &s).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "status.phase",
                "status.podIP",
                "status.containerStatuses[0].name"
            ]
        );
    }
}
