//! What one reconcile of a CronJob does, decided from its spec and status, the Jobs it
//! controls and the time (pure: unit-tested without a server): which scheduled time to
//! start a Job for, or why none starts; the running Jobs `Replace` deletes; the finished
//! Jobs beyond the history limits; the status to write; when to look again.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::schedule::{self, Schedule};
use crate::api::meta;
use crate::controllers::job::end_condition;
use crate::controllers::owners;
use crate::controllers::pods::time;

/// The annotation recording a Job's scheduled time (RFC 3339).
pub const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// More missed start times than this: only the latest is run (as upstream).
pub const MAX_MISSED: usize = 100;
/// Wake up this long after a scheduled time (upstream's `nextScheduleDelta`).
const MARGIN: Duration = Duration::from_millis(100);
/// Longest wait asked for: the periodic resync requeues every key well within it, and each
/// reconcile sets a nearer timer, so far-off schedules leave no long-lived timers behind.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// Why no Job starts in this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The CronJob is being deleted.
    Deleting,
    Suspended,
    /// An unparseable schedule or unsupported time zone (validation rejects both; an
    /// object stored before that is left alone).
    Invalid(String),
    /// No scheduled time has passed since the last one.
    NotDue,
    /// `startingDeadlineSeconds` passed since the scheduled time.
    TooLate(DateTime<Utc>),
    /// The Job for this time exists, or the status says it was started.
    AlreadyStarted(DateTime<Utc>),
    /// `concurrencyPolicy: Forbid` and a Job still runs.
    Forbidden(DateTime<Utc>),
}

/// The status fields this controller owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// ObjectReferences of the running Jobs.
    pub active: Vec<Value>,
    pub last_schedule: Option<String>,
    pub last_successful: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Create the Job for this scheduled time.
    pub start: Option<DateTime<Utc>>,
    pub skip: Option<Skip>,
    /// More than [`MAX_MISSED`] start times were missed (only the latest runs).
    pub too_many_missed: bool,
    /// Running Jobs to delete before starting (`Replace`).
    pub replace: Vec<Value>,
    /// Finished Jobs beyond the history limits, oldest first.
    pub prune: Vec<Value>,
    pub status: Status,
    /// Reconcile again after this long (`None`: on the next change).
    pub wait: Option<Duration>,
}

/// The name of the Job for scheduled time `t` (upstream's `getJobName`: unix minutes).
pub fn job_name(cronjob: &str, t: DateTime<Utc>) -> String {
    format!("{cronjob}-{}", t.timestamp().div_euclid(60))
}

/// An RFC 3339 timestamp as the API writes it.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An ObjectReference to a Job, for `status.active`.
pub fn job_ref(job: &Value) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": meta::name(job),
        "namespace": owners::namespace(job),
        "uid": owners::uid(job),
        "resourceVersion": job.pointer("/metadata/resourceVersion"),
    })
}

/// The schedule of a CronJob, in its time zone.
pub fn parse(cj: &Value) -> Result<Schedule, String> {
    let s = cj.pointer("/spec/schedule").and_then(Value::as_str);
    let schedule: Schedule = s.unwrap_or_default().parse().map_err(|e| format!("{e}"))?;
    match cj.pointer("/spec/timeZone").and_then(Value::as_str) {
        Some(tz) => {
            let zone = schedule::time_zone(tz).map_err(|e| e.to_string())?;
            Ok(schedule.in_zone(zone))
        }
        None => Ok(schedule),
    }
}

/// The latest scheduled time after `earliest` and at or before `now`, and whether more
/// than [`MAX_MISSED`] of them passed.
pub fn most_recent(
    s: &Schedule,
    earliest: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, bool)> {
    let mut t = s.next_after(earliest).filter(|t| *t <= now)?;
    for _ in 0..MAX_MISSED {
        match s.next_after(t) {
            Some(n) if n <= now => t = n,
            _ => return Some((t, false)),
        }
    }
    Some((s.latest_at_or_before(now).unwrap_or(t), true))
}

/// How long until the run after `now` (plus a margin), at most [`MAX_WAIT`].
pub fn wait_for_next(s: &Schedule, now: DateTime<Utc>) -> Option<Duration> {
    let next = s.next_after(now)?;
    let d = (next - now).to_std().unwrap_or_default() + MARGIN;
    Some(d.min(MAX_WAIT))
}

fn spec_i64(cj: &Value, field: &str) -> Option<i64> {
    cj.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_i64)
}

/// Jobs oldest first: by start time (unstarted last), then name (upstream's
/// `byJobStartTime`).
fn by_start(jobs: &mut [&Value]) {
    jobs.sort_by(|a, b| {
        let start = |j: &Value| time(j.pointer("/status/startTime"));
        match (start(a), start(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (x, y) => y.is_some().cmp(&x.is_some()),
        }
        .then_with(|| meta::name(a).cmp(meta::name(b)))
    });
}

/// The running Jobs: those already listed (while they run), then running ones started
/// for a scheduled time (a Job created by hand, with `kubectl create job --from`, is not
/// listed, as upstream).
fn active(cj: &Value, jobs: &[&Value]) -> Vec<Value> {
    let listed: Vec<&Value> = cj
        .pointer("/status/active")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let uids: HashSet<&str> = listed
        .iter()
        .filter_map(|r| r.get("uid")?.as_str())
        .collect();
    let running = |j: &&&Value| end_condition(j).is_none();
    let by_uid = |uid: Option<&str>| {
        jobs.iter()
            .filter(running)
            .find(|j| Some(owners::uid(j)) == uid)
    };
    let mut out: Vec<Value> = listed
        .iter()
        .filter(|r| by_uid(r.get("uid").and_then(Value::as_str)).is_some())
        .map(|r| (*r).clone())
        .collect();
    let scheduled = |j: &&&Value| {
        j.pointer("/metadata/annotations")
            .and_then(|a| a.get(SCHEDULED_AT))
            .is_some()
    };
    let new = jobs
        .iter()
        .filter(running)
        .filter(scheduled)
        .filter(|j| !uids.contains(owners::uid(j)));
    out.extend(new.map(|j| job_ref(j)));
    out
}

/// The newest completion time of a Complete Job, or the recorded one.
fn last_successful(cj: &Value, jobs: &[&Value]) -> Option<String> {
    let recorded = time(cj.pointer("/status/lastSuccessfulTime"));
    let completed = jobs
        .iter()
        .filter(|j| end_condition(j) == Some("Complete"))
        .filter_map(|j| time(j.pointer("/status/completionTime")));
    completed.chain(recorded).max().map(rfc3339)
}

/// Finished Jobs beyond `successfulJobsHistoryLimit` (default 3) and
/// `failedJobsHistoryLimit` (default 1), oldest first; Jobs being deleted do not count.
fn history_to_prune(cj: &Value, jobs: &[&Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for (end, field, default) in [
        ("Complete", "successfulJobsHistoryLimit", 3),
        ("Failed", "failedJobsHistoryLimit", 1),
    ] {
        let keep = spec_i64(cj, field).unwrap_or(default).max(0) as usize;
        let mut done: Vec<&Value> = jobs
            .iter()
            .copied()
            .filter(|j| end_condition(j) == Some(end) && !meta::is_deleting(j))
            .collect();
        by_start(&mut done);
        let surplus = done.len().saturating_sub(keep);
        out.extend(done[..surplus].iter().map(|j| (*j).clone()));
    }
    out
}

/// Decide what to do for CronJob `cj`, given the Jobs it controls, at `now`.
pub fn plan(cj: &Value, jobs: &[Value], now: DateTime<Utc>) -> Plan {
    let mut jobs: Vec<&Value> = jobs.iter().collect();
    by_start(&mut jobs);
    let mut p = Plan {
        start: None,
        skip: None,
        too_many_missed: false,
        replace: Vec::new(),
        prune: Vec::new(),
        status: Status {
            active: active(cj, &jobs),
            last_schedule: cj
                .pointer("/status/lastScheduleTime")
                .and_then(Value::as_str)
                .map(str::to_string),
            last_successful: last_successful(cj, &jobs),
        },
        wait: None,
    };
    if meta::is_deleting(cj) {
        p.skip = Some(Skip::Deleting);
        return p;
    }
    p.prune = history_to_prune(cj, &jobs);
    if cj.pointer("/spec/suspend") == Some(&json!(true)) {
        p.skip = Some(Skip::Suspended);
        return p;
    }
    let s = match parse(cj) {
        Ok(s) => s,
        Err(e) => {
            p.skip = Some(Skip::Invalid(e));
            return p;
        }
    };
    p.wait = wait_for_next(&s, now);
    let last = time(cj.pointer("/status/lastScheduleTime"));
    let created = time(cj.pointer("/metadata/creationTimestamp"));
    let deadline = spec_i64(cj, "startingDeadlineSeconds").map(chrono::Duration::seconds);
    let mut earliest = last.or(created).unwrap_or(now);
    if let Some(d) = deadline {
        earliest = earliest.max(now - d);
    }
    let Some((t, too_many)) = most_recent(&s, earliest, now) else {
        p.skip = Some(Skip::NotDue);
        return p;
    };
    p.too_many_missed = too_many;
    let name = job_name(meta::name(cj), t);
    if deadline.is_some_and(|d| t + d < now) {
        p.skip = Some(Skip::TooLate(t));
    } else if last.is_some_and(|l| l >= t) || jobs.iter().any(|j| meta::name(j) == name) {
        // Started already (the status write may have been lost): record it.
        p.skip = Some(Skip::AlreadyStarted(t));
        p.status.last_schedule = Some(rfc3339(last.map_or(t, |l| l.max(t))));
    } else {
        match cj
            .pointer("/spec/concurrencyPolicy")
            .and_then(Value::as_str)
        {
            Some("Forbid") if !p.status.active.is_empty() => {
                p.skip = Some(Skip::Forbidden(t));
                return p;
            }
            Some("Replace") => {
                let uids: HashSet<&str> = p
                    .status
                    .active
                    .iter()
                    .filter_map(|r| r.get("uid")?.as_str())
                    .collect();
                p.replace = jobs
                    .iter()
                    .filter(|j| uids.contains(owners::uid(j)) && !meta::is_deleting(j))
                    .map(|j| (*j).clone())
                    .collect();
                p.status.active.clear();
            }
            _ => {}
        }
        p.start = Some(t);
        p.status.last_schedule = Some(rfc3339(t));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cronjob(spec: Value, status: Value) -> Value {
        let mut spec = spec;
        if spec.get("schedule").is_none() {
            spec["schedule"] = json!("*/5 * * * *");
        }
        json!({"metadata": {"name": "cj", "namespace": "ns", "uid": "cj-uid",
                            "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": spec, "status": status})
    }

    /// A Job of `cj` started at `start`; `end`: `Complete` or `Failed`.
    fn job(name: &str, start: &str, end: Option<&str>) -> Value {
        let mut j = json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("{name}-uid"),
                         "resourceVersion": "7",
                         "annotations": {SCHEDULED_AT: start}},
            "status": {"startTime": start}});
        if let Some(end) = end {
            j["status"]["conditions"] = json!([{"type": end, "status": "True"}]);
            if end == "Complete" {
                j["status"]["completionTime"] = json!(start);
            }
        }
        j
    }

    fn names(jobs: &[Value]) -> Vec<&str> {
        jobs.iter().map(meta::name).collect()
    }

    #[test]
    fn job_names_are_unix_minutes() {
        let t = at("2026-01-01T00:05:00Z");
        assert_eq!(job_name("cj", t), format!("cj-{}", t.timestamp() / 60));
        assert_eq!(job_name("cj", at("1970-01-01T01:00:00Z")), "cj-60");
    }

    #[test]
    fn not_due_waits_for_the_next_time() {
        let cj = cronjob(json!({}), json!({}));
        let p = plan(&cj, &[], at("2026-01-01T00:04:00Z"));
        assert_eq!((p.start, p.skip), (None, Some(Skip::NotDue)));
        assert_eq!(p.wait, Some(Duration::from_millis(60_100)));
        assert_eq!(p.status, Status::default());
        // Far-off runs: wait at most MAX_WAIT (the resync comes back sooner anyway).
        let yearly = cronjob(json!({"schedule": "@yearly"}), json!({}));
        let p = plan(&yearly, &[], at("2026-01-01T00:04:00Z"));
        assert_eq!(p.wait, Some(MAX_WAIT));
    }

    #[test]
    fn starts_the_latest_missed_time_once() {
        let cj = cronjob(json!({}), json!({}));
        let now = at("2026-01-01T00:12:30Z");
        let p = plan(&cj, &[], now);
        assert_eq!(p.start, Some(at("2026-01-01T00:10:00Z")));
        assert_eq!(p.skip, None);
        assert!(!p.too_many_missed);
        assert_eq!(
            p.status.last_schedule.as_deref(),
            Some("2026-01-01T00:10:00Z")
        );
        assert_eq!(p.wait, Some(Duration::from_millis(150_100)));
        // Re-run with the Job created (its status not yet written): no second Job, and
        // the lost lastScheduleTime is recorded.
        let created = job(
            &job_name("cj", at("2026-01-01T00:10:00Z")),
            "2026-01-01T00:10:00Z",
            None,
        );
        let p = plan(&cj, std::slice::from_ref(&created), now);
        let t = at("2026-01-01T00:10:00Z");
        assert_eq!((p.start, p.skip), (None, Some(Skip::AlreadyStarted(t))));
        assert_eq!(
            p.status.last_schedule.as_deref(),
            Some("2026-01-01T00:10:00Z")
        );
        assert_eq!(p.status.active, [job_ref(&created)]);
        // With the status written: nothing left to run until 00:15.
        let done = cronjob(
            json!({}),
            json!({"lastScheduleTime": "2026-01-01T00:10:00Z"}),
        );
        let p = plan(&done, &[created], now);
        assert_eq!((p.start, p.skip), (None, Some(Skip::NotDue)));
    }

    #[test]
    fn too_many_missed_runs_only_the_latest() {
        let cj = cronjob(json!({"schedule": "* * * * *"}), json!({}));
        // 100 missed minutes: counted exactly.
        let p = plan(&cj, &[], at("2026-01-01T01:40:00Z"));
        assert_eq!(
            (p.start, p.too_many_missed),
            (Some(at("2026-01-01T01:40:00Z")), false)
        );
        let p = plan(&cj, &[], at("2026-01-01T01:41:10Z"));
        assert_eq!(
            (p.start, p.too_many_missed),
            (Some(at("2026-01-01T01:41:00Z")), true)
        );
        // A year later: still the latest, without walking every minute.
        let p = plan(&cj, &[], at("2027-01-01T00:00:30Z"));
        assert_eq!(p.start, Some(at("2027-01-01T00:00:00Z")));
    }

    #[test]
    fn starting_deadline() {
        let cj = cronjob(
            json!({"schedule": "0 * * * *", "startingDeadlineSeconds": 60}),
            json!({"lastScheduleTime": "2026-01-01T00:00:00Z"}),
        );
        // 01:00 was missed by more than a minute: nothing starts; back at 02:00.
        let p = plan(&cj, &[], at("2026-01-01T01:01:30Z"));
        assert_eq!((p.start, p.skip), (None, Some(Skip::NotDue)));
        assert_eq!(
            p.status.last_schedule.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        let p = plan(&cj, &[], at("2026-01-01T01:00:40Z"));
        assert_eq!(p.start, Some(at("2026-01-01T01:00:00Z")));
        // The earliest bound is clamped to the deadline: no walk through a year of misses.
        let old = cronjob(
            json!({"schedule": "* * * * *", "startingDeadlineSeconds": 30}),
            json!({"lastScheduleTime": "2025-01-01T00:00:00Z"}),
        );
        let p = plan(&old, &[], at("2026-01-01T00:00:20Z"));
        assert_eq!(
            (p.start, p.too_many_missed),
            (Some(at("2026-01-01T00:00:00Z")), false)
        );
    }

    #[test]
    fn suspended_deleting_or_invalid_start_nothing() {
        let now = at("2026-01-01T00:12:30Z");
        let suspended = cronjob(json!({"suspend": true}), json!({}));
        let p = plan(&suspended, &[], now);
        assert_eq!(
            (p.start, p.skip, p.wait),
            (None, Some(Skip::Suspended), None)
        );
        let mut deleting = cronjob(json!({}), json!({}));
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:12:00Z");
        let old = [
            job("a", "2026-01-01T00:00:00Z", Some("Failed")),
            job("b", "2026-01-01T00:05:00Z", Some("Failed")),
        ];
        let p = plan(&deleting, &old, now);
        assert_eq!((p.start, p.skip), (None, Some(Skip::Deleting)));
        assert!(p.prune.is_empty(), "the garbage collector deletes them");
        for bad in [
            json!({"schedule": "61 * * * *"}),
            json!({"timeZone": "Mars/Olympus_Mons"}),
        ] {
            let p = plan(&cronjob(bad, json!({})), &[], now);
            assert!(matches!(p.skip, Some(Skip::Invalid(_))), "{:?}", p.skip);
            assert_eq!((p.start, p.wait), (None, None));
        }
        let utc = cronjob(json!({"timeZone": "Etc/UTC"}), json!({}));
        assert!(plan(&utc, &[], now).start.is_some());
    }

    #[test]
    fn concurrency_policies() {
        let now = at("2026-01-01T00:12:30Z");
        let status = json!({"lastScheduleTime": "2026-01-01T00:05:00Z"});
        let running = job("cj-old", "2026-01-01T00:05:00Z", None);
        let jobs = [running.clone()];
        let allow = plan(&cronjob(json!({}), status.clone()), &jobs, now);
        assert_eq!(allow.start, Some(at("2026-01-01T00:10:00Z")));
        assert!(allow.replace.is_empty());
        assert_eq!(allow.status.active, [job_ref(&running)]);
        let forbid = cronjob(json!({"concurrencyPolicy": "Forbid"}), status.clone());
        let p = plan(&forbid, &jobs, now);
        assert_eq!(
            (p.start, p.skip),
            (None, Some(Skip::Forbidden(at("2026-01-01T00:10:00Z"))))
        );
        assert_eq!(
            p.status.last_schedule.as_deref(),
            Some("2026-01-01T00:05:00Z")
        );
        // Once the running Job finished, the missed run starts (late).
        let finished = [job("cj-old", "2026-01-01T00:05:00Z", Some("Complete"))];
        let p = plan(&forbid, &finished, now);
        assert_eq!(p.start, Some(at("2026-01-01T00:10:00Z")));
        assert!(p.status.active.is_empty());
        let replace = cronjob(json!({"concurrencyPolicy": "Replace"}), status);
        let p = plan(&replace, &jobs, now);
        assert_eq!(p.start, Some(at("2026-01-01T00:10:00Z")));
        assert_eq!(names(&p.replace), ["cj-old"]);
        assert!(p.status.active.is_empty());
    }

    #[test]
    fn replace_never_deletes_the_job_of_the_current_run() {
        let now = at("2026-01-01T00:12:30Z");
        let current = job(
            &job_name("cj", at("2026-01-01T00:10:00Z")),
            "2026-01-01T00:10:00Z",
            None,
        );
        let replace = cronjob(json!({"concurrencyPolicy": "Replace"}), json!({}));
        let p = plan(&replace, std::slice::from_ref(&current), now);
        assert!(p.replace.is_empty() && p.start.is_none());
        assert_eq!(p.status.active, [job_ref(&current)]);
    }

    #[test]
    fn active_keeps_listed_references_and_skips_manual_jobs() {
        let now = at("2026-01-01T00:12:30Z");
        let listed = job("cj-listed", "2026-01-01T00:00:00Z", None);
        let mut listed_ref = job_ref(&listed);
        listed_ref["resourceVersion"] = json!("3");
        let mut manual = job("manual", "2026-01-01T00:01:00Z", None);
        manual["metadata"]["annotations"] = json!({"cronjob.kubernetes.io/instantiate": "manual"});
        let gone = json!({"kind": "Job", "name": "gone", "uid": "gone-uid"});
        let status =
            json!({"active": [listed_ref, gone], "lastScheduleTime": "2026-01-01T00:10:00Z"});
        let p = plan(&cronjob(json!({}), status), &[listed, manual], now);
        // The recorded reference is kept as it was; a Job no longer there is dropped.
        assert_eq!(p.status.active, [listed_ref]);
    }

    #[test]
    fn last_successful_is_the_newest_completion() {
        let now = at("2026-01-01T00:12:30Z");
        let status = json!({"lastScheduleTime": "2026-01-01T00:10:00Z",
                            "lastSuccessfulTime": "2026-01-01T00:01:00Z"});
        let jobs = [
            job("a", "2026-01-01T00:05:00Z", Some("Complete")),
            job("b", "2026-01-01T00:00:00Z", Some("Complete")),
            job("c", "2026-01-01T00:10:00Z", Some("Failed")),
        ];
        let p = plan(&cronjob(json!({}), status), &jobs, now);
        assert_eq!(
            p.status.last_successful.as_deref(),
            Some("2026-01-01T00:05:00Z")
        );
    }

    #[test]
    fn history_limits_delete_the_oldest() {
        let now = at("2026-01-01T00:12:30Z");
        let status = json!({"lastScheduleTime": "2026-01-01T00:10:00Z"});
        let mut jobs: Vec<Value> = (0..5)
            .map(|i| {
                job(
                    &format!("ok{i}"),
                    &format!("2026-01-01T00:0{i}:00Z"),
                    Some("Complete"),
                )
            })
            .collect();
        jobs.extend((0..3).map(|i| {
            job(
                &format!("bad{i}"),
                &format!("2026-01-01T00:0{i}:30Z"),
                Some("Failed"),
            )
        }));
        jobs.push(job("running", "2026-01-01T00:00:00Z", None));
        let p = plan(&cronjob(json!({}), status.clone()), &jobs, now);
        assert_eq!(names(&p.prune), ["ok0", "ok1", "bad0", "bad1"]);
        let limits = json!({"successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 5});
        let p = plan(&cronjob(limits, status.clone()), &jobs, now);
        assert_eq!(names(&p.prune), ["ok0", "ok1", "ok2", "ok3", "ok4"]);
        // Jobs already being deleted neither count nor are deleted again.
        jobs[0]["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:12:00Z");
        let p = plan(&cronjob(json!({}), status), &jobs, now);
        assert_eq!(names(&p.prune), ["ok1", "bad0", "bad1"]);
    }
}
