//! The Job controller: runs a Job's pods until `completions` of them succeed (or, without
//! `completions`, until one succeeds and none is left running), at most `parallelism` at a
//! time; more than `backoffLimit` failed pods (with `OnFailure`, container restarts) fail
//! the Job, which then stops its running pods; `suspend` stops them too. A failed pod is
//! replaced after a backoff (10 s, doubling, at most 6 min) counted from when it finished.
//! Status: `active`, `ready`, `succeeded`, `failed`, `startTime`, `completionTime` and the
//! `SuccessCriteriaMet`/`Complete` or `FailureTarget`/`Failed` conditions
//! `kubectl wait --for=condition=complete` reads.
//!
//! A Job running longer than `activeDeadlineSeconds` (from `startTime`; not while
//! suspended) fails with `DeadlineExceeded` and its pods are stopped. A finished Job with
//! `ttlSecondsAfterFinished` is deleted that long after it finished (the TTL-after-finished
//! controller's work), its pods with it.
//!
//! Indexed Jobs (one success per index) are in [`super::job_indexed`].
//!
//! Not yet: pod failure and success policies, per-index backoff, and the pod-tracking
//! finalizer (a pod deleted before this controller saw it finish is
//! not counted).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::cache::Cache;
use super::events::{Involved, Recorder};
use super::job_indexed;
use super::owners::{self, controller_ref_to};
use super::pods::{has_phase, is_active, is_ready, time as parse_time};
use super::replicas::{create_all, delete_pods, pod_from_template, BURST, EXPECTATION_WAIT};
use super::runtime::{Action, Controller, Expectations};
use super::ControllerError;
use crate::api::meta::{self, now};
use crate::api::objects::{DeleteOptions, Objects};
use crate::api::registry::Subresource;

pub struct Jobs {
    pub objects: Objects,
    pub jobs: Arc<Cache>,
    pub pods: Arc<Cache>,
    pub expectations: Expectations,
    /// Uid of each Job (by key) this controller wrote finished: the Job cache may not show
    /// that write yet, and the conditions must not be written twice.
    pub finished: Mutex<HashMap<String, String>>,
    pub events: Recorder,
}

/// What a Job's pods amount to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub active: usize,
    pub ready: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Container restarts (init containers included) in running pods: under an
    /// `OnFailure` template they count against `backoffLimit` (not in `status.failed`).
    pub restarts: usize,
    /// An Indexed Job's succeeded indexes, as `status.completedIndexes` writes them.
    pub completed_indexes: Option<String>,
}

/// Where a Job stands, from its spec and its pods' counts.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep `want` pods running (create or delete towards it).
    Run {
        want: usize,
    },
    /// A work queue with a success: start nothing, let the running pods finish.
    Drain,
    Complete,
    /// More failed pods than `backoffLimit`.
    Failed,
    /// Active longer than `activeDeadlineSeconds`.
    DeadlineExceeded,
}

fn spec_i64(job: &Value, field: &str) -> Option<i64> {
    job.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_i64)
}

/// The Job's next step (pure: unit-tested).
pub fn verdict(job: &Value, c: &Counts) -> Verdict {
    let backoff = spec_i64(job, "backoffLimit").unwrap_or(6).max(0) as usize;
    // With OnFailure the kubelet restarts containers in place: `backoffLimit` restarts
    // (any, with a limit of 0) fail the Job too.
    let on_failure = job.pointer("/spec/template/spec/restartPolicy") == Some(&json!("OnFailure"));
    let restarts_exceed = if backoff == 0 {
        c.restarts > 0
    } else {
        c.restarts >= backoff
    };
    if c.failed > backoff || (on_failure && restarts_exceed) {
        return Verdict::Failed;
    }
    let parallelism = spec_i64(job, "parallelism").unwrap_or(1).max(0) as usize;
    let suspended = job.pointer("/spec/suspend") == Some(&json!(true));
    match spec_i64(job, "completions") {
        Some(n) => {
            let n = n.max(0) as usize;
            if c.succeeded >= n {
                return Verdict::Complete;
            }
            let want = if suspended {
                0
            } else {
                parallelism.min(n - c.succeeded)
            };
            Verdict::Run { want }
        }
        // A work queue: done once a pod succeeded and the rest have finished.
        None if c.succeeded > 0 && c.active == 0 => Verdict::Complete,
        None if suspended => Verdict::Run { want: 0 },
        None if c.succeeded > 0 => Verdict::Drain,
        None => Verdict::Run { want: parallelism },
    }
}

/// How long a running Job has left before `activeDeadlineSeconds`: `Some(ZERO)` once past,
/// `None` without a deadline, a start time, or while suspended.
pub fn deadline_left(job: &Value, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let deadline = spec_i64(job, "activeDeadlineSeconds")?.max(0);
    if job.pointer("/spec/suspend") == Some(&json!(true)) {
        return None;
    }
    let start = parse_time(job.pointer("/status/startTime"))?;
    left_until(start, deadline, now)
}

/// The time from `now` to `seconds` after `from` (zero once past; `None` if that is
/// beyond the calendar, i.e. never).
fn left_until(
    from: chrono::DateTime<chrono::Utc>,
    seconds: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let due = from.checked_add_signed(chrono::TimeDelta::try_seconds(seconds)?)?;
    Some((due - now).to_std().unwrap_or(Duration::ZERO))
}

/// The longest a deadline or TTL requeue waits: later ones look again (the periodic
/// resync would too) rather than pile up timers.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// When a finished Job may be deleted (`ttlSecondsAfterFinished` after it finished):
/// `Some(ZERO)` once due, `None` if it is unfinished or has no TTL.
pub fn ttl_left(job: &Value, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let ttl = spec_i64(job, "ttlSecondsAfterFinished")?.max(0);
    let kind = end_condition(job)?;
    let ended = parse_time(job.pointer("/status/completionTime")).or_else(|| {
        job.pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == json!(kind))
            .and_then(|c| parse_time(c.get("lastTransitionTime")))
    })?;
    left_until(ended, ttl, now)
}

/// The delay before a replacement after the `failed`-th failure: 10 s, doubling, at most
/// 6 min (the kube-controller-manager's pod failure backoff).
fn backoff(failed: usize) -> Duration {
    if failed == 0 {
        return Duration::ZERO;
    }
    let secs = 10u64.saturating_mul(1 << (failed - 1).min(6));
    Duration::from_secs(secs.min(360))
}

/// When a failed pod finished: its containers' latest termination, else its last
/// condition change.
fn finished_at(pod: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    let ended = statuses
        .into_iter()
        .flatten()
        .filter_map(|c| c.pointer("/state/terminated/finishedAt")?.as_str());
    let changed = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("lastTransitionTime")?.as_str());
    ended
        .chain(changed)
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .max()
}

/// How long a replacement still waits: the backoff after the last failure, counted from
/// when that pod finished (a failure with no time recorded does not hold anything up).
fn backoff_left(
    pods: &[Value],
    failed: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let failed_pods = pods.iter().filter(|p| has_phase(p, "Failed"));
    let last = failed_pods.filter_map(finished_at).max()?;
    let due = last + chrono::Duration::from_std(backoff(failed)).ok()?;
    (due - now).to_std().ok().filter(|d| !d.is_zero())
}

/// The restarts of a pod's containers.
fn restart_count(pod: &Value) -> usize {
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|f| {
            pod.pointer(&format!("/status/{f}"))
                .and_then(Value::as_array)
        })
        .flatten()
        .filter_map(|c| c.get("restartCount")?.as_u64())
        .sum::<u64>() as usize
}

fn condition(type_: &str, reason: &str, message: &str, at: &str) -> Value {
    json!({"type": type_, "status": "True", "reason": reason, "message": message,
           "lastProbeTime": at, "lastTransitionTime": at})
}

/// How the Job finished: `Complete` or `Failed` (the condition that is true), if it did.
pub(super) fn end_condition(job: &Value) -> Option<&str> {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .filter(|c| c["status"] == json!("True"))
        .find_map(|c| {
            c["type"]
                .as_str()
                .filter(|t| matches!(*t, "Complete" | "Failed"))
        })
}

impl Jobs {
    async fn write_status(
        &self,
        job: &Value,
        c: &Counts,
        end: Option<&Verdict>,
    ) -> Result<(), ControllerError> {
        let old = job.get("status").cloned().unwrap_or(json!({}));
        // A suspended Job has not started (its deadline does not run); it starts anew
        // when resumed.
        let suspended = job.pointer("/spec/suspend") == Some(&json!(true));
        let start_time = match old.get("startTime").filter(|t| !t.is_null()) {
            _ if suspended && end.is_none() => Value::Null,
            Some(t) => t.clone(),
            None => json!(now()),
        };
        let mut status = json!({
            "active": c.active,
            "ready": c.ready,
            "succeeded": c.succeeded,
            "failed": c.failed,
            "startTime": start_time,
        });
        if let Some(done) = &c.completed_indexes {
            status["completedIndexes"] = json!(done);
        }
        let at = now();
        let mut conditions = old
            .get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match end {
            Some(Verdict::Complete) => {
                let msg = "Reached expected number of succeeded pods";
                conditions.push(condition(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    msg,
                    &at,
                ));
                conditions.push(condition("Complete", "CompletionsReached", msg, &at));
                status["completionTime"] = json!(at);
            }
            Some(Verdict::Failed) => {
                let msg = "Job has reached the specified backoff limit";
                conditions.push(condition("FailureTarget", "BackoffLimitExceeded", msg, &at));
                conditions.push(condition("Failed", "BackoffLimitExceeded", msg, &at));
            }
            Some(Verdict::DeadlineExceeded) => {
                let msg = "Job was active longer than specified deadline";
                conditions.push(condition("FailureTarget", "DeadlineExceeded", msg, &at));
                conditions.push(condition("Failed", "DeadlineExceeded", msg, &at));
            }
            _ => {}
        }
        if !conditions.is_empty() {
            status["conditions"] = json!(conditions);
        }
        let changed = status
            .as_object()
            .unwrap()
            .iter()
            .any(|(k, v)| old.get(k) != Some(v));
        if changed {
            let patch = json!({ "status": status });
            let info = self.jobs.info;
            owners::merge_patch(&self.objects, info, job, &patch, Some(Subresource::Status))
                .await?;
        }
        Ok(())
    }
}

impl Controller for Jobs {
    fn name(&self) -> &'static str {
        "jobs"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(job) = self.jobs.get(key) else {
            self.finished.lock().unwrap().remove(key);
            return Ok(Action::Done);
        };
        if meta::is_deleting(&job) {
            return Ok(Action::Done);
        }
        if end_condition(&job).is_some() {
            return self.expire(&job).await;
        }
        let written_finished =
            self.finished.lock().unwrap().get(key).map(String::as_str) == Some(owners::uid(&job));
        if written_finished {
            return Ok(Action::Done);
        }
        if !self.expectations.satisfied(key, &self.pods) {
            return Ok(Action::RequeueAfter(EXPECTATION_WAIT));
        }
        // Its controller reference is on them: Job selectors are by uid.
        let pods = owners::controlled(&self.pods, &job);
        let mut active: Vec<Value> = pods.iter().filter(|p| is_active(p)).cloned().collect();
        // A pod finishing while being deleted (by this controller, on suspend or a lower
        // parallelism) neither succeeded nor failed; and the counts never go down when
        // finished pods are removed (there is no tracking finalizer to keep them).
        let finished_as = |want: &str, field: &str| {
            let live = pods
                .iter()
                .filter(|p| !meta::is_deleting(p) && has_phase(p, want))
                .count();
            let recorded = job
                .pointer(&format!("/status/{field}"))
                .and_then(Value::as_u64);
            live.max(recorded.unwrap_or(0) as usize)
        };
        // An Indexed Job counts succeeded indexes, not pods.
        let indexed = job_indexed::is_indexed(&job).then(|| {
            let n = spec_i64(&job, "completions").unwrap_or(0).max(0) as usize;
            (n, job_indexed::succeeded(&job, &pods, n))
        });
        let mut counts = Counts {
            active: active.len(),
            ready: active.iter().filter(|p| is_ready(p)).count(),
            succeeded: match &indexed {
                Some((_, done)) => done.len(),
                None => finished_as("Succeeded", "succeeded"),
            },
            failed: finished_as("Failed", "failed"),
            restarts: active.iter().map(restart_count).sum(),
            completed_indexes: indexed
                .as_ref()
                .map(|(_, done)| job_indexed::format_ranges(done)),
        };
        let mut v = verdict(&job, &counts);
        let deadline = deadline_left(&job, chrono::Utc::now());
        if matches!(v, Verdict::Run { .. } | Verdict::Drain) && deadline == Some(Duration::ZERO) {
            v = Verdict::DeadlineExceeded;
        }
        let want = match v {
            Verdict::Run { want } => want,
            Verdict::Drain => active.len(),
            // A finished Job stops what still runs (a work queue's stragglers, or the
            // pods of a failed one).
            Verdict::Complete | Verdict::Failed | Verdict::DeadlineExceeded => 0,
        };
        let info = self.jobs.info;
        if let Some((completions, done)) = &indexed {
            let (kept, strays) =
                job_indexed::split_strays(*completions, done, std::mem::take(&mut active));
            active = kept;
            if !strays.is_empty() {
                let (by, pods_info) = ((&self.objects, &self.events), self.pods.info);
                delete_pods(by, pods_info, &self.expectations, key, &strays).await?;
                counts.active = active.len();
                counts.ready = active.iter().filter(|p| is_ready(p)).count();
            }
        }
        if active.len() < want {
            if let Some(wait) = backoff_left(&pods, counts.failed, chrono::Utc::now()) {
                self.write_status(&job, &counts, None).await?;
                return Ok(Action::RequeueAfter(wait));
            }
            let pod = pod_from_template(&job, controller_ref_to(info, &job));
            let n = (want - active.len()).min(BURST);
            let new = match &indexed {
                Some((completions, done)) => job_indexed::to_start(*completions, done, &active, n)
                    .into_iter()
                    .map(|i| job_indexed::pod_for(&job, &pod, i))
                    .collect(),
                None => vec![pod; n],
            };
            counts.active += new.len();
            let to = (self.pods.info, owners::namespace(&job));
            let by = (&self.objects, &self.events);
            create_all(by, to, &self.expectations, key, new).await?;
        } else if active.len() > want {
            active.sort_by(super::pods::deletion_order);
            let surplus = (active.len() - want).min(BURST);
            delete_pods(
                (&self.objects, &self.events),
                self.pods.info,
                &self.expectations,
                key,
                &active[..surplus],
            )
            .await?;
            counts.active -= surplus;
            counts.ready = counts.ready.min(counts.active);
        }
        let end = matches!(
            v,
            Verdict::Complete | Verdict::Failed | Verdict::DeadlineExceeded
        )
        .then_some(&v);
        self.write_status(&job, &counts, end).await?;
        if let Some(end) = end {
            let uid = owners::uid(&job).to_string();
            self.finished.lock().unwrap().insert(key.to_string(), uid);
            let on = Involved::of(&job);
            match end {
                Verdict::Complete => self.events.normal(on, "Completed", "Job completed"),
                Verdict::Failed => self.events.warning(
                    on,
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                ),
                _ => self.events.warning(
                    on,
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                ),
            }
        }
        // Look again when the deadline passes (a Job's own events may not come by then).
        Ok(match deadline.filter(|_| end.is_none()) {
            Some(left) => Action::RequeueAfter(left.clamp(Duration::from_millis(100), MAX_WAIT)),
            None => Action::Done,
        })
    }
}

impl Jobs {
    /// A finished Job: deleted once its `ttlSecondsAfterFinished` has passed.
    async fn expire(&self, job: &Value) -> Result<Action, ControllerError> {
        match ttl_left(job, chrono::Utc::now()) {
            None => Ok(Action::Done),
            Some(left) if !left.is_zero() => Ok(Action::RequeueAfter(left.min(MAX_WAIT))),
            Some(_) => {
                let opts = DeleteOptions {
                    precondition_uid: Some(owners::uid(job).to_string()),
                    propagation_policy: Some("Background".into()),
                    ..Default::default()
                };
                let (ns, name) = (owners::namespace(job), meta::name(job));
                match self.objects.delete(self.jobs.info, ns, name, &opts).await {
                    Ok(_) => log::info!("jobs: deleted {name}, finished past its TTL"),
                    Err(e) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(Action::Done)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(spec: Value) -> Value {
        json!({ "spec": spec })
    }

    fn counts(active: usize, succeeded: usize, failed: usize) -> Counts {
        Counts {
            active,
            succeeded,
            failed,
            ..Default::default()
        }
    }

    #[test]
    fn completions_and_parallelism() {
        let j = job(json!({"completions": 5, "parallelism": 2}));
        assert_eq!(verdict(&j, &counts(0, 0, 0)), Verdict::Run { want: 2 });
        // Never more than what is left to succeed.
        assert_eq!(verdict(&j, &counts(2, 4, 0)), Verdict::Run { want: 1 });
        assert_eq!(verdict(&j, &counts(0, 5, 1)), Verdict::Complete);
    }

    #[test]
    fn backoff_limit_fails_the_job() {
        let j = job(json!({"completions": 1, "backoffLimit": 2}));
        assert_eq!(verdict(&j, &counts(0, 0, 2)), Verdict::Run { want: 1 });
        assert_eq!(verdict(&j, &counts(0, 0, 3)), Verdict::Failed);
        // The default limit is 6.
        let d = job(json!({"completions": 1}));
        assert_eq!(verdict(&d, &counts(1, 0, 6)), Verdict::Run { want: 1 });
        assert_eq!(verdict(&d, &counts(0, 0, 7)), Verdict::Failed);
        // OnFailure: backoffLimit restarts in place fail it too (any, with a limit of 0).
        let of = |limit: i64| {
            job(json!({"completions": 1, "backoffLimit": limit,
                       "template": {"spec": {"restartPolicy": "OnFailure"}}}))
        };
        let mut c = counts(1, 0, 0);
        c.restarts = 1;
        assert_eq!(verdict(&of(2), &c), Verdict::Run { want: 1 });
        assert_eq!(verdict(&of(0), &c), Verdict::Failed);
        c.restarts = 2;
        assert_eq!(verdict(&of(2), &c), Verdict::Failed);
        // Restarts do not count under Never.
        assert_eq!(verdict(&j, &c), Verdict::Run { want: 1 });
    }

    #[test]
    fn a_work_queue_completes_when_one_succeeded_and_none_runs() {
        let j = job(json!({"parallelism": 3}));
        assert_eq!(verdict(&j, &counts(0, 0, 0)), Verdict::Run { want: 3 });
        // After a success no new pod starts; the running ones finish.
        assert_eq!(verdict(&j, &counts(2, 1, 0)), Verdict::Drain);
        assert_eq!(verdict(&j, &counts(0, 3, 0)), Verdict::Complete);
    }

    #[test]
    fn replacements_back_off_from_the_last_failure() {
        let t0 = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let failed = |at: &str| {
            json!({"status": {"phase": "Failed", "containerStatuses": [
                {"state": {"terminated": {"finishedAt": at}}}]}})
        };
        let pods = [failed("2026-01-01T00:00:00Z")];
        let s = |n| Duration::from_secs(n);
        assert_eq!(backoff_left(&pods, 1, t0), Some(s(10)));
        assert_eq!(
            backoff_left(&pods, 1, t0 + chrono::Duration::seconds(4)),
            Some(s(6))
        );
        assert_eq!(
            backoff_left(&pods, 1, t0 + chrono::Duration::seconds(10)),
            None
        );
        // The later failure counts, and the delay doubles.
        let pods = [
            failed("2026-01-01T00:00:00Z"),
            failed("2026-01-01T00:00:05Z"),
        ];
        assert_eq!(
            backoff_left(&pods, 2, t0 + chrono::Duration::seconds(5)),
            Some(s(20))
        );
        assert_eq!(backoff(30), s(360));
        // No failure, or none with a time: nothing to wait for.
        assert_eq!(backoff_left(&[], 0, t0), None);
        let untimed = [json!({"status": {"phase": "Failed"}})];
        assert_eq!(backoff_left(&untimed, 1, t0), None);
    }

    #[test]
    fn suspend_stops_the_pods() {
        let j = job(json!({"completions": 3, "parallelism": 3, "suspend": true}));
        assert_eq!(verdict(&j, &counts(3, 0, 0)), Verdict::Run { want: 0 });
        let q = job(json!({"parallelism": 3, "suspend": true}));
        assert_eq!(verdict(&q, &counts(3, 0, 0)), Verdict::Run { want: 0 });
    }

    #[test]
    fn the_deadline_runs_from_the_start_and_not_while_suspended() {
        let now: chrono::DateTime<chrono::Utc> = "2026-01-01T00:01:00Z".parse().unwrap();
        let mut j = json!({"spec": {"activeDeadlineSeconds": 90},
                           "status": {"startTime": "2026-01-01T00:00:00Z"}});
        assert_eq!(deadline_left(&j, now), Some(Duration::from_secs(30)));
        j["spec"]["activeDeadlineSeconds"] = json!(30);
        assert_eq!(deadline_left(&j, now), Some(Duration::ZERO));
        j["spec"]["suspend"] = json!(true);
        assert_eq!(deadline_left(&j, now), None);
        assert_eq!(deadline_left(&json!({"spec": {}}), now), None);
    }

    #[test]
    fn the_ttl_runs_from_when_the_job_finished() {
        let now: chrono::DateTime<chrono::Utc> = "2026-01-01T00:01:00Z".parse().unwrap();
        let done = |kind: &str| {
            json!({"spec": {"ttlSecondsAfterFinished": 100},
                   "status": {"conditions": [{"type": kind, "status": "True",
                              "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
        };
        assert_eq!(
            ttl_left(&done("Failed"), now),
            Some(Duration::from_secs(40))
        );
        let mut complete = done("Complete");
        complete["status"]["completionTime"] = json!("2025-12-31T23:00:00Z");
        assert_eq!(ttl_left(&complete, now), Some(Duration::ZERO));
        let running = json!({"spec": {"ttlSecondsAfterFinished": 0}, "status": {}});
        assert_eq!(ttl_left(&running, now), None);
        // Beyond the calendar: never, not a panic.
        let mut forever = done("Complete");
        forever["spec"]["ttlSecondsAfterFinished"] = json!(i64::MAX);
        assert_eq!(ttl_left(&forever, now), None);
        let far = json!({"spec": {"activeDeadlineSeconds": 10_000_000_000_000i64},
                         "status": {"startTime": "2026-01-01T00:00:00Z"}});
        assert_eq!(deadline_left(&far, now), None);
    }
}
