//! Why a pod fits nowhere, in kube-scheduler's words:
//! `0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu.`

use std::collections::BTreeMap;
use std::fmt;

use super::cache::Cache;
use super::filters::{Failure, Reason};

/// No node passed the filters. `reasons`: message fragment → number of nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_nodes: usize,
    pub reasons: BTreeMap<String, usize>,
}

impl FitError {
    /// Aggregate the per-node failures `(slot, failure)` recorded while filtering.
    pub fn new(cache: &Cache, failures: &[(u32, Failure)]) -> Self {
        let mut reasons = BTreeMap::new();
        for &(slot, f) in failures {
            for r in f.reasons() {
                let text = match (r, cache.candidate(slot)) {
                    (Reason::UntoleratedTaint, Some(c)) => {
                        let t = &c.node.taints[usize::from(f.taint)];
                        format!("{} {{{}: {}}}", r.message(), t.key, t.value)
                    }
                    _ => r.message().to_string(),
                };
                *reasons.entry(text).or_insert(0) += 1;
            }
        }
        Self {
            num_nodes: cache.num_nodes(),
            reasons,
        }
    }

    /// A pod whose spec could not be read (e.g. an invalid quantity).
    pub fn invalid(num_nodes: usize, why: String) -> Self {
        Self {
            num_nodes,
            reasons: BTreeMap::from([(why, 0)]),
        }
    }
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.num_nodes == 0 && self.reasons.is_empty() {
            return write!(f, "no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.num_nodes)?;
        // kube-scheduler sorts the "<count> <reason>" strings themselves.
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(r, n)| {
                if *n == 0 {
                    r.clone()
                } else {
                    format!("{n} {r}")
                }
            })
            .collect();
        parts.sort();
        if !parts.is_empty() {
            write!(f, " {}.", parts.join(", "))?;
        }
        Ok(())
    }
}
