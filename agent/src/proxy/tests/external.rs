//! NodePort / externalIP translation.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use skiff_common::{
    BACKEND_F_LOCAL, SCOPE_EXTERNAL, SCOPE_INTERNAL, SVC_F_AFFINITY, SVC_F_EXTERNAL_IP,
    SVC_F_LOCAL_ONLY, SVC_F_NODEPORT,
};

use super::fixtures::from_json;
use crate::proxy::diff::CurrentState;
use crate::proxy::{translate, FrontendKey, L4Addr, MemMaps, Proto, Proxy, TranslateInput};

const N1: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const N1B: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 10);

fn svc(extra: serde_json::Value) -> Service {
    let mut spec = json!({
        "clusterIP": "10.96.0.20",
        "type": "NodePort",
        "ports": [
            {"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"},
            {"name": "dns", "port": 53, "nodePort": 30053, "protocol": "UDP"},
        ],
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    from_json(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": spec,
    }))
}

/// Endpoints 10.244.0.2 (node n1) and 10.244.1.2 (node n2), both ports.
fn slice() -> EndpointSlice {
    let ep = |ip: &str, node: &str| json!({"addresses": [ip], "nodeName": node, "conditions": {"ready": true}});
    from_json(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                  {"name": "dns", "port": 5353, "protocol": "UDP"}],
        "endpoints": [ep("10.244.0.2", "n1"), ep("10.244.1.2", "n2")],
    }))
}

fn run(svc: Service) -> crate::proxy::DesiredState {
    translate(TranslateInput {
        services: &[svc],
        slices: &[slice()],
        node_name: "n1",
        node_ips: &[N1, N1B],
    })
}

fn ext(addr: Ipv4Addr, port: u16, proto: Proto) -> FrontendKey {
    FrontendKey {
        l4: L4Addr::new(addr, port, proto),
        scope: SCOPE_EXTERNAL,
    }
}

fn be(last: &str, port: u16, proto: Proto) -> L4Addr {
    L4Addr::new(last.parse().unwrap(), port, proto)
}

#[test]
fn nodeport_gets_a_frontend_per_node_address_and_port() {
    let d = run(svc(json!({})));
    for ip in [N1, N1B] {
        let fe = &d.frontends[&ext(ip, 30080, Proto::Tcp)];
        assert_eq!(fe.flags, SVC_F_NODEPORT);
        assert_eq!(
            fe.backends,
            [
                be("10.244.0.2", 8080, Proto::Tcp),
                be("10.244.1.2", 8080, Proto::Tcp)
            ]
        );
        let udp = &d.frontends[&ext(ip, 30053, Proto::Udp)];
        assert_eq!(udp.backends.len(), 2);
    }
    // ClusterIP frontends unchanged, in their own scope.
    let cip = FrontendKey {
        l4: L4Addr::new(Ipv4Addr::new(10, 96, 0, 20), 80, Proto::Tcp),
        scope: SCOPE_INTERNAL,
    };
    assert_eq!(d.frontends[&cip].flags, 0);
    assert_eq!(d.frontends.len(), 2 + 4);
    // The local endpoint is flagged, the remote one is not.
    assert_eq!(
        d.backends[&be("10.244.0.2", 8080, Proto::Tcp)],
        BACKEND_F_LOCAL
    );
    assert_eq!(d.backends[&be("10.244.1.2", 8080, Proto::Tcp)], 0);
}

#[test]
fn clusterip_type_gets_no_nodeport_even_with_a_node_port_field() {
    let d = run(svc(json!({"type": "ClusterIP"})));
    assert!(d.frontends.keys().all(|k| k.scope == SCOPE_INTERNAL));
}

#[test]
fn no_node_ips_means_no_nodeport_frontends() {
    let d = translate(TranslateInput {
        services: &[svc(json!({}))],
        slices: &[slice()],
        node_name: "n1",
        node_ips: &[],
    });
    assert!(d.frontends.keys().all(|k| k.scope == SCOPE_INTERNAL));
}

#[test]
fn local_policy_keeps_only_this_nodes_endpoints() {
    let d = run(svc(json!({"externalTrafficPolicy": "Local"})));
    let fe = &d.frontends[&ext(N1, 30080, Proto::Tcp)];
    assert_eq!(fe.flags, SVC_F_NODEPORT | SVC_F_LOCAL_ONLY);
    assert_eq!(fe.backends, [be("10.244.0.2", 8080, Proto::Tcp)]);
    // The other node sees no local endpoint: a frontend with no backend.
    let other = translate(TranslateInput {
        services: &[svc(json!({"externalTrafficPolicy": "Local"}))],
        slices: &[slice()],
        node_name: "n3",
        node_ips: &[N1],
    });
    assert!(other.frontends[&ext(N1, 30080, Proto::Tcp)]
        .backends
        .is_empty());
}

#[test]
fn local_policy_falls_back_to_this_nodes_serving_terminating_endpoint() {
    // n1's endpoint is terminating but still serving, n2's is ready.
    let mut sl = slice();
    sl.endpoints[0].conditions = Some(from_json(
        json!({"ready": false, "serving": true, "terminating": true}),
    ));
    let d = translate(TranslateInput {
        services: &[svc(json!({"externalTrafficPolicy": "Local"}))],
        slices: &[sl],
        node_name: "n1",
        node_ips: &[N1],
    });
    let fe = &d.frontends[&ext(N1, 30080, Proto::Tcp)];
    assert_eq!(fe.backends, [be("10.244.0.2", 8080, Proto::Tcp)]);
    // The ClusterIP keeps to the ready endpoint elsewhere.
    let cip = FrontendKey {
        l4: L4Addr::new(Ipv4Addr::new(10, 96, 0, 20), 80, Proto::Tcp),
        scope: SCOPE_INTERNAL,
    };
    assert_eq!(
        d.frontends[&cip].backends,
        [be("10.244.1.2", 8080, Proto::Tcp)]
    );
}

#[test]
fn internal_local_policy_keeps_the_cluster_ip_on_this_nodes_endpoints() {
    let d = run(svc(json!({"internalTrafficPolicy": "Local"})));
    let int = |port, proto| FrontendKey {
        l4: L4Addr::new(Ipv4Addr::new(10, 96, 0, 20), port, proto),
        scope: SCOPE_INTERNAL,
    };
    assert_eq!(
        d.frontends[&int(80, Proto::Tcp)].backends,
        [be("10.244.0.2", 8080, Proto::Tcp)]
    );
    // External frontends follow externalTrafficPolicy (Cluster): both.
    assert_eq!(d.frontends[&ext(N1, 30080, Proto::Tcp)].backends.len(), 2);
    // On a node without an endpoint the ClusterIP has no backend.
    let elsewhere = translate(TranslateInput {
        services: &[svc(json!({"internalTrafficPolicy": "Local"}))],
        slices: &[slice()],
        node_name: "n3",
        node_ips: &[N1],
    });
    assert!(elsewhere.frontends[&int(80, Proto::Tcp)]
        .backends
        .is_empty());
    // The default (Cluster) keeps both.
    assert_eq!(
        run(svc(json!({}))).frontends[&int(80, Proto::Tcp)]
            .backends
            .len(),
        2
    );
}

#[test]
fn client_ip_affinity_with_timeout_and_default() {
    let d = run(svc(json!({
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}},
    })));
    let fe = &d.frontends[&ext(N1, 30080, Proto::Tcp)];
    assert_eq!(fe.flags, SVC_F_NODEPORT | SVC_F_AFFINITY);
    assert_eq!(fe.affinity_timeout_s, 30);
    // The ClusterIP frontend sticks too.
    let internal = d
        .frontends
        .iter()
        .find(|(k, _)| k.scope == SCOPE_INTERNAL)
        .map(|(_, fe)| fe)
        .expect("the ClusterIP frontend");
    assert_eq!(internal.flags, SVC_F_AFFINITY);
    assert_eq!(internal.affinity_timeout_s, 30);
    let d = run(svc(json!({"sessionAffinity": "ClientIP"})));
    assert_eq!(
        d.frontends[&ext(N1, 30080, Proto::Tcp)].affinity_timeout_s,
        10_800
    );
}

#[test]
fn external_ips_answer_on_the_service_port() {
    let d = run(svc(
        json!({"type": "ClusterIP", "externalIPs": ["203.0.113.7", "2001:db8::1"]}),
    ));
    let ip = Ipv4Addr::new(203, 0, 113, 7);
    let fe = &d.frontends[&ext(ip, 80, Proto::Tcp)];
    assert_eq!(fe.flags, SVC_F_EXTERNAL_IP);
    assert_eq!(fe.backends.len(), 2);
    assert!(d.frontends.contains_key(&ext(ip, 53, Proto::Udp)));
    assert_eq!(d.frontends.len(), 2 + 2);
}

#[test]
fn programmed_and_removed_through_the_maps() {
    let mut maps = MemMaps::default();
    let mut proxy = Proxy::default();
    proxy.reconcile(&run(svc(json!({}))), &mut maps).unwrap();
    let cur = CurrentState::read(&mut maps).unwrap();
    let fe = cur.external(N1, 30080, Proto::Tcp).unwrap();
    assert_eq!(fe.flags, SVC_F_NODEPORT);
    assert_eq!(fe.backends().len(), 2);
    // Each node address has its own rev-NAT entry naming that address.
    let other = cur.external(N1B, 30080, Proto::Tcp).unwrap();
    assert_ne!(fe.rev_nat_id, other.rev_nat_id);
    let rn = cur.rev_nat[&fe.rev_nat_id];
    assert_eq!(rn.addr, skiff_common::ipv4_be(N1.octets()));
    assert_eq!(rn.port, skiff_common::port_be(30080));
    // Deleting the Service removes every entry.
    let empty = translate(TranslateInput::default());
    proxy.reconcile(&empty, &mut maps).unwrap();
    assert!(maps.services.entries.is_empty());
    assert!(maps.backends.entries.is_empty());
    assert!(maps.rev_nat.entries.is_empty());
}
