//! The endpoints controller: EndpointSlices and Endpoints follow pod readiness, deletion
//! and named target ports.

mod kube;

use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Endpoints, Pod, PodCondition, PodSpec, PodStatus, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use skiff_controlplane::api::client::{DeleteOutcome, Selectors};
use skiff_controlplane::api::objects::DeleteOptions;
use skiff_controlplane::api::ApiClient;

const DEADLINE: Duration = Duration::from_secs(15);

fn pod(name: &str, port_name: &str, port: i32) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("n1".into()),
            containers: vec![Container {
                name: "c".into(),
                image: Some("img".into()),
                ports: Some(vec![ContainerPort {
                    name: Some(port_name.into()),
                    container_port: port,
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn set_status(client: &ApiClient, name: &str, ip: &str, ready: bool) {
    let mut p: Pod = client.get(Some("default"), name).await.unwrap();
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some(ip.into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    client.update_status(&p).await.unwrap();
}

/// (address, ready, serving, terminating, port) of every endpoint of service `web`, sorted.
async fn slice_state(client: &ApiClient) -> Vec<(String, bool, bool, bool, i32)> {
    let sel = Selectors {
        labels: "kubernetes.io/service-name=web".into(),
        ..Default::default()
    };
    let slices = client
        .list::<EndpointSlice>(Some("default"), &sel)
        .await
        .unwrap()
        .items;
    let mut out = Vec::new();
    for s in slices {
        assert_eq!(s.address_type, "IPv4");
        let port = s.ports.as_ref().and_then(|p| p.first()).map(|p| {
            assert_eq!(
                p.name.as_deref(),
                Some("http"),
                "slice ports carry the service port name"
            );
            p.port.unwrap()
        });
        for e in s.endpoints {
            let c = e.conditions.unwrap();
            assert_eq!(e.node_name.as_deref(), Some("n1"));
            assert_eq!(e.target_ref.unwrap().kind.as_deref(), Some("Pod"));
            out.push((
                e.addresses[0].clone(),
                c.ready.unwrap(),
                c.serving.unwrap(),
                c.terminating.unwrap(),
                port.unwrap(),
            ));
        }
    }
    out.sort();
    out
}

/// (ready addresses, not-ready addresses) of Endpoints `web`.
async fn endpoints_state(client: &ApiClient) -> (Vec<String>, Vec<String>) {
    let Ok(ep) = client.get::<Endpoints>(Some("default"), "web").await else {
        return (vec!["<missing>".into()], vec![]);
    };
    let (mut ready, mut not_ready) = (Vec::new(), Vec::new());
    for s in ep.subsets.unwrap_or_default() {
        ready.extend(s.addresses.unwrap_or_default().into_iter().map(|a| a.ip));
        not_ready.extend(
            s.not_ready_addresses
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.ip),
        );
    }
    ready.sort();
    not_ready.sort();
    (ready, not_ready)
}

macro_rules! eventually {
    ($what:expr, $want:expr) => {{
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let got = $what;
            if got == $want {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("still {:?}, want {:?}", got, $want);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

#[tokio::test]
async fn endpoints_follow_pod_readiness_and_deletion() {
    let c = kube::start().await;
    let client = c.server.client();
    let controller = tokio::spawn(skiff_controlplane::endpoints::run(client.clone()));
    let svc = Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some([("app".to_string(), "web".to_string())].into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("web-port".into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    client.create(Some("default"), &svc).await.unwrap();
    // Named target ports resolve per pod: two pods, two container port numbers.
    client
        .create(Some("default"), &pod("a", "web-port", 8080))
        .await
        .unwrap();
    client
        .create(Some("default"), &pod("b", "web-port", 9090))
        .await
        .unwrap();
    client
        .create(Some("default"), &pod("other", "nope", 1))
        .await
        .unwrap();
    eventually!(
        slice_state(&client).await,
        Vec::<(String, bool, bool, bool, i32)>::new()
    );
    set_status(&client, "a", "10.244.0.2", true).await;
    set_status(&client, "b", "10.244.0.3", false).await;
    eventually!(
        slice_state(&client).await,
        vec![
            ("10.244.0.2".to_string(), true, true, false, 8080),
            ("10.244.0.3".to_string(), false, false, false, 9090),
        ]
    );
    eventually!(
        endpoints_state(&client).await,
        (
            vec!["10.244.0.2".to_string()],
            vec!["10.244.0.3".to_string()]
        )
    );
    // b becomes ready.
    set_status(&client, "b", "10.244.0.3", true).await;
    eventually!(
        endpoints_state(&client).await,
        (
            vec!["10.244.0.2".to_string(), "10.244.0.3".to_string()],
            Vec::<String>::new()
        )
    );
    // a is deleted with a grace period: terminating, still serving, not ready.
    let opts = DeleteOptions {
        grace_period_seconds: Some(60),
        ..Default::default()
    };
    let out = client
        .delete::<Pod>(Some("default"), "a", &opts)
        .await
        .unwrap();
    assert!(matches!(out, DeleteOutcome::Pending(_)));
    eventually!(
        slice_state(&client).await,
        vec![
            ("10.244.0.2".to_string(), false, true, true, 8080),
            ("10.244.0.3".to_string(), true, true, false, 9090),
        ]
    );
    eventually!(
        endpoints_state(&client).await,
        (vec!["10.244.0.3".to_string()], Vec::<String>::new())
    );
    // Gone for good.
    let now = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    let _ = client
        .delete::<Pod>(Some("default"), "a", &now)
        .await
        .unwrap();
    eventually!(
        slice_state(&client).await,
        vec![("10.244.0.3".to_string(), true, true, false, 9090)]
    );
    // The Service goes: its slices and Endpoints go too.
    client
        .delete::<Service>(Some("default"), "web", &DeleteOptions::default())
        .await
        .unwrap();
    eventually!(
        slice_state(&client).await,
        Vec::<(String, bool, bool, bool, i32)>::new()
    );
    eventually!(
        client
            .get::<Endpoints>(Some("default"), "web")
            .await
            .map_err(|e| e.code)
            .err(),
        Some(404)
    );
    controller.abort();
}
