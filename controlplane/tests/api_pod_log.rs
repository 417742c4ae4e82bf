//! `GET pods/{name}/log` proxied to a (fake) kubelet, driven by the real
//! `kubectl logs`: container defaulting, `-c`, `--tail`, `-f`, `--previous`,
//! `--timestamps`, and the errors Kubernetes gives.

mod kube;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use k8s_openapi::api::core::v1::{
    Container, DaemonEndpoint, Node, NodeAddress, NodeDaemonEndpoints, NodeStatus, Pod, PodSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Requests the fake kubelet saw: (path, query).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

const LINES: [&str; 5] = ["one", "two", "three", "four", "five"];

/// A kubelet that serves five lines, honouring the query like the real one.
async fn fake_kubelet(
    State(seen): State<Seen>,
    Path((ns, pod, c)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = q.unwrap_or_default();
    seen.lock()
        .unwrap()
        .push((format!("/containerLogs/{ns}/{pod}/{c}"), q.clone()));
    let has = |kv: &str| q.split('&').any(|x| x == kv);
    let param = |k: &str| {
        q.split('&')
            .find_map(|x| x.strip_prefix(&format!("{k}=")))
            .map(String::from)
    };
    if has("previous=true") {
        if c == "b" {
            return (
                StatusCode::BAD_REQUEST,
                format!("previous terminated container \"b\" in pod \"{pod}\" not found"),
            )
                .into_response();
        }
        return "previous run\n".into_response();
    }
    if has("follow=true") {
        let ticks = futures_util::stream::unfold(0, |i| async move {
            if i == 3 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((
                Ok::<_, Infallible>(Bytes::from(format!("tick {i}\n"))),
                i + 1,
            ))
        });
        return Response::new(Body::from_stream(ticks));
    }
    let tail: usize = param("tailLines").and_then(|t| t.parse().ok()).unwrap_or(5);
    let ts = has("timestamps=true");
    let mut out = format!("[{c}]\n");
    for l in &LINES[5 - tail.min(5)..] {
        if ts {
            out.push_str("2024-01-01T00:00:00Z ");
        }
        out.push_str(l);
        out.push('\n');
    }
    out.into_response()
}

fn pod(name: &str, node: Option<&str>, containers: &[&str]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: node.map(String::from),
            containers: containers
                .iter()
                .map(|c| Container {
                    name: c.to_string(),
                    image: Some("img".into()),
                    ..Container::default()
                })
                .collect(),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    (raw[9..12].parse().unwrap(), raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_through_the_kubelet() {
    let c = kube::start().await;
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(fake_kubelet))
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = c.server.client();
    let node = Node {
        metadata: ObjectMeta {
            name: Some("n1".into()),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    let mut node = client.create(None, &node).await.unwrap();
    node.status = Some(NodeStatus {
        addresses: Some(vec![NodeAddress {
            type_: "InternalIP".into(),
            address: "127.0.0.1".into(),
        }]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: port.into() }),
        }),
        ..NodeStatus::default()
    });
    client.update_status(&node).await.unwrap();
    for p in [
        pod("web", Some("n1"), &["app"]),
        pod("two", Some("n1"), &["a", "b"]),
        pod("pending", None, &["app"]),
    ] {
        client.create(Some("default"), &p).await.unwrap();
    }

    // The only container is the default.
    let out = c.ok(&["logs", "web"]).await;
    assert_eq!(out, "[app]\none\ntwo\nthree\nfour\nfive\n");
    assert_eq!(
        seen.lock().unwrap().last().unwrap(),
        &("/containerLogs/default/web/app".to_string(), String::new())
    );
    let out = c.ok(&["logs", "two", "-c", "b", "--tail=2"]).await;
    assert_eq!(out, "[b]\nfour\nfive\n");
    assert_eq!(seen.lock().unwrap().last().unwrap().1, "tailLines=2");
    let out = c.ok(&["logs", "web", "--timestamps", "--tail=1"]).await;
    assert_eq!(out, "[app]\n2024-01-01T00:00:00Z five\n");
    let out = c.ok(&["logs", "web", "--previous"]).await;
    assert_eq!(out, "previous run\n");
    let out = c.kubectl(&["logs", "two", "-c", "b", "--previous"]).await;
    assert!(
        !out.ok
            && out
                .stderr
                .contains("previous terminated container \"b\" in pod \"two\" not found"),
        "{out:?}"
    );
    // -f streams until the kubelet ends the body (the container ended).
    let out = c.ok(&["logs", "-f", "web"]).await;
    assert_eq!(out, "tick 0\ntick 1\ntick 2\n");
    assert!(seen
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .1
        .contains("follow=true"));

    let out = c.kubectl(&["logs", "pending"]).await;
    assert!(
        !out.ok
            && out
                .stderr
                .contains("pod pending does not have a host assigned"),
        "{out:?}"
    );
    let out = c.kubectl(&["logs", "nope"]).await;
    assert!(
        !out.ok && out.stderr.contains("pods \"nope\" not found"),
        "{out:?}"
    );

    // Without kubectl's client-side defaulting: the server's rule.
    let addr = c.server.local_addr();
    let (code, body) = raw_get(addr, "/api/v1/namespaces/default/pods/two/log").await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("a container name must be specified for pod two, choose one of: [a b]"),
        "{body}"
    );
    let (code, body) = raw_get(addr, "/api/v1/namespaces/default/pods/two/log?container=zz").await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("\"kind\":\"Status\""),
        "errors are Status objects: {body}"
    );
}
