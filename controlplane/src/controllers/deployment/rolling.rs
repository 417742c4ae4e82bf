//! Rolling-update arithmetic, as Kubernetes does it: maxSurge/maxUnavailable from int or
//! percent (surge rounds up, unavailable down, never both 0), how far the new ReplicaSet
//! may grow, and how far the old ones may shrink without dropping below minAvailable.

use serde_json::Value;

/// An int-or-percent of `total` (the API admits only ints and `"<n>%"`; anything else
/// counts as 0).
pub fn resolve(v: Option<&Value>, total: i64, round_up: bool) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => {
            let Some(pct) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return 0;
            };
            let scaled = pct.saturating_mul(total);
            if round_up {
                scaled.saturating_add(99) / 100
            } else {
                scaled / 100
            }
        }
        _ => 0,
    }
}

/// (maxSurge, maxUnavailable) of a RollingUpdate deployment.
pub fn fenceposts(deploy: &Value, desired: i64) -> (i64, i64) {
    let ru = deploy.pointer("/spec/strategy/rollingUpdate");
    let surge = resolve(ru.and_then(|r| r.get("maxSurge")), desired, true);
    let unavailable = resolve(ru.and_then(|r| r.get("maxUnavailable")), desired, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// The replicas of the new ReplicaSet: up to `desired`, within `desired + surge` pods.
pub fn new_rs_replicas(desired: i64, surge: i64, all_replicas: i64, new_replicas: i64) -> i64 {
    if new_replicas > desired {
        return desired;
    }
    let max_total = desired + surge;
    if all_replicas >= max_total {
        return new_replicas;
    }
    new_replicas + (max_total - all_replicas).min(desired - new_replicas)
}

/// A ReplicaSet as the rollout sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i64,
    pub available: i64,
}

/// New `spec.replicas` for the old ReplicaSets (oldest first): scale down unhealthy pods
/// first, then available ones while more than `desired - max_unavailable` stay available.
pub fn scale_down_olds(
    desired: i64,
    max_unavailable: i64,
    new: Counts,
    olds: &[Counts],
) -> Vec<i64> {
    let mut out: Vec<i64> = olds.iter().map(|o| o.replicas).collect();
    if out.iter().sum::<i64>() == 0 {
        return out;
    }
    let all: i64 = new.replicas + out.iter().sum::<i64>();
    let min_available = desired - max_unavailable;
    let new_unavailable = (new.replicas - new.available).max(0);
    let max_scaled_down = all - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return out;
    }
    let mut cleaned = 0;
    for (o, r) in olds.iter().zip(out.iter_mut()) {
        let unhealthy = (o.replicas - o.available).max(0);
        let n = unhealthy.min(max_scaled_down - cleaned);
        *r -= n;
        cleaned += n;
    }
    let available: i64 = new.available + olds.iter().map(|o| o.available).sum::<i64>();
    let mut budget = (available - min_available).min(max_scaled_down - cleaned);
    for r in out.iter_mut() {
        let n = (*r).min(budget.max(0));
        *r -= n;
        budget -= n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percent_rounding() {
        assert_eq!(resolve(Some(&json!("25%")), 3, true), 1);
        assert_eq!(resolve(Some(&json!("25%")), 3, false), 0);
        assert_eq!(resolve(Some(&json!(2)), 3, false), 2);
        let d =
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}});
        assert_eq!(fenceposts(&d, 3), (0, 1));
    }

    #[test]
    fn surge_one_unavailable_zero() {
        // 3 desired, old at 3: the new RS may add one pod.
        assert_eq!(new_rs_replicas(3, 1, 3, 0), 1);
        assert_eq!(new_rs_replicas(3, 1, 4, 1), 1);
        // The new pod is not available yet: nothing may go.
        let old = [Counts {
            replicas: 3,
            available: 3,
        }];
        let new = Counts {
            replicas: 1,
            available: 0,
        };
        assert_eq!(scale_down_olds(3, 0, new, &old), vec![3]);
        // Available: one old pod may go.
        let new = Counts {
            replicas: 1,
            available: 1,
        };
        assert_eq!(scale_down_olds(3, 0, new, &old), vec![2]);
    }
}
