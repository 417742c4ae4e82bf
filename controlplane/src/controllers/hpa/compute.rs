//! The autoscaling arithmetic, as the HorizontalPodAutoscaler controller does it: per
//! metric a usage ratio against its target and the replicas it asks for (within a 10 %
//! tolerance nothing changes), the largest of them, then `spec.behavior`
//! ([`Behavior`], Kubernetes' defaults where unset): stabilization — scale up only as far
//! as every recommendation of the scale-up window agrees (default 0 s), down only as far
//! as every one of the scale-down window does (default 300 s) — then the rate policies —
//! per period at most so many pods or percent more or fewer than at the period's start,
//! the most permissive policy (`selectPolicy: Max`, the default), the least (`Min`), or
//! none (`Disabled`); defaults: up `max(+4 pods, +100 %)` per 15 s, down `-100 %` per
//! 15 s — all within `[minReplicas, maxReplicas]`.

use std::time::{Duration, Instant};

use serde_json::Value;

/// Ratios this close to 1 change nothing.
pub const TOLERANCE: f64 = 0.1;

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
    ScaleDownLimit,
}

/// How several policies combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the largest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No change in this direction.
    Disabled,
}

/// At most `value` pods (or percent) of change per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub percent: bool,
    pub value: u32,
    pub period: Duration,
}

/// One direction of `spec.behavior`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub window: Duration,
    pub select: Select,
    pub policies: Vec<Policy>,
}

/// `spec.behavior` with Kubernetes' defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behavior {
    pub up: Rules,
    pub down: Rules,
}

fn secs(v: Option<&Value>) -> Option<Duration> {
    v?.as_u64().map(Duration::from_secs)
}

fn rules(v: Option<&Value>, default: Rules) -> Rules {
    let Some(v) = v else {
        return default;
    };
    let policies: Vec<Policy> = v
        .get("policies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some(Policy {
                percent: p.get("type")?.as_str()? == "Percent",
                value: u32::try_from(p.get("value")?.as_u64()?).ok()?,
                period: secs(p.get("periodSeconds"))?,
            })
        })
        .collect();
    Rules {
        window: secs(v.get("stabilizationWindowSeconds")).unwrap_or(default.window),
        select: match v.get("selectPolicy").and_then(Value::as_str) {
            Some("Min") => Select::Min,
            Some("Disabled") => Select::Disabled,
            _ => Select::Max,
        },
        policies: if policies.is_empty() {
            default.policies
        } else {
            policies
        },
    }
}

impl Behavior {
    /// From the autoscaler's `spec.behavior` (absent: the defaults).
    pub fn from_spec(behavior: Option<&Value>) -> Self {
        let period = Duration::from_secs(15);
        let up = Rules {
            window: Duration::ZERO,
            select: Select::Max,
            policies: vec![
                Policy {
                    percent: false,
                    value: 4,
                    period,
                },
                Policy {
                    percent: true,
                    value: 100,
                    period,
                },
            ],
        };
        let down = Rules {
            window: Duration::from_secs(300),
            select: Select::Max,
            policies: vec![Policy {
                percent: true,
                value: 100,
                period,
            }],
        };
        Self {
            up: rules(behavior.and_then(|b| b.get("scaleUp")), up),
            down: rules(behavior.and_then(|b| b.get("scaleDown")), down),
        }
    }

    /// How long recommendations and scale events matter.
    fn horizon(&self) -> Duration {
        let periods = self.up.policies.iter().chain(&self.down.policies);
        periods
            .map(|p| p.period)
            .chain([self.up.window, self.down.window])
            .max()
            .unwrap_or_default()
    }
}

/// What the controller remembers of one autoscaler.
#[derive(Debug, Default)]
pub struct Memory {
    /// Recommendations (what the metrics asked for), for stabilization.
    recommendations: Vec<(Instant, u32)>,
    /// Replicas added and removed by this controller, for the rate policies.
    added: Vec<(Instant, u32)>,
    removed: Vec<(Instant, u32)>,
}

impl Memory {
    fn within(events: &[(Instant, u32)], now: Instant, period: Duration) -> u32 {
        events
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= period)
            .map(|(_, n)| n)
            .sum()
    }

    /// The replicas at the start of the period ending `now`.
    fn period_start(&self, current: u32, now: Instant, period: Duration) -> u32 {
        let added = Self::within(&self.added, now, period);
        let removed = Self::within(&self.removed, now, period);
        (current + removed).saturating_sub(added)
    }
}

/// The most replicas `rules` allow now.
fn scale_up_limit(current: u32, rules: &Rules, mem: &Memory, now: Instant) -> u32 {
    let proposals = rules.policies.iter().map(|p| {
        let start = mem.period_start(current, now, p.period);
        if p.percent {
            (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as u32
        } else {
            start.saturating_add(p.value)
        }
    });
    match rules.select {
        Select::Disabled => current,
        Select::Max => proposals.max().unwrap_or(current),
        Select::Min => proposals.min().unwrap_or(current),
    }
}

/// The fewest replicas `rules` allow now.
fn scale_down_limit(current: u32, rules: &Rules, mem: &Memory, now: Instant) -> u32 {
    let proposals = rules.policies.iter().map(|p| {
        let start = mem.period_start(current, now, p.period);
        if p.percent {
            (f64::from(start) * (1.0 - f64::from(p.value.min(100)) / 100.0)) as u32
        } else {
            start.saturating_sub(p.value)
        }
    });
    match rules.select {
        Select::Disabled => current,
        // The most permissive policy allows the lowest count.
        Select::Max => proposals.min().unwrap_or(current),
        Select::Min => proposals.max().unwrap_or(current),
    }
}

/// The replicas to set, from the metrics' `wanted`, the bounds, the behaviour and what
/// happened before (`mem`: the recommendation is recorded here, the scale event by
/// [`Memory::scaled`] once it is written).
pub fn normalize(
    current: u32,
    wanted: u32,
    (min, max): (u32, u32),
    behavior: &Behavior,
    mem: &mut Memory,
    now: Instant,
) -> (u32, Limit) {
    let horizon = behavior.horizon();
    mem.recommendations
        .retain(|(t, _)| now.duration_since(*t) <= horizon);
    mem.added.retain(|(t, _)| now.duration_since(*t) <= horizon);
    mem.removed
        .retain(|(t, _)| now.duration_since(*t) <= horizon);
    // Stabilization: up no further than the lowest, down no further than the highest
    // recommendation of its window.
    let (mut up, mut down) = (wanted, wanted);
    for (t, r) in &mem.recommendations {
        let age = now.duration_since(*t);
        if age <= behavior.up.window {
            up = up.min(*r);
        }
        if age <= behavior.down.window {
            down = down.max(*r);
        }
    }
    mem.recommendations.push((now, wanted));
    let stabilized = current.max(up).min(down);

    let (mut desired, mut limit) = (stabilized, Limit::Within);
    if stabilized > current {
        let up_limit = scale_up_limit(current, &behavior.up, mem, now).max(current);
        if up_limit < max && stabilized > up_limit {
            (desired, limit) = (up_limit, Limit::ScaleUpLimit);
        }
    } else if stabilized < current {
        let down_limit = scale_down_limit(current, &behavior.down, mem, now).min(current);
        if down_limit > min && stabilized < down_limit {
            (desired, limit) = (down_limit, Limit::ScaleDownLimit);
        }
    }
    if desired > max {
        (desired, limit) = (max, Limit::TooMany);
    }
    if desired < min.max(1) {
        (desired, limit) = (min.max(1), Limit::TooFew);
    }
    (desired, limit)
}

impl Memory {
    /// Records that the target was scaled from `from` to `to` (once the write succeeded:
    /// a failed one spends nothing of the rate policies).
    pub fn scaled(&mut self, from: u32, to: u32, now: Instant) {
        if to > from {
            self.added.push((now, to - from));
        } else if to < from {
            self.removed.push((now, from - to));
        }
    }
}

#[cfg(test)]
mod tests;
