//! Garbage collection and namespace deletion with the real kubectl: background, orphan and
//! foreground cascades of a ReplicationController, dangling owners, and a namespace that
//! empties and disappears.

mod ctrl;
mod kube;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ReplicationController};
use serde_json::json;
use skiff_controlplane::api::ApiClient;

fn rc(name: &str, ns: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: ReplicationController
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{app: {name}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: c, image: "busybox:1"}}]}}
"#
    )
}

async fn pods(api: &ApiClient, ns: &str, app: &str) -> Vec<Pod> {
    ctrl::live_pods(api, ns, &format!("app={app}")).await
}

async fn wait_count(api: &ApiClient, ns: &str, app: &str, n: usize) -> Vec<Pod> {
    ctrl::eventually(&format!("{n} pods of {app}"), || async {
        let p = pods(api, ns, app).await;
        (p.len() == n).then_some(p)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascading_deletes() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    for name in ["bg", "orph", "fg"] {
        assert!(c.apply(&rc(name, "default"), &[]).await.ok);
        wait_count(&api, "default", name, 2).await;
    }

    // Background: the RC goes at once, the collector removes its pods.
    c.ok(&["delete", "rc", "bg"]).await;
    wait_count(&api, "default", "bg", 0).await;

    // Orphan: the pods stay, without owner references.
    c.ok(&["delete", "rc", "orph", "--cascade=orphan"]).await;
    let err = api
        .get::<ReplicationController>(Some("default"), "orph")
        .await
        .unwrap_err();
    assert_eq!(err.code, 404);
    let kept = pods(&api, "default", "orph").await;
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|p| p
        .metadata
        .owner_references
        .as_ref()
        .is_none_or(Vec::is_empty)));

    // Foreground: the pods go first, then the RC (kubectl waits for it).
    c.ok(&["delete", "rc", "fg", "--cascade=foreground", "--wait=false"])
        .await;
    ctrl::eventually("fg RC gone", || async {
        let gone = api
            .get::<ReplicationController>(Some("default"), "fg")
            .await
            .is_err_and(|e| e.code == 404);
        if !gone {
            return None;
        }
        let left = api
            .list::<Pod>(Some("default"), &Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.name.as_deref().unwrap().starts_with("fg-"))
            .count();
        assert_eq!(left, 0, "pods outlived their foreground-deleted RC");
        Some(())
    })
    .await;

    // A dependent whose owner never existed (uid mismatch) is collected.
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "dangling", "ownerReferences": [{"apiVersion": "v1",
            "kind": "ConfigMap", "name": "ghost", "uid": "0000"}]}}))
    .unwrap();
    api.create(Some("default"), &cm).await.unwrap();
    ctrl::eventually("dangling collected", || async {
        api.get::<ConfigMap>(Some("default"), "dangling")
            .await
            .is_err_and(|e| e.code == 404)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_empties_and_removes_it() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    c.ok(&["create", "namespace", "doomed"]).await;
    assert!(c.apply(&rc("app", "doomed"), &[]).await.ok);
    c.ok(&[
        "-n",
        "doomed",
        "create",
        "configmap",
        "settings",
        "--from-literal=a=b",
    ])
    .await;
    wait_count(&api, "doomed", "app", 2).await;

    // kubectl waits until the namespace is gone.
    c.ok(&["delete", "namespace", "doomed", "--timeout=25s"])
        .await;
    let err = api.get::<Namespace>(None, "doomed").await.unwrap_err();
    assert_eq!(err.code, 404);
    let left = api
        .list::<Pod>(Some("doomed"), &Default::default())
        .await
        .unwrap()
        .items;
    assert!(left.is_empty());
}
