//! Node-local volume claims: a PersistentVolumeClaim is bound at once with the capacity
//! and access modes it asks for, which `kubectl get pvc` shows.

mod ctrl;
mod kube;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;

const CLAIM: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 2Gi}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_bound_with_what_it_asked_for() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    assert!(c.apply(CLAIM, &[]).await.ok);
    let status = ctrl::eventually("the claim bound", || async {
        let pvc: PersistentVolumeClaim = api.get(Some("default"), "data").await.ok()?;
        pvc.status.filter(|s| s.phase.as_deref() == Some("Bound"))
    })
    .await;
    assert_eq!(status.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
    let cap = status.capacity.unwrap();
    assert_eq!(cap["storage"].0, "2Gi");
    let table = c.ok(&["get", "pvc", "data"]).await;
    assert!(table.contains("Bound") && table.contains("2Gi"), "{table}");
}
