//! The server on loopback with a fake pod manager and real CRI log files.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::runtime::logs::{LogWriter, Stream};

struct Pods {
    running: AtomicBool,
}

impl PodLookup for Pods {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        (namespace == "default" && name == "web").then(|| PodInfo {
            uid: "u1".into(),
            containers: vec![
                ContainerInfo {
                    name: "app".into(),
                    restart_count: 1,
                    running: self.running.load(Ordering::SeqCst),
                    stdin: false,
                },
                ContainerInfo {
                    name: "sidecar".into(),
                    restart_count: 0,
                    running: false,
                    stdin: false,
                },
            ],
        })
    }
}

struct Stats;

impl StatsSource for Stats {
    fn container_usage(&self) -> Vec<ContainerUsage> {
        vec![ContainerUsage {
            namespace: "default".into(),
            pod: "web".into(),
            container: "app".into(),
            cpu_usage_seconds: 0.25,
            memory_working_set_bytes: 1 << 20,
        }]
    }
}

struct Server {
    addr: std::net::SocketAddr,
    pods: Arc<Pods>,
    writer: Mutex<LogWriter>,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_path_buf();
    let mut old = LogWriter::open(&logs::path(&state, "u1", "app", 0), 1 << 20, 1).unwrap();
    old.write_chunk(Stream::Stdout, b"first run\n", (10, 0))
        .unwrap();
    let mut w = LogWriter::open(&logs::path(&state, "u1", "app", 1), 1 << 20, 1).unwrap();
    w.write_chunk(Stream::Stdout, b"one\ntwo\n", (20, 0))
        .unwrap();
    w.write_chunk(Stream::Stderr, b"three\n", (21, 500))
        .unwrap();
    let pods = Arc::new(Pods {
        running: AtomicBool::new(true),
    });
    let registry = Arc::new(Registry::new());
    registry
        .histogram("skiff_test_seconds", "A test histogram.", &[1.0])
        .observe(0.5);
    let s = KubeletHttp {
        state_dir: state,
        pods: pods.clone(),
        stats: Arc::new(Stats),
        metrics: registry,
        cgroups: None,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, s));
    Server {
        addr,
        pods,
        writer: Mutex::new(w),
        _dir: dir,
    }
}

/// Status and de-chunked body of `GET path`.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("response within 10 s")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head[9..12].parse().unwrap();
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return (code, body.to_string());
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    (code, out)
}

#[tokio::test]
async fn serves_logs_with_kubectl_options() {
    let s = server().await;
    s.pods.running.store(false, Ordering::SeqCst);
    let base = "/containerLogs/default/web/app";
    assert_eq!(get(s.addr, base).await, (200, "one\ntwo\nthree\n".into()));
    assert_eq!(
        get(s.addr, &format!("{base}?tailLines=1")).await.1,
        "three\n"
    );
    assert_eq!(
        get(s.addr, &format!("{base}?tailLines=1&timestamps=true"))
            .await
            .1,
        "1970-01-01T00:00:21.0000005Z three\n"
    );
    assert_eq!(
        get(s.addr, &format!("{base}?previous=true")).await.1,
        "first run\n"
    );
    assert_eq!(
        get(
            s.addr,
            &format!("{base}?sinceTime=1970-01-01T00%3A00%3A21Z")
        )
        .await
        .1,
        "three\n"
    );
    assert_eq!(
        get(s.addr, &format!("{base}?limitBytes=6")).await.1,
        "one\ntw"
    );
    let (code, msg) = get(s.addr, &format!("{base}?sinceSeconds=5&sinceTime=x")).await;
    assert_eq!(code, 400, "{msg}");
    let (code, msg) = get(s.addr, "/containerLogs/default/web/nope").await;
    assert_eq!(code, 404);
    assert!(msg.contains("\"nope\""), "{msg}");
    assert_eq!(get(s.addr, "/containerLogs/default/other/app").await.0, 404);
    let (code, msg) = get(s.addr, "/containerLogs/default/web/sidecar").await;
    assert_eq!(code, 400);
    assert!(msg.contains("is waiting to start"), "{msg}");
}

#[tokio::test]
async fn follow_streams_until_the_container_stops() {
    let s = server().await;
    let addr = s.addr;
    let follower = tokio::spawn(async move {
        get(
            addr,
            "/containerLogs/default/web/app?follow=true&tailLines=1",
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.writer
        .lock()
        .unwrap()
        .write_chunk(Stream::Stdout, b"four\n", (30, 0))
        .unwrap();
    // The response ends only once the container is no longer running.
    assert!(!follower.is_finished());
    s.pods.running.store(false, Ordering::SeqCst);
    let (code, body) = tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .expect("follow ends once the container stopped")
        .unwrap();
    assert_eq!((code, body.as_str()), (200, "three\nfour\n"));
}

#[tokio::test]
async fn metrics_and_healthz() {
    let s = server().await;
    assert_eq!(get(s.addr, "/healthz").await, (200, "ok".into()));
    let (code, text) = get(s.addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(text.contains(
        "container_cpu_usage_seconds_total{container=\"app\",namespace=\"default\",pod=\"web\"} 0.25\n"
    ), "{text}");
    assert!(text.contains(
        "container_memory_working_set_bytes{container=\"app\",namespace=\"default\",pod=\"web\"} 1048576\n"
    ), "{text}");
    assert!(
        text.contains("skiff_test_seconds_bucket{le=\"1\"} 1\n"),
        "{text}"
    );
}

#[test]
fn query_parsing_follows_the_kubelet() {
    let q = parse_query(Some(
        "follow=true&tailLines=10&sinceSeconds=60&timestamps=1",
    ));
    let (o, prev) = log_options(&q, (1000, 7)).unwrap();
    assert!(o.follow && o.timestamps && !prev);
    assert_eq!(
        (o.tail_lines, o.since, o.limit_bytes),
        (Some(10), Some((940, 7)), None)
    );
    for bad in [
        "tailLines=-1",
        "limitBytes=0",
        "sinceSeconds=0",
        "sinceTime=yesterday",
        "tailLines=x",
    ] {
        assert!(
            log_options(&parse_query(Some(bad)), (0, 0)).is_err(),
            "{bad}"
        );
    }
}
