//! CronJob controller with the real kubectl: at the next minute a CronJob starts a Job
//! named for its scheduled time, lists it in `status.active`, and records
//! `lastSuccessfulTime` once it completes; Jobs made by hand with
//! `kubectl create job --from=cronjob/...` are kept within the history limits; invalid
//! schedules and time zones are rejected with 422.

mod ctrl;
mod kube;

use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use skiff_controlplane::api::client::Selectors;
use skiff_controlplane::api::patch::PatchType;
use skiff_controlplane::api::ApiClient;

const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Up to a minute until the first scheduled time, and some slack.
const FIRST_RUN: Duration = Duration::from_secs(75);

/// The Jobs whose controller is the CronJob with `uid`.
async fn owned_jobs(api: &ApiClient, uid: &str) -> Vec<Job> {
    let jobs = api
        .list::<Job>(Some("default"), &Selectors::default())
        .await;
    jobs.unwrap()
        .items
        .into_iter()
        .filter(|j| {
            let refs = j.metadata.owner_references.iter().flatten();
            refs.into_iter()
                .any(|r| r.uid == uid && r.controller == Some(true) && r.kind == "CronJob")
        })
        .collect()
}

async fn cronjob(api: &ApiClient, name: &str) -> CronJob {
    api.get(Some("default"), name).await.unwrap()
}

/// Play the kubelet: the pod of Job `job` runs and succeeds.
async fn succeed(api: &ApiClient, job: &str) {
    let pods = ctrl::eventually(&format!("the pod of {job}"), || async {
        let pods = ctrl::live_pods(api, "default", &format!("job-name={job}")).await;
        (!pods.is_empty()).then_some(pods)
    })
    .await;
    for p in pods {
        let name = p.metadata.name.as_deref().unwrap();
        let status = json!({"status": {"phase": "Succeeded"}});
        api.patch::<Pod>(Some("default"), name, PatchType::Merge, &status, true)
            .await
            .unwrap_or_else(|e| panic!("finishing {name}: {e}"));
    }
}

fn is_complete(j: &Job) -> bool {
    let conds = j.status.as_ref().and_then(|s| s.conditions.as_ref());
    conds.is_some_and(|cs| {
        cs.iter()
            .any(|c| c.type_ == "Complete" && c.status == "True")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cronjob_starts_a_job_at_its_scheduled_minute() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    let schedule = "--schedule=*/1 * * * *";
    c.ok(&[
        "create",
        "cronjob",
        "hello",
        "--image=busybox:1",
        schedule,
        "--",
        "true",
    ])
    .await;
    let cj = cronjob(&api, "hello").await;
    let uid = cj.metadata.uid.clone().unwrap();
    let job = ctrl::eventually_within("a scheduled Job of hello", FIRST_RUN, || async {
        owned_jobs(&api, &uid).await.into_iter().next()
    })
    .await;
    // Keep it to this run.
    let suspend = r#"{"spec":{"suspend":true}}"#;
    c.ok(&["patch", "cronjob", "hello", "--type=merge", "-p", suspend])
        .await;

    let name = job.metadata.name.clone().unwrap();
    let annotations = job.metadata.annotations.clone().unwrap_or_default();
    let at = annotations
        .get(SCHEDULED_AT)
        .expect("scheduled-timestamp annotation");
    let t = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    assert_eq!(t.timestamp() % 60, 0, "{at} is on a minute");
    assert_eq!(name, format!("hello-{}", t.timestamp() / 60));
    let r = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (r.name.as_str(), r.block_owner_deletion),
        ("hello", Some(true))
    );
    let template = cj.spec.unwrap().job_template.spec.unwrap().template;
    assert_eq!(
        job.spec.unwrap().template.spec.unwrap().containers[0].image,
        template.spec.unwrap().containers[0].image
    );

    ctrl::eventually("hello's status lists the Job", || async {
        let s = cronjob(&api, "hello").await.status?;
        let listed = s.active?.iter().any(|r| r.name.as_deref() == Some(&name));
        let last = s.last_schedule_time?.0.timestamp();
        (listed && last == t.timestamp()).then_some(())
    })
    .await;

    // Every Job it started (a second one only if a minute passed before the suspend).
    for j in owned_jobs(&api, &uid).await {
        succeed(&api, j.metadata.name.as_deref().unwrap()).await;
    }
    let s = ctrl::eventually("hello's status records the success", || async {
        let s = cronjob(&api, "hello").await.status?;
        let idle = s.active.as_ref().is_none_or(Vec::is_empty);
        (idle && s.last_successful_time.is_some()).then_some(s)
    })
    .await;
    let job: Job = api.get(Some("default"), &name).await.unwrap();
    assert!(is_complete(&job));
    let completed = job.status.unwrap().completion_time.unwrap();
    assert!(s.last_successful_time.unwrap().0 >= completed.0);
    let jobs = owned_jobs(&api, &uid).await;
    assert!(
        jobs.iter()
            .any(|j| j.metadata.name.as_deref() == Some(&name)),
        "history keeps it"
    );
    let created = format!("Created job {name}");
    let saw = format!("Saw completed job: {name}, status: Complete");
    ctrl::eventually("hello's events", || async {
        let out = c.ok(&["describe", "cronjob", "hello"]).await;
        (out.contains(&created) && out.contains(&saw)).then_some(())
    })
    .await;
    // Settled: no further status writes (a reconcile that rewrote it would loop).
    let rv = cronjob(&api, "hello").await.metadata.resource_version;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cronjob(&api, "hello").await.metadata.resource_version, rv);
}

const MANUAL: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: manual}
spec:
  schedule: "0 0 1 1 *"
  suspend: true
  successfulJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: "busybox:1", command: ["true"]}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_from_a_cronjob_are_kept_within_the_history_limit() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    assert!(c.apply(MANUAL, &[]).await.ok);
    let uid = cronjob(&api, "manual").await.metadata.uid.unwrap();
    for name in ["m1", "m2"] {
        c.ok(&["create", "job", name, "--from=cronjob/manual"])
            .await;
        // One after the other: m1 started first (the history keeps the newest).
        ctrl::eventually(&format!("{name} started"), || async {
            let j: Job = api.get(Some("default"), name).await.ok()?;
            j.status?.start_time.map(|_| ())
        })
        .await;
    }
    for name in ["m1", "m2"] {
        succeed(&api, name).await;
    }
    ctrl::eventually("m1 deleted, m2 kept", || async {
        let jobs = owned_jobs(&api, &uid).await;
        let names: Vec<&str> = jobs
            .iter()
            .filter_map(|j| j.metadata.name.as_deref())
            .collect();
        (names == ["m2"] && jobs.iter().all(is_complete)).then_some(())
    })
    .await;
    // Jobs made by hand are not listed as active; their success is recorded.
    let s = ctrl::eventually("manual's lastSuccessfulTime", || async {
        let s = cronjob(&api, "manual").await.status?;
        s.last_successful_time.is_some().then_some(s)
    })
    .await;
    assert!(s.active.is_none_or(|a| a.is_empty()));
    assert!(
        s.last_schedule_time.is_none(),
        "suspended: nothing scheduled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_schedules_and_time_zones_are_rejected() {
    let c = kube::start().await;
    let bad = MANUAL.replace("0 0 1 1 *", "61 * * * *");
    let out = c.apply(&bad, &[]).await;
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("spec.schedule: Invalid value: \"61 * * * *\""),
        "{}",
        out.stderr
    );
    let mars = MANUAL.replace("suspend: true", "timeZone: Mars/Olympus_Mons");
    let out = c.apply(&mars, &[]).await;
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("spec.timeZone: Invalid value: \"Mars/Olympus_Mons\": unknown time zone"),
        "{}",
        out.stderr
    );
    // The API's answer: 422 with the field as cause.
    let cj: CronJob = serde_yaml::from_str(&bad).unwrap();
    let err = c
        .server
        .client()
        .create(Some("default"), &cj)
        .await
        .unwrap_err();
    assert_eq!(err.code, 422);
    let causes = err.details.unwrap()["causes"].clone();
    assert_eq!(causes[0]["field"], "spec.schedule");
    let missing = c.kubectl(&["get", "cronjob", "manual"]).await;
    assert!(!missing.ok, "nothing was stored");
}
