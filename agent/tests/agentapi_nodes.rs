//! The agent API against a real in-process server, through the real client: node
//! registration, heartbeats and node lifecycle, events and object reads.

mod cp_common;

use std::time::Duration;

use cp_common::{eventually, node, TestServer};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use tonic::Code;

fn ready(n: &Node) -> Option<String> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_heartbeats_and_lifecycle() {
    let grace = Duration::from_secs(2);
    let ts = TestServer::start("nodes", grace, None).await;
    let cp = ts.client().await;
    let api = ts.api();

    // Register: the node gets a pod CIDR from the control plane.
    let n = cp.register_node(&node("n1")).await.unwrap();
    let cidr = n.spec.as_ref().and_then(|s| s.pod_cidr.clone());
    assert!(
        cidr.as_deref().is_some_and(|c| c.starts_with("10.244.")),
        "{cidr:?}"
    );
    let status = n.status.as_ref().unwrap();
    assert_eq!(status.capacity.as_ref().unwrap()["cpu"].0, "2");
    // Registering again keeps what the control plane set and merges labels.
    let mut again = node("n1");
    again
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("zone".into(), "a".into());
    let n2 = cp.register_node(&again).await.unwrap();
    assert_eq!(n2.spec.as_ref().unwrap().pod_cidr, cidr);
    let labels = n2.metadata.labels.clone().unwrap();
    assert_eq!(
        (
            labels["zone"].as_str(),
            labels["kubernetes.io/hostname"].as_str()
        ),
        ("a", "n1")
    );

    // Heartbeats create, then renew, the Lease in kube-node-lease; the node is Ready.
    let l1 = cp.heartbeat("n1", 0).await.unwrap();
    let spec = l1.spec.clone().unwrap();
    assert_eq!(
        (spec.holder_identity.as_deref(), spec.lease_duration_seconds),
        (Some("n1"), Some(40))
    );
    let l2 = cp.heartbeat("n1", 0).await.unwrap();
    assert!(l2.spec.unwrap().renew_time.unwrap().0 >= spec.renew_time.unwrap().0);
    assert_ne!(l1.metadata.resource_version, l2.metadata.resource_version);
    let stored: Lease = api.get(Some("kube-node-lease"), "n1").await.unwrap();
    assert_eq!(
        stored.metadata.resource_version,
        l2.metadata.resource_version
    );
    let n: Node = api.get(None, "n1").await.unwrap();
    assert_eq!(ready(&n).as_deref(), Some("True"));

    // Heartbeating for several graces keeps the node Ready.
    let until = tokio::time::Instant::now() + grace * 3;
    while tokio::time::Instant::now() < until {
        cp.heartbeat("n1", 0).await.unwrap();
        let n: Node = api.get(None, "n1").await.unwrap();
        assert_eq!(
            ready(&n).as_deref(),
            Some("True"),
            "heartbeating node lost Ready"
        );
        tokio::time::sleep(grace / 5).await;
    }

    // Heartbeats stop: node lifecycle marks the node Unknown and taints it.
    eventually("node n1 Ready=Unknown after heartbeats stop", || async {
        let n: Node = api.get(None, "n1").await.ok()?;
        (ready(&n).as_deref() == Some("Unknown")).then_some(())
    })
    .await;
    // A heartbeat brings it back.
    cp.heartbeat("n1", 0).await.unwrap();
    eventually("node n1 Ready and untainted again", || async {
        let n: Node = api.get(None, "n1").await.ok()?;
        let tainted = n
            .spec
            .as_ref()?
            .taints
            .as_ref()
            .is_some_and(|t| !t.is_empty());
        (ready(&n).as_deref() == Some("True") && !tainted).then_some(())
    })
    .await;

    // A heartbeat for a node never registered is NotFound.
    let e = cp.heartbeat("ghost", 0).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::NotFound), "{e}");
    assert!(e.to_string().contains("\"ghost\" not found"), "{e}");
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_and_events() {
    let ts = TestServer::start("objects", Duration::from_secs(40), None).await;
    let cp = ts.client().await;
    let api = ts.api();
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        namespace: Some("default".into()),
        ..Default::default()
    };
    let cm = ConfigMap {
        metadata: meta("settings"),
        data: Some([("mode".to_string(), "fast".to_string())].into()),
        ..Default::default()
    };
    api.create(Some("default"), &cm).await.unwrap();
    let secret = Secret {
        metadata: meta("token"),
        data: Some([("t".to_string(), ByteString(b"s3cr3t".to_vec()))].into()),
        ..Default::default()
    };
    api.create(Some("default"), &secret).await.unwrap();

    let got: ConfigMap = cp.get("default", "settings").await.unwrap();
    assert_eq!(got.data.unwrap()["mode"], "fast");
    let got: Secret = cp.get("default", "token").await.unwrap();
    assert_eq!(got.data.unwrap()["t"].0, b"s3cr3t");
    let e = cp.get::<ConfigMap>("default", "missing").await.unwrap_err();
    assert_eq!(e.code(), Some(Code::NotFound), "{e}");

    let ev = Event {
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some("default".into()),
            name: Some("web".into()),
            ..Default::default()
        },
        reason: Some("Started".into()),
        message: Some("Started container app".into()),
        type_: Some("Normal".into()),
        ..Default::default()
    };
    let created = cp.record_event(&ev).await.unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(name.starts_with("web."), "{name}");
    let stored: Event = api.get(Some("default"), &name).await.unwrap();
    assert_eq!(stored.reason.as_deref(), Some("Started"));
    ts.stop().await;
}

#[tokio::test]
async fn connect_gives_up_at_its_deadline() {
    // A port nothing listens on: bind one, then free it.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let opts = skiff_agent::cpclient::ConnectOptions {
        deadline: Duration::from_millis(500),
        ..Default::default()
    };
    let e = skiff_agent::cpclient::CpClient::connect(&addr, opts)
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&addr) && msg.contains("gave up"), "{msg}");
}
