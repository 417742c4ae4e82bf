//! tcpSocket and httpGet probes, and the worker, against real listeners on
//! loopback (host set to 127.0.0.1, as a pod IP would be reached).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerPort, HTTPGetAction, HTTPHeader, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn target(ports: Vec<ContainerPort>) -> ProbeTarget {
    ProbeTarget {
        pod_ip: LO,
        ports,
        exec: None,
    }
}

fn tcp(port: u16) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            host: None,
            port: IntOrString::Int(port.into()),
        }),
        ..Probe::default()
    }
}

/// A port with nothing listening (bound then closed).
async fn closed_port() -> u16 {
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    l.local_addr().unwrap().port()
}

/// An HTTP server answering `status` and sending back the request head.
async fn http_server(status: u16) -> (u16, tokio::sync::mpsc::Receiver<String>) {
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let _ = tx.send(String::from_utf8_lossy(&head).into_owned()).await;
            let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    (port, rx)
}

fn http(port: IntOrString, path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            port,
            path: Some(path.into()),
            http_headers: Some(vec![HTTPHeader {
                name: "X-Check".into(),
                value: "yes".into(),
            }]),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    }
}

#[tokio::test]
async fn tcp_probe_succeeds_on_a_listener_and_fails_on_a_closed_port() {
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    let p = Prober::new();
    assert_eq!(
        p.check(&tcp(port), &target(vec![])).await,
        ProbeResult::Success
    );
    let closed = closed_port().await;
    match p.check(&tcp(closed), &target(vec![])).await {
        ProbeResult::Failure(m) => assert!(m.contains("refused"), "{m}"),
        r => panic!("{r:?}"),
    }
}

#[tokio::test]
async fn http_probe_by_named_port_sends_headers_and_judges_the_status() {
    let (ok_port, mut heads) = http_server(204).await;
    let ports = vec![ContainerPort {
        name: Some("web".into()),
        container_port: ok_port.into(),
        ..ContainerPort::default()
    }];
    let p = Prober::new();
    let probe = http(IntOrString::String("web".into()), "/healthz");
    assert_eq!(p.check(&probe, &target(ports)).await, ProbeResult::Success);
    let head = heads.recv().await.unwrap();
    assert!(head.starts_with("GET /healthz HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("Host: 127.0.0.1:{ok_port}\r\n")),
        "{head}"
    );
    assert!(head.contains("User-Agent: kube-probe/1.32\r\n"), "{head}");
    assert!(head.contains("X-Check: yes\r\n"), "{head}");

    let (bad_port, _h) = http_server(503).await;
    let r = p
        .check(
            &http(IntOrString::Int(bad_port.into()), "/"),
            &target(vec![]),
        )
        .await;
    assert_eq!(
        r,
        ProbeResult::Failure("HTTP probe failed with statuscode: 503".into())
    );
    let (redirect, _h) = http_server(302).await;
    let r = p
        .check(
            &http(IntOrString::Int(redirect.into()), "/"),
            &target(vec![]),
        )
        .await;
    assert_eq!(r, ProbeResult::Success, "3xx is success");
}

#[tokio::test]
async fn http_probe_times_out_on_a_silent_server() {
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    let mut probe = http(IntOrString::Int(port.into()), "/");
    probe.timeout_seconds = Some(1);
    let t0 = tokio::time::Instant::now();
    match Prober::new().check(&probe, &target(vec![])).await {
        ProbeResult::Failure(m) => assert!(m.contains("deadline"), "{m}"),
        r => panic!("{r:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(3));
    drop(l);
}

#[tokio::test]
async fn readiness_worker_follows_a_listener_coming_and_going() {
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let mut probe = tcp(port);
    probe.period_seconds = Some(1);
    probe.failure_threshold = Some(1);
    let (mut rx, task) = spawn_worker(
        ProbeKind::Readiness,
        probe,
        target(vec![]),
        Arc::new(Prober::new()),
    );
    assert_eq!(rx.borrow().health, Health::Failure);
    let deadline = Duration::from_secs(10);
    tokio::time::timeout(
        deadline,
        rx.wait_for(|s| s.probes >= 1 && s.message.is_some()),
    )
    .await
    .unwrap()
    .unwrap();
    let listener = TcpListener::bind((LO, port)).await.unwrap();
    tokio::time::timeout(deadline, rx.wait_for(|s| s.health == Health::Success))
        .await
        .expect("ready once something listens")
        .unwrap();
    drop(listener);
    tokio::time::timeout(deadline, rx.wait_for(|s| s.health == Health::Failure))
        .await
        .expect("unready once the listener is gone")
        .unwrap();
    drop(rx);
    tokio::time::timeout(deadline, task)
        .await
        .expect("the worker ends when its receivers are dropped")
        .unwrap();
}
