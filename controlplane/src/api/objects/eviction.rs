//! `pods/eviction` (policy/v1 `Eviction`): a pod delete that honours the
//! PodDisruptionBudgets selecting the pod, as `kubectl drain` uses it. A budget that
//! would drop below its healthy minimum refuses with 429 `TooManyRequests` (drain
//! retries); terminal and already-terminating pods are deleted regardless.
//!
//! Concurrent evictions (drain evicts in parallel, through any replica) are ordered as
//! Kubernetes orders them: an allowed eviction first records the pod in the budget's
//! `status.disruptedPods` with a write conditional on the budget's resourceVersion, and
//! a pod recorded there in the last two minutes no longer counts as healthy. Of two
//! evictions that read the same budget, one write conflicts, and that eviction checks
//! again against the updated budget.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};

use super::subresource::selector_string;
use super::{DeleteOptions, Deleted, ListOptions, Objects, WriteOptions};
use crate::api::error::ApiError;
use crate::api::meta;
use crate::api::registry::{self, ResourceInfo, Subresource};
use crate::api::selector::{self, LabelSelector};
use crate::controllers::deployment::rolling::resolve;
use crate::controllers::pods::{is_active, is_finished, is_ready};

/// How long an evicted pod stays in `disruptedPods` (Kubernetes' `DeletionTimeout`).
const DISRUPTED_FOR: Duration = Duration::minutes(2);
/// Checks of one eviction that lost a race for the same budget.
const ATTEMPTS: usize = 5;

/// A budget's requirement: how many matching pods must stay healthy.
#[derive(Debug, PartialEq, Eq)]
pub struct Budget {
    pub name: String,
    pub desired_healthy: i64,
    pub healthy: i64,
    pub expected: i64,
    /// `unhealthyPodEvictionPolicy: AlwaysAllow`.
    pub always_allow_unhealthy: bool,
}

impl Budget {
    /// Whether evicting a pod (healthy or not) keeps the budget.
    pub fn allows(&self, pod_healthy: bool) -> bool {
        if pod_healthy {
            self.healthy > self.desired_healthy
        } else {
            self.always_allow_unhealthy || self.healthy >= self.desired_healthy
        }
    }
}

/// `status.disruptedPods` of `pdb` still within [`DISRUPTED_FOR`] of `now`.
fn disrupted(pdb: &Value, now: DateTime<Utc>) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, at) in pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let recent = at
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| now - t.with_timezone(&Utc) < DISRUPTED_FOR);
        if recent {
            out.insert(name.clone(), at.clone());
        }
    }
    out
}

/// The requirement of `pdb` over `pods` (the namespace's pods its selector matches)
/// at `now`: pods it recorded as disrupted lately are not healthy.
pub fn budget(pdb: &Value, pods: &[Value], now: DateTime<Utc>) -> Option<Budget> {
    let spec = pdb.get("spec")?;
    let gone = disrupted(pdb, now);
    // Terminating pods are still expected (their owner has not replaced them yet) but
    // not healthy, nor are pods recorded as disrupted lately.
    let counted: Vec<&Value> = pods.iter().filter(|p| !is_finished(p)).collect();
    let expected = counted.len() as i64;
    let healthy = counted
        .iter()
        .filter(|p| is_active(p) && is_ready(p) && !gone.contains_key(meta::name(p)))
        .count() as i64;
    let desired_healthy = if let Some(min) = spec.get("minAvailable") {
        resolve(Some(min), expected, true)
    } else if let Some(max) = spec.get("maxUnavailable") {
        expected - resolve(Some(max), expected, true)
    } else {
        return None;
    };
    Some(Budget {
        name: meta::name(pdb).to_string(),
        desired_healthy,
        healthy,
        expected,
        always_allow_unhealthy: spec.get("unhealthyPodEvictionPolicy")
            == Some(&json!("AlwaysAllow")),
    })
}

fn too_many_requests(b: &Budget) -> ApiError {
    let mut e = ApiError::new(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    e.details = Some(json!({"causes": [{
        "reason": "DisruptionBudget",
        "message": format!(
            "The disruption budget {} needs {} healthy pods and has {} currently",
            b.name, b.desired_healthy, b.healthy
        ),
    }]}));
    e
}

impl Objects {
    /// Evicts pod `name`: deletes it with the eviction's `deleteOptions` unless a
    /// PodDisruptionBudget selecting it forbids. `dry_run` (the query's) checks only.
    pub async fn evict(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        eviction: &Value,
        dry_run: bool,
    ) -> Result<Deleted, ApiError> {
        let mut opts = DeleteOptions::default();
        if let Some(d) = eviction.get("deleteOptions") {
            opts.merge_body(d);
        }
        opts.dry_run |= dry_run;
        for attempt in 1..=ATTEMPTS {
            let pod = self.get(info, ns, name).await?;
            if is_active(&pod) {
                match self.take_budget(info, ns, &pod, opts.dry_run).await {
                    Err(e) if e.code == 409 && attempt < ATTEMPTS => continue,
                    r => r?,
                }
            }
            return self.delete(info, ns, name, &opts).await;
        }
        unreachable!("the last attempt returns")
    }

    /// Checks the budget selecting `pod` and records the pod as disrupted in it (a write
    /// conditional on the budget's resourceVersion: 409 if another eviction changed it
    /// since it was read; none on a dry run). A pod selected by more than one budget is
    /// refused, as Kubernetes refuses it.
    async fn take_budget(
        &self,
        pods_info: &ResourceInfo,
        ns: Option<&str>,
        pod: &Value,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        let pdb_info = registry::lookup("policy", "v1", "poddisruptionbudgets")
            .ok_or_else(|| ApiError::internal("PodDisruptionBudgets are not served"))?;
        let labels = selector::labels(pod);
        let now = Utc::now();
        let pdbs = self
            .list(pdb_info, ns, &ListOptions::default())
            .await?
            .items;
        let mut matched = Vec::new();
        for pdb in pdbs {
            // policy/v1: a null selector matches nothing, an empty one every pod.
            if pdb.pointer("/spec/selector").is_none_or(Value::is_null) {
                continue;
            }
            let sel = LabelSelector::parse(&selector_string(pdb_info, &pdb))
                .map_err(ApiError::bad_request)?;
            if sel.matches_labels(&labels) {
                matched.push((pdb, sel));
            }
        }
        let (pdb, sel) = match matched.len() {
            0 => return Ok(()),
            1 => matched.pop().expect("one"),
            _ => {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction \
                     subresource does not support.",
                ))
            }
        };
        let matching = ListOptions {
            labels: sel,
            ..Default::default()
        };
        let pods = self.list(pods_info, ns, &matching).await?.items;
        let Some(b) = budget(&pdb, &pods, now) else {
            return Ok(());
        };
        let pod_healthy = is_ready(pod);
        if !b.allows(pod_healthy) {
            return Err(too_many_requests(&b));
        }
        if dry_run {
            return Ok(());
        }
        let mut disrupted_pods = disrupted(&pdb, now);
        disrupted_pods.insert(
            meta::name(pod).to_string(),
            json!(now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        );
        let left = b.healthy - i64::from(pod_healthy);
        let mut new = pdb.clone();
        new["status"] = json!({
            "observedGeneration": pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "disruptedPods": disrupted_pods,
            "disruptionsAllowed": (left - b.desired_healthy).max(0),
            "currentHealthy": left,
            "desiredHealthy": b.desired_healthy,
            "expectedPods": b.expected,
        });
        self.update(
            pdb_info,
            ns,
            meta::name(&pdb),
            new,
            Some(Subresource::Status),
            WriteOptions::default(),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_suffix() -> u32 {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn recently_disrupted_pods_are_not_healthy_and_old_records_expire() {
        let (a, b) = (pod(true), pod(true));
        let now = Utc::now();
        let at = |d: Duration| json!((now - d).format("%Y-%m-%dT%H:%M:%SZ").to_string());
        let pdb = json!({"spec": {"minAvailable": 1}, "status": {"disruptedPods": {
            meta::name(&a): at(Duration::seconds(5)),
            meta::name(&b): at(Duration::minutes(3)),
        }}});
        let got = budget(&pdb, &[a.clone(), b.clone()], now).unwrap();
        assert_eq!(got.healthy, 1, "a was evicted 5 s ago; b's record is stale");
        assert!(!got.allows(true));
    }

    fn pod(ready: bool) -> Value {
        json!({"metadata": {"name": format!("p{}", rand_suffix())}, "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}
        ]}})
    }

    #[test]
    fn min_available_and_max_unavailable_as_numbers_and_percentages() {
        let pods = [pod(true), pod(true), pod(true), pod(false)];
        let b = |spec: Value| {
            budget(
                &json!({"metadata": {"name": "b"}, "spec": spec}),
                &pods,
                Utc::now(),
            )
            .unwrap()
        };
        let min2 = b(json!({"minAvailable": 2}));
        assert_eq!((min2.desired_healthy, min2.healthy), (2, 3));
        assert!(min2.allows(true), "3 healthy, 2 needed: one may go");
        let min3 = b(json!({"minAvailable": 3}));
        assert!(!min3.allows(true));
        assert!(
            min3.allows(false),
            "an unhealthy pod while the budget is met"
        );
        let pct = b(json!({"minAvailable": "75%"}));
        assert_eq!(pct.desired_healthy, 3, "75% of 4, rounded up");
        let max1 = b(json!({"maxUnavailable": 1}));
        assert_eq!(max1.desired_healthy, 3);
        assert!(!max1.allows(true), "one is unready already");
        let max0 = b(json!({"maxUnavailable": "0%", "unhealthyPodEvictionPolicy": "AlwaysAllow"}));
        assert!(!max0.allows(true));
        assert!(max0.allows(false), "AlwaysAllow lets unhealthy pods go");
    }

    #[test]
    fn terminating_pods_are_expected_not_healthy_and_finished_ones_do_not_count() {
        let mut gone = pod(true);
        gone["metadata"] = json!({"deletionTimestamp": "2026-01-01T00:00:00Z"});
        let mut done = pod(false);
        done["status"]["phase"] = json!("Succeeded");
        let pods = [pod(true), gone, done];
        let b = budget(&json!({"spec": {"minAvailable": 1}}), &pods, Utc::now()).unwrap();
        assert_eq!((b.healthy, b.expected, b.desired_healthy), (1, 2, 1));
        assert!(!b.allows(true));
        // A StatefulSet's evicted pod is not replaced while it terminates: still
        // expected, so maxUnavailable 1 does not let a second one go.
        let max1 = budget(&json!({"spec": {"maxUnavailable": 1}}), &pods, Utc::now()).unwrap();
        assert_eq!(max1.desired_healthy, 1);
        assert!(!max1.allows(true));
    }
}
