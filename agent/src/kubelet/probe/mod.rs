//! Container probes as the kubelet runs them: liveness, readiness and
//! startup; exec, tcpSocket and httpGet.
//!
//! - [`Prober::check`] runs one probe once ([`prober`], [`http_get`]);
//! - [`ProbeState`] is the pure threshold logic (Kubernetes' worker):
//!   `initialDelaySeconds`, `periodSeconds`, `successThreshold`,
//!   `failureThreshold`, the initial value per kind;
//! - [`spawn_worker`] probes on a timer and publishes [`ProbeStatus`] on a
//!   watch channel until every receiver is dropped or the task is aborted.
//!
//! The pod manager spawns a worker when the container starts (so
//! `initialDelaySeconds` counts from then), gates liveness and readiness
//! workers on the startup worker's success, and spawns new workers for a
//! restarted container.

pub mod http_get;
mod prober;
mod state;
mod worker;

pub use prober::{resolve_port, ProbeResult, ProbeTarget, Prober};
pub use state::{Health, ProbeKind, ProbeParams, ProbeState};
pub use worker::{spawn_worker, ProbeStatus};

#[cfg(test)]
mod tests;
