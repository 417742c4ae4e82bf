//! StatefulSet controller with the real kubectl: ordered creation with stable names,
//! hostnames and claims, scale-down from the highest ordinal, replacement of failed pods,
//! Parallel creation with adoption, and rolling updates from the highest ordinal down
//! (`kubectl rollout status` completes; a partition keeps the lower ordinals, which are
//! re-created from their own revision; `rollout history` and `rollout undo` work).

mod ctrl;
mod kube;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use serde_json::json;
use skiff_controlplane::api::client::Selectors;
use skiff_controlplane::api::patch::PatchType;
use skiff_controlplane::api::ApiClient;

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: web, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 3
  serviceName: nginx
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: "nginx:1"
        volumeMounts: [{name: www, mountPath: /usr/share/nginx/html}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;

const PARALLEL: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: par}
spec:
  replicas: 3
  podManagementPolicy: Parallel
  serviceName: par
  selector: {matchLabels: {app: par}}
  template:
    metadata: {labels: {app: par}}
    spec: {containers: [{name: c, image: "busybox:1"}]}
"#;

/// The live pods matching `labels`, by name.
async fn pods(api: &ApiClient, labels: &str) -> BTreeMap<String, Pod> {
    ctrl::live_pods(api, "default", labels)
        .await
        .into_iter()
        .map(|p| (p.metadata.name.clone().unwrap(), p))
        .collect()
}

fn names(pods: &BTreeMap<String, Pod>) -> Vec<&str> {
    pods.keys().map(String::as_str).collect()
}

fn image(p: &Pod) -> &str {
    p.spec.as_ref().unwrap().containers[0]
        .image
        .as_deref()
        .unwrap()
}

fn uid(p: &Pod) -> &str {
    p.metadata.uid.as_deref().unwrap()
}

async fn set(api: &ApiClient, name: &str) -> StatefulSet {
    api.get(Some("default"), name).await.unwrap()
}

/// Wait until the controller has seen exactly `n` pods of `name` (its status says so) and
/// return them: nothing else was created in that pass.
async fn settled(api: &ApiClient, name: &str, n: i32) -> BTreeMap<String, Pod> {
    ctrl::eventually(&format!("{name} to report {n} pods"), || async {
        let s = set(api, name).await;
        let st = s.status.clone().unwrap_or_default();
        let seen = st.replicas == n && st.observed_generation == s.metadata.generation;
        let live = pods(api, &format!("app={name}")).await;
        (seen && live.len() == n as usize).then_some(live)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_creation_identity_scale_down_and_replacement() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    let out = c.apply(WEB, &[]).await;
    assert!(out.ok, "{}", out.stderr);

    // One pod at a time, each once the previous one is Running and Ready.
    for n in 1..=3 {
        let live = settled(&api, "web", n).await;
        let want: Vec<String> = (0..n).map(|o| format!("web-{o}")).collect();
        assert_eq!(names(&live), want);
        ctrl::mark_ready(&api, "default", &format!("web-{}", n - 1)).await;
    }

    let live = pods(&api, "app=web").await;
    let sts = set(&api, "web").await;
    let p = &live["web-1"];
    let labels = p.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["app"], "web");
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-1");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "1");
    let revision = &labels["controller-revision-hash"];
    assert!(revision.starts_with("web-"), "{revision}");
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let vol = &spec.volumes.as_ref().unwrap()[0];
    assert_eq!(vol.name, "www");
    let claim = vol.persistent_volume_claim.as_ref().unwrap();
    assert_eq!(claim.claim_name, "www-web-1");
    let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "StatefulSet");
    assert_eq!(Some(&owner.uid), sts.metadata.uid.as_ref());
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
    let pvcs = c.ok(&["get", "pvc", "-o", "name"]).await;
    for o in 0..3 {
        assert!(
            pvcs.contains(&format!("persistentvolumeclaim/www-web-{o}")),
            "{pvcs}"
        );
    }
    let pvc: PersistentVolumeClaim = api.get(Some("default"), "www-web-0").await.unwrap();
    assert_eq!(pvc.metadata.labels.unwrap()["app"], "web");

    let out = c
        .ok(&["rollout", "status", "statefulset/web", "--timeout=30s"])
        .await;
    assert!(out.contains("3 new pods have been updated"), "{out}");
    let st = set(&api, "web").await.status.unwrap();
    assert_eq!(
        (
            st.ready_replicas,
            st.available_replicas,
            st.current_replicas,
            st.updated_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );
    assert_eq!(st.current_revision.as_ref(), Some(revision));
    assert_eq!(st.update_revision.as_ref(), Some(revision));

    // Scale down waits while a pod below the highest is not ready...
    let unready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    api.patch::<Pod>(Some("default"), "web-1", PatchType::Merge, &unready, true)
        .await
        .unwrap();
    c.ok(&["scale", "statefulset/web", "--replicas=1"]).await;
    ctrl::eventually("scale observed with web-1 not ready", || async {
        let s = set(&api, "web").await;
        let st = s.status.clone().unwrap_or_default();
        let seen = st.observed_generation == s.metadata.generation && st.ready_replicas == Some(2);
        seen.then_some(())
    })
    .await;
    assert_eq!(pods(&api, "app=web").await.len(), 3);
    // ... then web-2 goes before web-1; the claims stay.
    ctrl::mark_ready(&api, "default", "web-1").await;
    let seen = std::sync::Mutex::new(Vec::<Vec<String>>::new());
    let (seen_ref, api_ref) = (&seen, &api);
    ctrl::eventually("scaled down to web-0", || async move {
        let live = pods(api_ref, "app=web").await;
        let now: Vec<String> = live.keys().cloned().collect();
        let mut seen = seen_ref.lock().unwrap();
        if seen.last() != Some(&now) {
            seen.push(now.clone());
        }
        (now == ["web-0"]).then_some(())
    })
    .await;
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.iter().all(|s| {
            let has = |n: &str| s.iter().any(|x| x == n);
            !has("web-2") || has("web-1")
        }),
        "web-1 went before web-2: {seen:?}"
    );
    let pvcs = api
        .list::<PersistentVolumeClaim>(Some("default"), &Selectors::default())
        .await
        .unwrap();
    assert_eq!(pvcs.items.len(), 3);

    // A failed pod is replaced under the same name.
    let old = uid(&pods(&api, "app=web").await["web-0"]).to_string();
    let failed = json!({"status": {"phase": "Failed"}});
    api.patch::<Pod>(Some("default"), "web-0", PatchType::Merge, &failed, true)
        .await
        .unwrap();
    ctrl::eventually("web-0 replaced", || async {
        let live = pods(&api, "app=web").await;
        live.get("web-0")
            .filter(|p| {
                uid(p) != old && p.status.as_ref().unwrap().phase.as_deref() == Some("Pending")
            })
            .map(|_| ())
    })
    .await;

    // Deleting the set removes its pods (garbage collector), not its claims.
    c.ok(&["delete", "statefulset", "web"]).await;
    ctrl::eventually("pods collected", || async {
        pods(&api, "app=web").await.is_empty().then_some(())
    })
    .await;
    let pvcs = c.ok(&["get", "pvc", "-o", "name"]).await;
    assert_eq!(pvcs.lines().count(), 3, "{pvcs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_creates_all_pods_and_adopts_orphans() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "par-1", "labels": {"app": "par"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}))
    .unwrap();
    let orphan = api.create(Some("default"), &orphan).await.unwrap();
    assert!(c.apply(PARALLEL, &[]).await.ok);
    // No pod is ready, yet all three exist.
    let live = settled(&api, "par", 3).await;
    assert_eq!(names(&live), ["par-0", "par-1", "par-2"]);
    assert!(live.values().all(|p| !ctrl::is_ready(p)));
    let adopted = ctrl::eventually("par-1 adopted and labelled", || async {
        let p = pods(&api, "app=par").await.remove("par-1")?;
        let labelled = p
            .metadata
            .labels
            .as_ref()?
            .get("apps.kubernetes.io/pod-index")
            == Some(&"1".to_string());
        (labelled && p.metadata.owner_references.is_some()).then_some(p)
    })
    .await;
    assert_eq!(adopted.metadata.uid, orphan.metadata.uid);

    c.ok(&["scale", "statefulset/par", "--replicas=0"]).await;
    settled(&api, "par", 0).await;
}

/// Wait until the pods of `web` have the images `want` (by ordinal) and return them.
async fn images(api: &ApiClient, want: &[&str]) -> BTreeMap<String, Pod> {
    ctrl::eventually(&format!("images {want:?}"), || async {
        let live = pods(api, "app=web").await;
        let got: Vec<&str> = live.values().map(image).collect();
        (got == want).then_some(live)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_from_the_highest_ordinal_and_partition() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    assert!(c.apply(WEB, &[]).await.ok);
    for o in 0..3 {
        settled(&api, "web", o + 1).await;
        ctrl::mark_ready(&api, "default", &format!("web-{o}")).await;
    }
    c.ok(&["rollout", "status", "statefulset/web", "--timeout=30s"])
        .await;
    let before = images(&api, &["nginx:1"; 3]).await;

    c.ok(&["set", "image", "statefulset/web", "c=nginx:2"])
        .await;
    // web-2 first, then web-1 once web-2 is ready, then web-0.
    let expected = [
        ["nginx:1", "nginx:1", "nginx:2"],
        ["nginx:1", "nginx:2", "nginx:2"],
        ["nginx:2", "nginx:2", "nginx:2"],
    ];
    for (step, want) in expected.iter().enumerate() {
        let live = images(&api, want).await;
        for (o, p) in live.values().enumerate() {
            let replaced = o >= 2 - step;
            assert_eq!(uid(p) != uid(&before[&format!("web-{o}")]), replaced);
        }
        if step == 0 {
            let out = c
                .ok(&["rollout", "status", "statefulset/web", "--watch=false"])
                .await;
            assert!(out.contains("Waiting for"), "{out}");
        }
        ctrl::mark_ready(&api, "default", &format!("web-{}", 2 - step)).await;
    }
    let out = c
        .ok(&["rollout", "status", "statefulset/web", "--timeout=30s"])
        .await;
    assert!(out.contains("roll out complete"), "{out}");
    let st = ctrl::eventually("current revision updated", || async {
        let st = set(&api, "web").await.status?;
        (st.current_revision == st.update_revision).then_some(st)
    })
    .await;
    let v2 = st.update_revision.clone().unwrap();

    // A partition of 2: only web-2 moves to v3.
    let patch = r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}"#;
    c.ok(&["patch", "statefulset/web", "-p", patch]).await;
    c.ok(&["set", "image", "statefulset/web", "c=nginx:3"])
        .await;
    images(&api, &["nginx:2", "nginx:2", "nginx:3"]).await;
    ctrl::mark_ready(&api, "default", "web-2").await;
    let out = c
        .ok(&["rollout", "status", "statefulset/web", "--timeout=30s"])
        .await;
    assert!(
        out.contains("partitioned roll out complete: 1 new pods"),
        "{out}"
    );
    let st = set(&api, "web").await.status.unwrap();
    assert_eq!(st.current_revision.as_ref(), Some(&v2));
    assert_ne!(st.update_revision.as_ref(), Some(&v2));
    assert_eq!(
        (st.current_replicas, st.updated_replicas),
        (Some(2), Some(1))
    );

    // A pod below the partition comes back from the current revision's template.
    c.ok(&["delete", "pod", "web-0"]).await;
    let live = images(&api, &["nginx:2", "nginx:2", "nginx:3"]).await;
    assert_ne!(uid(&live["web-0"]), uid(&before["web-0"]));
    let labels = live["web-0"].metadata.labels.clone().unwrap();
    assert_eq!(labels["controller-revision-hash"], v2);
    ctrl::mark_ready(&api, "default", "web-0").await;

    let history = c.ok(&["rollout", "history", "statefulset/web"]).await;
    let revisions = ctrl::revisions(&history);
    assert_eq!(revisions, ["1", "2", "3"], "{history}");

    // Undo: back to v2, whose revision becomes the newest; every pod is on it again.
    c.ok(&["rollout", "undo", "statefulset/web"]).await;
    images(&api, &["nginx:2"; 3]).await;
    ctrl::mark_ready(&api, "default", "web-2").await;
    let st = ctrl::eventually("back on v2", || async {
        let st = set(&api, "web").await.status?;
        (st.current_revision == st.update_revision && st.ready_replicas == Some(3)).then_some(st)
    })
    .await;
    assert_eq!(st.update_revision.as_ref(), Some(&v2));
    let history = c.ok(&["rollout", "history", "statefulset/web"]).await;
    assert_eq!(ctrl::revisions(&history), ["1", "3", "4"], "{history}");
    let table = c.ok(&["get", "controllerrevisions"]).await;
    assert_eq!(
        kube::header(&table),
        ["NAME", "CONTROLLER", "REVISION", "AGE"],
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with(&v2)).unwrap();
    assert!(
        row.contains("statefulset.apps/web") && row.contains(" 4 "),
        "{table}"
    );
}

async fn claim_names(api: &ApiClient) -> Vec<String> {
    let claims = api
        .list::<PersistentVolumeClaim>(Some("default"), &Selectors::default())
        .await
        .unwrap();
    let mut names: Vec<String> = claims
        .items
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| c.metadata.name)
        .collect();
    names.sort();
    names
}

/// `persistentVolumeClaimRetentionPolicy: Delete`: a scaled-away pod's claim goes with it,
/// and the rest go with the set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_follow_the_retention_policy() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    let web = WEB
        .replace(
            "replicas: 3",
            "replicas: 2\n  podManagementPolicy: Parallel",
        )
        .replace(
            "serviceName: nginx",
            "serviceName: nginx\n  persistentVolumeClaimRetentionPolicy: \
             {whenDeleted: Delete, whenScaled: Delete}",
        );
    assert!(c.apply(&web, &[]).await.ok, "apply");
    settled(&api, "web", 2).await;
    ctrl::eventually("two claims", || async {
        (claim_names(&api).await == ["www-web-0", "www-web-1"]).then_some(())
    })
    .await;
    c.ok(&["scale", "statefulset/web", "--replicas=1"]).await;
    settled(&api, "web", 1).await;
    ctrl::eventually("the scaled-away pod's claim deleted", || async {
        (claim_names(&api).await == ["www-web-0"]).then_some(())
    })
    .await;
    c.ok(&["delete", "statefulset", "web"]).await;
    ctrl::eventually("the set's claims deleted with it", || async {
        claim_names(&api).await.is_empty().then_some(())
    })
    .await;
}
