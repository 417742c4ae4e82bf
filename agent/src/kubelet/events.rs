//! Events about pods, as the kubelet records them (source `kubelet`, the node as host,
//! `involvedObject.fieldPath` `spec.containers{name}` for container events). Sent in the
//! background: a lost event is logged, never fatal.

use chrono::Utc;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};

use crate::cpclient::CpClient;

/// `spec.containers{name}` or `spec.initContainers{name}`.
pub fn field_path(init: bool, name: &str) -> String {
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

/// The Event (pure, for tests).
pub fn build(
    node: &str,
    pod: &Pod,
    field_path: Option<String>,
    warning: bool,
    reason: &str,
    message: String,
) -> Event {
    let now = Utc::now();
    let m = &pod.metadata;
    Event {
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            field_path,
        },
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: Some(node.into()),
        }),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(node.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        action: Some(reason.into()),
        count: Some(1),
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            namespace: m.namespace.clone(),
            generate_name: Some(format!("{}.", m.name.as_deref().unwrap_or("pod"))),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Sends events about this node's pods.
#[derive(Clone, Debug)]
pub struct Recorder {
    client: CpClient,
    node: String,
}

impl Recorder {
    pub fn new(client: CpClient, node: String) -> Self {
        Self { client, node }
    }

    /// Records an event about `pod` (a container's when `container` is `Some((init, name))`).
    pub fn pod(
        &self,
        pod: &Pod,
        container: Option<(bool, &str)>,
        warning: bool,
        reason: &str,
        message: String,
    ) {
        let ev = build(
            &self.node,
            pod,
            container.map(|(init, n)| field_path(init, n)),
            warning,
            reason,
            message,
        );
        log::info!(
            "pod {}/{}: {reason}: {}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default(),
            ev.message.as_deref().unwrap_or_default()
        );
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(e) = client.record_event(&ev).await {
                log::warn!("recording event {:?}: {e}", ev.reason);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_events_point_at_the_container() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("shop".into());
        pod.metadata.uid = Some("u1".into());
        let ev = build(
            "n1",
            &pod,
            Some(field_path(false, "app")),
            false,
            "Started",
            "Started container app".into(),
        );
        assert_eq!(
            ev.involved_object.field_path.as_deref(),
            Some("spec.containers{app}")
        );
        assert_eq!(ev.involved_object.uid.as_deref(), Some("u1"));
        assert_eq!(ev.source.as_ref().unwrap().host.as_deref(), Some("n1"));
        assert_eq!(ev.type_.as_deref(), Some("Normal"));
        assert_eq!(field_path(true, "init"), "spec.initContainers{init}");
    }
}
