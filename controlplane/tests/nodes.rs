//! Node IPAM (pod CIDRs) and node lifecycle (heartbeat loss → Unknown, taint, eviction),
//! with graces of a second.

mod kube;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    Container, Node, NodeCondition, NodeStatus, Pod, PodSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use skiff_controlplane::api::ApiClient;
use skiff_controlplane::nodelifecycle::{self, Config, UNREACHABLE_TAINT};

const DEADLINE: Duration = Duration::from_secs(20);

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        status: Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_heartbeat_time: Some(Time(chrono::Utc::now())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(name: &str, node: &str, tolerate_forever: bool) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            termination_grace_period_seconds: Some(1),
            containers: vec![Container {
                name: "c".into(),
                image: Some("img".into()),
                ..Default::default()
            }],
            tolerations: tolerate_forever.then(|| {
                vec![Toleration {
                    key: Some(UNREACHABLE_TAINT.into()),
                    operator: Some("Exists".into()),
                    effect: Some("NoExecute".into()),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn renew(client: &ApiClient, name: &str) {
    let spec = LeaseSpec {
        holder_identity: Some(name.into()),
        renew_time: Some(MicroTime(chrono::Utc::now())),
        lease_duration_seconds: Some(1),
        ..Default::default()
    };
    match client.get::<Lease>(Some("kube-node-lease"), name).await {
        Ok(mut l) => {
            l.spec = Some(spec);
            client.update(&l).await.unwrap();
        }
        Err(_) => {
            let l = Lease {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some("kube-node-lease".into()),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            client.create(Some("kube-node-lease"), &l).await.unwrap();
        }
    }
}

fn ready_of(n: &Node) -> Option<(String, Option<String>)> {
    let c = n
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone()))
}

fn tainted(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| {
            t.iter()
                .any(|t| t.key == UNREACHABLE_TAINT && t.effect == "NoExecute")
        })
}

#[tokio::test]
async fn nodes_get_distinct_pod_cidrs() {
    let c = kube::start().await;
    let client = c.server.client();
    let ipam = tokio::spawn(skiff_controlplane::alloc::podcidr::run(
        c.cp.clone(),
        client.clone(),
    ));
    for i in 0..3 {
        client.create(None, &node(&format!("n{i}"))).await.unwrap();
    }
    let mut cidrs = Vec::new();
    for i in 0..3 {
        let name = format!("n{i}");
        wait_for("a pod CIDR", || async {
            let n: Node = client.get(None, &name).await.unwrap();
            n.spec.and_then(|s| s.pod_cidr).is_some()
        })
        .await;
        let n: Node = client.get(None, &name).await.unwrap();
        let spec = n.spec.unwrap();
        let cidr = spec.pod_cidr.unwrap();
        assert!(
            cidr.starts_with("10.244.") && cidr.ends_with(".0/24"),
            "{cidr}"
        );
        assert_eq!(spec.pod_cidrs.unwrap(), vec![cidr.clone()]);
        cidrs.push(cidr);
    }
    cidrs.sort();
    cidrs.dedup();
    assert_eq!(cidrs.len(), 3, "distinct CIDRs");
    ipam.abort();
}

#[tokio::test]
async fn lost_heartbeat_makes_the_node_unknown_and_evicts_its_pods() {
    let c = kube::start().await;
    let client = c.server.client();
    let cfg = Config::with(Duration::from_millis(1500), Duration::from_secs(1));
    let lifecycle = tokio::spawn(nodelifecycle::run(client.clone(), cfg));
    client.create(None, &node("alive")).await.unwrap();
    client.create(None, &node("dead")).await.unwrap();
    client
        .create(Some("default"), &pod("evicted", "dead", false))
        .await
        .unwrap();
    client
        .create(Some("default"), &pod("tolerant", "dead", true))
        .await
        .unwrap();
    client
        .create(Some("default"), &pod("safe", "alive", false))
        .await
        .unwrap();
    renew(&client, "alive").await;
    renew(&client, "dead").await;
    // Keep "alive" renewing its lease; "dead" stops.
    let renewer = {
        let client = client.clone();
        tokio::spawn(async move {
            loop {
                renew(&client, "alive").await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    wait_for("dead to become Unknown and tainted", || async {
        let n: Node = client.get(None, "dead").await.unwrap();
        ready_of(&n) == Some(("Unknown".into(), Some("NodeStatusUnknown".into()))) && tainted(&n)
    })
    .await;
    wait_for("the pod of dead to be evicted", || async {
        client
            .get::<Pod>(Some("default"), "evicted")
            .await
            .is_err_and(|e| e.code == 404)
    })
    .await;
    let tolerant: Pod = client.get(Some("default"), "tolerant").await.unwrap();
    assert!(
        tolerant.metadata.deletion_timestamp.is_none(),
        "a toleration without seconds keeps it"
    );
    let alive: Node = client.get(None, "alive").await.unwrap();
    assert_eq!(ready_of(&alive).unwrap().0, "True");
    assert!(!tainted(&alive));
    let safe: Pod = client.get(Some("default"), "safe").await.unwrap();
    assert!(safe.metadata.deletion_timestamp.is_none());
    // The node comes back: Ready again, the taint goes.
    renewer.abort();
    let mut back: Node = client.get(None, "dead").await.unwrap();
    back.status = node("dead").status;
    client.update_status(&back).await.unwrap();
    wait_for("the taint to go", || async {
        let n: Node = client.get(None, "dead").await.unwrap();
        !tainted(&n)
    })
    .await;
    lifecycle.abort();
}
