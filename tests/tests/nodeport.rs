//! Root: NodePort, externalTrafficPolicy Local, ClientIP affinity and
//! externalIPs end to end — two lab nodes with `skiff-echo` backends on
//! both, an external client on the underlay, the real `skiff agent` (XDP
//! on each node's `eth0`). Every test builds its own lab.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use skiff_common::stats;
use skiff_tests::bpfmaps::addr_of;
use skiff_tests::manifests::Proto;
use skiff_tests::nodeport::{
    NodePortLab, AFFINITY, EXTERNAL, EXTERNAL_IP, LOCAL, LOCAL_ONE, NODEPORT, SYNC,
};
use skiff_tests::wait;

const CONNS: usize = 40;

fn fixture(extra: &[&str]) -> NodePortLab {
    NodePortLab::start(Path::new(env!("CARGO_BIN_EXE_skiff-echo")), extra)
}

/// Checks one reply of NodePort `port` on node `i`: the client sees the
/// node address, and the backend sees the client itself when it runs on
/// node `i`, else node `i` (SNAT). Returns the backend's name.
fn check(fx: &NodePortLab, i: usize, port: u16, r: &skiff_tests::echo::EchoReply) -> String {
    assert_eq!(r.peer.port(), port, "reply source port");
    if r.peer.ip() != IpAddr::V4(fx.lab.node(i).addr()) {
        // UDP replies: recv_from gives the source address.
        panic!("reply from {} instead of node {i}", r.peer);
    }
    let expect = if fx.node_of(&r.name) == i {
        fx.client.addr()
    } else {
        fx.lab.node(i).addr()
    };
    assert_eq!(
        r.client.ip(),
        IpAddr::V4(expect),
        "source seen by {}",
        r.name
    );
    r.name.clone()
}

/// Unwraps a request's result, or panics with both nodes' counters.
fn ok<T>(fx: &NodePortLab, what: &str, r: std::io::Result<T>) -> T {
    r.unwrap_or_else(|e| {
        panic!(
            "{what}: {e}; node 0: {}; node 1: {}",
            fx.maps[0].stats().unwrap(),
            fx.maps[1].stats().unwrap()
        )
    })
}

fn spread(n: usize, mut f: impl FnMut(usize) -> String) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for i in 0..n {
        *seen.entry(f(i)).or_insert(0) += 1;
    }
    seen
}

fn nodeport_both_paths(fx: &NodePortLab) {
    for i in 0..2 {
        let tcp = spread(CONNS, |k| {
            let r = ok(fx, "TCP", fx.tcp(i, NODEPORT.node_port, &format!("t{k}")));
            assert_eq!(r.line, format!("t{k}"));
            check(fx, i, NODEPORT.node_port, &r)
        });
        assert_eq!(
            tcp.len(),
            2,
            "node {i}: TCP to a local and a remote backend: {tcp:?}"
        );
        let udp = spread(CONNS, |k| {
            let r = ok(fx, "UDP", fx.udp(i, NODEPORT.node_port, &format!("u{k}")));
            check(fx, i, NODEPORT.node_port, &r)
        });
        assert_eq!(
            udp.len(),
            2,
            "node {i}: UDP to a local and a remote backend: {udp:?}"
        );
    }
    for (i, m) in fx.maps.iter().enumerate() {
        let s = m.stats().unwrap();
        assert!(
            s.get(stats::NODEPORT_REV_SNAT) > 0,
            "node {i}: no reverse SNAT: {s:?}"
        );
        assert_eq!(s.get(stats::DROP_SNAT_EXHAUSTED), 0);
    }
}

#[test]
fn a_nodeport_answers_on_every_node_local_and_remote_tcp_udp() {
    let fx = fixture(&[]);
    for a in fx.agents.iter().flatten() {
        assert!(
            a.log().contains("NodePort: XDP (native) on eth0"),
            "{}",
            a.log()
        );
    }
    nodeport_both_paths(&fx);
}

#[test]
fn b_tc_fallback_mode_serves_the_same() {
    let fx = fixture(&["--nodeport-mode", "tc"]);
    for a in fx.agents.iter().flatten() {
        assert!(
            a.log().contains("NodePort: TC ingress on eth0"),
            "{}",
            a.log()
        );
    }
    nodeport_both_paths(&fx);
}

#[test]
fn c_local_policy_preserves_the_client_and_skips_nodes_without_endpoints() {
    let fx = fixture(&[]);
    for i in 0..2 {
        for k in 0..10 {
            let r = fx.tcp(i, LOCAL.node_port, &format!("l{k}")).unwrap();
            assert_eq!(fx.node_of(&r.name), i, "Local: only node {i}'s backend");
            assert_eq!(
                r.client.ip(),
                IpAddr::V4(fx.client.addr()),
                "client IP kept"
            );
            let r = fx.udp(i, LOCAL.node_port, &format!("lu{k}")).unwrap();
            assert_eq!(fx.node_of(&r.name), i);
            assert_eq!(r.client.ip(), IpAddr::V4(fx.client.addr()));
        }
    }
    // `localone` has its only endpoint on node 0: node 1 does not answer.
    let r = fx.tcp(0, LOCAL_ONE.node_port, "x").unwrap();
    assert_eq!(r.name, "backend-0");
    fx.wait_frontend(1, LOCAL_ONE.node_port, Proto::Tcp, Some(0));
    let before = fx.maps[1].stats().unwrap();
    let err = fx.tcp(1, LOCAL_ONE.node_port, "x").unwrap_err();
    eprintln!("node 1 without local endpoints: {err}");
    let after = fx.maps[1].stats().unwrap();
    assert!(
        after.get(stats::DROP_NO_BACKEND) > before.get(stats::DROP_NO_BACKEND),
        "the SYN was dropped as no-backend"
    );
}

#[test]
fn d_client_ip_affinity_sticks_across_connections() {
    let fx = fixture(&[]);
    for i in 0..2 {
        let seen = spread(30, |k| {
            fx.tcp(i, AFFINITY.node_port, &format!("a{k}"))
                .unwrap()
                .name
        });
        assert_eq!(
            seen.len(),
            1,
            "node {i}: one backend for one client: {seen:?}"
        );
    }
}

#[test]
fn e_external_ip_answers_on_the_service_port() {
    let fx = fixture(&[]);
    fx.wait_external(0, EXTERNAL_IP, EXTERNAL.port, Proto::Tcp, Some(2));
    let addr = SocketAddr::from((EXTERNAL_IP, EXTERNAL.port));
    let seen = spread(CONNS, |k| {
        let r = fx.tcp_to(addr, &format!("e{k}")).unwrap();
        assert_eq!(r.peer, addr, "the client talks to the externalIP");
        r.name
    });
    assert_eq!(
        seen.len(),
        2,
        "both backends behind the externalIP: {seen:?}"
    );
}

#[test]
fn f_deleting_the_service_removes_its_entries() {
    let fx = fixture(&[]);
    // Flows on both paths, so conntrack and SNAT hold entries.
    for k in 0..CONNS {
        fx.tcp(0, NODEPORT.node_port, &format!("d{k}")).unwrap();
    }
    let node0 = fx.lab.node(0).addr();
    let rn_ids: Vec<u32> = fx.maps[0]
        .rev_nat()
        .unwrap()
        .into_iter()
        .filter(|(_, rn)| addr_of(rn.addr) == node0 && u16::from_be(rn.port) == NODEPORT.node_port)
        .map(|(id, _)| id)
        .collect();
    assert!(!rn_ids.is_empty());
    assert!(fx.maps[0]
        .snat()
        .unwrap()
        .iter()
        .any(|(_, v)| rn_ids.contains(&v.rev_nat_id)));
    fx.delete_service(&NODEPORT);
    for i in 0..2 {
        fx.wait_frontend(i, NODEPORT.node_port, Proto::Tcp, None);
        fx.wait_frontend(i, NODEPORT.node_port, Proto::Udp, None);
    }
    wait::until(
        SYNC,
        "conntrack and SNAT entries of the deleted Service gone",
        || {
            let ct = fx.maps[0].conntrack().ok()?;
            let snat = fx.maps[0].snat().ok()?;
            let left = ct
                .iter()
                .filter(|(_, v)| rn_ids.contains(&v.rev_nat_id))
                .count()
                + snat
                    .iter()
                    .filter(|(_, v)| rn_ids.contains(&v.rev_nat_id))
                    .count();
            (left == 0).then_some(())
        },
    );
    let services = fx.maps[0].services().unwrap();
    assert!(services
        .iter()
        .all(|(k, _)| u16::from_be(k.port) != NODEPORT.node_port));
    assert!(
        fx.tcp(0, NODEPORT.node_port, "gone").is_err(),
        "nothing answers any more"
    );
    // The other Services are untouched.
    fx.tcp(0, AFFINITY.node_port, "still").unwrap();
}

#[test]
fn g_established_flows_survive_an_agent_restart_and_teardown_detaches() {
    let mut fx = fixture(&[]);
    let addr = fx.node_addr(0, NODEPORT.node_port);
    // One connection to the local backend, one to the remote (SNAT) one.
    let mut sessions: BTreeMap<String, skiff_tests::echo::TcpSession> = BTreeMap::new();
    for _ in 0..100 {
        let mut s = ok(&fx, "connect", fx.session(addr));
        let name = ok(&fx, "request", s.request("hello")).name;
        sessions.entry(name).or_insert(s);
        if sessions.len() == 2 {
            break;
        }
    }
    assert_eq!(
        sessions.len(),
        2,
        "a local and a remote backend within 100 tries"
    );
    assert!(fx.stop_agent(0), "the agent exits cleanly on SIGTERM");
    for (name, s) in &mut sessions {
        let r = ok(&fx, "while the agent is down", s.request("down"));
        assert_eq!((&r.name, r.line.as_str()), (name, "down"));
    }
    fx.start_agent(0);
    wait::until(
        SYNC,
        "the restarted agent to reuse the pinned XDP link",
        || {
            fx.agent(0)
                .log()
                .contains("NodePort: XDP (native) on eth0 (replaced program on existing link)")
                .then_some(())
        },
    );
    for (name, s) in &mut sessions {
        let r = ok(&fx, "after the restart", s.request("again"));
        assert_eq!(&r.name, name);
    }
    // Teardown with the agent stopped detaches the program from eth0. The
    // first sync is logged from the main loop, after the signal handlers
    // are installed.
    wait::until(SYNC, "the restarted agent's first sync", || {
        fx.agent(0)
            .log()
            .contains("synced generation=")
            .then_some(())
    });
    assert!(fx.stop_agent(0));
    let node = fx.lab.node(0);
    let mut cmd = std::process::Command::new(skiff_tests::agent::skiff_bin().unwrap());
    cmd.args(["agent", "--node-name", node.name(), "--teardown"]);
    let status = node.netns().spawn(cmd).unwrap().wait_timeout(SYNC);
    assert!(status.is_some_and(|s| s.success()), "teardown: {status:?}");
    assert!(
        !node.netns().xdp_attached("eth0").unwrap(),
        "XDP still attached to eth0"
    );
}

#[test]
fn h_replies_are_reverse_snated_on_the_interface_they_arrive_on() {
    // Node 0 with three external interfaces: the underlay, a cable to a
    // client of its own (`d0`) and a cable to node 1 (`c0to1`), which
    // carries node 1's pod traffic both ways.
    let mut fx = fixture(&[]);
    let (client, entry) = fx
        .lab
        .add_direct_client(0, 0, [203, 0, 113, 0])
        .expect("client cable");
    let (near, far) = fx
        .lab
        .link_nodes(0, 1, [198, 51, 100, 0])
        .expect("node cable");
    let (n0, n1) = (fx.lab.node(0), fx.lab.node(1));
    let n0_addr = n0.addr();
    fx.lab
        .route_over(0, &format!("{}/24", n1.pod_cidr()), &near, &far)
        .unwrap();
    // Replies to node 0's SNAT address come back over the cable too.
    fx.lab
        .route_over(1, &format!("{n0_addr}/32"), &far, &near)
        .unwrap();
    assert!(fx.stop_agent(0));
    let ifaces = format!("eth0,{},{}", entry.ifname, near.ifname);
    fx.start_agent_with(0, &["--external-iface", &ifaces]);
    for iface in ["eth0", entry.ifname.as_str(), near.ifname.as_str()] {
        let line = format!("NodePort: XDP (native) on {iface}");
        wait::until(SYNC, &line, || {
            fx.agent(0).log().contains(&line).then_some(())
        });
    }
    let backends = Some(NODEPORT.endpoints.len() as u32);
    fx.wait_external(0, entry.addr, NODEPORT.node_port, Proto::Tcp, backends);
    fx.wait_external(0, entry.addr, NODEPORT.node_port, Proto::Udp, backends);
    let before = fx.maps[0].stats().unwrap();
    let target = SocketAddr::from((entry.addr, NODEPORT.node_port));
    let mut seen = BTreeMap::new();
    for k in 0..CONNS {
        let line = format!("h{k}");
        for udp in [false, true] {
            let r = skiff_tests::nodeport::in_ns(&client, &|| {
                if udp {
                    skiff_tests::echo::udp_request(target, &line, skiff_tests::nodeport::REQ)
                } else {
                    skiff_tests::echo::tcp_request(target, &line, skiff_tests::nodeport::REQ)
                }
            })
            .unwrap_or_else(|e| {
                panic!(
                    "{} {line}: {e}; node 0: {}",
                    if udp { "UDP" } else { "TCP" },
                    fx.maps[0].stats().unwrap()
                )
            });
            assert_eq!(r.peer, target, "the reply comes from the address asked");
            let remote = fx.node_of(&r.name) == 1;
            let want = if remote { n0_addr } else { client.addr() };
            assert_eq!(r.client.ip(), IpAddr::V4(want), "source seen by {}", r.name);
            *seen.entry(remote).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), 2, "local and remote backends: {seen:?}");
    let after = fx.maps[0].stats().unwrap();
    assert!(
        after.get(stats::NODEPORT_REV_SNAT) > before.get(stats::NODEPORT_REV_SNAT),
        "remote replies reverse-SNATed on {}: {after:?}",
        near.ifname
    );
    // Restarted with the underlay only, the agent detaches the cables.
    assert!(fx.stop_agent(0));
    fx.start_agent(0);
    wait::until(SYNC, "the cables' XDP programs to go", || {
        fx.agent(0)
            .log()
            .contains("NodePort: detached from")
            .then_some(())
    });
    for iface in [&entry.ifname, &near.ifname] {
        let attached = fx.lab.node(0).netns().xdp_attached(iface).unwrap();
        assert!(!attached, "XDP still on {iface}");
    }
}
