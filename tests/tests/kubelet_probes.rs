//! Root: tcpSocket and httpGet probes reach a pod by its IP from the node's
//! netns, as the agent runs them: a lab node, a pod sandbox (netns, veth,
//! address) made by the agent's sandbox code, `skiff-echo` and a small HTTP
//! responder inside the pod.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use skiff_agent::kubelet::probe::{ProbeResult, ProbeTarget, Prober};
use skiff_agent::sandbox::{Ipv4Cidr, NetworkConfig, PodNetwork, Sandbox};
use skiff_tests::lab::Lab;
use skiff_tests::wait;

const T: Duration = Duration::from_secs(10);

/// Kills the echo server and tears the sandbox down, even on panic.
struct Cleanup<'a> {
    lab: &'a Lab,
    net: &'a PodNetwork,
    uid: String,
    child: Option<Child>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let uid = self.uid.clone();
        let _ = self
            .lab
            .node(0)
            .netns()
            .run(|| Sandbox::teardown(self.net, &uid));
    }
}

fn tcp(port: IntOrString) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction { host: None, port }),
        ..Probe::default()
    }
}

#[test]
fn tcp_and_http_probes_reach_the_pod_ip_from_the_node() {
    let lab = Lab::builder().nodes(1).build().expect("lab");
    let node = lab.node(0);
    let mut cfg = NetworkConfig::new(Ipv4Cidr::new(node.pod_cidr(), 24).unwrap(), node.addr());
    cfg.state_dir = std::env::temp_dir().join(format!("{}-probes", lab.prefix()));
    let net = {
        let cfg = cfg.clone();
        node.netns().run(|| PodNetwork::new(cfg)).unwrap().unwrap()
    };
    let uid = format!("{}-web", lab.prefix());
    let sb = node
        .netns()
        .run(|| Sandbox::create(&net, &uid))
        .unwrap()
        .unwrap();
    let mut cleanup = Cleanup {
        lab: &lab,
        net: &net,
        uid: uid.clone(),
        child: None,
    };

    // skiff-echo on 8080 inside the pod, as a container process would run.
    let ns = File::open(sb.netns_path()).unwrap();
    let fd = ns.as_raw_fd();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff-echo"));
    cmd.args(["--port", "8080", "--name", "web"]);
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
    cleanup.child = Some(cmd.spawn().unwrap());

    // An HTTP responder on 8081 in the pod: the socket is made in the pod
    // netns and keeps it when served from this process's threads.
    let http = sb
        .netns()
        .run(|| std::net::TcpListener::bind(("0.0.0.0", 8081)))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        for mut s in http.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });

    let target = ProbeTarget {
        pod_ip: sb.ip(),
        ports: vec![ContainerPort {
            name: Some("echo".into()),
            container_port: 8080,
            ..ContainerPort::default()
        }],
        exec: None,
    };
    let http_probe = Probe {
        http_get: Some(HTTPGetAction {
            port: IntOrString::Int(8081),
            path: Some("/healthz".into()),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    };
    // Probes run where the agent runs: a thread in the node's netns.
    let results = node
        .netns()
        .run(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let p = Prober::new();
            let echo = wait::until(T, "the pod's echo server to accept", || {
                let r = rt.block_on(p.check(&tcp(IntOrString::String("echo".into())), &target));
                r.is_success().then_some(r)
            });
            let closed = rt.block_on(p.check(&tcp(IntOrString::Int(8082)), &target));
            let http = rt.block_on(p.check(&http_probe, &target));
            (echo, closed, http)
        })
        .unwrap();
    assert_eq!(results.0, ProbeResult::Success);
    match &results.1 {
        ProbeResult::Failure(m) => {
            assert!(
                m.contains(&format!("{}:8082", sb.ip())) && m.contains("refused"),
                "{m}"
            )
        }
        r => panic!("a closed port in the pod: {r:?}"),
    }
    assert_eq!(results.2, ProbeResult::Success);
    drop(cleanup);
}
