//! ReplicationController / ReplicaSet controller with the real kubectl: scaling, replacing
//! deleted pods, status from ready pods, adopting orphans and releasing relabelled pods.

mod ctrl;
mod kube;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use serde_json::json;
use skiff_controlplane::api::ApiClient;

const RC: &str = r#"
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 3
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: "busybox:1"}]}
"#;

const RS: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: front}
spec:
  replicas: 2
  selector: {matchLabels: {app: front}}
  template:
    metadata: {labels: {app: front}}
    spec: {containers: [{name: c, image: "busybox:1"}]}
"#;

fn owner_uid(p: &Pod) -> Option<String> {
    p.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

async fn wait_pods(api: &ApiClient, labels: &str, n: usize) -> Vec<Pod> {
    ctrl::eventually(&format!("{n} pods {labels}"), || async {
        let pods = ctrl::live_pods(api, "default", labels).await;
        (pods.len() == n).then_some(pods)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rc_scales_replaces_and_reports_status() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    assert!(c.apply(RC, &[]).await.ok);
    let rc: ReplicationController = api.get(Some("default"), "web").await.unwrap();
    let uid = rc.metadata.uid.clone();
    let pods = wait_pods(&api, "app=web", 3).await;
    for p in &pods {
        assert!(p.metadata.name.as_deref().unwrap().starts_with("web-"));
        let r = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (r.kind.as_str(), Some(&r.uid)),
            ("ReplicationController", uid.as_ref())
        );
        assert_eq!(r.block_owner_deletion, Some(true));
    }

    c.ok(&["scale", "rc", "web", "--replicas=1"]).await;
    wait_pods(&api, "app=web", 1).await;
    c.ok(&["scale", "rc", "web", "--replicas=2"]).await;
    let pods = wait_pods(&api, "app=web", 2).await;

    let victim = pods[0].metadata.name.clone().unwrap();
    c.ok(&["delete", "pod", &victim]).await;
    let pods = wait_pods(&api, "app=web", 2).await;
    assert!(pods
        .iter()
        .all(|p| p.metadata.name.as_ref() != Some(&victim)));

    ctrl::ready_all(&api, "default", "app=web").await;
    ctrl::eventually("rc status", || async {
        let rc: ReplicationController = api.get(Some("default"), "web").await.unwrap();
        let s = rc.status.clone().unwrap_or_default();
        (s.replicas == 2
            && s.ready_replicas == Some(2)
            && s.available_replicas == Some(2)
            && s.fully_labeled_replicas == Some(2)
            && s.observed_generation == rc.metadata.generation)
            .then_some(())
    })
    .await;
    let out = c.ok(&["get", "rc", "web"]).await;
    assert!(out.lines().nth(1).unwrap().contains(" 2 "), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs_adopts_orphans_and_releases_relabelled_pods() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "stray", "labels": {"app": "front"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}))
    .unwrap();
    api.create(Some("default"), &orphan).await.unwrap();
    assert!(c.apply(RS, &[]).await.ok);
    let rs: ReplicaSet = api.get(Some("default"), "front").await.unwrap();
    let uid = rs.metadata.uid.clone();

    let pods = wait_pods(&api, "app=front", 2).await;
    let stray = ctrl::eventually("stray adopted", || async {
        let p: Pod = api.get(Some("default"), "stray").await.unwrap();
        (owner_uid(&p) == uid).then_some(p)
    })
    .await;
    assert_eq!(stray.metadata.labels.unwrap()["app"], "front");
    assert!(pods.iter().all(|p| owner_uid(p) == uid));

    // A relabelled pod no longer matches: released, and replaced.
    c.ok(&["label", "pod", "stray", "app=other", "--overwrite"])
        .await;
    ctrl::eventually("stray released", || async {
        let p: Pod = api.get(Some("default"), "stray").await.unwrap();
        owner_uid(&p).is_none().then_some(())
    })
    .await;
    let pods = wait_pods(&api, "app=front", 2).await;
    assert!(pods.iter().all(|p| owner_uid(p) == uid));
    // Extra matching pods are deleted again, not-ready ones first.
    ctrl::ready_all(&api, "default", "app=front").await;
    c.ok(&["label", "pod", "stray", "app=front", "--overwrite"])
        .await;
    let pods = wait_pods(&api, "app=front", 2).await;
    assert!(pods
        .iter()
        .all(|p| p.metadata.name.as_deref() != Some("stray")));
}
