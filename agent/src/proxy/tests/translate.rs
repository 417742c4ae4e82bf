use std::net::Ipv4Addr;

use serde_json::json;
use skiff_common::{BACKEND_F_TERMINATING, SCOPE_INTERNAL};

use super::fixtures::{desired, from_json, service, slice, Ep};
use crate::proxy::{FrontendKey, L4Addr, Proto};

fn fk(ip: [u8; 4], port: u16, proto: Proto) -> FrontendKey {
    FrontendKey {
        l4: L4Addr::new(Ipv4Addr::from(ip), port, proto),
        scope: SCOPE_INTERNAL,
    }
}

fn be(ip: [u8; 4], port: u16, proto: Proto) -> L4Addr {
    L4Addr::new(Ipv4Addr::from(ip), port, proto)
}

#[test]
fn cluster_ip_with_ready_endpoints() {
    let svc = service("default", "web", "10.96.0.10", &[("", 80, "TCP")]);
    let sl = slice(
        "default",
        "web",
        &[("", 8080, "TCP")],
        &[("10.244.0.3", Ep::Ready), ("10.244.0.2", Ep::Unset)],
    );
    let d = desired(&[svc], &[sl]);
    assert_eq!(d.services, 1);
    assert_eq!(
        d.vips.iter().copied().collect::<Vec<_>>(),
        [Ipv4Addr::new(10, 96, 0, 10)]
    );
    let fe = &d.frontends[&fk([10, 96, 0, 10], 80, Proto::Tcp)];
    // Sorted, nil conditions count as ready.
    let want = [
        be([10, 244, 0, 2], 8080, Proto::Tcp),
        be([10, 244, 0, 3], 8080, Proto::Tcp),
    ];
    assert_eq!(fe.backends, want);
    assert_eq!(fe.service, "default/web:80");
    assert!(d.backends.values().all(|&f| f == 0));
}

#[test]
fn headless_external_name_and_ipv6_only_are_skipped() {
    let headless = service("default", "h", "None", &[("", 80, "TCP")]);
    let ext: k8s_openapi::api::core::v1::Service = from_json(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "e", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "example.com"},
    }));
    let v6 = service("default", "v6", "fd00::10", &[("", 80, "TCP")]);
    let d = desired(&[headless, ext, v6], &[]);
    assert_eq!(d.services, 0);
    assert!(d.frontends.is_empty() && d.vips.is_empty());
}

#[test]
fn dual_stack_picks_first_ipv4_of_cluster_ips() {
    let svc: k8s_openapi::api::core::v1::Service = from_json(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "ds", "namespace": "default"},
        "spec": {"clusterIP": "fd00::1", "clusterIPs": ["fd00::1", "10.96.0.7"],
                 "ports": [{"port": 53, "protocol": "UDP"}]},
    }));
    let d = desired(&[svc], &[]);
    assert!(d
        .frontends
        .contains_key(&fk([10, 96, 0, 7], 53, Proto::Udp)));
}

#[test]
fn multi_port_named_ports_map_to_their_target_ports() {
    let svc = service(
        "ns1",
        "app",
        "10.96.1.1",
        &[
            ("http", 80, "TCP"),
            ("metrics", 9090, "TCP"),
            ("dns", 53, "UDP"),
            ("s", 9, "SCTP"),
        ],
    );
    let sl = slice(
        "ns1",
        "app",
        &[
            ("metrics", 19090, "TCP"),
            ("http", 8080, "TCP"),
            ("dns", 5353, "UDP"),
        ],
        &[("10.244.1.5", Ep::Ready)],
    );
    let d = desired(&[svc], &[sl]);
    assert_eq!(d.frontends.len(), 3, "SCTP is ignored");
    let get = |port, proto| {
        d.frontends[&fk([10, 96, 1, 1], port, proto)]
            .backends
            .clone()
    };
    assert_eq!(get(80, Proto::Tcp), [be([10, 244, 1, 5], 8080, Proto::Tcp)]);
    assert_eq!(
        get(9090, Proto::Tcp),
        [be([10, 244, 1, 5], 19090, Proto::Tcp)]
    );
    assert_eq!(get(53, Proto::Udp), [be([10, 244, 1, 5], 5353, Proto::Udp)]);
    assert_eq!(
        d.frontends[&fk([10, 96, 1, 1], 80, Proto::Tcp)].service,
        "ns1/app:http"
    );
    assert_eq!(d.backends.len(), 3);
}

#[test]
fn port_name_and_protocol_must_both_match() {
    let svc = service(
        "default",
        "dns",
        "10.96.0.53",
        &[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")],
    );
    // The slice only has the UDP port.
    let sl = slice(
        "default",
        "dns",
        &[("dns", 53, "UDP")],
        &[("10.244.0.9", Ep::Ready)],
    );
    let d = desired(&[svc], &[sl]);
    assert_eq!(
        d.frontends[&fk([10, 96, 0, 53], 53, Proto::Udp)]
            .backends
            .len(),
        1
    );
    assert!(d.frontends[&fk([10, 96, 0, 53], 53, Proto::Tcp)]
        .backends
        .is_empty());
}

#[test]
fn readiness_and_termination() {
    let svc = service("default", "web", "10.96.0.10", &[("", 80, "TCP")]);
    let sl = slice(
        "default",
        "web",
        &[("", 80, "TCP")],
        &[
            ("10.244.0.2", Ep::Ready),
            ("10.244.0.3", Ep::NotReady),
            ("10.244.0.4", Ep::TermServing),
            ("10.244.0.5", Ep::TermGone),
            ("10.244.0.6", Ep::TermReady),
        ],
    );
    let d = desired(&[svc], &[sl]);
    let fe = &d.frontends[&fk([10, 96, 0, 10], 80, Proto::Tcp)];
    // Ready decides, terminating or not (publishNotReadyAddresses).
    assert_eq!(
        fe.backends,
        [
            be([10, 244, 0, 2], 80, Proto::Tcp),
            be([10, 244, 0, 6], 80, Proto::Tcp)
        ]
    );
    assert_eq!(d.backends.len(), 3);
    assert_eq!(d.backends[&be([10, 244, 0, 2], 80, Proto::Tcp)], 0);
    assert_eq!(
        d.backends[&be([10, 244, 0, 4], 80, Proto::Tcp)],
        BACKEND_F_TERMINATING
    );
}

#[test]
fn with_no_ready_endpoint_the_serving_terminating_ones_take_new_flows() {
    let svc = service("default", "web", "10.96.0.10", &[("", 80, "TCP")]);
    let sl = slice(
        "default",
        "web",
        &[("", 80, "TCP")],
        &[
            ("10.244.0.3", Ep::NotReady),
            ("10.244.0.4", Ep::TermServing),
            ("10.244.0.5", Ep::TermGone),
        ],
    );
    let d = desired(&[svc], &[sl]);
    let fe = &d.frontends[&fk([10, 96, 0, 10], 80, Proto::Tcp)];
    assert_eq!(fe.backends, [be([10, 244, 0, 4], 80, Proto::Tcp)]);
    assert_eq!(
        d.backends[&be([10, 244, 0, 4], 80, Proto::Tcp)],
        BACKEND_F_TERMINATING
    );
}

#[test]
fn a_backend_active_anywhere_is_not_terminating() {
    let a = service("default", "a", "10.96.0.1", &[("", 80, "TCP")]);
    let b = service("default", "b", "10.96.0.2", &[("", 80, "TCP")]);
    let sa = slice(
        "default",
        "a",
        &[("", 80, "TCP")],
        &[("10.244.0.2", Ep::TermServing)],
    );
    let sb = slice(
        "default",
        "b",
        &[("", 80, "TCP")],
        &[("10.244.0.2", Ep::Ready)],
    );
    let d = desired(&[a.clone(), b.clone()], &[sa.clone(), sb.clone()]);
    assert_eq!(d.backends[&be([10, 244, 0, 2], 80, Proto::Tcp)], 0);
    let d = desired(&[b, a], &[sb, sa]);
    assert_eq!(d.backends[&be([10, 244, 0, 2], 80, Proto::Tcp)], 0);
}

#[test]
fn slices_must_match_namespace_label_and_family() {
    let svc = service("ns1", "web", "10.96.0.10", &[("", 80, "TCP")]);
    let other_ns = slice(
        "ns2",
        "web",
        &[("", 80, "TCP")],
        &[("10.244.0.2", Ep::Ready)],
    );
    let mut v6 = slice("ns1", "web", &[("", 80, "TCP")], &[("fd00::2", Ep::Ready)]);
    v6.address_type = "IPv6".into();
    let mut unlabelled = slice(
        "ns1",
        "web",
        &[("", 80, "TCP")],
        &[("10.244.0.3", Ep::Ready)],
    );
    unlabelled.metadata.labels = None;
    let d = desired(&[svc], &[other_ns, v6, unlabelled]);
    assert!(d.frontends[&fk([10, 96, 0, 10], 80, Proto::Tcp)]
        .backends
        .is_empty());
    assert!(d.backends.is_empty());
}

#[test]
fn endpoints_merge_across_slices_without_duplicates() {
    let svc = service("default", "web", "10.96.0.10", &[("", 80, "TCP")]);
    let s1 = slice(
        "default",
        "web",
        &[("", 80, "TCP")],
        &[("10.244.0.2", Ep::Ready)],
    );
    let mut s2 = slice(
        "default",
        "web",
        &[("", 80, "TCP")],
        &[("10.244.0.2", Ep::Ready), ("10.244.1.2", Ep::Ready)],
    );
    s2.metadata.name = Some("web-def".into());
    let d = desired(&[svc], &[s1, s2]);
    assert_eq!(
        d.frontends[&fk([10, 96, 0, 10], 80, Proto::Tcp)]
            .backends
            .len(),
        2
    );
}

#[test]
fn service_without_endpoints_keeps_a_frontend_with_no_backends() {
    let svc = service("default", "web", "10.96.0.10", &[("", 80, "TCP")]);
    let d = desired(&[svc], &[]);
    assert!(d.frontends[&fk([10, 96, 0, 10], 80, Proto::Tcp)]
        .backends
        .is_empty());
    assert_eq!(d.vips.len(), 1);
}
