//! The API server driven by the official Python client (`python3-kubernetes`): list and
//! watch pods. Skipped (with a message) when the module is not installed, unless
//! `SKIFF_REQUIRE_PYTHON_CLIENT=1`.

mod kube;

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const PYTHON: &str = "/usr/bin/python3";

const SCRIPT: &str = r#"
import sys
from kubernetes import client, watch
cfg = client.Configuration()
cfg.host = sys.argv[1]
v1 = client.CoreV1Api(client.ApiClient(cfg))
pods = v1.list_namespaced_pod("default", label_selector="app=py")
print("LIST", ",".join(sorted(p.metadata.name for p in pods.items)), pods.metadata.resource_version, flush=True)
w = watch.Watch()
for ev in w.stream(v1.list_namespaced_pod, "default", label_selector="app=py",
                   resource_version=pods.metadata.resource_version, timeout_seconds=20):
    print("EVENT", ev["type"], ev["object"].metadata.name, ev["object"].status.phase, flush=True)
    if ev["object"].metadata.name == "later":
        w.stop()
print("DONE", flush=True)
"#;

fn pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("app".to_string(), "py".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("busybox".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn python_client_available() -> bool {
    let probe = Command::new(PYTHON)
        .args(["-c", "import kubernetes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    matches!(probe, Ok(s) if s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_lists_and_watches_pods() {
    if !python_client_available().await {
        assert!(
            std::env::var("SKIFF_REQUIRE_PYTHON_CLIENT").as_deref() != Ok("1"),
            "python3-kubernetes is required"
        );
        eprintln!(
            "skipping: {PYTHON} cannot import kubernetes (apt-get install python3-kubernetes)"
        );
        return;
    }
    let c = kube::start().await;
    let api = c.server.client();
    api.create(Some("default"), &pod("first")).await.unwrap();

    let mut child = Command::new(PYTHON)
        .args(["-c", SCRIPT, &c.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let run = async {
        let list = lines.next_line().await.unwrap().unwrap_or_default();
        assert!(list.starts_with("LIST first "), "{list}");
        // The watch starts from the list's revision: only the new pod is reported.
        api.create(Some("default"), &pod("later")).await.unwrap();
        let mut events = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "DONE" {
                break;
            }
            events.push(line);
        }
        events
    };
    let events = match tokio::time::timeout(Duration::from_secs(60), run).await {
        Ok(ev) => ev,
        Err(_) => {
            let _ = child.kill().await;
            let mut err = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err).await;
            panic!("python client timed out; stderr:\n{err}");
        }
    };
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let mut err = String::new();
    let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err).await;
    assert!(
        matches!(status, Ok(Ok(s)) if s.success()),
        "python failed:\n{err}"
    );
    assert_eq!(events, ["EVENT ADDED later Pending"], "stderr:\n{err}");
}
