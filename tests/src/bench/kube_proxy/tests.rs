//! Rule text checked against kube-proxy's own output.
use super::*;

fn svc(n: usize) -> ServicePort {
    ServicePort {
        namespace: "ns1".into(),
        name: "svc1".into(),
        port_name: "p80".into(),
        vip: Ipv4Addr::new(172, 30, 0, 41),
        port: 80,
        proto: Proto::Tcp,
        node_port: None,
        endpoints: (1..=n as u8)
            .map(|i| (Ipv4Addr::new(10, 180, 0, i), 80))
            .collect(),
    }
}
const CLUSTER: fn() -> Cluster = || Cluster {
    pod_cidr: "10.0.0.0/8".into(),
    service_cidr: "172.30.0.0/16".into(),
    node_ip: Ipv4Addr::new(192, 168, 0, 2),
};

#[test]
fn iptables_chains_and_probabilities() {
    let r = iptables_rules(&CLUSTER(), &[svc(3)]);
    assert!(r.contains("-A KUBE-SERVICES -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O"));
    assert!(r.contains("-m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-"));
    assert!(r.contains("-m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-"));
    assert!(r.contains("-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80"));
    assert_eq!(r.matches("--probability").count(), 2);
}

#[test]
fn iptables_nodeport_goes_through_the_ext_chain() {
    let s = ServicePort {
        proto: Proto::Udp,
        node_port: Some(30090),
        ..svc(1)
    };
    let r = iptables_rules(&CLUSTER(), std::slice::from_ref(&s));
    let (ext, chain) = (s.ext_chain(), s.svc_chain());
    assert_eq!(&ext[9..], &chain[9..], "EXT and SVC share the hash");
    assert_ne!(chain, svc(1).svc_chain(), "the protocol is hashed");
    assert!(r.contains(&format!(":{ext} - [0:0]\n")));
    assert!(r.contains(&format!(
        "-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m udp -p udp --dport 30090 -j {ext}\n"
    )));
    assert!(r.contains(&format!("-A {ext} -m comment --comment \"masquerade traffic for ns1/svc1:p80 external destinations\" -j KUBE-MARK-MASQ\n-A {ext} -j {chain}\n")));
    assert!(r.contains("-m udp -p udp -j DNAT --to-destination 10.180.0.1:80"));
    // The jump to KUBE-NODEPORTS stays the last KUBE-SERVICES rule.
    let last = r.rfind("-A KUBE-SERVICES").unwrap();
    assert!(r[last..].contains("-j KUBE-NODEPORTS"));
}

#[test]
fn nft_chains_match_kube_proxy() {
    let r = nft_rules(&CLUSTER(), &[svc(1)]);
    assert!(r.contains("add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }"));
    assert!(r.contains("add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 meta l4proto tcp dnat to 10.180.0.1:80"));
    assert!(r.contains("add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }"));
}
