//! Builders for Services, EndpointSlices and consistency checks.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{json, Value};

use crate::proxy::{translate, DesiredState, MemMaps, TranslateInput};

/// A Service `ns/name` with ClusterIP `ip` and `ports` as
/// `(name, port, protocol)`.
pub fn service(ns: &str, name: &str, ip: &str, ports: &[(&str, u16, &str)]) -> Service {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p, proto)| json!({"name": n, "port": p, "protocol": proto}))
        .collect();
    from_json(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "ports": ports},
    }))
}

/// Readiness of a test endpoint.
#[derive(Clone, Copy, Debug)]
pub enum Ep {
    Ready,
    /// No conditions at all (nil = ready).
    Unset,
    NotReady,
    /// Terminating and still serving.
    TermServing,
    /// Terminating, not serving.
    TermGone,
    /// Terminating and still ready (`publishNotReadyAddresses`).
    TermReady,
}

/// An EndpointSlice of service `ns/svc` with `ports` as
/// `(name, port, protocol)` and endpoints `(addr, state)`.
pub fn slice(
    ns: &str,
    svc: &str,
    ports: &[(&str, u16, &str)],
    endpoints: &[(&str, Ep)],
) -> EndpointSlice {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p, proto)| json!({"name": n, "port": p, "protocol": proto}))
        .collect();
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(addr, st)| {
            let cond = match st {
                Ep::Ready => json!({"ready": true, "serving": true, "terminating": false}),
                Ep::Unset => json!({}),
                Ep::NotReady => json!({"ready": false, "serving": false}),
                Ep::TermServing => json!({"ready": false, "serving": true, "terminating": true}),
                Ep::TermGone => json!({"ready": false, "serving": false, "terminating": true}),
                Ep::TermReady => json!({"ready": true, "serving": true, "terminating": true}),
            };
            json!({"addresses": [addr], "conditions": cond})
        })
        .collect();
    from_json(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{svc}-abc"), "namespace": ns,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": eps,
    }))
}

pub fn from_json<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

pub fn desired(services: &[Service], slices: &[EndpointSlice]) -> DesiredState {
    translate(TranslateInput {
        services,
        slices,
        ..TranslateInput::default()
    })
}

/// What a packet would see: every frontend's `count` names existing slots,
/// every slot an existing backend, every frontend an existing rev-NAT entry.
pub fn check_packet_view(m: &MemMaps) -> Result<(), String> {
    for (k, v) in &m.services.entries {
        if k.slot != 0 || k.proto == 0 {
            continue;
        }
        if !m.rev_nat.entries.contains_key(&v.rev_nat_id) {
            return Err(format!("{k:?}: rev-nat {} missing", v.rev_nat_id));
        }
        for slot in 1..=v.count {
            let sk = skiff_common::ServiceKey {
                slot: u16::try_from(slot).unwrap(),
                ..*k
            };
            let Some(sv) = m.services.entries.get(&sk) else {
                return Err(format!("{k:?}: count {} but slot {slot} missing", v.count));
            };
            if !m.backends.entries.contains_key(&sv.backend_id) {
                return Err(format!("{sk:?}: backend {} missing", sv.backend_id));
            }
        }
    }
    Ok(())
}
