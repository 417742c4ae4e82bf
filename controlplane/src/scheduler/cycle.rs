//! One scheduling cycle: decide, assume, then bind (or report) in a bounded background task
//! so the next pod is decided while the API write is in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, Semaphore};

use super::api::{ApiError, EventType, SchedulerApi, SchedulingEvent};
use super::diagnosis::FitError;
use super::events::EventSink;
use super::pod_info::{pod_key, pod_uid, PodInfo};
use super::queue::Popped;
use super::stats::Stats;
use super::volumes;
use super::Scheduler;

/// A finished bind, reported back to the loop.
#[derive(Debug)]
pub(super) struct BindDone {
    pod: Arc<Pod>,
    node: Arc<str>,
    /// Dequeue → bind acknowledged.
    latency: Duration,
    result: Result<(), ApiError>,
}

/// The loop's handle for background API writes.
pub(super) struct Io<A> {
    pub api: Arc<A>,
    pub permits: Arc<Semaphore>,
    pub done: mpsc::UnboundedSender<BindDone>,
    pub events: EventSink,
    pub emit_scheduled: bool,
}

impl Scheduler {
    pub(super) async fn schedule_one<A: SchedulerApi>(&mut self, popped: Popped, io: &Io<A>) {
        let started = Instant::now();
        Stats::inc(&self.stats.attempts);
        let pod = popped.pod;
        let volumes = volumes::resolve(&*io.api, &pod).await;
        let decision = match (PodInfo::new(&pod), &volumes) {
            (Ok(mut info), Ok(placement)) => {
                // A pinned claim's node is the only one the pod may use.
                if let Some(node) = &placement.node {
                    info.node_name = Some(node.clone());
                }
                info.volume_terms = placement.node_terms.clone();
                self.algo.schedule(&self.cache, &info)
            }
            (Err(e), _) => Err(FitError::invalid(self.cache.num_nodes(), e.to_string())),
            (_, Err(why)) => Err(FitError::invalid(self.cache.num_nodes(), why.clone())),
        };
        let placed = decision.and_then(|p| {
            let node = self
                .cache
                .node_name(p.slot)
                .cloned()
                .unwrap_or_else(|| "".into());
            self.cache
                .assume(&pod, p.slot)
                .map(|()| node)
                .map_err(|e| FitError::invalid(self.cache.num_nodes(), e.to_string()))
        });
        match placed {
            Ok(node) => {
                self.queue.remove(pod_uid(&pod));
                let claims = volumes.map(|v| (v.unpinned, v.delayed)).unwrap_or_default();
                io.spawn_bind(pod, node, claims, started).await;
            }
            Err(fit) => {
                Stats::inc(&self.stats.unschedulable);
                let claims_decide = !volumes.as_ref().is_ok_and(|p| p.delayed.is_empty());
                if claims_decide {
                    // Claims and volumes change without a cluster change this queue hears of.
                    self.queue.requeue_after_error(pod.clone(), Instant::now());
                } else {
                    self.queue.mark_unschedulable(pod_uid(&pod));
                }
                let message = fit.to_string();
                log::debug!("scheduler: {} unschedulable: {message}", pod_key(&pod));
                io.spawn_report(pod, message).await;
            }
        }
    }

    pub(super) fn on_bind_done(&mut self, done: BindDone) {
        match done.result {
            Ok(()) => {
                Stats::inc(&self.stats.scheduled);
                self.stats.record_latency(done.latency);
            }
            Err(e) => {
                Stats::inc(&self.stats.bind_errors);
                let uid = pod_uid(&done.pod);
                self.cache.forget(uid);
                log::warn!(
                    "scheduler: binding {} to {}: {e}",
                    pod_key(&done.pod),
                    done.node
                );
                // Gone or bound elsewhere: the watch tells the rest. Anything else: retry.
                if !matches!(e, ApiError::NotFound(_) | ApiError::Conflict(..)) {
                    self.queue.requeue_after_error(done.pod, Instant::now());
                }
            }
        }
    }
}

impl<A: SchedulerApi> Io<A> {
    /// Pins `unpinned` claims to `node` and waits for the `delayed` ones among them to
    /// bind, then binds the pod there.
    async fn spawn_bind(
        &self,
        pod: Arc<Pod>,
        node: Arc<str>,
        (unpinned, delayed): (Vec<String>, Vec<String>),
        started: Instant,
    ) {
        let permits = self.permits.clone();
        let mut permit = permits.clone().acquire_owned().await;
        let (api, done) = (self.api.clone(), self.done.clone());
        let events = self.emit_scheduled.then(|| self.events.clone());
        tokio::spawn(async move {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            // A failure here is the pod's, to be retried (not "the pod is gone").
            let retry = |why: String| ApiError::Other(format!("pod {}", pod_key(&pod)), why);
            let mut result = Ok(());
            for claim in &unpinned {
                if let Err(e) = api.select_node(ns, claim, &node).await {
                    result = Err(retry(format!("pinning claim {claim:?}: {e}")));
                    break;
                }
            }
            // The pod goes to its node only with its delayed claims bound there; else it is
            // scheduled again (the volume controller un-pins a claim it cannot bind there).
            // The wait holds no permit: slow claims never stall other pods' bindings.
            if result.is_ok() && !delayed.is_empty() {
                drop(permit);
                result = volumes::wait_bound(&*api, ns, &delayed, &node)
                    .await
                    .map_err(retry);
                permit = permits.acquire_owned().await;
            }
            if result.is_ok() {
                result = api.bind(&pod, &node).await;
            }
            let latency = started.elapsed();
            drop(permit);
            if let (Ok(()), Some(events)) = (&result, events) {
                let msg = format!("Successfully assigned {} to {node}", pod_key(&pod));
                events.emit(SchedulingEvent::new(
                    &pod,
                    EventType::Normal,
                    "Scheduled",
                    msg,
                ));
            }
            // The loop is gone only when shutting down.
            let _ = done.send(BindDone {
                pod,
                node,
                latency,
                result,
            });
        });
    }

    /// Write `PodScheduled=False/Unschedulable` (unless already so) and a `FailedScheduling`
    /// Event.
    async fn spawn_report(&self, pod: Arc<Pod>, message: String) {
        let permit = self.permits.clone().acquire_owned().await;
        let (api, events) = (self.api.clone(), self.events.clone());
        tokio::spawn(async move {
            if !has_unschedulable_condition(&pod, &message) {
                if let Err(e) = api.set_unschedulable(&pod, &message).await {
                    log::warn!("scheduler: status of {}: {e}", pod_key(&pod));
                }
            }
            drop(permit);
            events.emit(SchedulingEvent::new(
                &pod,
                EventType::Warning,
                "FailedScheduling",
                message,
            ));
        });
    }
}

/// The pod already carries `PodScheduled=False`, reason `Unschedulable`, with this message.
fn has_unschedulable_condition(pod: &Pod, message: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message)
        })
}
