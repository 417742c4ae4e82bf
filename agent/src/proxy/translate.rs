//! Services and EndpointSlices → [`DesiredState`].
//!
//! Rules (kube-proxy's, for ClusterIPs):
//! - every Service with a ClusterIP (types ClusterIP, NodePort, LoadBalancer)
//!   gets one frontend per TCP/UDP port; headless (`None`), ExternalName and
//!   IPv6-only Services are skipped; SCTP ports are ignored;
//! - the ClusterIP is the first IPv4 entry of `spec.clusterIPs`, falling back
//!   to `spec.clusterIP`;
//! - an EndpointSlice belongs to the Service named by its
//!   `kubernetes.io/service-name` label in the same namespace; only IPv4
//!   slices are used; a Service port is matched to the slice port of the same
//!   name and protocol; each endpoint contributes its first address;
//! - endpoints whose `ready` is not `false` (nil = ready) take new flows
//!   (slots; a terminating endpoint is ready only under
//!   `publishNotReadyAddresses`, and then counts as ready, as in
//!   kube-proxy); terminating endpoints that are still serving keep a
//!   backend entry flagged [`BACKEND_F_TERMINATING`] so their established
//!   flows continue; the rest are left out. When no endpoint is
//!   ready (cluster-wide, or on this node for `externalTrafficPolicy:
//!   Local`), the serving terminating ones take new flows instead (KEP-1669);
//! - `internalTrafficPolicy: Local`: the ClusterIP frontend gets only this
//!   node's endpoints (none there: no backend, the traffic is dropped, as
//!   kube-proxy does).
//!
//! External frontends (scope [`SCOPE_EXTERNAL`], matched by the NodePort
//! program on the node's external interface; see [`super::external`]):
//! NodePort and LoadBalancer Services get `nodeIP:nodePort` for each of
//! this node's addresses, `spec.externalIPs` and LoadBalancer ingress IPs get
//! `ip:port`. Endpoints whose `nodeName` is this node are flagged
//! [`BACKEND_F_LOCAL`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use skiff_common::{BACKEND_F_LOCAL, BACKEND_F_TERMINATING, SCOPE_INTERNAL, SVC_F_AFFINITY};

use super::external::{self, ExternalPort};
use super::{DesiredFrontend, DesiredState, FrontendKey, L4Addr, Proto};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The objects a translation reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct TranslateInput<'a> {
    pub services: &'a [Service],
    pub slices: &'a [EndpointSlice],
    /// This node's name (EndpointSlice `nodeName` of local endpoints).
    pub node_name: &'a str,
    /// This node's addresses NodePorts answer on (none: no NodePort
    /// frontends, externalIPs still get theirs).
    pub node_ips: &'a [Ipv4Addr],
}

/// What an endpoint contributes to a frontend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EndpointUse {
    /// Takes new flows.
    Active,
    /// Keeps existing flows only.
    Terminating,
}

/// One endpoint's use and whether it runs on this node.
type EndpointInfo = (EndpointUse, bool);

/// Endpoints of one Service, by (port name, protocol).
type PortEndpoints = BTreeMap<(String, Proto), BTreeMap<L4Addr, EndpointInfo>>;

/// Builds the desired state of the maps from Services and EndpointSlices.
pub fn translate(input: TranslateInput<'_>) -> DesiredState {
    let endpoints = index_slices(input.slices, input.node_name);
    let mut state = DesiredState::default();
    for svc in input.services {
        let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        let Some(spec) = &svc.spec else { continue };
        let Some(vip) = cluster_ipv4(spec.cluster_ip.as_deref(), spec.cluster_ips.as_deref())
        else {
            log::debug!("service {ns}/{name}: no IPv4 ClusterIP, skipped");
            continue;
        };
        state.services += 1;
        state.vips.insert(vip);
        let empty = PortEndpoints::new();
        let eps = endpoints
            .get(&(ns.to_owned(), name.to_owned()))
            .unwrap_or(&empty);
        for sp in spec.ports.iter().flatten() {
            let Some(proto) = parse_proto(sp.protocol.as_deref()) else {
                log::debug!("service {ns}/{name}: port {} protocol not TCP/UDP", sp.port);
                continue;
            };
            let Ok(port) = u16::try_from(sp.port) else {
                continue;
            };
            let key = FrontendKey {
                l4: L4Addr::new(vip, port, proto),
                scope: SCOPE_INTERNAL,
            };
            if state.frontends.contains_key(&key) {
                log::warn!("service {ns}/{name}: duplicate frontend {}", key.l4);
                continue;
            }
            let port_name = sp.name.clone().unwrap_or_default();
            let mut active = Vec::new();
            let mut local = Vec::new();
            let mut draining = Vec::new();
            let mut draining_local = Vec::new();
            if let Some(list) = eps.get(&(port_name.clone(), proto)) {
                for (&backend, &(usage, is_local)) in list {
                    let (all, here, mut flags) = match usage {
                        EndpointUse::Active => (&mut active, &mut local, 0),
                        EndpointUse::Terminating => {
                            (&mut draining, &mut draining_local, BACKEND_F_TERMINATING)
                        }
                    };
                    all.push(backend);
                    if is_local {
                        here.push(backend);
                        flags |= BACKEND_F_LOCAL;
                    }
                    // A backend active anywhere is not flagged terminating;
                    // local anywhere is local.
                    let entry = state.backends.entry(backend).or_insert(flags);
                    *entry = (*entry & flags & BACKEND_F_TERMINATING)
                        | ((*entry | flags) & BACKEND_F_LOCAL);
                }
            }
            // KEP-1669: with no ready endpoint (in the traffic policy's
            // scope), the serving terminating ones take new flows rather
            // than none.
            if active.is_empty() {
                active = draining;
            }
            if local.is_empty() {
                local = draining_local;
            }
            let service = if port_name.is_empty() {
                format!("{ns}/{name}:{port}")
            } else {
                format!("{ns}/{name}:{port_name}")
            };
            let ext = ExternalPort {
                service: &service,
                proto,
                port,
                node_port: sp.node_port,
                active: &active,
                local: &local,
            };
            external::add(&mut state, spec, &ext, input.node_ips);
            let (flags, affinity_timeout_s) = match external::affinity(spec) {
                Some(t) => (SVC_F_AFFINITY, t),
                None => (0, 0),
            };
            let internal = if spec.internal_traffic_policy.as_deref() == Some("Local") {
                local
            } else {
                active
            };
            let frontend = DesiredFrontend {
                service,
                backends: internal,
                flags,
                affinity_timeout_s,
            };
            state.frontends.insert(key, frontend);
        }
    }
    state
}

/// The first IPv4 ClusterIP, preferring `clusterIPs` (dual-stack order).
fn cluster_ipv4(cluster_ip: Option<&str>, cluster_ips: Option<&[String]>) -> Option<Ipv4Addr> {
    let listed = cluster_ips.unwrap_or_default().iter().map(String::as_str);
    listed
        .chain(cluster_ip)
        .find_map(|ip| ip.trim().parse::<Ipv4Addr>().ok())
        .filter(|ip| !ip.is_unspecified())
}

/// TCP (the default) and UDP; anything else is not load-balanced.
fn parse_proto(protocol: Option<&str>) -> Option<Proto> {
    match protocol.unwrap_or("TCP") {
        "TCP" => Some(Proto::Tcp),
        "UDP" => Some(Proto::Udp),
        _ => None,
    }
}

/// Groups the endpoints of every slice by owning Service and port.
fn index_slices(
    slices: &[EndpointSlice],
    node_name: &str,
) -> BTreeMap<(String, String), PortEndpoints> {
    let mut out: BTreeMap<(String, String), PortEndpoints> = BTreeMap::new();
    for slice in slices {
        let ns = slice.metadata.namespace.as_deref().unwrap_or("default");
        let slice_name = slice.metadata.name.as_deref().unwrap_or_default();
        let labels = slice.metadata.labels.as_ref();
        let Some(svc) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) else {
            log::debug!("endpointslice {ns}/{slice_name}: no {SERVICE_NAME_LABEL} label");
            continue;
        };
        if slice.address_type != "IPv4" {
            log::debug!(
                "endpointslice {ns}/{slice_name}: {} ignored",
                slice.address_type
            );
            continue;
        }
        let per_port = out.entry((ns.to_owned(), svc.clone())).or_default();
        for ep_port in slice.ports.iter().flatten() {
            let Some(proto) = parse_proto(ep_port.protocol.as_deref()) else {
                continue;
            };
            let Some(port) = ep_port.port.and_then(|p| u16::try_from(p).ok()) else {
                continue;
            };
            let name = ep_port.name.clone().unwrap_or_default();
            let list = per_port.entry((name, proto)).or_default();
            for ep in &slice.endpoints {
                let Some((addr, usage)) = endpoint_use(ep) else {
                    continue;
                };
                let backend = L4Addr::new(addr, port, proto);
                let is_local = !node_name.is_empty() && ep.node_name.as_deref() == Some(node_name);
                // Duplicates across slices: active wins.
                let e = list.entry(backend).or_insert((usage, is_local));
                if usage == EndpointUse::Active {
                    e.0 = EndpointUse::Active;
                }
                e.1 |= is_local;
            }
        }
    }
    out
}

/// How an endpoint is used, or `None` when it takes no traffic at all.
fn endpoint_use(ep: &Endpoint) -> Option<(Ipv4Addr, EndpointUse)> {
    let addr = ep.addresses.first()?.trim().parse::<Ipv4Addr>().ok()?;
    let cond = ep.conditions.clone().unwrap_or_default();
    let ready = cond.ready.unwrap_or(true);
    let terminating = cond.terminating.unwrap_or(false);
    let serving = cond.serving.unwrap_or(ready);
    // As kube-proxy: `ready` decides (a terminating endpoint is ready only
    // under `publishNotReadyAddresses`); serving terminating ones drain.
    match (ready, terminating, serving) {
        (true, _, _) => Some((addr, EndpointUse::Active)),
        (false, true, true) => Some((addr, EndpointUse::Terminating)),
        _ => None,
    }
}
