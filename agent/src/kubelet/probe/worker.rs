//! The probe loop: probe at `initialDelaySeconds`, then every
//! `periodSeconds`, publish each health change.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Probe;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::state::{Health, ProbeKind, ProbeParams, ProbeState};
use super::{ProbeResult, ProbeTarget, Prober};

/// What a worker publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeStatus {
    pub health: Health,
    /// The latest failure's reason (for the Unhealthy event), cleared on
    /// success.
    pub message: Option<String>,
    /// Probes run so far.
    pub probes: u64,
}

/// Starts probing `target`; the task ends when every receiver is dropped
/// (or when aborted through the handle).
pub fn spawn_worker(
    kind: ProbeKind,
    probe: Probe,
    target: ProbeTarget,
    prober: Arc<Prober>,
) -> (watch::Receiver<ProbeStatus>, JoinHandle<()>) {
    let params = ProbeParams::of(kind, &probe);
    let mut state = ProbeState::new(kind, params);
    let (tx, rx) = watch::channel(ProbeStatus {
        health: state.health(),
        message: None,
        probes: 0,
    });
    let task = tokio::spawn(async move {
        let mut wait = params.initial_delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = tx.closed() => return,
            }
            wait = params.period;
            if state.done() {
                continue;
            }
            let result = prober.check(&probe, &target).await;
            state.record(result.is_success());
            let health = state.health();
            tx.send_modify(|s| {
                s.health = health;
                s.probes += 1;
                s.message = match &result {
                    ProbeResult::Success => None,
                    ProbeResult::Failure(m) => Some(m.clone()),
                };
            });
        }
    });
    (rx, task)
}
