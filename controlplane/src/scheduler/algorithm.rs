//! One scheduling decision: filter a sample of nodes starting at a rotating index, score the
//! feasible ones, pick the best. Buffers are reused across pods, so a decision allocates
//! nothing on the success path.

use super::cache::Cache;
use super::diagnosis::FitError;
use super::filters::{run_filters, Failure};
use super::hash::mix;
use super::pod_info::PodInfo;
use super::scores::{normalize, ScoreCtx, NUM_SCORES, SCORES};

/// Below this many nodes every node is checked; above, at least this many feasible ones.
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never drops below this.
pub const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// kube-scheduler's `numFeasibleNodesToFind`. `percentage == 0` is adaptive:
/// `50 − nodes/125`, at least 5 % (10 % of 5,000 nodes → 500).
pub fn num_feasible_nodes_to_find(percentage: u32, num_nodes: usize) -> usize {
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND || percentage >= 100 {
        return num_nodes;
    }
    let pct = if percentage == 0 {
        50usize
            .saturating_sub(num_nodes / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE)
    } else {
        percentage as usize
    };
    (num_nodes * pct / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// The chosen node and how many nodes were examined to find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub slot: u32,
    pub feasible: usize,
    pub evaluated: usize,
}

#[derive(Debug, Default)]
pub struct Algorithm {
    /// `percentageOfNodesToScore` (0 = adaptive).
    pub percentage: u32,
    next_start: usize,
    feasible: Vec<u32>,
    raw: [Vec<i64>; NUM_SCORES],
    failures: Vec<(u32, Failure)>,
}

impl Algorithm {
    pub fn new(percentage: u32) -> Self {
        Self {
            percentage,
            ..Self::default()
        }
    }

    pub fn schedule(&mut self, cache: &Cache, pod: &PodInfo) -> Result<Placement, FitError> {
        let n = cache.num_nodes();
        let want = num_feasible_nodes_to_find(self.percentage, n);
        self.feasible.clear();
        self.failures.clear();
        let mut processed = 0;
        for i in 0..n {
            processed += 1;
            let (slot, c) = cache.node_at((self.next_start + i) % n);
            match run_filters(pod, c) {
                Ok(()) => {
                    self.feasible.push(slot);
                    if self.feasible.len() >= want {
                        break;
                    }
                }
                Err(f) => self.failures.push((slot, f)),
            }
        }
        if n > 0 {
            self.next_start = (self.next_start + processed) % n;
        }
        let slot = match self.feasible.as_slice() {
            [] => return Err(FitError::new(cache, &self.failures)),
            [only] => *only,
            _ => self.pick(cache, pod),
        };
        Ok(Placement {
            slot,
            feasible: self.feasible.len(),
            evaluated: processed,
        })
    }

    /// Score every feasible node, normalise per plugin, weighted sum; the highest total
    /// wins, ties broken by a hash of (pod uid, node name): deterministic, yet spread.
    fn pick(&mut self, cache: &Cache, pod: &PodInfo) -> u32 {
        let ctx = ScoreCtx {
            owner: pod.owner.as_deref().and_then(|o| cache.owner_id(o)),
        };
        for (plugin, raw) in SCORES.iter().zip(self.raw.iter_mut()) {
            raw.clear();
            raw.extend(self.feasible.iter().map(|&slot| {
                let c = cache.candidate(slot).expect("feasible node is cached");
                (plugin.run)(pod, c, &ctx)
            }));
            normalize(plugin.normalize, raw);
        }
        let mut best = (i64::MIN, 0u64, self.feasible[0]);
        for (i, &slot) in self.feasible.iter().enumerate() {
            let total: i64 = SCORES
                .iter()
                .zip(&self.raw)
                .map(|(p, raw)| p.weight * raw[i])
                .sum();
            let name_hash = cache.candidate(slot).map_or(0, |c| c.node.name_hash);
            let tie = mix(pod.uid_hash ^ name_hash);
            if (total, tie) > (best.0, best.1) {
                best = (total, tie, slot);
            }
        }
        best.2
    }

    /// Weighted total of each plugin for `slot` after the last [`Self::schedule`] (tests).
    #[cfg(test)]
    pub fn last_scores(&self, slot: u32) -> Option<[i64; NUM_SCORES]> {
        let i = self.feasible.iter().position(|&s| s == slot)?;
        Some(std::array::from_fn(|p| self.raw[p][i]))
    }
}
