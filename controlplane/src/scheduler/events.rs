//! Events leave the scheduling path: a bounded queue drained by a worker that writes a few
//! at a time. When the API cannot keep up, new Events are dropped and counted (as
//! kube-scheduler's broadcaster drops them) rather than slowing down binding.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::api::{SchedulerApi, SchedulingEvent};
use super::stats::Stats;

/// Events waiting to be written.
pub const EVENT_QUEUE: usize = 4096;
/// Event writes in flight.
const EVENT_CONCURRENCY: usize = 8;

/// The sending side; cheap to clone.
#[derive(Clone)]
pub(super) struct EventSink {
    tx: mpsc::Sender<SchedulingEvent>,
    stats: Arc<Stats>,
}

impl EventSink {
    /// Start the worker; it ends once every sink is dropped and the queue is drained.
    pub fn start<A: SchedulerApi>(api: Arc<A>, stats: Arc<Stats>) -> Self {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        tokio::spawn(worker(api, rx));
        Self { tx, stats }
    }

    pub fn emit(&self, ev: SchedulingEvent) {
        if self.tx.try_send(ev).is_err() {
            Stats::inc(&self.stats.events_dropped);
        }
    }
}

async fn worker<A: SchedulerApi>(api: Arc<A>, mut rx: mpsc::Receiver<SchedulingEvent>) {
    let mut writing = JoinSet::new();
    while let Some(ev) = rx.recv().await {
        while writing.len() >= EVENT_CONCURRENCY {
            writing.join_next().await;
        }
        let api = api.clone();
        writing.spawn(async move {
            let what = format!("{}/{} {}", ev.namespace, ev.pod_name, ev.reason);
            if let Err(e) = api.emit_event(ev).await {
                log::debug!("scheduler: event {what}: {e}");
            }
        });
    }
    while writing.join_next().await.is_some() {}
}
