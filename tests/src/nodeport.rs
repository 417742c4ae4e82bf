//! A two-node lab with NodePort / externalIP Services in front of
//! `skiff-echo` backends on both nodes, an external client on the underlay,
//! and the real agent on each node: the fixture of the NodePort root tests.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::agent::Agent;
use crate::bpfmaps::PinnedMaps;
use crate::echo::{self, EchoReply};
use crate::lab::{ExternalClient, Lab, Pod, Proc};
use crate::manifests::{self, ManifestDir, Proto};
use crate::wait;

/// Where `skiff-echo` listens in the backends.
pub const TARGET_PORT: u16 = 8080;
/// Timeout of one request.
pub const REQ: Duration = Duration::from_secs(2);
/// How long the agents may take to program a change.
pub const SYNC: Duration = Duration::from_secs(30);
/// The externalIP of the `ext` Service (routed by the client via node 0).
pub const EXTERNAL_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

/// One Service of the fixture.
#[derive(Debug, Clone, Copy)]
pub struct Svc {
    pub name: &'static str,
    pub cluster_ip: Ipv4Addr,
    /// Service port (TCP and UDP).
    pub port: u16,
    /// nodePort (TCP and UDP), 0 for none.
    pub node_port: u16,
    /// Indices into [`NodePortLab::backends`].
    pub endpoints: &'static [usize],
    pub local: bool,
    pub affinity_s: u32,
    pub external_ip: bool,
}

const fn svc(name: &'static str, last: u8, node_port: u16, endpoints: &'static [usize]) -> Svc {
    Svc {
        name,
        cluster_ip: Ipv4Addr::new(10, 96, 1, last),
        port: 80,
        node_port,
        endpoints,
        local: false,
        affinity_s: 0,
        external_ip: false,
    }
}

/// Backends 0 runs on node 0; 1 and 2 on node 1.
pub const NODEPORT: Svc = svc("np", 1, 30080, &[0, 1]);
pub const LOCAL: Svc = Svc {
    local: true,
    ..svc("local", 2, 30090, &[0, 1])
};
pub const LOCAL_ONE: Svc = Svc {
    local: true,
    ..svc("localone", 3, 30091, &[0])
};
pub const AFFINITY: Svc = Svc {
    affinity_s: 60,
    ..svc("aff", 4, 30100, &[0, 1, 2])
};
pub const EXTERNAL: Svc = Svc {
    external_ip: true,
    ..svc("ext", 5, 0, &[0, 1])
};
pub const ALL: [Svc; 5] = [NODEPORT, LOCAL, LOCAL_ONE, AFFINITY, EXTERNAL];

/// The fixture. Fields drop in order: agents, echo servers, manifests, lab.
#[derive(Debug)]
pub struct NodePortLab {
    /// The agent of node `i`, `None` while stopped.
    pub agents: Vec<Option<Agent>>,
    extra: Vec<String>,
    /// XDP_PASS links on the bridge ports (see `Lab::underlay_like_nics`).
    _xdp_pass: Vec<std::os::fd::OwnedFd>,
    pub echo: Vec<Proc>,
    pub manifests: ManifestDir,
    /// Pinned maps of node 0 and node 1.
    pub maps: Vec<PinnedMaps>,
    /// `backend-0` on node 0, `backend-1` and `backend-2` on node 1.
    pub backends: Vec<Pod>,
    pub client: ExternalClient,
    pub lab: Lab,
}

impl NodePortLab {
    /// Builds the lab, starts echo servers and agents (`extra` agent
    /// arguments), writes every Service of [`ALL`] and waits until each
    /// NodePort answers on both nodes. Panics with the reason on failure.
    pub fn start(echo_bin: &Path, extra: &[&str]) -> Self {
        let lab = Lab::builder().nodes(2).build().expect("building the lab");
        let xdp_pass = lab.underlay_like_nics().expect("underlay NIC emulation");
        let backends: Vec<Pod> = [0, 1, 1]
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                lab.node(n)
                    .add_pod(&format!("backend-{i}"))
                    .expect("adding a backend pod")
            })
            .collect();
        let client = lab.add_external_client(0).expect("external client");
        client
            .route_via(EXTERNAL_IP, lab.node(0).addr())
            .expect("route to the externalIP");
        let echo = backends
            .iter()
            .map(|pod| {
                let mut cmd = Command::new(echo_bin);
                cmd.args(["--port", &TARGET_PORT.to_string(), "--name", pod.name()])
                    .stdout(Stdio::null());
                pod.netns().spawn(cmd).expect("starting skiff-echo")
            })
            .collect();
        // Direct requests, from the client and from the other node: echo
        // servers up, and the neighbour entries XDP forwards with resolved
        // (node ↔ node, node ↔ client).
        for pod in &backends {
            let addr = SocketAddr::from((pod.ip(), TARGET_PORT));
            let node = lab.node(pod.node_index());
            let other = lab.node(1 - pod.node_index());
            client
                .route_via(pod.ip(), node.addr())
                .expect("route to a pod");
            wait::until(SYNC, &format!("{} to answer directly", pod.name()), || {
                in_ns(&client, &|| echo::tcp_request(addr, "up", REQ)).ok()
            });
            wait::until(
                SYNC,
                &format!("{} to answer {}", pod.name(), other.name()),
                || {
                    other
                        .netns()
                        .run(|| echo::tcp_request(addr, "up", REQ))
                        .ok()?
                        .ok()
                },
            );
        }
        let manifests =
            ManifestDir::create(&format!("{}-manifests", lab.prefix())).expect("manifests dir");
        let maps = lab
            .nodes()
            .iter()
            .map(|n| PinnedMaps::new(n.bpffs_dir()))
            .collect();
        let mut fx = Self {
            agents: Vec::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _xdp_pass: xdp_pass,
            echo,
            manifests,
            maps,
            backends,
            client,
            lab,
        };
        for s in ALL {
            fx.write_service(&s);
        }
        for i in 0..2 {
            fx.agents.push(None);
            fx.start_agent(i);
        }
        for i in 0..2 {
            fx.wait_frontend(i, NODEPORT.node_port, Proto::Tcp, Some(2));
            let answered = wait::try_until(Duration::from_secs(10), || {
                fx.tcp(i, NODEPORT.node_port, "first").ok()
            });
            if let Err(waited) = answered {
                let last = fx.tcp(i, NODEPORT.node_port, "first");
                panic!(
                    "NodePort on node {i} did not answer within {waited:?} (last: {last:?}); \
                     stats: node 0 {:?}, node 1 {:?}",
                    fx.maps[0].stats().map(|s| s.to_string()),
                    fx.maps[1].stats().map(|s| s.to_string())
                );
            }
        }
        fx
    }

    /// (Re)starts the agent of node `i`.
    pub fn start_agent(&mut self, i: usize) {
        self.start_agent_with(i, &[]);
    }

    /// (Re)starts the agent of node `i` with `more` arguments.
    pub fn start_agent_with(&mut self, i: usize, more: &[&str]) {
        let node = self.lab.node(i);
        let ip = node.addr().to_string();
        let mut args = vec!["--node-ip", ip.as_str(), "--ct-gc-interval-ms", "500"];
        args.extend(self.extra.iter().map(String::as_str));
        args.extend(more);
        let agent = Agent::start_with(node, &self.manifests.path(), &args).expect("agent");
        self.agents[i] = Some(agent);
    }

    /// SIGTERMs the agent of node `i`; returns whether it exited 0.
    pub fn stop_agent(&mut self, i: usize) -> bool {
        let agent = self.agents[i].take().expect("agent running");
        agent.terminate().is_some_and(|s| s.success())
    }

    /// The running agent of node `i`.
    pub fn agent(&self, i: usize) -> &Agent {
        self.agents[i].as_ref().expect("agent running")
    }

    /// A long-lived TCP connection from the external client to `addr`.
    pub fn session(&self, addr: SocketAddr) -> io::Result<echo::TcpSession> {
        in_ns(&self.client, &|| echo::TcpSession::connect(addr, REQ))
    }

    /// Writes Service `s` and its EndpointSlice (file `<name>.yaml`).
    pub fn write_service(&self, s: &Svc) {
        let mut port = json!({"name": "tcp", "port": s.port, "targetPort": TARGET_PORT,
                              "protocol": "TCP"});
        let mut uport = json!({"name": "udp", "port": s.port, "targetPort": TARGET_PORT,
                               "protocol": "UDP"});
        let mut spec = json!({
            "type": if s.node_port != 0 { "NodePort" } else { "ClusterIP" },
            "clusterIP": s.cluster_ip.to_string(),
            "clusterIPs": [s.cluster_ip.to_string()],
        });
        if s.node_port != 0 {
            port["nodePort"] = json!(s.node_port);
            uport["nodePort"] = json!(s.node_port);
        }
        spec["ports"] = json!([port, uport]);
        if s.local {
            spec["externalTrafficPolicy"] = json!("Local");
        }
        if s.affinity_s != 0 {
            spec["sessionAffinity"] = json!("ClientIP");
            spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": s.affinity_s}});
        }
        if s.external_ip {
            spec["externalIPs"] = json!([EXTERNAL_IP.to_string()]);
        }
        let eps: Vec<Value> = s
            .endpoints
            .iter()
            .map(|&i| {
                let pod = &self.backends[i];
                json!({"addresses": [pod.ip().to_string()],
                       "nodeName": self.lab.node(pod.node_index()).name(),
                       "conditions": {"ready": true, "serving": true, "terminating": false}})
            })
            .collect();
        let docs = [
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": s.name, "namespace": "default"}, "spec": spec}),
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                   "metadata": {"name": format!("{}-1", s.name), "namespace": "default",
                                "labels": {"kubernetes.io/service-name": s.name}},
                   "addressType": "IPv4",
                   "ports": [{"name": "tcp", "port": TARGET_PORT, "protocol": "TCP"},
                             {"name": "udp", "port": TARGET_PORT, "protocol": "UDP"}],
                   "endpoints": eps}),
        ];
        self.manifests
            .write(&format!("{}.yaml", s.name), &manifests::documents(&docs))
            .expect("writing manifests");
    }

    /// Deletes Service `s` from the manifests.
    pub fn delete_service(&self, s: &Svc) {
        self.manifests
            .remove(&format!("{}.yaml", s.name))
            .expect("removing the manifest");
    }

    /// Waits until node `i` has the external frontend `nodeIP:port/proto`
    /// with `count` backends (`None`: until it is gone).
    pub fn wait_frontend(&self, i: usize, port: u16, proto: Proto, count: Option<u32>) {
        let addr = self.lab.node(i).addr();
        self.wait_external(i, addr, port, proto, count);
    }

    /// Like [`Self::wait_frontend`] for any external address.
    pub fn wait_external(
        &self,
        i: usize,
        addr: Ipv4Addr,
        port: u16,
        proto: Proto,
        count: Option<u32>,
    ) {
        let what = format!("node {i}: external frontend {addr}:{port}/{proto:?} count {count:?}");
        wait::until(SYNC, &what, || {
            for a in self.agents.iter().flatten() {
                a.assert_running();
            }
            let fe = self.maps[i]
                .external_frontend(addr, port, proto.number())
                .ok()?;
            (fe.map(|f| f.count) == count).then_some(())
        })
    }

    /// `nodeIP:port` of node `i`.
    pub fn node_addr(&self, i: usize, port: u16) -> SocketAddr {
        SocketAddr::from((self.lab.node(i).addr(), port))
    }

    /// One TCP request from the external client to node `i` on `port`.
    pub fn tcp(&self, i: usize, port: u16, line: &str) -> io::Result<EchoReply> {
        self.tcp_to(self.node_addr(i, port), line)
    }

    /// One TCP request from the external client to `addr`.
    pub fn tcp_to(&self, addr: SocketAddr, line: &str) -> io::Result<EchoReply> {
        in_ns(&self.client, &|| echo::tcp_request(addr, line, REQ))
    }

    /// One UDP request (fresh source port) from the external client.
    pub fn udp(&self, i: usize, port: u16, line: &str) -> io::Result<EchoReply> {
        let addr = self.node_addr(i, port);
        in_ns(&self.client, &|| echo::udp_request(addr, line, REQ))
    }

    /// The node a backend (by name) runs on.
    pub fn node_of(&self, backend: &str) -> usize {
        self.backends
            .iter()
            .find(|p| p.name() == backend)
            .map(|p| p.node_index())
            .unwrap_or_else(|| panic!("unknown backend {backend}"))
    }
}

/// Runs `f` inside the external client's netns.
pub fn in_ns<T: Send>(
    client: &ExternalClient,
    f: &(dyn Fn() -> io::Result<T> + Sync),
) -> io::Result<T> {
    client.netns().run(f).map_err(io::Error::other)?
}
