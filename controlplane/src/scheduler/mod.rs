//! The scheduler: places pods without `spec.nodeName` on nodes, like kube-scheduler.
//!
//! ```text
//! events ─► handlers ─► cache (nodes + usage)      queue (pending pods, back-off)
//!                          │                          │ pop
//!                          └──────► algorithm ◄───────┘  filters → sample → scores → pick
//!                                      │
//!                        assume in cache, bind (async, bounded) ─► SchedulerApi
//! ```
//!
//! Modules: [`quantity`] (resource quantities), [`resources`] (pod requests, host ports),
//! [`taints`], [`selector`] (node affinity terms), [`pod_info`]/[`node_info`] (compact
//! forms), [`cache`] (+ `owners`, interned owner ids), [`filters`], [`scores`],
//! [`algorithm`] (sampling, scoring, selection), [`diagnosis`] (the "0/N nodes are
//! available" message), [`queue`], [`api`] (the boundary trait) and [`api_adapter`] (it,
//! for the in-process API client), the loop ([`run`], `handlers`, `cycle`, `events`),
//! [`memory_api`] (+ `memory_watch`: an in-memory API server for tests and the bench),
//! [`fixtures`] (node and pod builders), [`stats`].
//!
//! Differences from kube-scheduler: no preemption, no inter-pod (anti-)affinity, no
//! topology-spread constraints, no volume or DRA plugins; nodes are iterated in cache order
//! (not zone-interleaved); a pod's missing requests fall back to its limits (API defaulting).

pub mod algorithm;
pub mod api;
pub mod api_adapter;
pub mod cache;
mod cycle;
pub mod diagnosis;
mod events;
pub mod filters;
pub mod fixtures;
mod handlers;
pub mod hash;
pub mod memory_api;
mod memory_watch;
pub mod node_info;
mod owners;
pub mod pod_info;
pub mod quantity;
pub mod queue;
pub mod resources;
pub mod run;
pub mod scores;
pub mod selector;
pub mod stats;
pub mod taints;
pub mod volumes;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use api::{
    ApiError, EventType, Listed, SchedulerApi, SchedulingEvent, WatchEvent, WatchStream,
};
pub use diagnosis::FitError;
pub use memory_api::InMemoryApi;
pub use quantity::{Quantity, QuantityError};
pub use queue::QueueConfig;
pub use stats::Stats;

use algorithm::Algorithm;
use cache::Cache;
use queue::SchedulingQueue;

/// The name pods select this scheduler by (`spec.schedulerName`; empty means this one).
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub scheduler_name: String,
    /// kube-scheduler's `percentageOfNodesToScore`; 0 = adaptive (50 % − nodes/125, ≥ 5 %).
    pub percentage_of_nodes_to_score: u32,
    pub queue: QueueConfig,
    /// Binds (and status writes) running concurrently; the loop waits when all are busy.
    pub max_in_flight: usize,
    /// Emit a `Scheduled` Event per bound pod (kube-scheduler does).
    pub emit_scheduled_events: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            scheduler_name: DEFAULT_SCHEDULER_NAME.to_string(),
            percentage_of_nodes_to_score: 0,
            queue: QueueConfig::default(),
            max_in_flight: 64,
            emit_scheduled_events: true,
        }
    }
}

/// The scheduler's state, owned by its loop ([`Scheduler::run`]).
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    cache: Cache,
    queue: SchedulingQueue,
    algo: Algorithm,
    stats: Arc<Stats>,
}

impl Scheduler {
    pub fn new(cfg: SchedulerConfig) -> Self {
        Self {
            cache: Cache::new(),
            queue: SchedulingQueue::new(cfg.queue.clone()),
            algo: Algorithm::new(cfg.percentage_of_nodes_to_score),
            stats: Arc::new(Stats::default()),
            cfg,
        }
    }

    /// Counters and latencies, shared with whoever wants to read them while it runs.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }
}
