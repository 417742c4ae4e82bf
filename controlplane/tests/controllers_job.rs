//! Job controller with the real kubectl: pods run `parallelism` at a time until
//! `completions` succeed, `kubectl wait --for=condition=complete` returns; more failed pods
//! than `backoffLimit` fail the Job and start no more.

mod ctrl;
mod kube;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use skiff_controlplane::api::patch::PatchType;
use skiff_controlplane::api::ApiClient;

const WORK: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: work}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: "busybox:1", command: ["true"]}]
"#;

const FLAKY: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: flaky}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: "busybox:1", command: ["false"]}]
"#;

/// The Job's pods that are neither finished nor being deleted.
async fn running(api: &ApiClient, job: &str) -> Vec<Pod> {
    ctrl::live_pods(api, "default", &format!("job-name={job}"))
        .await
        .into_iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .collect()
}

/// What a kubelet reports when the pod's container exits.
async fn finish(api: &ApiClient, pod: &Pod, phase: &str) {
    let name = pod.metadata.name.as_deref().unwrap();
    let status = json!({"status": {"phase": phase}});
    api.patch::<Pod>(Some("default"), name, PatchType::Merge, &status, true)
        .await
        .unwrap_or_else(|e| panic!("finishing {name}: {e}"));
}

/// `kubectl wait --for=condition=<condition> job/<job>`.
async fn wait_condition(c: &kube::Cluster, condition: &str, job: &str) {
    let cond = format!("--for=condition={condition}");
    let job = format!("job/{job}");
    c.ok(&["wait", &cond, &job, "--timeout=30s"]).await;
}

async fn wait_running(api: &ApiClient, job: &str, n: usize) -> Vec<Pod> {
    ctrl::eventually(&format!("{n} running pods of {job}"), || async {
        let pods = running(api, job).await;
        (pods.len() == n).then_some(pods)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_its_completions_parallelism_at_a_time() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    assert!(c.apply(WORK, &[]).await.ok);
    let job: Job = api.get(Some("default"), "work").await.unwrap();
    let pods = wait_running(&api, "work", 2).await;
    for p in &pods {
        let r = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (r.kind.as_str(), &r.uid),
            ("Job", job.metadata.uid.as_ref().unwrap())
        );
        assert_eq!(r.controller, Some(true));
    }
    // Two of three succeed: one more pod, never a fourth.
    for p in &pods {
        finish(&api, p, "Succeeded").await;
    }
    let last = wait_running(&api, "work", 1).await;
    ctrl::eventually("status succeeded=2 active=1", || async {
        let j: Job = api.get(Some("default"), "work").await.ok()?;
        let s = j.status?;
        (s.succeeded == Some(2) && s.active == Some(1) && s.start_time.is_some()).then_some(())
    })
    .await;
    finish(&api, &last[0], "Succeeded").await;
    wait_condition(&c, "complete", "work").await;
    let j: Job = api.get(Some("default"), "work").await.unwrap();
    let s = j.status.unwrap();
    assert_eq!(
        (s.succeeded, s.active, s.failed),
        (Some(3), Some(0), Some(0))
    );
    assert!(s.completion_time.is_some());
    let all = ctrl::live_pods(&api, "default", "job-name=work").await;
    assert_eq!(all.len(), 3, "pods of a complete Job are kept, none added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pods_beyond_the_backoff_limit_fail_the_job() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    assert!(c.apply(FLAKY, &[]).await.ok);
    // backoffLimit 1: a failure is retried once, after the 10 s backoff counted from
    // when the container ended; the second failure fails the Job.
    let pods = wait_running(&api, "flaky", 1).await;
    let ended = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let status = json!({"status": {"phase": "Failed", "containerStatuses": [{
        "name": "c", "image": "busybox:1", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 1, "finishedAt": ended}}}]}});
    let name = pods[0].metadata.name.as_deref().unwrap();
    api.patch::<Pod>(Some("default"), name, PatchType::Merge, &status, true)
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let pods = wait_running(&api, "flaky", 1).await;
    // finishedAt has whole seconds: up to one less than the full backoff.
    assert!(
        t.elapsed().as_secs_f64() > 8.5,
        "replaced after {:?}",
        t.elapsed()
    );
    finish(&api, &pods[0], "Failed").await;
    wait_condition(&c, "failed", "flaky").await;
    let j: Job = api.get(Some("default"), "flaky").await.unwrap();
    let s = j.status.unwrap();
    assert_eq!((s.failed, s.active), (Some(2), Some(0)));
    let failed = s
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert!(
        running(&api, "flaky").await.is_empty(),
        "a failed Job starts no pod"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_stops_the_pods_without_counting_them_failed() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    let job = WORK.replace("parallelism: 2", "parallelism: 2\n  backoffLimit: 0");
    assert!(c.apply(&job, &[]).await.ok);
    let pods = wait_running(&api, "work", 2).await;
    let suspend = r#"{"spec":{"suspend":true}}"#;
    c.ok(&["patch", "job", "work", "--type=merge", "-p", suspend])
        .await;
    wait_running(&api, "work", 0).await;
    // A kubelet reports the stopped pods Failed while they terminate: not failures of
    // the Job (backoffLimit 0 would fail it). Unscheduled pods here go at once.
    for p in &pods {
        let name = p.metadata.name.as_deref().unwrap();
        let status = json!({"status": {"phase": "Failed"}});
        let r = api
            .patch::<Pod>(Some("default"), name, PatchType::Merge, &status, true)
            .await;
        assert!(r.as_ref().is_ok() || r.is_err_and(|e| e.code == 404));
    }
    let resume = r#"{"spec":{"suspend":false}}"#;
    c.ok(&["patch", "job", "work", "--type=merge", "-p", resume])
        .await;
    wait_running(&api, "work", 2).await;
    let j: Job = api.get(Some("default"), "work").await.unwrap();
    let s = j.status.unwrap();
    assert_eq!(s.failed, Some(0), "{s:?}");
    assert!(s
        .conditions
        .unwrap_or_default()
        .iter()
        .all(|c| c.type_ != "Failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_deadline_fails_and_stops_its_pods() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    let job = WORK.replace(
        "parallelism: 2",
        "parallelism: 2\n  activeDeadlineSeconds: 2",
    );
    assert!(c.apply(&job, &[]).await.ok);
    wait_running(&api, "work", 2).await;
    wait_condition(&c, "failed", "work").await;
    let j: Job = api.get(Some("default"), "work").await.unwrap();
    let failed = j
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
    wait_running(&api, "work", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_is_deleted_after_its_ttl() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    let job = WORK.replace("completions: 3", "completions: 1").replace(
        "parallelism: 2",
        "parallelism: 1\n  ttlSecondsAfterFinished: 2",
    );
    assert!(c.apply(&job, &[]).await.ok);
    let pods = wait_running(&api, "work", 1).await;
    // Before the pod ends, so before the Job completes (the wait for the condition below
    // goes through kubectl and may see it a second late).
    let done = std::time::Instant::now();
    finish(&api, &pods[0], "Succeeded").await;
    wait_condition(&c, "complete", "work").await;
    ctrl::eventually("the Job deleted after its TTL", || async {
        api.get::<Job>(Some("default"), "work")
            .await
            .is_err_and(|e| e.code == 404)
            .then_some(())
    })
    .await;
    // completionTime has whole seconds: deleted at least TTL - 1 s after the completion.
    assert!(done.elapsed().as_secs_f64() > 0.9, "{:?}", done.elapsed());
    ctrl::eventually("its pods deleted with it", || async {
        ctrl::live_pods(&api, "default", "job-name=work")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
}

const INDEXED: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: shards}
spec:
  completions: 3
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: "busybox:1", command: ["true"]}]
"#;

/// The completion index a pod carries.
fn index(p: &Pod) -> String {
    let a = p.metadata.annotations.as_ref().unwrap();
    a["batch.kubernetes.io/job-completion-index"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexed_job_runs_each_index_once() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    assert!(c.apply(INDEXED, &[]).await.ok);
    let mut pods = wait_running(&api, "shards", 2).await;
    pods.sort_by_key(index);
    assert_eq!(pods.iter().map(index).collect::<Vec<_>>(), ["0", "1"]);
    let p0 = &pods[0];
    assert!(p0
        .metadata
        .name
        .as_deref()
        .unwrap()
        .starts_with("shards-0-"));
    let spec = p0.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("shards-0"));
    let env = spec.containers[0].env.as_ref().unwrap();
    let var = env
        .iter()
        .find(|e| e.name == "JOB_COMPLETION_INDEX")
        .unwrap();
    let field = var.value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
    assert_eq!(
        field.field_path,
        "metadata.labels['batch.kubernetes.io/job-completion-index']"
    );

    // Index 0 succeeds: the next free index (2) starts, index 1 keeps running.
    finish(&api, p0, "Succeeded").await;
    let now = ctrl::eventually("indexes 1 and 2 running", || async {
        let mut pods = running(&api, "shards").await;
        pods.sort_by_key(index);
        (pods.iter().map(index).collect::<Vec<_>>() == ["1", "2"]).then_some(pods)
    })
    .await;
    ctrl::eventually("completedIndexes 0", || async {
        let j: Job = api.get(Some("default"), "shards").await.ok()?;
        let s = j.status?;
        (s.completed_indexes.as_deref() == Some("0") && s.succeeded == Some(1)).then_some(())
    })
    .await;
    for p in &now {
        finish(&api, p, "Succeeded").await;
    }
    wait_condition(&c, "complete", "shards").await;
    let s = api
        .get::<Job>(Some("default"), "shards")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(s.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!((s.succeeded, s.active), (Some(3), Some(0)));
    let all = ctrl::live_pods(&api, "default", "job-name=shards").await;
    assert_eq!(all.len(), 3, "one pod per index, none repeated");

    // Without completions an Indexed Job is refused, with the field named.
    let bad = INDEXED
        .replace("name: shards", "name: nocount")
        .replace("  completions: 3\n", "");
    let out = c.apply(&bad, &[]).await;
    assert!(
        !out.ok && out.stderr.contains("spec.completions"),
        "{}",
        out.stderr
    );
}
