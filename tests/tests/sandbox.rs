//! Root: the agent's pod sandbox networking (`skiff_agent::sandbox`) on lab
//! nodes. The lab gives two node netns on an underlay and nothing else (no
//! pods, no peer routes); the sandbox code runs on threads that entered a
//! node's netns, exactly as the agent runs in the root netns of a machine.
//! Shown: pods of one node reach each other, pods of two nodes reach each
//! other once `Routes::sync` ran, with the source address preserved; the
//! host veths are found by the dataplane's discovery; IPAM and sandboxes
//! survive an agent restart; teardown leaves no link, route or file.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use skiff_agent::dataplane::netif;
use skiff_agent::sandbox::nl::{Netlink, Route};
use skiff_agent::sandbox::{
    Ipv4Cidr, NetworkConfig, PodFiles, PodNetwork, Routes, Sandbox, SandboxError,
    NODE_ROUTE_PROTOCOL,
};
use skiff_tests::echo::{self, EchoReply};
use skiff_tests::lab::{Lab, Node};
use skiff_tests::wait;

const PORT: u16 = 8080;
const T: Duration = Duration::from_secs(5);
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// A lab node's pod network, used from threads inside the node's netns.
/// Sandboxes made through it and echo servers are removed on drop.
struct NodeNet<'a> {
    node: &'a Node,
    lab: String,
    cfg: NetworkConfig,
    net: PodNetwork,
    uids: Mutex<Vec<String>>,
    procs: Mutex<Vec<Child>>,
}

impl<'a> NodeNet<'a> {
    fn new(lab: &'a Lab, i: usize) -> Self {
        let node = lab.node(i);
        let mut cfg = NetworkConfig::new(Ipv4Cidr::new(node.pod_cidr(), 24).unwrap(), node.addr());
        // Named after the lab: removed with it even if this test dies.
        cfg.state_dir = std::env::temp_dir().join(format!("{}-sandbox-n{i}", lab.prefix()));
        let net = Self::open(node, &cfg);
        Self {
            node,
            lab: lab.prefix().to_owned(),
            cfg,
            net,
            uids: Mutex::new(Vec::new()),
            procs: Mutex::new(Vec::new()),
        }
    }

    fn open(node: &Node, cfg: &NetworkConfig) -> PodNetwork {
        let cfg = cfg.clone();
        node.netns().run(|| PodNetwork::new(cfg)).unwrap().unwrap()
    }

    /// Runs `f` with the node's netns as the calling thread's.
    fn in_node<T: Send>(&self, f: impl FnOnce(&PodNetwork) -> T + Send) -> T {
        self.node.netns().run(|| f(&self.net)).unwrap()
    }

    fn uid(&self, name: &str) -> String {
        format!("{}-{name}", self.lab)
    }

    fn create(&self, name: &str) -> Sandbox {
        let uid = self.uid(name);
        self.uids.lock().unwrap().push(uid.clone());
        self.in_node(|n| Sandbox::create(n, &uid))
            .unwrap_or_else(|e| panic!("sandbox {uid}: {e}"))
    }

    /// Starts `skiff-echo` inside the pod, as a container process would run.
    fn spawn_echo(&self, sb: &Sandbox, name: &str) {
        let ns = File::open(sb.netns_path()).unwrap();
        let fd = ns.as_raw_fd();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff-echo"));
        cmd.args(["--port", &PORT.to_string(), "--name", name]);
        // SAFETY: only async-signal-safe syscalls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                    || libc::setns(fd, libc::CLONE_NEWNET) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.procs.lock().unwrap().push(cmd.spawn().unwrap());
    }

    fn stop_procs(&self) {
        for mut child in self.procs.lock().unwrap().drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn routes(&self) -> Vec<Route> {
        self.in_node(|_| Netlink::open().unwrap().routes().unwrap())
    }
}

impl Drop for NodeNet<'_> {
    fn drop(&mut self) {
        self.stop_procs();
        for uid in self.uids.lock().unwrap().drain(..) {
            if let Err(e) = self.in_node(|n| Sandbox::teardown(n, &uid)) {
                eprintln!("tearing down sandbox {uid}: {e}");
            }
        }
    }
}

/// TCP from `client` to the echo server of `server` until it answers.
fn request(client: &Sandbox, server: &Sandbox, line: &str) -> EchoReply {
    let addr = SocketAddr::from((server.ip(), PORT));
    wait::until(T * 2, &format!("{addr} to answer {}", client.uid()), || {
        client
            .netns()
            .run(|| echo::tcp_request(addr, line, T))
            .unwrap()
            .ok()
    })
}

fn cidr(s: &str) -> Ipv4Cidr {
    s.parse().unwrap()
}

#[test]
fn pods_reach_each_other_on_a_node_and_across_nodes_and_teardown_is_complete() {
    let lab = Lab::builder()
        .nodes(2)
        .peer_routes(false)
        .build()
        .expect("lab");
    // The agent turns forwarding on where it is off.
    let off = lab.node(1).netns().run(|| std::fs::write(IP_FORWARD, "0"));
    off.unwrap().unwrap();
    let (n0, n1) = (NodeNet::new(&lab, 0), NodeNet::new(&lab, 1));
    let fwd = lab
        .node(1)
        .netns()
        .run(|| std::fs::read_to_string(IP_FORWARD));
    assert_eq!(fwd.unwrap().unwrap().trim(), "1");
    let a = n0.create("a");
    let b = n0.create("b");
    let c = n1.create("c");
    assert_eq!(
        a.ip(),
        Ipv4Addr::new(10, 244, 0, 2),
        "first after the gateway"
    );
    assert_eq!(b.ip(), Ipv4Addr::new(10, 244, 0, 3));
    assert_eq!(c.ip(), Ipv4Addr::new(10, 244, 1, 2));

    // The dataplane's discovery finds the host veths.
    let found = n0.in_node(|_| netif::with_prefix("lxc").unwrap());
    let names: Vec<&str> = found.iter().map(|i| i.name.as_str()).collect();
    assert!(
        names.contains(&a.host_ifname()) && names.contains(&b.host_ifname()),
        "{names:?}"
    );
    assert_eq!(a.host_ifname().len(), 15);
    // The pod MTU is the uplink's.
    let uplink = n0.in_node(|_| Netlink::open().unwrap().link("eth0").unwrap().unwrap().mtu);
    let pod_mtu = a
        .netns()
        .run(|| Netlink::open().unwrap().link("eth0").unwrap().unwrap().mtu);
    assert_eq!((n0.net.mtu(), pod_mtu.unwrap()), (uplink, uplink));

    n0.spawn_echo(&a, "a");
    let reply = request(&b, &a, "same node");
    assert_eq!(
        (reply.name.as_str(), reply.line.as_str()),
        ("a", "same node")
    );
    assert_eq!(reply.client.ip(), b.ip(), "source preserved on the node");

    // No route to node 0's pods from node 1 yet: refused at once.
    let addr = SocketAddr::from((a.ip(), PORT));
    let before = c.netns().run(|| echo::tcp_request(addr, "x", T)).unwrap();
    assert!(before.is_err(), "reached {addr} without routes: {before:?}");

    let (ul0, ul1) = (lab.node(0).addr(), lab.node(1).addr());
    let r0 = n0.in_node(|_| Routes::default().sync(&[(cidr("10.244.1.0/24"), ul1)]));
    let r1 = n1.in_node(|_| Routes::default().sync(&[(cidr("10.244.0.0/24"), ul0)]));
    for r in [r0.unwrap(), r1.unwrap()] {
        assert_eq!(r.upserted.len(), 1, "{r:?}");
        assert!(r.errors.is_empty() && r.conflicts.is_empty(), "{r:?}");
    }
    let reply = request(&c, &a, "other node");
    assert_eq!(reply.client.ip(), c.ip(), "source preserved across nodes");
    let udp = c
        .netns()
        .run(|| echo::udp_request(addr, "u", T))
        .unwrap()
        .unwrap();
    assert_eq!(udp.client.ip(), c.ip());

    // A second sync changes nothing; a foreign route is never touched.
    let again = n0.in_node(|_| Routes::default().sync(&[(cidr("10.244.1.0/24"), ul1)]));
    assert!(again.unwrap().upserted.is_empty());
    let foreign = Route {
        dst: cidr("10.244.7.0/24"),
        gateway: Some(ul1),
        oif: None,
        scope_link: false,
        protocol: 4, // static, as `ip route add` makes it
    };
    n0.in_node(|_| Netlink::open().unwrap().replace_route(&foreign).unwrap());
    let report = n0
        .in_node(|_| {
            Routes::default().sync(&[
                (cidr("10.244.1.0/24"), ul1),
                (cidr("10.244.7.0/24"), lab.node(1).addr()),
            ])
        })
        .unwrap();
    assert_eq!(report.conflicts.len(), 1, "{report:?}");
    assert!(n0
        .routes()
        .iter()
        .any(|r| r.dst == foreign.dst && r.protocol == 4));

    // Teardown: every link, route, file and address goes; twice is fine.
    let files = PodFiles {
        hosts: "127.0.0.1\tlocalhost\n".into(),
        resolv_conf: String::new(),
        hostname: "a".into(),
    };
    let files_dir = a.write_files(&n0.net, &files).unwrap();
    assert!(files_dir.join("hosts").exists());
    n0.stop_procs();
    let gone: Vec<(String, PathBuf, Ipv4Addr)> = [&a, &b]
        .iter()
        .map(|s| {
            (
                s.host_ifname().to_owned(),
                s.netns_path().to_owned(),
                s.ip(),
            )
        })
        .collect();
    for sb in [&a, &b] {
        for _ in 0..2 {
            n0.in_node(|n| Sandbox::teardown(n, sb.uid())).unwrap();
        }
    }
    let synced = n0.in_node(|_| Routes::default().sync(&[])).unwrap();
    assert_eq!(synced.removed, vec![cidr("10.244.1.0/24")]);
    let links = n0.in_node(|_| netif::list().unwrap());
    let routes = n0.routes();
    for (ifname, netns, ip) in &gone {
        assert!(!links.iter().any(|l| &l.name == ifname), "{ifname} left");
        assert!(
            !routes.iter().any(|r| r.dst.contains(*ip)),
            "route to {ip} left"
        );
        assert!(!netns.exists(), "{} left", netns.display());
    }
    assert!(
        !routes.iter().any(|r| r.protocol == NODE_ROUTE_PROTOCOL),
        "{routes:?}"
    );
    assert!(
        routes.iter().any(|r| r.dst == foreign.dst),
        "foreign route removed"
    );
    assert!(!files_dir.exists());
    assert!(n0.net.ipam().allocations().unwrap().is_empty());
}

#[test]
fn ipam_and_sandboxes_survive_an_agent_restart() {
    let lab = Lab::builder()
        .nodes(1)
        .peer_routes(false)
        .build()
        .expect("lab");
    let n0 = NodeNet::new(&lab, 0);
    let a = n0.create("a");
    let b = n0.create("b");
    n0.spawn_echo(&a, "a");
    assert_eq!(request(&b, &a, "before").client.ip(), b.ip());

    // "Restart": a new PodNetwork over the same state re-adopts both.
    let restarted = NodeNet::open(lab.node(0), &n0.cfg);
    let again = lab.node(0).netns().run(|| {
        let mut uids = restarted.list().unwrap();
        uids.retain(|u| u.starts_with(lab.prefix()));
        let a2 = Sandbox::open(&restarted, a.uid())
            .unwrap()
            .expect("a re-adopted");
        let fresh = Sandbox::create(&restarted, &n0.uid("c")).unwrap();
        (uids, a2, fresh)
    });
    n0.uids.lock().unwrap().push(n0.uid("c"));
    let (uids, a2, c) = again.unwrap();
    assert_eq!(uids, [a.uid(), b.uid()]);
    assert_eq!(
        (a2.ip(), a2.host_ifname(), a2.host_index()),
        (a.ip(), a.host_ifname(), a.host_index())
    );
    assert!(
        ![a.ip(), b.ip()].contains(&c.ip()),
        "{} handed out twice",
        c.ip()
    );
    // Nothing was disturbed: the old connection path still works.
    assert_eq!(request(&b, &a, "after").client.ip(), b.ip());

    // A lost host veth: open says so, create repairs it.
    let host = a.host_ifname().to_owned();
    n0.in_node(|_| {
        let mut nl = Netlink::open().unwrap();
        let link = nl.link(&host).unwrap().unwrap();
        nl.del_link(link.index).unwrap();
    });
    let opened = n0.in_node(|n| Sandbox::open(n, a.uid()));
    assert!(
        matches!(opened, Err(SandboxError::Incomplete { .. })),
        "{opened:?}"
    );
    let repaired = n0.in_node(|n| Sandbox::create(n, a.uid())).unwrap();
    assert_eq!(repaired.ip(), a.ip(), "same address after repair");
    assert_eq!(request(&b, &a, "repaired").client.ip(), b.ip());
    assert!(Path::new(a.netns_path()).exists());
}
