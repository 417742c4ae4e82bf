//! Root: the netns lab itself — pod↔pod TCP on one node and across nodes
//! with the source address preserved, and a complete teardown.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use skiff_tests::echo::{self, EchoReply};
use skiff_tests::lab::{cleanup, names, Lab, Pod};
use skiff_tests::wait;

const PORT: u16 = 8080;
const T: Duration = Duration::from_secs(5);

fn echo_cmd(name: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff-echo"));
    cmd.args(["--port", &PORT.to_string(), "--name", name]);
    cmd
}

/// Connects from `client` to `server` until the echo server answers.
fn request(client: &Pod, server: &Pod, line: &str) -> EchoReply {
    let addr = SocketAddr::from((server.ip(), PORT));
    wait::until(
        T * 2,
        &format!("{} to answer {}", server.name(), client.name()),
        || {
            client
                .netns()
                .run(|| echo::tcp_request(addr, line, T))
                .unwrap()
                .ok()
        },
    )
}

fn lab_netns(prefix: &str) -> Vec<String> {
    cleanup::list_netns()
        .into_iter()
        .filter(|n| names::belongs_to(n, prefix))
        .collect()
}

#[test]
fn pods_reach_each_other_with_source_preserved_and_teardown_is_complete() {
    let lab = Lab::builder().nodes(2).build().expect("lab");
    let prefix = lab.prefix().to_owned();
    let server = lab.node(0).add_pod("server").unwrap();
    let local = lab.node(0).add_pod("local-client").unwrap();
    let remote = lab.node(1).add_pod("remote-client").unwrap();
    let other = lab.node(1).add_pod("spare").unwrap();
    assert_eq!(server.ip().to_string(), "10.244.0.2");
    assert_eq!(remote.ip().to_string(), "10.244.1.2");
    assert_eq!(lab.node(1).addr().to_string(), "192.168.200.11");
    assert!(Path::new(&format!("/run/netns/{prefix}-n1-p1")).exists());

    let echo = server.netns().spawn(echo_cmd("srv")).unwrap();
    for client in [&local, &remote] {
        let reply = request(client, &server, "hello there");
        assert_eq!(reply.name, "srv");
        assert_eq!(reply.line, "hello there");
        assert_eq!(
            reply.client.ip(),
            client.ip(),
            "source preserved for {}",
            client.name()
        );
        assert_eq!(reply.client, reply.local);
        assert_eq!(reply.peer, SocketAddr::from((server.ip(), PORT)));
    }
    // UDP across nodes too.
    let addr = SocketAddr::from((server.ip(), PORT));
    let reply = remote
        .netns()
        .run(|| echo::udp_request(addr, "u", T))
        .unwrap()
        .unwrap();
    assert_eq!(reply.client.ip(), remote.ip());
    assert_eq!(reply.peer, addr);

    // A removed pod is gone at once, the others stay.
    let spare_ns = other.netns().name().to_owned();
    other.remove().unwrap();
    assert!(!lab_netns(&prefix).contains(&spare_ns));
    assert_eq!(lab_netns(&prefix).len(), 1 + 2 + 3, "underlay, nodes, pods");

    let pid = echo.pid();
    drop(lab);
    assert_eq!(
        lab_netns(&prefix),
        Vec::<String>::new(),
        "lab netns left behind"
    );
    assert!(echo.try_wait().is_some(), "echo server {pid} still running");
}

#[test]
fn labs_in_parallel_get_distinct_names() {
    let a = Lab::builder().nodes(1).build().unwrap();
    let b = Lab::builder().nodes(1).build().unwrap();
    assert_ne!(a.prefix(), b.prefix());
    assert_ne!(a.node(0).name(), b.node(0).name());
    let (pa, pb) = (
        a.node(0).add_pod("a").unwrap(),
        b.node(0).add_pod("b").unwrap(),
    );
    // Same addresses in different labs do not interfere.
    assert_eq!(pa.ip(), pb.ip());
    let _srv = pb.netns().spawn(echo_cmd("b")).unwrap();
    let c = b.node(0).add_pod("c").unwrap();
    assert_eq!(request(&c, &pb, "x").name, "b");
}
