//! A one-node lab with a ClusterIP Service in front of three `skiff-echo`
//! backends, a client pod and the real agent: the fixture of the ClusterIP
//! root tests.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use skiff_common::ServiceValue;

use crate::agent::Agent;
use crate::bpfmaps::PinnedMaps;
use crate::echo::{self, EchoReply, TcpSession};
use crate::lab::{Lab, Pod, Proc};
use crate::manifests::{self, EndpointState, ManifestDir, PortSpec, Proto};
use crate::wait;

/// The Service's ClusterIP.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The Service port (TCP and UDP).
pub const PORT: u16 = 80;
/// Where `skiff-echo` listens in the backends.
pub const TARGET_PORT: u16 = 8080;
/// The Service's name and the manifest file holding it.
pub const SERVICE: &str = "echo";
const FILE: &str = "echo.yaml";
/// Timeout of one request.
pub const REQ: Duration = Duration::from_secs(3);
/// How long the agent may take to program a change.
pub const SYNC: Duration = Duration::from_secs(30);

/// The fixture. Fields drop in order: agent, echo servers, manifests, lab.
#[derive(Debug)]
pub struct ClusterIpLab {
    agent: Option<Agent>,
    echo: Vec<Proc>,
    pub manifests: ManifestDir,
    pub maps: PinnedMaps,
    /// Three pods running `skiff-echo --name <pod name>`.
    pub backends: Vec<Pod>,
    pub client: Pod,
    pub lab: Lab,
}

impl ClusterIpLab {
    /// Builds the lab, starts the echo servers and the agent, and waits
    /// until the Service answers. Panics with the reason on failure.
    pub fn start(echo_bin: &Path) -> Self {
        let lab = Lab::builder().nodes(1).build().expect("building the lab");
        let node = lab.node(0);
        let backends: Vec<Pod> = (0..3)
            .map(|i| {
                node.add_pod(&format!("backend-{i}"))
                    .expect("adding a backend pod")
            })
            .collect();
        let client = node.add_pod("client").expect("adding the client pod");
        let echo = backends
            .iter()
            .map(|pod| {
                let mut cmd = Command::new(echo_bin);
                cmd.args(["--port", &TARGET_PORT.to_string(), "--name", pod.name()])
                    .stdout(Stdio::null());
                pod.netns().spawn(cmd).expect("starting skiff-echo")
            })
            .collect();
        for pod in &backends {
            let addr = SocketAddr::from((pod.ip(), TARGET_PORT));
            wait::until(SYNC, &format!("{} to listen", pod.name()), || {
                in_pod(&client, || echo::tcp_request(addr, "up", REQ)).ok()
            });
        }
        let manifests =
            ManifestDir::create(&format!("{}-manifests", lab.prefix())).expect("manifests dir");
        let mut fx = Self {
            agent: None,
            echo,
            manifests,
            maps: PinnedMaps::new(node.bpffs_dir()),
            backends,
            client,
            lab,
        };
        let all = vec![EndpointState::Ready; 3];
        fx.write_service(&all);
        fx.start_agent();
        fx.wait_count(Proto::Tcp, 3);
        fx.wait_count(Proto::Udp, 3);
        let client = fx.client.clone();
        wait::until(SYNC, "the first answer through the VIP", || {
            fx.tcp(&client, "first").ok()
        });
        fx
    }

    fn ports() -> Vec<PortSpec> {
        [("tcp", Proto::Tcp), ("udp", Proto::Udp)]
            .into_iter()
            .map(|(name, proto)| PortSpec {
                name: name.into(),
                port: PORT,
                target_port: TARGET_PORT,
                proto,
            })
            .collect()
    }

    /// Writes the Service and its EndpointSlice, backend `i` in `states[i]`
    /// (backends beyond `states.len()` are left out of the slice).
    pub fn write_service(&self, states: &[EndpointState]) {
        let ports = Self::ports();
        let eps: Vec<(Ipv4Addr, EndpointState)> = self
            .backends
            .iter()
            .zip(states)
            .map(|(p, s)| (p.ip(), *s))
            .collect();
        let text = manifests::documents(&[
            manifests::service(SERVICE, VIP, &ports),
            manifests::endpoint_slice(SERVICE, &ports, &eps),
        ]);
        self.manifests
            .write(FILE, &text)
            .expect("writing manifests");
    }

    /// Deletes the Service (and its slice) from the manifests.
    pub fn delete_service(&self) {
        self.manifests.remove(FILE).expect("removing the manifest");
    }

    /// (Re)starts the agent in the node.
    pub fn start_agent(&mut self) {
        let agent =
            Agent::start(self.lab.node(0), &self.manifests.path()).expect("starting the agent");
        self.agent = Some(agent);
    }

    /// The running agent; panics if none was started.
    pub fn agent(&self) -> &Agent {
        self.agent.as_ref().expect("agent started")
    }

    /// SIGTERM the agent and wait for it; returns whether it exited 0.
    pub fn stop_agent(&mut self) -> bool {
        let agent = self.agent.take().expect("agent started");
        let status = agent.terminate();
        status.is_some_and(|s| s.success())
    }

    /// Waits until the frontend `VIP:PORT/proto` has `count` backends.
    pub fn wait_count(&self, proto: Proto, count: u32) -> ServiceValue {
        let what = format!(
            "SERVICES {VIP}:{PORT}/{} count {count} in {}",
            proto.k8s(),
            self.maps.dir().display()
        );
        wait::until(SYNC, &what, || {
            if let Some(agent) = &self.agent {
                agent.assert_running();
            }
            let fe = self.maps.frontend(VIP, PORT, proto.number()).ok()??;
            (fe.count == count).then_some(fe)
        })
    }

    /// `VIP:PORT`.
    pub fn vip(&self) -> SocketAddr {
        SocketAddr::from((VIP, PORT))
    }

    /// One short TCP request from `pod` to the VIP.
    pub fn tcp(&self, pod: &Pod, line: &str) -> io::Result<EchoReply> {
        let vip = self.vip();
        in_pod(pod, || echo::tcp_request(vip, line, REQ))
    }

    /// One UDP request (fresh source port) from `pod` to the VIP.
    pub fn udp(&self, pod: &Pod, line: &str) -> io::Result<EchoReply> {
        let vip = self.vip();
        in_pod(pod, || echo::udp_request(vip, line, REQ))
    }

    /// A long-lived TCP connection from `pod` to the VIP.
    pub fn session(&self, pod: &Pod) -> io::Result<TcpSession> {
        let vip = self.vip();
        in_pod(pod, || TcpSession::connect(vip, REQ))
    }

    /// Backend names, in order.
    pub fn backend_names(&self) -> Vec<String> {
        self.backends.iter().map(|p| p.name().to_owned()).collect()
    }

    /// The echo server processes (one per backend).
    pub fn echo_servers(&self) -> &[Proc] {
        &self.echo
    }

    /// The node's bpffs pin directory.
    pub fn pin_dir(&self) -> PathBuf {
        self.lab.node(0).bpffs_dir()
    }
}

/// Runs `f` inside `pod`'s netns.
pub fn in_pod<T: Send>(pod: &Pod, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    pod.netns().run(f).map_err(io::Error::other)?
}
