//! The autoscaling arithmetic, as the HorizontalPodAutoscaler controller does it: per
//! metric a usage ratio against its target and the replicas it asks for (within a 10 %
//! tolerance nothing changes), the largest of them, then the default behaviour: scale-up at
//! most to `max(2 × current, current + 4)` per step, scale-down to the highest
//! recommendation of the last 5 minutes, all within `[minReplicas, maxReplicas]`.

use std::time::{Duration, Instant};

/// Ratios this close to 1 change nothing.
pub const TOLERANCE: f64 = 0.1;
/// Scale-down looks back this far (`behavior.scaleDown.stabilizationWindowSeconds`).
pub const DOWN_WINDOW: Duration = Duration::from_secs(300);

/// The replicas one metric asks for: `ceil(ratio × pods)` outside the tolerance.
pub fn replicas_for(current: u32, pods_measured: u32, ratio: f64) -> u32 {
    if !ratio.is_finite() || (ratio - 1.0).abs() <= TOLERANCE || pods_measured == 0 {
        return current;
    }
    (ratio * f64::from(pods_measured)).ceil().max(0.0) as u32
}

/// Why the final count differs from what the metrics asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Within,
    TooMany,
    TooFew,
    ScaleUpLimit,
}

/// The replicas to set, from the metrics' `wanted`, the earlier recommendations
/// (`history`, updated here), and the bounds.
pub fn normalize(
    current: u32,
    wanted: u32,
    (min, max): (u32, u32),
    history: &mut Vec<(Instant, u32)>,
    now: Instant,
) -> (u32, Limit) {
    history.retain(|(t, _)| now.duration_since(*t) <= DOWN_WINDOW);
    history.push((now, wanted));
    let mut desired = wanted;
    if wanted < current {
        // Scale down only as far as every recent recommendation agrees.
        desired = history
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(wanted)
            .min(current);
    }
    let mut limit = Limit::Within;
    let up_limit = (current.saturating_mul(2)).max(current + 4);
    if desired > up_limit {
        desired = up_limit;
        limit = Limit::ScaleUpLimit;
    }
    if desired > max {
        (desired, limit) = (max, Limit::TooMany);
    }
    if desired < min.max(1) {
        (desired, limit) = (min.max(1), Limit::TooFew);
    }
    (desired, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_inside_the_tolerance_change_nothing() {
        assert_eq!(replicas_for(3, 3, 1.05), 3);
        assert_eq!(replicas_for(3, 3, 0.95), 3);
        assert_eq!(replicas_for(3, 3, 1.5), 5);
        assert_eq!(replicas_for(4, 4, 0.5), 2);
        assert_eq!(replicas_for(2, 2, f64::NAN), 2);
    }

    #[test]
    fn bounds_rate_limit_and_stabilization() {
        let t0 = Instant::now();
        let mut h = Vec::new();
        assert_eq!(
            normalize(1, 20, (1, 10), &mut h, t0),
            (5, Limit::ScaleUpLimit)
        );
        assert_eq!(normalize(5, 20, (1, 8), &mut h, t0), (8, Limit::TooMany));
        // A dip right after does not scale down: the window still holds 20.
        assert_eq!(
            normalize(10, 2, (1, 10), &mut h, t0 + Duration::from_secs(60)).0,
            10
        );
        // Five minutes later only the low recommendations are left.
        let later = t0 + Duration::from_secs(400);
        let mut h2 = vec![(t0 + Duration::from_secs(350), 3)];
        assert_eq!(
            normalize(10, 2, (1, 10), &mut h2, later),
            (3, Limit::Within)
        );
        assert_eq!(
            normalize(3, 0, (2, 10), &mut Vec::new(), later),
            (2, Limit::TooFew)
        );
    }
}
