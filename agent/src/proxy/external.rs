//! External frontends of a Service port: NodePorts and externalIPs.
//!
//! These live in scope [`SCOPE_EXTERNAL`] of the services map and are
//! matched only by the NodePort program on the node's external interface
//! (`skiff_xdp_nodeport` / `skiff_tc_nodeport`); pods keep using the
//! ClusterIP (scope internal).
//!
//! - NodePort and LoadBalancer Services: one frontend `nodeIP:nodePort` per
//!   address of this node (keyed by the exact address, so the reverse-NAT
//!   entry of each frontend names the address the client used), flagged
//!   [`SVC_F_NODEPORT`];
//! - `spec.externalIPs` (IPv4): `externalIP:port`, flagged
//!   [`SVC_F_EXTERNAL_IP`];
//! - `externalTrafficPolicy: Local` → [`SVC_F_LOCAL_ONLY`] and only this
//!   node's endpoints (none: the frontend has no backend and drops);
//! - `sessionAffinity: ClientIP` → [`SVC_F_AFFINITY`] with
//!   `sessionAffinityConfig.clientIP.timeoutSeconds` (default 10800).

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::ServiceSpec;
use skiff_common::{
    SCOPE_EXTERNAL, SVC_F_AFFINITY, SVC_F_EXTERNAL_IP, SVC_F_LOCAL_ONLY, SVC_F_NODEPORT,
};

use super::{DesiredFrontend, DesiredState, FrontendKey, L4Addr, Proto};

/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds`.
pub const DEFAULT_AFFINITY_TIMEOUT_S: u32 = 10_800;

/// One Service port, as the ClusterIP translation resolved it.
#[derive(Clone, Copy, Debug)]
pub struct ExternalPort<'a> {
    /// `namespace/name:port`, for logs.
    pub service: &'a str,
    pub proto: Proto,
    /// The Service port (externalIPs answer on it).
    pub port: u16,
    pub node_port: Option<i32>,
    /// Endpoints taking new flows, in slot order: the ready ones, or the
    /// serving terminating ones when none is ready.
    pub active: &'a [L4Addr],
    /// The same choice among this node's endpoints.
    pub local: &'a [L4Addr],
}

/// `SVC_F_AFFINITY` and its timeout, if the Service asks for it.
pub fn affinity(spec: &ServiceSpec) -> Option<u32> {
    if spec.session_affinity.as_deref() != Some("ClientIP") {
        return None;
    }
    let timeout = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
        .and_then(|t| u32::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_S);
    Some(timeout)
}

/// Adds the external frontends of one Service port to `state`.
pub fn add(
    state: &mut DesiredState,
    spec: &ServiceSpec,
    p: &ExternalPort<'_>,
    node_ips: &[Ipv4Addr],
) {
    let local_only = spec.external_traffic_policy.as_deref() == Some("Local");
    let (aff_flag, aff_timeout) = match affinity(spec) {
        Some(t) => (SVC_F_AFFINITY, t),
        None => (0, 0),
    };
    let common = aff_flag | if local_only { SVC_F_LOCAL_ONLY } else { 0 };
    let backends = if local_only { p.local } else { p.active };
    let mut insert = |addr: Ipv4Addr, port: u16, kind: u32, what: &str| {
        let key = FrontendKey {
            l4: L4Addr::new(addr, port, p.proto),
            scope: SCOPE_EXTERNAL,
        };
        if state.frontends.contains_key(&key) {
            log::warn!(
                "service {}: duplicate {what} frontend {}",
                p.service,
                key.l4
            );
            return;
        }
        let fe = DesiredFrontend {
            service: format!("{} ({what} {addr}:{port})", p.service),
            backends: backends.to_vec(),
            flags: common | kind,
            affinity_timeout_s: aff_timeout,
        };
        state.frontends.insert(key, fe);
    };
    let is_nodeport = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    if let Some(np) = p
        .node_port
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n != 0)
    {
        if is_nodeport {
            for &ip in node_ips {
                insert(ip, np, SVC_F_NODEPORT, "nodePort");
            }
        }
    }
    for ip in spec.external_ips.iter().flatten() {
        match ip.trim().parse::<Ipv4Addr>() {
            Ok(addr) if !addr.is_unspecified() => {
                insert(addr, p.port, SVC_F_EXTERNAL_IP, "externalIP")
            }
            _ => log::debug!("service {}: externalIP {ip:?} not IPv4, skipped", p.service),
        }
    }
}
