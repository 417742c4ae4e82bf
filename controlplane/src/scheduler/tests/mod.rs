//! Scheduler unit tests that span modules: filters and scores on cached nodes, cache
//! accounting, the algorithm, and end-to-end runs of the loop against [`InMemoryApi`].
//!
//! [`InMemoryApi`]: super::memory_api::InMemoryApi

mod algorithm;
mod cache;
mod e2e;
mod filters;
mod resources;
mod scores;
mod store;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::cache::Cache;
use super::node_info::Candidate;
use super::pod_info::PodInfo;

/// A cache holding `node` and the already-bound `pods`.
fn cache_with(node: &Node, pods: &[Pod]) -> Cache {
    let mut c = Cache::new();
    c.upsert_node(node).unwrap();
    for p in pods {
        c.upsert_pod(p).unwrap();
    }
    c
}

fn first(c: &Cache) -> Candidate<'_> {
    c.node_at(0).1
}

fn info(p: &Pod) -> PodInfo {
    PodInfo::new(p).unwrap()
}
