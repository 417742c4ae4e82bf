//! The desired EndpointSlices and Endpoints of one Service, from the pods it selects (a
//! pure function, so it is unit-tested without a store).

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// A resolved port of one pod: (service port name, port, protocol).
type PortSet = Vec<(String, i32, String)>;

/// `true` if `pod`'s labels match the service's selector (an empty selector matches none).
pub fn selects(svc: &Service, pod: &Pod) -> bool {
    let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

pub fn has_selector(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty())
}

/// The ports of the service resolved against `pod` (named target ports through the pod's
/// container ports; a name the pod does not define leaves that port out).
fn resolve_ports(svc: &Service, pod: &Pod) -> PortSet {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[]);
    let ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref());
    ports
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let port = match &p.target_port {
                None => p.port,
                Some(IntOrString::Int(n)) => *n,
                Some(IntOrString::String(name)) => {
                    containers
                        .iter()
                        .flat_map(|c| c.ports.iter().flatten())
                        .find(|cp| {
                            cp.name.as_deref() == Some(name.as_str())
                                && cp.protocol.as_deref().unwrap_or("TCP") == proto
                        })?
                        .container_port
                }
            };
            Some((p.name.clone().unwrap_or_default(), port, proto))
        })
        .collect()
}

fn slice_name(svc: &str, ports: &PortSet) -> String {
    let mut h = DefaultHasher::new();
    ports.hash(&mut h);
    let base: String = svc.chars().take(40).collect();
    format!("{base}-{:08x}", h.finish() as u32)
}

fn owner(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// What the endpoints controller writes for one Service.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub slices: Vec<EndpointSlice>,
    pub endpoints: k8s_openapi::api::core::v1::Endpoints,
}

/// The endpoint's DNS hostname: the pod's `spec.hostname` when its `spec.subdomain` names
/// this Service (how a StatefulSet's pods get `<pod>.<service>` names).
fn dns_hostname(svc: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let same_ns = pod.metadata.namespace == svc.metadata.namespace;
    let named = spec.subdomain.is_some() && spec.subdomain == svc.metadata.name;
    spec.hostname
        .clone()
        .filter(|h| same_ns && named && !h.is_empty())
}

/// The desired objects of `svc` given the pods of its namespace.
pub fn desired<'a>(svc: &Service, pods: impl IntoIterator<Item = &'a Pod>) -> Desired {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let ns = svc.metadata.namespace.clone();
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut groups: BTreeMap<PortSet, Vec<&Pod>> = BTreeMap::new();
    for pod in pods.into_iter().filter(|p| selects(svc, p)) {
        let status = pod.status.as_ref();
        let has_ip = status
            .and_then(|s| s.pod_ip.as_ref())
            .is_some_and(|ip| !ip.is_empty());
        let terminal = matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if has_ip && !terminal {
            groups.entry(resolve_ports(svc, pod)).or_default().push(pod);
        }
    }
    let mut slices = Vec::new();
    let mut subsets = Vec::new();
    for (ports, mut pods) in groups {
        pods.sort_by_key(|p| p.metadata.name.clone());
        let mut endpoints = Vec::new();
        let (mut ready_addrs, mut not_ready_addrs) = (Vec::new(), Vec::new());
        for pod in pods {
            let ip = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default();
            let terminating = pod.metadata.deletion_timestamp.is_some();
            let serving = crate::pod_status::is_ready(pod) || publish;
            let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
            let hostname = dns_hostname(svc, pod);
            let target = ObjectReference {
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            };
            endpoints.push(Endpoint {
                addresses: vec![ip.clone()],
                conditions: Some(EndpointConditions {
                    ready: Some(serving && (!terminating || publish)),
                    serving: Some(serving),
                    terminating: Some(terminating),
                }),
                node_name: node_name.clone(),
                hostname: hostname.clone(),
                target_ref: Some(target.clone()),
                ..Default::default()
            });
            let addr = EndpointAddress {
                ip,
                hostname,
                node_name,
                target_ref: Some(target),
            };
            if serving && (!terminating || publish) {
                ready_addrs.push(addr);
            } else if !terminating {
                not_ready_addrs.push(addr);
            }
        }
        slices.push(EndpointSlice {
            metadata: ObjectMeta {
                name: Some(slice_name(&name, &ports)),
                namespace: ns.clone(),
                labels: Some(BTreeMap::from([
                    (SERVICE_NAME_LABEL.to_string(), name.clone()),
                    (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
                ])),
                owner_references: Some(vec![owner(svc)]),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints,
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p, proto)| SlicePort {
                        name: Some(n.clone()),
                        port: Some(*p),
                        protocol: Some(proto.clone()),
                        ..Default::default()
                    })
                    .collect(),
            ),
        });
        if !ready_addrs.is_empty() || !not_ready_addrs.is_empty() {
            subsets.push(EndpointSubset {
                addresses: (!ready_addrs.is_empty()).then_some(ready_addrs),
                not_ready_addresses: (!not_ready_addrs.is_empty()).then_some(not_ready_addrs),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p, proto)| EndpointPort {
                            name: (!n.is_empty()).then(|| n.clone()),
                            port: *p,
                            protocol: Some(proto.clone()),
                            ..Default::default()
                        })
                        .collect(),
                ),
            });
        }
    }
    if slices.is_empty() {
        // An empty slice tells consumers "no endpoints" (Kubernetes' placeholder).
        let empty = desired_empty(svc, &name, ns.clone(), &Vec::new());
        slices.push(empty);
    }
    let endpoints = k8s_openapi::api::core::v1::Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: ns,
            labels: Some(BTreeMap::from([(
                SERVICE_NAME_LABEL.to_string(),
                name.clone(),
            )])),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    };
    Desired { slices, endpoints }
}

fn desired_empty(svc: &Service, name: &str, ns: Option<String>, ports: &PortSet) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(slice_name(name, ports)),
            namespace: ns,
            labels: Some(BTreeMap::from([
                (SERVICE_NAME_LABEL.to_string(), name.to_string()),
                (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
            ])),
            owner_references: Some(vec![owner(svc)]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: Vec::new(),
        ports: None,
    }
}
