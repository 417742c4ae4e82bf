//! Score plugins: how good is a feasible node? Each returns a raw score, normalised to
//! 0..=100 over the scored nodes like kube-scheduler's `NormalizeScore`, then weighted.

use super::node_info::Candidate;
use super::pod_info::PodInfo;
use super::taints::{tolerated, Effect};

pub const MAX_NODE_SCORE: i64 = 100;

/// Per-pod context computed once before scoring.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScoreCtx {
    /// Interned id of the pod's controller owner in the cache (`None`: no cached siblings).
    pub owner: Option<u32>,
}

/// How raw scores become 0..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    /// Already 0..=100.
    None,
    /// `score × 100 / max` (all 0 when max is 0).
    Max,
    /// `100 − score × 100 / max` (all 100 when max is 0): fewer is better.
    Reverse,
}

pub type ScoreFn = fn(&PodInfo, Candidate<'_>, &ScoreCtx) -> i64;

pub struct ScorePlugin {
    pub name: &'static str,
    pub weight: i64,
    pub normalize: Normalize,
    pub run: ScoreFn,
}

pub const NUM_SCORES: usize = 4;

/// The scores, with kube-scheduler's default weights.
pub const SCORES: [ScorePlugin; NUM_SCORES] = [
    ScorePlugin {
        name: "LeastAllocated",
        weight: 1,
        normalize: Normalize::None,
        run: least_allocated,
    },
    ScorePlugin {
        name: "OwnerSpread",
        weight: 2,
        normalize: Normalize::Reverse,
        run: owner_spread,
    },
    ScorePlugin {
        name: "NodeAffinity",
        weight: 2,
        normalize: Normalize::Max,
        run: preferred_affinity,
    },
    ScorePlugin {
        name: "TaintToleration",
        weight: 3,
        normalize: Normalize::Reverse,
        run: prefer_no_schedule,
    },
];

/// Normalise one plugin's raw scores in place (`kube-scheduler DefaultNormalizeScore`).
pub fn normalize(mode: Normalize, scores: &mut [i64]) {
    if mode == Normalize::None {
        return;
    }
    let max = scores.iter().copied().max().unwrap_or(0);
    let reverse = mode == Normalize::Reverse;
    for s in scores.iter_mut() {
        *s = match (max > 0, reverse) {
            (false, true) => MAX_NODE_SCORE,
            (false, false) => 0,
            (true, r) => {
                let v = MAX_NODE_SCORE * *s / max;
                if r {
                    MAX_NODE_SCORE - v
                } else {
                    v
                }
            }
        };
    }
}

/// `(free × 100 / allocatable)` averaged over CPU and memory, counting the pod itself and
/// using non-zero requests (a request-less container still costs something).
pub fn least_allocated(pod: &PodInfo, c: Candidate<'_>, _: &ScoreCtx) -> i64 {
    let score = |alloc: i64, used: i64| {
        if alloc <= 0 || used > alloc {
            0
        } else {
            (alloc - used) * MAX_NODE_SCORE / alloc
        }
    };
    let alloc = c.node.allocatable;
    let used = c.usage.non_zero;
    let cpu = score(
        alloc.milli_cpu,
        used.milli_cpu.saturating_add(pod.non_zero.milli_cpu),
    );
    let mem = score(
        alloc.memory,
        used.memory.saturating_add(pod.non_zero.memory),
    );
    (cpu + mem) / 2
}

/// Number of pods of the same owner already on the node (reversed: fewer is better).
pub fn owner_spread(_: &PodInfo, c: Candidate<'_>, ctx: &ScoreCtx) -> i64 {
    i64::from(c.usage.owner_count(ctx.owner))
}

/// Sum of the weights of the preferred node-affinity terms the node matches.
pub fn preferred_affinity(pod: &PodInfo, c: Candidate<'_>, _: &ScoreCtx) -> i64 {
    pod.preferred
        .iter()
        .filter(|(_, t)| t.matches(&c.node.labels, &c.node.name))
        .map(|(w, _)| *w)
        .sum()
}

/// Number of `PreferNoSchedule` taints the pod does not tolerate (reversed). A toleration
/// counts when its effect is `PreferNoSchedule` or empty.
pub fn prefer_no_schedule(pod: &PodInfo, c: Candidate<'_>, _: &ScoreCtx) -> i64 {
    c.node
        .taints
        .iter()
        .filter(|t| t.effect == Effect::PreferNoSchedule && !tolerated(&pod.tolerations, t))
        .count() as i64
}
