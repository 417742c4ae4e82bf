//! Root: the ClusterIP data path end to end — lab node, three `skiff-echo`
//! backends, a client pod, the real `skiff agent` and its pinned maps.
//! Every test builds its own lab, so they run in parallel.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use skiff_common::{stats, DEFAULT_HAIRPIN_ADDR};
use skiff_tests::bpfmaps::addr_of;
use skiff_tests::clusterip::{in_pod, ClusterIpLab, PORT, REQ, SYNC, VIP};
use skiff_tests::echo;
use skiff_tests::manifests::{EndpointState, Proto};
use skiff_tests::rawpkt::{self, Flow, Kind, RawSender};
use skiff_tests::wait;

const CONNS: usize = 30;

fn fixture() -> ClusterIpLab {
    ClusterIpLab::start(Path::new(env!("CARGO_BIN_EXE_skiff-echo")))
}

/// Answers per backend name over `n` requests made by `f`.
fn spread(n: usize, mut f: impl FnMut(usize) -> String) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for i in 0..n {
        *seen.entry(f(i)).or_insert(0) += 1;
    }
    seen
}

fn assert_all_backends(fx: &ClusterIpLab, seen: &BTreeMap<String, usize>) {
    for name in fx.backend_names() {
        assert!(seen.contains_key(&name), "{name} got no traffic: {seen:?}");
    }
}

#[test]
fn a_every_backend_gets_tcp_traffic() {
    let fx = fixture();
    let seen = spread(CONNS, |i| {
        fx.tcp(&fx.client, &format!("req {i}")).unwrap().name
    });
    assert_eq!(seen.values().sum::<usize>(), CONNS);
    assert_all_backends(&fx, &seen);
}

#[test]
fn b_client_sees_the_vip_and_backend_sees_the_client() {
    let fx = fixture();
    for i in 0..10 {
        let r = fx.tcp(&fx.client, &format!("who {i}")).unwrap();
        assert_eq!(r.peer, fx.vip(), "getpeername on the client");
        assert_eq!(
            r.client.ip(),
            IpAddr::V4(fx.client.ip()),
            "source seen by {}",
            r.name
        );
        assert_eq!(r.client, r.local, "client port preserved too");
        assert_eq!(r.line, format!("who {i}"));
    }
}

#[test]
fn c_udp_to_the_vip_works_and_spreads() {
    let fx = fixture();
    let seen = spread(CONNS, |i| {
        let r = fx.udp(&fx.client, &format!("dgram {i}")).unwrap();
        assert_eq!(r.peer, fx.vip(), "the reply comes from the VIP");
        assert_eq!(
            r.client.ip(),
            IpAddr::V4(fx.client.ip()),
            "backend sees the client"
        );
        assert_eq!(r.client.port(), r.local.port(), "client port preserved");
        r.name
    });
    assert_all_backends(&fx, &seen);
}

#[test]
fn d_terminating_backend_gets_no_new_flows_but_keeps_old_ones() {
    let fx = fixture();
    let victim = fx.backend_names()[0].clone();
    let mut session = (0..100)
        .find_map(|_| {
            let mut s = fx.session(&fx.client).unwrap();
            (s.request("hello").unwrap().name == victim).then_some(s)
        })
        .expect("a connection to backend-0 within 100 tries");

    let states = [
        EndpointState::TerminatingServing,
        EndpointState::Ready,
        EndpointState::Ready,
    ];
    fx.write_service(&states);
    fx.wait_count(Proto::Tcp, 2);
    let seen = spread(CONNS, |i| {
        fx.tcp(&fx.client, &format!("new {i}")).unwrap().name
    });
    assert!(
        !seen.contains_key(&victim),
        "{victim} got new flows: {seen:?}"
    );
    assert_eq!(
        seen.len(),
        2,
        "the two ready backends share new flows: {seen:?}"
    );

    let r = session.request("still there?").unwrap();
    assert_eq!(
        (r.name.as_str(), r.line.as_str()),
        (victim.as_str(), "still there?")
    );
    assert_eq!(r.peer, fx.vip());
}

#[test]
fn e_hairpin_backend_reaches_its_own_service() {
    let fx = fixture();
    let me = fx.backends[1].clone();
    let hairpin = Ipv4Addr::from(DEFAULT_HAIRPIN_ADDR);
    let mut seen = BTreeMap::new();
    for i in 0..100 {
        let r = fx.tcp(&me, &format!("self {i}")).unwrap();
        assert_eq!(r.peer, fx.vip());
        let expected_src = if r.name == me.name() {
            hairpin
        } else {
            me.ip()
        };
        assert_eq!(
            r.client.ip(),
            IpAddr::V4(expected_src),
            "source seen by {}",
            r.name
        );
        *seen.entry(r.name).or_insert(0) += 1;
        if seen.len() == 3 {
            break;
        }
    }
    assert!(
        seen.contains_key(me.name()),
        "never answered by itself: {seen:?}"
    );
    let r = fx.udp(&me, "udp self").unwrap();
    assert_eq!(r.peer, fx.vip());
}

#[test]
fn f_established_tcp_survives_an_agent_restart() {
    let mut fx = fixture();
    let mut session = fx.session(&fx.client).unwrap();
    let backend = session.request("before").unwrap().name;

    assert!(fx.stop_agent(), "the agent exits 0 on SIGTERM");
    assert!(fx.pin_dir().join("SERVICES").exists(), "maps stay pinned");
    let r = session.request("during").unwrap();
    assert_eq!(
        (r.name.as_str(), r.line.as_str()),
        (backend.as_str(), "during")
    );
    fx.tcp(&fx.client, "new flow while the agent is down")
        .unwrap();

    fx.start_agent();
    wait::until(SYNC, "the restarted agent to report `synced`", || {
        fx.agent().assert_running();
        fx.agent().log().contains("synced").then_some(())
    });
    fx.wait_count(Proto::Tcp, 3);
    let r = session.request("after").unwrap();
    assert_eq!(
        (r.name.as_str(), r.line.as_str()),
        (backend.as_str(), "after")
    );
    let seen = spread(CONNS, |i| {
        fx.tcp(&fx.client, &format!("after {i}")).unwrap().name
    });
    assert_all_backends(&fx, &seen);
}

#[test]
fn g_malformed_packets_leave_the_path_working() {
    let fx = fixture();
    let before = fx.maps.stats().unwrap();
    let flow = Flow {
        src_mac: rawpkt::parse_mac(&fx.client.mac()).unwrap(),
        dst_mac: rawpkt::parse_mac(&fx.client.host_mac()).unwrap(),
        saddr: fx.client.ip(),
        daddr: VIP,
        dport: PORT,
    };
    let sent = in_pod(&fx.client, || {
        let tx = RawSender::open("eth0")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut sent = 0usize;
        for n in 0..2000u16 {
            if std::time::Instant::now() > deadline {
                break;
            }
            let kind = Kind::ALL[usize::from(n) % Kind::ALL.len()];
            tx.send(&rawpkt::frame(kind, &flow, n))?;
            sent += 1;
        }
        Ok(sent)
    })
    .unwrap();
    assert!(sent >= Kind::ALL.len(), "sent {sent} frames");

    let moved = wait::until(SYNC, "STATS drop/pass counters to move", || {
        let d = fx.maps.stats().unwrap().since(&before);
        [
            stats::PASS_MALFORMED,
            stats::DROP_FRAGMENT,
            stats::DROP_UNSUPPORTED_PROTO,
        ]
        .iter()
        .all(|&i| d.get(i) > 0)
        .then_some(d)
    });
    eprintln!("after {sent} malformed frames: {moved}");
    fx.agent().assert_running();
    let seen = spread(CONNS, |i| {
        fx.tcp(&fx.client, &format!("ok {i}")).unwrap().name
    });
    assert_all_backends(&fx, &seen);
    fx.udp(&fx.client, "udp ok").unwrap();
}

#[test]
fn h_deleting_the_service_removes_its_entries_and_flows() {
    let fx = fixture();
    let tcp = fx.wait_count(Proto::Tcp, 3);
    let udp = fx.wait_count(Proto::Udp, 3);
    let ids = [tcp.rev_nat_id, udp.rev_nat_id];
    let _open = fx.session(&fx.client).unwrap();
    for i in 0..5 {
        fx.tcp(&fx.client, &format!("ct {i}")).unwrap();
        fx.udp(&fx.client, &format!("ct {i}")).unwrap();
    }
    let ct_of = |ids: &[u32]| {
        fx.maps
            .conntrack()
            .unwrap()
            .into_iter()
            .filter(|(_, v)| ids.contains(&v.rev_nat_id))
            .count()
    };
    assert!(ct_of(&ids) > 0, "conntrack entries exist for the Service");
    assert!(fx
        .maps
        .rev_nat()
        .unwrap()
        .iter()
        .any(|(id, _)| ids.contains(id)));

    fx.delete_service();
    wait::until(
        SYNC * 2,
        "the Service's SERVICES, REV_NAT and CONNTRACK entries to go",
        || {
            fx.agent().assert_running();
            let services = fx.maps.services().unwrap();
            let left_svc = services
                .iter()
                .filter(|(k, _)| addr_of(k.addr) == VIP)
                .count();
            let left_rev = fx
                .maps
                .rev_nat()
                .unwrap()
                .iter()
                .filter(|(id, _)| ids.contains(id))
                .count();
            (left_svc == 0 && left_rev == 0 && ct_of(&ids) == 0).then_some(())
        },
    );
    assert!(
        fx.tcp(&fx.client, "gone").is_err(),
        "the VIP no longer answers"
    );
}

/// The node's own sockets (host processes, hostNetwork pods) never cross a
/// pod veth: the cgroup hooks translate them at connect/sendmsg, only for
/// the node's network namespace, and report the VIP back.
#[test]
fn i_the_node_itself_reaches_the_vip_through_its_sockets() {
    let fx = fixture();
    let node = fx.lab.node(0).netns();
    let vip = fx.vip();
    let seen = spread(CONNS, |i| {
        let line = format!("node {i}");
        let r = node
            .run(move || echo::tcp_request(vip, &line, REQ))
            .expect("entering the node")
            .expect("TCP from the node to the VIP");
        assert_eq!(r.peer, vip, "getpeername on the node's socket");
        assert_eq!(r.line, format!("node {i}"));
        r.name
    });
    assert_all_backends(&fx, &seen);
    let r = node
        .run(move || echo::udp_request(vip, "node dgram", REQ))
        .expect("entering the node")
        .expect("UDP from the node to the VIP");
    assert_eq!(r.peer, vip, "the reply is reported from the VIP");
    // Pods are left to the TC path: the client still sees the VIP.
    assert_eq!(fx.tcp(&fx.client, "pod").unwrap().peer, vip);

    // Without endpoints the node's connection is refused at once, not sent
    // off with the VIP.
    fx.write_service(&[]);
    fx.wait_count(Proto::Tcp, 0);
    let err = node
        .run(move || echo::tcp_request(vip, "none", REQ))
        .expect("entering the node")
        .expect_err("no backend");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

/// The node's hooks are pinned like the TC links: they keep serving while
/// the agent is down and across its restart.
#[test]
fn j_the_nodes_hooks_outlive_an_agent_restart() {
    let mut fx = fixture();
    let vip = fx.vip();
    let from_node = |fx: &ClusterIpLab, line: &'static str| {
        fx.lab
            .node(0)
            .netns()
            .run(move || echo::tcp_request(vip, line, REQ))
            .expect("entering the node")
    };
    from_node(&fx, "before").expect("before the restart");
    assert!(fx.stop_agent(), "the agent stops cleanly");
    for hook in ["connect4", "sendmsg4", "recvmsg4", "getpeername4"] {
        let pin = fx.pin_dir().join(format!("sock-{hook}"));
        assert!(pin.exists(), "{} is pinned", pin.display());
    }
    let r = from_node(&fx, "between").expect("the pinned hooks serve with no agent");
    assert_eq!(r.peer, vip);
    fx.start_agent();
    fx.wait_count(Proto::Tcp, 3);
    let r = from_node(&fx, "after").expect("after the restart");
    assert_eq!(r.peer, vip);
}
