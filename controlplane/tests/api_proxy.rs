//! `pods/proxy` and `services/proxy` through kubectl: the API server forwards a request to
//! a pod's address (a server on this host's loopback stands for the pod) or to a ready
//! endpoint of a Service, path and query kept, and relays the answer.

mod kube;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A one-request-at-a-time HTTP server answering with its request line.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let line = head.lines().next().unwrap_or("").to_owned();
            let body = format!("seen: {line}");
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Backend: echo\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_pods_and_services_through_the_proxy() {
    let c = kube::start().await;
    let port = echo_server().await;
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec:\n  containers:\n  - name: web\n    \
         image: busybox\n    ports: [{{name: http, containerPort: {port}}}]\n"
    );
    assert!(c.apply(&pod, &[]).await.ok);
    let status = json!({"status": {"podIP": "127.0.0.1", "phase": "Running"}}).to_string();
    c.ok(&[
        "patch",
        "pod",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        &status,
    ])
    .await;
    let got = c
        .ok(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/web:http/proxy/hello/there?x=1",
        ])
        .await;
    assert_eq!(got, "seen: GET /hello/there?x=1 HTTP/1.1");
    let by_number = format!("/api/v1/namespaces/default/pods/web:{port}/proxy/");
    assert_eq!(
        c.ok(&["get", "--raw", &by_number]).await,
        "seen: GET / HTTP/1.1"
    );

    // A Service: its named port maps to its endpoints' port.
    let svc = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  ports: [{{name: http, port: 80}}]\n\
         ---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: web}}\nsubsets:\n\
         - addresses: [{{ip: 127.0.0.1}}]\n  ports: [{{name: http, port: {port}}}]\n"
    );
    assert!(c.apply(&svc, &[]).await.ok);
    let got = c
        .ok(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/services/web:http/proxy/api?y=2",
        ])
        .await;
    assert_eq!(got, "seen: GET /api?y=2 HTTP/1.1");

    // No such port, no endpoints: Kubernetes-shaped errors.
    let bad = c
        .kubectl(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/services/web:grpc/proxy/",
        ])
        .await;
    assert!(
        !bad.ok && bad.stderr.contains("no service port"),
        "{}",
        bad.stderr
    );
    let none =
        "apiVersion: v1\nkind: Service\nmetadata: {name: empty}\nspec:\n  ports: [{port: 80}]\n";
    assert!(c.apply(none, &[]).await.ok);
    let bad = c
        .kubectl(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/services/empty/proxy/",
        ])
        .await;
    assert!(
        !bad.ok && bad.stderr.contains("no endpoints available"),
        "{}",
        bad.stderr
    );
}
