//! The CronJob controller (Kubernetes' `cronjob_controllerv2`): at each time of
//! `spec.schedule` ([`schedule`], read in `spec.timeZone`, UTC by default) it creates a Job from `spec.jobTemplate`, named
//! `<cronjob>-<scheduled time in unix minutes>` so that a run is never started twice, with a
//! controller reference to the CronJob and the `batch.kubernetes.io/cronjob-scheduled-timestamp`
//! annotation. It honours `suspend`, `startingDeadlineSeconds` and `concurrencyPolicy`
//! (`Allow`, `Forbid`, `Replace`), deletes finished Jobs beyond
//! `successfulJobsHistoryLimit`/`failedJobsHistoryLimit`, and writes `status.active`,
//! `lastScheduleTime` and `lastSuccessfulTime`. The decisions are pure ([`plan`]); this file
//! reads the caches and writes. Events say what it did and skipped, in Kubernetes' words
//! (`SuccessfulCreate`, `SawCompletedJob`, `SuccessfulDelete`, `JobAlreadyActive`,
//! `MissSchedule`, `TooManyMissedTimes`).
//!
//! Not yet: `@every`.

pub mod plan;
pub mod schedule;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::cache::Cache;
use super::events::{self, Involved, Once, Recorder};
use super::job::end_condition;
use super::owners::{self, controller_ref_to};
use super::replicas::{delete_each, EXPECTATION_WAIT};
use super::runtime::{Action, Controller, Expectations};
use super::ControllerError;
use crate::api::meta;
use crate::api::objects::{Objects, WriteOptions};
use crate::api::registry::Subresource;
use plan::{job_ref, plan, rfc3339, Skip, Status, SCHEDULED_AT};

pub struct CronJobs {
    pub objects: Objects,
    pub cronjobs: Arc<Cache>,
    pub jobs: Arc<Cache>,
    /// Jobs this controller created or deleted, per CronJob key: until the Job cache shows
    /// them, a reconcile waits (it would not see the run it just started).
    pub job_writes: Expectations,
    /// Status writes, per key: until the CronJob cache shows them, `lastScheduleTime` there
    /// is stale.
    pub status_writes: Expectations,
    pub events: Recorder,
    /// The last skipped run said in an event, per CronJob: a resync finds it again.
    pub said: Once,
}

/// The Job for scheduled time `t` from the CronJob's `spec.jobTemplate`.
pub fn job_for(cj: &Value, oref: Value, t: DateTime<Utc>) -> Value {
    let template = cj.pointer("/spec/jobTemplate");
    let from = |f: &str| template.and_then(|t| t.pointer(f)).cloned();
    let mut annotations = from("/metadata/annotations").unwrap_or(json!({}));
    annotations[SCHEDULED_AT] = json!(rfc3339(t));
    let mut m = json!({
        "name": plan::job_name(meta::name(cj), t),
        "namespace": owners::namespace(cj),
        "annotations": annotations,
        "ownerReferences": [oref],
    });
    if let Some(labels) = from("/metadata/labels") {
        m["labels"] = labels;
    }
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": m,
           "spec": from("/spec").unwrap_or(json!({}))})
}

/// The status fields of `s` that differ from `old`, as a merge patch (`None`: no change).
fn status_patch(old: &Value, s: &Status) -> Option<Value> {
    let active = if s.active.is_empty() {
        Value::Null
    } else {
        json!(s.active)
    };
    let new = json!({
        "active": active,
        "lastScheduleTime": s.last_schedule,
        "lastSuccessfulTime": s.last_successful,
    });
    let changed = new
        .as_object()?
        .iter()
        .any(|(k, v)| old.get(k).unwrap_or(&Value::Null) != v);
    changed.then(|| json!({ "status": new }))
}

impl CronJobs {
    /// Delete `jobs` (by uid) with background propagation: the garbage collector then
    /// deletes their pods.
    async fn delete_jobs(&self, key: &str, jobs: &[Value]) -> Result<(), ControllerError> {
        let to = (self.jobs.info, Some("Background"));
        let by = (&self.objects, &self.events);
        delete_each(by, to, &self.job_writes, key, jobs).await
    }

    /// Create the Job for `t`; its reference, unless it existed already.
    async fn start(
        &self,
        key: &str,
        cj: &Value,
        t: DateTime<Utc>,
    ) -> Result<Option<Value>, ControllerError> {
        let job = job_for(cj, controller_ref_to(self.cronjobs.info, cj), t);
        let ns = owners::namespace(cj);
        match self
            .objects
            .create(self.jobs.info, ns, job, WriteOptions::default())
            .await
        {
            Ok(w) => {
                self.job_writes.expect_written(key, &w.object);
                log::info!("cronjob {key}: created job {}", meta::name(&w.object));
                let on = Involved::of(cj);
                let message = events::created(&on, meta::name(&w.object));
                self.events.normal(on, "SuccessfulCreate", message);
                Ok(Some(job_ref(&w.object)))
            }
            // Created before (the name is the lock): the Job cache brings it to `active`.
            Err(e) if e.code == 409 && e.reason == "AlreadyExists" => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl CronJobs {
    /// Events for a run that does not start (or a schedule that cannot), each once per run.
    fn say_skipped(&self, cj: &Value, p: &plan::Plan) {
        let key = meta::name(cj);
        if p.too_many_missed {
            log::warn!("cronjob {key}: too many missed start times; starting the latest");
            let message = "too many missed start times. Set or decrease \
                           .spec.startingDeadlineSeconds or check clock skew";
            let run = format!("{:?}", p.start);
            self.say(cj, (true, "TooManyMissedTimes"), message.to_string(), &run);
        }
        match &p.skip {
            Some(Skip::Invalid(e)) => {
                log::warn!("cronjob {key}: {e}");
                let schedule = cj.pointer("/spec/schedule").and_then(Value::as_str);
                let message = format!("unparseable schedule: {:?} : {e}", schedule.unwrap_or(""));
                self.say(cj, (true, "UnparseableSchedule"), message, "");
            }
            Some(Skip::TooLate(t)) => {
                log::warn!("cronjob {key}: missed the starting deadline of {t}");
                let at = t.format("%a, %d %b %Y %H:%M:%S %z");
                let message = format!("Missed scheduled time to start a job: {at}");
                self.say(cj, (true, "MissSchedule"), message, &t.to_rfc3339());
            }
            Some(Skip::Forbidden(t)) => {
                log::info!("cronjob {key}: not starting {t}: a job still runs (Forbid)");
                let message = "Not starting job because prior execution is running and \
                               concurrency policy is Forbid";
                let run = t.to_rfc3339();
                self.say(cj, (false, "JobAlreadyActive"), message.to_string(), &run);
            }
            _ => {}
        }
    }

    /// Record `message` on `cj` unless it was the last thing said about it for `run`.
    fn say(&self, cj: &Value, (warning, reason): (bool, &'static str), message: String, run: &str) {
        let about = format!("{}/{reason}", owners::uid(cj));
        if !self.said.first(&about, &format!("{run} {message}")) {
            return;
        }
        let on = Involved::of(cj);
        if warning {
            self.events.warning(on, reason, message);
        } else {
            self.events.normal(on, reason, message);
        }
    }

    /// A `SawCompletedJob` event for each Job the status lists as active that has finished.
    fn saw_completed(&self, cj: &Value, jobs: &[Value], active: &[Value]) {
        let names = |refs: &[Value]| -> Vec<String> {
            refs.iter()
                .filter_map(|r| r.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        };
        let was = cj
            .pointer("/status/active")
            .and_then(Value::as_array)
            .map_or_else(Vec::new, |a| names(a));
        let still = names(active);
        for name in was.iter().filter(|n| !still.contains(n)) {
            let finished = jobs
                .iter()
                .find(|j| meta::name(j) == name.as_str())
                .and_then(end_condition);
            if let Some(how) = finished {
                let message = format!("Saw completed job: {name}, status: {how}");
                self.events
                    .normal(Involved::of(cj), "SawCompletedJob", message);
            }
        }
    }
}

impl Controller for CronJobs {
    fn name(&self) -> &'static str {
        "cronjobs"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(cj) = self.cronjobs.get(key) else {
            return Ok(Action::Done);
        };
        if !self.job_writes.satisfied(key, &self.jobs)
            || !self.status_writes.satisfied(key, &self.cronjobs)
        {
            return Ok(Action::RequeueAfter(EXPECTATION_WAIT));
        }
        let jobs = owners::controlled(&self.jobs, &cj);
        let mut p = plan(&cj, &jobs, Utc::now());
        self.say_skipped(&cj, &p);
        self.delete_jobs(key, &p.prune).await?;
        self.delete_jobs(key, &p.replace).await?;
        if let Some(t) = p.start {
            if let Some(r) = self.start(key, &cj, t).await? {
                p.status.active.push(r);
            }
        }
        let old = cj.get("status").cloned().unwrap_or(json!({}));
        if let Some(patch) = status_patch(&old, &p.status) {
            let info = self.cronjobs.info;
            let w =
                owners::merge_patch(&self.objects, info, &cj, &patch, Some(Subresource::Status))
                    .await?;
            self.status_writes.expect_written(key, &w);
            self.saw_completed(&cj, &jobs, &p.status.active);
        }
        Ok(p.wait.map_or(Action::Done, Action::RequeueAfter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_come_from_the_template() {
        let cj = json!({
            "metadata": {"name": "hello", "namespace": "ns", "uid": "u"},
            "spec": {"jobTemplate": {
                "metadata": {"labels": {"app": "a"}, "annotations": {"note": "n"}},
                "spec": {"backoffLimit": 2, "template": {"spec": {"containers": []}}}}}});
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let job = job_for(&cj, json!({"uid": "u", "controller": true}), t);
        assert_eq!(
            job["metadata"]["name"],
            format!("hello-{}", t.timestamp() / 60)
        );
        assert_eq!(job["metadata"]["namespace"], "ns");
        assert_eq!(job["metadata"]["labels"], json!({"app": "a"}));
        assert_eq!(
            job["metadata"]["annotations"],
            json!({"note": "n", SCHEDULED_AT: "2026-01-01T00:05:00Z"})
        );
        assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], "u");
        assert_eq!(job["spec"]["backoffLimit"], 2);
    }

    #[test]
    fn status_is_patched_only_when_it_changes() {
        let s = Status {
            active: vec![],
            last_schedule: Some("2026-01-01T00:05:00Z".into()),
            last_successful: None,
        };
        let old = json!({"lastScheduleTime": "2026-01-01T00:05:00Z"});
        assert_eq!(status_patch(&old, &s), None);
        let older = json!({"lastScheduleTime": "2026-01-01T00:00:00Z", "active": [{"name": "x"}]});
        let patch = status_patch(&older, &s).unwrap();
        assert_eq!(patch["status"]["active"], Value::Null);
        assert_eq!(patch["status"]["lastScheduleTime"], "2026-01-01T00:05:00Z");
    }
}
