//! The events the workload controllers record, as `kubectl describe` shows them: a
//! ReplicaSet's `SuccessfulCreate`/`SuccessfulDelete`, a Deployment's `ScalingReplicaSet`,
//! a Job's `Completed`; and a repeated event counted into one (`count`, `lastTimestamp`).

mod ctrl;
mod kube;

use k8s_openapi::api::core::v1::Event;
use serde_json::{json, Value};
use skiff_controlplane::api::client::Selectors;
use skiff_controlplane::api::patch::PatchType;
use skiff_controlplane::controllers::events::{self, Involved, Recorder};

const RS: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: front}
spec:
  replicas: 2
  selector: {matchLabels: {app: front}}
  template:
    metadata: {labels: {app: front}}
    spec: {containers: [{name: c, image: busybox}]}
"#;

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: busybox}]}
"#;

const JOB: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    metadata: {labels: {app: once}}
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
"#;

/// `kubectl describe <what>` once it shows every line of `want`.
async fn described(c: &kube::Cluster, what: &str, want: &[&str]) -> String {
    ctrl::eventually(&format!("{what} describing {want:?}"), || async {
        let out = c.ok(&["describe", what]).await;
        want.iter().all(|w| out.contains(w)).then_some(out)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_controllers_say_what_they_did() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();

    assert!(c.apply(RS, &[]).await.ok);
    let pods = ctrl::eventually("2 pods of front", || async {
        let pods = ctrl::live_pods(&api, "default", "app=front").await;
        (pods.len() == 2).then_some(pods)
    })
    .await;
    let names: Vec<String> = pods
        .iter()
        .map(|p| format!("Created pod: {}", p.metadata.name.as_deref().unwrap()))
        .collect();
    let want: Vec<&str> = names.iter().map(String::as_str).collect();
    let out = described(&c, "rs/front", &want).await;
    assert!(out.contains("SuccessfulCreate"), "{out}");
    assert!(out.contains("replicaset-controller"), "{out}");

    c.ok(&["scale", "rs/front", "--replicas=1"]).await;
    described(&c, "rs/front", &["SuccessfulDelete", "Deleted pod: front-"]).await;

    assert!(c.apply(DEPLOY, &[]).await.ok);
    let out = described(&c, "deployment/web", &["ScalingReplicaSet", "from 0 to 2"]).await;
    assert!(out.contains("Scaled up replica set web-"), "{out}");
    c.ok(&["scale", "deployment/web", "--replicas=1"]).await;
    described(
        &c,
        "deployment/web",
        &["Scaled down replica set web-", "from 2 to 1"],
    )
    .await;

    assert!(c.apply(JOB, &[]).await.ok);
    let pod = ctrl::eventually("the job's pod", || async {
        ctrl::live_pods(&api, "default", "app=once").await.pop()
    })
    .await;
    let name = pod.metadata.name.as_deref().unwrap();
    let done = json!({"status": {"phase": "Succeeded"}});
    api.patch::<k8s_openapi::api::core::v1::Pod>(
        Some("default"),
        name,
        PatchType::Merge,
        &done,
        true,
    )
    .await
    .unwrap();
    let created = format!("Created pod: {name}");
    described(&c, "job/once", &[&created, "Completed", "Job completed"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_event_is_counted_into_one() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    let cm = c.json(&["create", "configmap", "seen", "-o", "json"]).await;
    let (events, _writer) = Recorder::start(api.objects().clone());
    for _ in 0..3 {
        events.warning(Involved::of(&cm), "Flapping", "it flaps");
    }
    events.normal(Involved::of(&cm), "Settled", "it settled");

    let about_seen = |e: &Event| e.involved_object.name.as_deref() == Some("seen");
    let list = || async {
        let all = api
            .list::<Event>(Some("default"), &Selectors::default())
            .await
            .unwrap()
            .items;
        all.into_iter().filter(about_seen).collect::<Vec<_>>()
    };
    let flapping = ctrl::eventually("one Flapping event counted 3 times", || async {
        let events = list().await;
        let settled = events
            .iter()
            .any(|e| e.reason.as_deref() == Some("Settled"));
        let flaps: Vec<Event> = events
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("Flapping"))
            .collect();
        (settled && flaps.len() == 1 && flaps[0].count == Some(3)).then(|| flaps[0].clone())
    })
    .await;
    assert_eq!(flapping.type_.as_deref(), Some("Warning"));
    assert_eq!(
        flapping.involved_object.uid.as_deref(),
        cm.pointer("/metadata/uid").and_then(Value::as_str)
    );
    assert!(flapping.first_timestamp <= flapping.last_timestamp);
    let out = c.ok(&["describe", "configmap", "seen"]).await;
    assert!(out.contains("Flapping"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_expire_an_hour_after_they_were_last_seen() {
    let c = kube::start().await;
    let api = c.server.client();
    // Two hours from now, one event was last seen now (when it is created) and the
    // other an hour and a half from now (a repeat raised its count then).
    let now = chrono::Utc::now();
    let later = now + chrono::Duration::minutes(90);
    let later = later.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (name, last) in [("old", None), ("seen-again", Some(later.as_str()))] {
        let mut e = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Tested", "message": name, "type": "Normal"});
        if let Some(t) = last {
            e["lastTimestamp"] = json!(t);
        }
        let manifest = serde_json::to_string(&e).unwrap();
        assert!(c.kubectl_in(&["create", "-f", "-"], &manifest).await.ok);
    }
    let names = || async {
        api.list::<Event>(Some("default"), &Selectors::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|e| e.metadata.name)
            .collect::<Vec<String>>()
    };
    let swept = |at| events::sweep(api.objects(), at, events::TTL);
    assert_eq!(swept(now).await.unwrap(), 0, "nothing is an hour old yet");
    assert_eq!(names().await.len(), 2);
    let gone = swept(now + chrono::Duration::hours(2)).await.unwrap();
    assert_eq!(gone, 1);
    assert_eq!(names().await, ["seen-again"]);
}
