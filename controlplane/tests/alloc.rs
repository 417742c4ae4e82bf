//! Allocation of cluster IPs and NodePorts in the API server's write path, checked through
//! the in-process client and the real kubectl.

mod kube;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use skiff_controlplane::alloc::claims::{self, NODE_PORTS, SERVICE_IPS};
use skiff_controlplane::alloc::repair::Repair;
use skiff_controlplane::alloc::Cidr;
use skiff_controlplane::api::client::DeleteOutcome;
use skiff_controlplane::api::objects::DeleteOptions;
use skiff_controlplane::{ControlPlane, Op};

fn svc(name: &str, ty: &str, node_port: Option<i32>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(ty.into()),
            ports: Some(vec![ServicePort {
                port: 80,
                node_port,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn claim_count(cp: &ControlPlane, prefix: &str) -> usize {
    claims::list(cp, prefix).await.unwrap().len()
}

#[tokio::test]
async fn sequential_creates_get_distinct_ips_and_deletes_release_them() {
    let c = kube::start().await;
    let client = c.server.client();
    let range: Cidr = "10.96.0.0/12".parse().unwrap();
    let mut ips = HashSet::new();
    for i in 0..20 {
        let s = client
            .create(Some("default"), &svc(&format!("s{i}"), "ClusterIP", None))
            .await
            .unwrap();
        let spec = s.spec.unwrap();
        let ip: Ipv4Addr = spec.cluster_ip.clone().unwrap().parse().unwrap();
        assert!(range.contains(ip), "{ip} outside the range");
        assert_ne!(
            ip,
            Ipv4Addr::new(10, 96, 0, 1),
            ".1 is the kubernetes Service's"
        );
        assert_eq!(spec.cluster_ips.unwrap(), vec![ip.to_string()]);
        assert!(ips.insert(ip), "{ip} given twice");
    }
    assert_eq!(claim_count(&c.cp, SERVICE_IPS).await, 20);
    for i in 0..20 {
        let out = client
            .delete::<Service>(Some("default"), &format!("s{i}"), &DeleteOptions::default())
            .await
            .unwrap();
        assert!(matches!(out, DeleteOutcome::Gone(_)));
    }
    assert_eq!(
        claim_count(&c.cp, SERVICE_IPS).await,
        0,
        "deletes release the IPs"
    );
    // A released IP can be requested again.
    let first = ips.iter().next().unwrap().to_string();
    let mut again = svc("again", "ClusterIP", None);
    again.spec.as_mut().unwrap().cluster_ip = Some(first.clone());
    let s = client.create(Some("default"), &again).await.unwrap();
    assert_eq!(s.spec.unwrap().cluster_ip.unwrap(), first);
}

#[tokio::test]
async fn concurrent_creates_never_share_a_value() {
    let c = kube::start().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let client = c.server.client();
        tasks.push(tokio::spawn(async move {
            client
                .create(Some("default"), &svc(&format!("r{i}"), "NodePort", None))
                .await
                .unwrap()
        }));
    }
    let (mut ips, mut ports) = (HashSet::new(), HashSet::new());
    for t in tasks {
        let spec = t.await.unwrap().spec.unwrap();
        assert!(ips.insert(spec.cluster_ip.unwrap()));
        let np = spec.ports.unwrap()[0].node_port.unwrap();
        assert!((30000..=32767).contains(&np));
        assert!(ports.insert(np));
    }
    assert_eq!(claim_count(&c.cp, NODE_PORTS).await, 16);
}

#[tokio::test]
async fn type_changes_allocate_and_release_node_ports() {
    let c = kube::start().await;
    let client = c.server.client();
    let s = client
        .create(Some("default"), &svc("t", "ClusterIP", None))
        .await
        .unwrap();
    let ip = s.spec.as_ref().unwrap().cluster_ip.clone();
    assert_eq!(claim_count(&c.cp, NODE_PORTS).await, 0);
    let mut np = s.clone();
    np.spec.as_mut().unwrap().type_ = Some("NodePort".into());
    let np = client.update(&np).await.unwrap();
    let port = np.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port;
    assert!(port.is_some(), "NodePort type allocates a node port");
    assert_eq!(
        np.spec.as_ref().unwrap().cluster_ip,
        ip,
        "the cluster IP stays"
    );
    assert_eq!(claim_count(&c.cp, NODE_PORTS).await, 1);
    // An update that leaves the allocated values out keeps them.
    let mut bare = np.clone();
    bare.spec.as_mut().unwrap().cluster_ip = None;
    bare.spec.as_mut().unwrap().cluster_ips = None;
    bare.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = None;
    bare.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    let kept = client.update(&bare).await.unwrap();
    assert_eq!(kept.spec.as_ref().unwrap().cluster_ip, ip);
    assert_eq!(
        kept.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port,
        port
    );
    let mut back = kept;
    back.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let back = client.update(&back).await.unwrap();
    assert_eq!(back.spec.unwrap().ports.unwrap()[0].node_port, None);
    assert_eq!(
        claim_count(&c.cp, NODE_PORTS).await,
        0,
        "ClusterIP type releases it"
    );
    assert_eq!(claim_count(&c.cp, SERVICE_IPS).await, 1);
}

#[tokio::test]
async fn repair_releases_orphans_and_reclaims_missing_claims() {
    let c = kube::start().await;
    let client = c.server.client();
    client
        .create(Some("default"), &svc("held", "NodePort", Some(30100)))
        .await
        .unwrap();
    // An orphaned claim (its writer crashed) and a lost claim.
    c.cp.apply(Op::Create {
        key: format!("{SERVICE_IPS}10.96.7.7"),
        value: r#"{"name":"default/ghost","uid":"ghost"}"#.into(),
    })
    .await
    .unwrap();
    c.cp.apply(Op::Delete {
        key: format!("{NODE_PORTS}30100"),
        expected_revision: None,
    })
    .await
    .unwrap();
    let mut repair = Repair::default();
    repair.pass(&c.cp).await.unwrap();
    let ips = claims::list(&c.cp, SERVICE_IPS).await.unwrap();
    assert!(
        ips.contains_key("10.96.7.7"),
        "an orphan survives its first pass"
    );
    assert!(claims::list(&c.cp, NODE_PORTS)
        .await
        .unwrap()
        .contains_key("30100"));
    repair.pass(&c.cp).await.unwrap();
    let ips = claims::list(&c.cp, SERVICE_IPS).await.unwrap();
    assert!(
        !ips.contains_key("10.96.7.7"),
        "released on the second pass"
    );
    assert_eq!(ips.len(), 1);
}

const TWO_NODE_PORT_SERVICES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: first}
spec:
  type: NodePort
  ports: [{port: 80, nodePort: 30001}]
---
apiVersion: v1
kind: Service
metadata: {name: second}
spec:
  type: NodePort
  ports: [{port: 80, nodePort: 30001}]
";

#[tokio::test]
async fn kubectl_sees_422_with_field_paths() {
    let c = kube::start().await;
    let out = c.apply(TWO_NODE_PORT_SERVICES, &[]).await;
    assert!(!out.ok, "the second Service must be refused: {out:?}");
    assert!(out.stdout.contains("service/first created"), "{out:?}");
    assert!(
        out.stderr.contains(
            "The Service \"second\" is invalid: spec.ports[0].nodePort: Invalid value: 30001: \
             provided port is already allocated"
        ),
        "{out:?}"
    );
    let ip = c
        .ok(&["get", "svc", "first", "-o", "jsonpath={.spec.clusterIP}"])
        .await;
    let taken = c
        .kubectl(&[
            "create",
            "service",
            "clusterip",
            "dup",
            "--tcp=80",
            &format!("--clusterip={ip}"),
        ])
        .await;
    assert!(!taken.ok);
    assert!(
        taken.stderr.contains("spec.clusterIP: Invalid value: \"")
            && taken.stderr.contains("provided IP is already allocated"),
        "{taken:?}"
    );
    let outside = c
        .kubectl(&[
            "create",
            "service",
            "clusterip",
            "out",
            "--tcp=80",
            "--clusterip=192.168.0.10",
        ])
        .await;
    assert!(!outside.ok);
    assert!(
        outside.stderr.contains("spec.clusterIP")
            && outside
                .stderr
                .contains("provided IP is not in the valid range"),
        "{outside:?}"
    );
    let big = c
        .apply(
            "apiVersion: v1\nkind: Service\nmetadata: {name: big}\nspec:\n  type: NodePort\n  \
             ports: [{port: 80, nodePort: 40000}]\n",
            &[],
        )
        .await;
    assert!(
        big.stderr
            .contains("spec.ports[0].nodePort: Invalid value: 40000"),
        "{big:?}"
    );
    // Nothing of the refused writes stays claimed.
    assert_eq!(claim_count(&c.cp, NODE_PORTS).await, 1);
    assert_eq!(claim_count(&c.cp, SERVICE_IPS).await, 1);
}

#[tokio::test]
async fn kubectl_apply_again_keeps_and_moves_node_ports() {
    let c = kube::start().await;
    let manifest = |port: u16| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: np}}\nspec:\n  type: NodePort\n  \
             ports: [{{port: 80, nodePort: {port}}}]\n"
        )
    };
    assert!(c.apply(&manifest(30001), &[]).await.ok);
    let ip = c
        .ok(&["get", "svc", "np", "-o", "jsonpath={.spec.clusterIP}"])
        .await;
    let again = c.apply(&manifest(30001), &[]).await;
    assert!(again.ok, "{again:?}");
    let moved = c.apply(&manifest(30002), &[]).await;
    assert!(moved.ok, "{moved:?}");
    let ports = claims::list(&c.cp, NODE_PORTS).await.unwrap();
    assert_eq!(
        ports.keys().collect::<Vec<_>>(),
        ["30002"],
        "the old port is released"
    );
    let ip2 = c
        .ok(&["get", "svc", "np", "-o", "jsonpath={.spec.clusterIP}"])
        .await;
    assert_eq!(ip, ip2);
    // The released port is free for another Service.
    let other = c
        .apply(&manifest(30001).replace("name: np", "name: other"), &[])
        .await;
    assert!(other.ok, "{other:?}");
    c.ok(&["delete", "svc", "np", "other"]).await;
    assert_eq!(claim_count(&c.cp, NODE_PORTS).await, 0);
    assert_eq!(claim_count(&c.cp, SERVICE_IPS).await, 0);
}
