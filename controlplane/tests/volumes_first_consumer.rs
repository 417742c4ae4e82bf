//! Claims that wait for their first consumer (`volumeBindingMode: WaitForFirstConsumer`),
//! with the scheduler and the controllers running: Kubernetes' local volume example (a
//! `kubernetes.io/no-provisioner` class and `local` volumes with node affinity) and a
//! provisioning class. The claim stays Pending until a pod uses it; the pod goes to a node
//! a volume can be had on, and the claim binds there.

mod ctrl;
mod kube;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use serde_json::json;
use skiff_controlplane::api::patch::PatchType;
use skiff_controlplane::api::ApiClient;
use skiff_controlplane::scheduler::{Scheduler, SchedulerConfig};

const NODES: [&str; 3] = ["n1", "n2", "n3"];

// After https://kubernetes.io/docs/concepts/storage/storage-classes/#local and
// https://kubernetes.io/docs/concepts/storage/volumes/#local.
const LOCAL: &str = r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local-storage}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: example-pv}
spec:
  capacity: {storage: 100Gi}
  volumeMode: Filesystem
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: local-storage
  local: {path: /mnt/disks/ssd1}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [n2]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: local-claim}
spec:
  storageClassName: local-storage
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 10Gi}}
"#;

const PROVISIONED: &str = r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local-wait}
provisioner: skiff.io/local-path
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: later}
spec:
  storageClassName: local-wait
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#;

fn pod(name: &str, claim: &str, node_selector: Option<&str>) -> String {
    let selector = node_selector
        .map(|n| format!("  nodeSelector: {{kubernetes.io/hostname: {n}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{selector}  \
         containers:\n  - {{name: c, image: busybox, volumeMounts: [{{name: d, mountPath: /d}}]}}\n  \
         volumes:\n  - {{name: d, persistentVolumeClaim: {{claimName: {claim}}}}}\n"
    )
}

/// Ready nodes with room, as the scheduler wants them.
async fn add_nodes(api: &ApiClient) {
    for name in NODES {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        }))
        .unwrap();
        api.create(None, &node).await.unwrap();
        let status = json!({"status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        }});
        api.patch::<Node>(None, name, PatchType::Merge, &status, true)
            .await
            .unwrap();
    }
}

async fn scheduled_on(api: &ApiClient, name: &str) -> String {
    ctrl::eventually(&format!("pod {name} scheduled"), || async {
        let p: Pod = api.get(Some("default"), name).await.ok()?;
        p.spec?.node_name.filter(|n| !n.is_empty())
    })
    .await
}

async fn bound(api: &ApiClient, name: &str) -> PersistentVolumeClaim {
    ctrl::eventually(&format!("claim {name} bound"), || async {
        let c: PersistentVolumeClaim = api.get(Some("default"), name).await.ok()?;
        (c.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(c)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_bind_where_their_first_consumer_is_scheduled() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(Scheduler::new(SchedulerConfig::default()).run(
        Arc::new(api.clone()),
        async move {
            let _ = stopped.await;
        },
    ));
    add_nodes(&api).await;

    // Until a pod uses it, the claim waits, and says so.
    assert!(c.apply(LOCAL, &[]).await.ok);
    ctrl::eventually("the claim's WaitForFirstConsumer event", || async {
        let d = c.ok(&["describe", "pvc", "local-claim"]).await;
        d.contains("waiting for first consumer to be created before binding")
            .then_some(())
    })
    .await;
    let claim: PersistentVolumeClaim = api.get(Some("default"), "local-claim").await.unwrap();
    assert_eq!(claim.status.unwrap().phase.as_deref(), Some("Pending"));

    // The pod goes where the local volume is; the claim binds to it.
    assert!(c.apply(&pod("user", "local-claim", None), &[]).await.ok);
    assert_eq!(scheduled_on(&api, "user").await, "n2");
    let claim = bound(&api, "local-claim").await;
    assert_eq!(
        claim.spec.unwrap().volume_name.as_deref(),
        Some("example-pv")
    );
    let selected = claim.metadata.annotations.unwrap_or_default();
    assert_eq!(
        selected
            .get("volume.kubernetes.io/selected-node")
            .map(String::as_str),
        Some("n2")
    );

    // No free local volume is left: a second claim's pod fits nowhere, and says why.
    let second = LOCAL
        .split("---")
        .last()
        .unwrap()
        .replace("local-claim", "second");
    assert!(c.apply(&second, &[]).await.ok);
    assert!(c.apply(&pod("stuck", "second", None), &[]).await.ok);
    ctrl::eventually("the pod unschedulable for want of a volume", || async {
        let p: Pod = api.get(Some("default"), "stuck").await.ok()?;
        let conds = p.status?.conditions?;
        conds
            .iter()
            .any(|c| {
                c.type_ == "PodScheduled"
                    && c.message.as_deref().is_some_and(|m| {
                        m.contains("didn't find available persistent volumes to bind")
                    })
            })
            .then_some(())
    })
    .await;

    // A provisioning class makes the volume on the node the pod went to, for that node.
    assert!(c.apply(PROVISIONED, &[]).await.ok);
    assert!(c.apply(&pod("late", "later", Some("n3")), &[]).await.ok);
    assert_eq!(scheduled_on(&api, "late").await, "n3");
    let claim = bound(&api, "later").await;
    let volume = claim.spec.unwrap().volume_name.unwrap();
    let pv: PersistentVolume = api.get(None, &volume).await.unwrap();
    let affinity = serde_json::to_value(pv.spec.unwrap().node_affinity).unwrap();
    assert_eq!(
        affinity["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
        json!(["n3"]),
        "{affinity}"
    );

    let _ = stop.send(());
    scheduler.await.unwrap();
}
