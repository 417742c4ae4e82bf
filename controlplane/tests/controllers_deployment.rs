//! Deployment rollouts with the real kubectl: a RollingUpdate with maxSurge=1 and
//! maxUnavailable=0 never drops below the desired ready count, `rollout status` completes,
//! `rollout history` lists both revisions, `rollout undo` goes back, `scale` works.

mod ctrl;
mod kube;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use skiff_controlplane::api::client::Selectors;

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: "busybox:v1"}]}
"#;

fn image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_history_undo_and_scale() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();

    // The stand-in kubelet: marks pods ready as they appear, and records the lowest ready
    // count seen once the first rollout reached 3.
    let (stop, min_ready, armed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(usize::MAX)),
        Arc::new(AtomicBool::new(false)),
    );
    let kubelet = {
        let (api, stop, min_ready, armed) =
            (api.clone(), stop.clone(), min_ready.clone(), armed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let pods = ctrl::live_pods(&api, "default", "app=web").await;
                let ready = pods.iter().filter(|p| ctrl::is_ready(p)).count();
                if armed.load(Ordering::Relaxed) {
                    min_ready.fetch_min(ready, Ordering::Relaxed);
                }
                for p in pods.iter().filter(|p| !ctrl::is_ready(p)) {
                    ctrl::mark_ready(&api, "default", p.metadata.name.as_deref().unwrap()).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    assert!(c.apply(DEPLOY, &[]).await.ok);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    armed.store(true, Ordering::Relaxed);

    c.ok(&["set", "image", "deployment/web", "c=busybox:v2"])
        .await;
    let out = c
        .ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    assert!(
        min_ready.load(Ordering::Relaxed) >= 3,
        "ready pods dropped to {}",
        min_ready.load(Ordering::Relaxed)
    );
    let pods = ctrl::live_pods(&api, "default", "app=web").await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        let img = p.spec.as_ref().unwrap().containers[0].image.as_deref();
        assert_eq!(img, Some("busybox:v2"));
    }
    let d: Deployment = api.get(Some("default"), "web").await.unwrap();
    let st = d.status.clone().unwrap();
    assert_eq!(
        (st.replicas, st.updated_replicas, st.available_replicas),
        (Some(3), Some(3), Some(3))
    );
    let conds = st.conditions.unwrap();
    let progressing = conds.iter().find(|c| c.type_ == "Progressing").unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );

    let history = c.ok(&["rollout", "history", "deployment/web"]).await;
    let revisions = ctrl::revisions(&history);
    assert_eq!(revisions, ["1", "2"], "{history}");

    armed.store(false, Ordering::Relaxed);
    c.ok(&["rollout", "undo", "deployment/web"]).await;
    c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    let d: Deployment = api.get(Some("default"), "web").await.unwrap();
    assert_eq!(image(&d), "busybox:v1");
    let rss = api
        .list::<ReplicaSet>(Some("default"), &Selectors::default())
        .await
        .unwrap()
        .items;
    assert_eq!(rss.len(), 2, "the v1 ReplicaSet is reused");
    let history = c.ok(&["rollout", "history", "deployment/web"]).await;
    assert!(
        history.contains("2 ") && history.contains("3 "),
        "{history}"
    );

    c.ok(&["scale", "deployment/web", "--replicas=5"]).await;
    c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    ctrl::eventually("5 pods", || async {
        let n = ctrl::live_pods(&api, "default", "app=web").await.len();
        (n == 5).then_some(())
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    kubelet.await.unwrap();
}

const RECREATE: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: batch}
spec:
  replicas: 2
  revisionHistoryLimit: 1
  selector: {matchLabels: {app: batch}}
  strategy: {type: Recreate}
  template:
    metadata: {labels: {app: batch}}
    spec: {containers: [{name: c, image: "busybox:v1"}]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_and_history_limit() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    assert!(c.apply(RECREATE, &[]).await.ok);
    for img in ["c=busybox:v2", "c=busybox:v3"] {
        ctrl::eventually("ready", || async {
            (ctrl::ready_all(&api, "default", "app=batch").await == 2).then_some(())
        })
        .await;
        c.ok(&["set", "image", "deployment/batch", img]).await;
    }
    ctrl::eventually("v3 rolled out, history trimmed", || async {
        ctrl::ready_all(&api, "default", "app=batch").await;
        let d: Deployment = api.get(Some("default"), "batch").await.unwrap();
        let s = d.status.clone().unwrap_or_default();
        let rss = api
            .list::<ReplicaSet>(Some("default"), &Selectors::default())
            .await
            .unwrap()
            .items;
        // Old pods may still be on their way out when the status first reads 2/2.
        let pods = ctrl::live_pods(&api, "default", "app=batch").await;
        let all_v3 = pods.len() == 2
            && pods.iter().all(|p| {
                p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("busybox:v3")
            });
        (s.available_replicas == Some(2)
            && s.updated_replicas == Some(2)
            && s.replicas == Some(2)
            && rss.len() == 2
            && all_v3)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_deployment_does_not_roll_until_resumed() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    assert!(c.apply(DEPLOY, &[]).await.ok);
    ctrl::eventually("3 ready", || async {
        (ctrl::ready_all(&api, "default", "app=web").await == 3).then_some(())
    })
    .await;
    c.ok(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await;
    c.ok(&["rollout", "pause", "deployment/web"]).await;
    c.ok(&["set", "image", "deployment/web", "c=busybox:v2"])
        .await;
    ctrl::eventually("paused observed", || async {
        let d: Deployment = api.get(Some("default"), "web").await.unwrap();
        let s = d.status.clone().unwrap_or_default();
        let paused =
            s.conditions.unwrap_or_default().iter().any(|c| {
                c.type_ == "Progressing" && c.reason.as_deref() == Some("DeploymentPaused")
            });
        (paused && s.observed_generation == d.metadata.generation).then_some(())
    })
    .await;
    let rss = api
        .list::<ReplicaSet>(Some("default"), &Selectors::default())
        .await
        .unwrap()
        .items;
    assert_eq!(rss.len(), 1, "a paused deployment creates no ReplicaSet");

    c.ok(&["rollout", "resume", "deployment/web"]).await;
    let kubelet = {
        let api = api.clone();
        tokio::spawn(async move {
            loop {
                ctrl::ready_all(&api, "default", "app=web").await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    c.ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    kubelet.abort();
    let rss = api
        .list::<ReplicaSet>(Some("default"), &Selectors::default())
        .await
        .unwrap()
        .items;
    assert_eq!(rss.len(), 2);
}
