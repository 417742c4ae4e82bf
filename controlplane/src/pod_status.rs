//! Reading a typed Pod's status, shared by the endpoints controller and node
//! lifecycle (the workload controllers read untyped objects, `controllers::pods`).

use k8s_openapi::api::core::v1::Pod;

/// The pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}
