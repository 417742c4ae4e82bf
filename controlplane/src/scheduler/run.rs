//! The scheduler loop: list, watch, and schedule one pod at a time, draining cluster events
//! between pods so every decision sees a fresh cache.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, Semaphore};

use super::api::{ApiError, Listed, SchedulerApi, WatchStream};
use super::cycle::{BindDone, Io};
use super::events::EventSink;
use super::stats::Stats;
use super::Scheduler;

/// Pause before listing again after an API error.
const RELIST_DELAY: Duration = Duration::from_millis(500);
/// Longest idle sleep when no back-off is pending.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// Why the inner loop stopped.
enum Exit {
    Shutdown,
    /// A watch ended (or failed): list again.
    Relist,
}

impl Scheduler {
    /// Run until `shutdown` resolves. API errors never end the loop: it relists.
    pub async fn run<A: SchedulerApi>(
        mut self,
        api: Arc<A>,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        tokio::pin!(shutdown);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let io = Io {
            api: api.clone(),
            permits: Arc::new(Semaphore::new(self.cfg.max_in_flight.max(1))),
            done: done_tx,
            events: EventSink::start(api.clone(), self.stats.clone()),
            emit_scheduled: self.cfg.emit_scheduled_events,
        };
        loop {
            let watches = tokio::select! {
                _ = &mut shutdown => return,
                w = self.list_and_watch(&*api) => w,
            };
            let (mut nodes, mut pods) = match watches {
                Ok(w) => w,
                Err(e) => {
                    log::warn!("scheduler: list/watch failed, retrying: {e}");
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(RELIST_DELAY) => continue,
                    }
                }
            };
            let exit = self
                .serve(&io, &mut nodes, &mut pods, &mut done_rx, &mut shutdown)
                .await;
            if let Exit::Shutdown = exit {
                return;
            }
            log::info!("scheduler: watch ended, relisting");
            Stats::inc(&self.stats.relists);
        }
    }

    async fn list_and_watch<A: SchedulerApi>(
        &mut self,
        api: &A,
    ) -> Result<(WatchStream<Node>, WatchStream<Pod>), ApiError> {
        let Listed {
            items: nodes,
            resource_version: node_rv,
        } = api.list_nodes().await?;
        let Listed {
            items: pods,
            resource_version: pod_rv,
        } = api.list_pods().await?;
        let node_watch = api.watch_nodes(&node_rv).await?;
        let pod_watch = api.watch_pods(&pod_rv).await?;
        log::info!(
            "scheduler: listed {} nodes, {} pods",
            nodes.len(),
            pods.len()
        );
        self.replace_nodes(nodes);
        self.replace_pods(pods);
        Ok((node_watch, pod_watch))
    }

    async fn serve<A: SchedulerApi, S: Future<Output = ()>>(
        &mut self,
        io: &Io<A>,
        nodes: &mut WatchStream<Node>,
        pods: &mut WatchStream<Pod>,
        done: &mut mpsc::UnboundedReceiver<BindDone>,
        shutdown: &mut std::pin::Pin<&mut S>,
    ) -> Exit {
        loop {
            // Everything that already happened, before the next decision.
            loop {
                match nodes.try_recv() {
                    Ok(ev) => self.on_node(ev),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Exit::Relist,
                }
            }
            loop {
                match pods.try_recv() {
                    Ok(ev) => self.on_pod(ev),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Exit::Relist,
                }
            }
            while let Ok(d) = done.try_recv() {
                self.on_bind_done(d);
            }
            let now = Instant::now();
            self.queue.flush(now);
            if let Some(popped) = self.queue.pop(now) {
                tokio::select! {
                    biased;
                    _ = shutdown.as_mut() => return Exit::Shutdown,
                    _ = self.schedule_one(popped, io) => {}
                }
                continue;
            }
            let wake = self
                .queue
                .next_wakeup()
                .unwrap_or(now + IDLE_TICK)
                .min(now + IDLE_TICK);
            tokio::select! {
                _ = shutdown.as_mut() => return Exit::Shutdown,
                ev = nodes.recv() => match ev {
                    Some(ev) => self.on_node(ev),
                    None => return Exit::Relist,
                },
                ev = pods.recv() => match ev {
                    Some(ev) => self.on_pod(ev),
                    None => return Exit::Relist,
                },
                Some(d) = done.recv() => self.on_bind_done(d),
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }
}
