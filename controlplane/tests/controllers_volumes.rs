//! PersistentVolumes and claims through kubectl: a claim with no class gets the default
//! `local-path` class and a provisioned volume; the hostPath volume of Kubernetes' own
//! tutorial ("Configure a Pod to Use a PersistentVolume for Storage") binds to its claim
//! and is Released when the claim goes; a claim nothing fits waits with an event.

mod ctrl;
mod kube;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

const CLAIM: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 2Gi}}
"#;

// From https://k8s.io/examples/pods/storage/pv-volume.yaml and pv-claim.yaml.
const TUTORIAL: &str = r#"
apiVersion: v1
kind: PersistentVolume
metadata:
  name: task-pv-volume
  labels: {type: local}
spec:
  storageClassName: manual
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: "/mnt/data"}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: task-pv-claim}
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 3Gi}}
"#;

const TOO_BIG: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: huge}
spec:
  storageClassName: manual
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Ti}}
"#;

async fn bound_claim(
    api: &skiff_controlplane::api::ApiClient,
    name: &str,
) -> PersistentVolumeClaim {
    ctrl::eventually(&format!("claim {name} bound"), || async {
        let pvc: PersistentVolumeClaim = api.get(Some("default"), name).await.ok()?;
        let phase = pvc.status.as_ref()?.phase.as_deref();
        (phase == Some("Bound")).then_some(pvc)
    })
    .await
}

async fn volume_phase(
    api: &skiff_controlplane::api::ApiClient,
    name: &str,
    want: &str,
) -> PersistentVolume {
    ctrl::eventually(&format!("volume {name} {want}"), || async {
        let pv: PersistentVolume = api.get(None, name).await.ok()?;
        (pv.status.as_ref()?.phase.as_deref() == Some(want)).then_some(pv)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_without_a_class_gets_a_provisioned_volume() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    let classes = c.ok(&["get", "storageclass"]).await;
    assert!(
        classes.contains("local-path (default)") && classes.contains("skiff.io/local-path"),
        "{classes}"
    );
    assert!(c.apply(CLAIM, &[]).await.ok);
    let pvc = bound_claim(&api, "data").await;
    let spec = pvc.spec.unwrap();
    assert_eq!(spec.storage_class_name.as_deref(), Some("local-path"));
    let uid = pvc.metadata.uid.unwrap();
    let volume = format!("pvc-{uid}");
    assert_eq!(spec.volume_name.as_deref(), Some(volume.as_str()));
    let status = pvc.status.unwrap();
    assert_eq!(status.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
    assert_eq!(status.capacity.unwrap()["storage"].0, "2Gi");
    let pv = volume_phase(&api, &volume, "Bound").await;
    assert_eq!(
        pv.spec.unwrap().claim_ref.unwrap().uid.as_deref(),
        Some(uid.as_str())
    );
    let table = c.ok(&["get", "pvc", "data"]).await;
    assert!(
        table.contains("Bound") && table.contains(&volume) && table.contains("2Gi"),
        "{table}"
    );
    // Its reclaim policy is Delete: the volume goes with the claim.
    c.ok(&["delete", "pvc", "data"]).await;
    ctrl::eventually("the provisioned volume deleted", || async {
        let gone = api.get::<PersistentVolume>(None, &volume).await.is_err();
        gone.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorials_host_path_volume_binds_and_is_released() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    assert!(c.apply(TOO_BIG, &[]).await.ok);
    assert!(c.apply(TUTORIAL, &[]).await.ok);
    let pvc = bound_claim(&api, "task-pv-claim").await;
    assert_eq!(
        pvc.spec.unwrap().volume_name.as_deref(),
        Some("task-pv-volume")
    );
    // The claim shows the volume's size, not the request.
    assert_eq!(pvc.status.unwrap().capacity.unwrap()["storage"].0, "10Gi");
    volume_phase(&api, "task-pv-volume", "Bound").await;
    let pv = c.ok(&["get", "pv", "task-pv-volume"]).await;
    for want in [
        "10Gi",
        "RWO",
        "Retain",
        "Bound",
        "default/task-pv-claim",
        "manual",
    ] {
        assert!(pv.contains(want), "{want} missing:\n{pv}");
    }
    // Nothing fits 1Ti, and no class "manual" exists to provision one: it waits, and
    // says why.
    let huge: PersistentVolumeClaim = api.get(Some("default"), "huge").await.unwrap();
    assert_ne!(huge.status.and_then(|s| s.phase).as_deref(), Some("Bound"));
    let describe = ctrl::eventually("the claim's event", || async {
        let d = c.ok(&["describe", "pvc", "huge"]).await;
        d.contains("storageclass.storage.k8s.io \"manual\" not found")
            .then_some(d)
    })
    .await;
    assert!(describe.contains("ProvisioningFailed"), "{describe}");
    // Retain: the claim goes, the volume stays, Released.
    c.ok(&["delete", "pvc", "task-pv-claim"]).await;
    volume_phase(&api, "task-pv-volume", "Released").await;
}
