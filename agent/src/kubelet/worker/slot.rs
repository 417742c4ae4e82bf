//! One container of a pod as the worker tracks it: its current instance, how the last
//! ones ended, its back-offs, and why it waits.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::super::backoff::{Backoff, BackoffConfig};
use super::super::reconcile::{should_restart, Observed};
use super::super::status::{CState, ContainerView, Terminated};
use crate::runtime::{Container, RuntimeError};

/// A started instance.
#[derive(Debug)]
pub struct Instance {
    pub container: Container,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct Slot {
    pub name: String,
    pub init: bool,
    /// An ephemeral container (`kubectl debug`): started once, never restarted, not part
    /// of the pod's readiness.
    pub ephemeral: bool,
    pub image: String,
    pub image_id: String,
    pub current: Option<Instance>,
    pub last: Option<Terminated>,
    pub before_last: Option<Terminated>,
    /// `last` is final: no restart follows.
    pub done: bool,
    /// Latest instance number started.
    pub started: Option<u32>,
    pub backoff: Backoff,
    pub restart_at: Option<Instant>,
    /// Why it is not running (image, config errors, back-off).
    pub waiting: Option<(String, Option<String>)>,
    /// Retry after an image or config error.
    pub retry_at: Option<Instant>,
    pub pull_failures: u32,
}

pub fn container_id_uri(id: &str) -> String {
    format!("skiff://{id}")
}

impl Slot {
    pub fn new(name: &str, init: bool, image: &str) -> Self {
        Self {
            name: name.to_owned(),
            init,
            image: image.to_owned(),
            ..Default::default()
        }
    }

    /// The instance number of the next start.
    pub fn next_restart(&self) -> u32 {
        self.started.map_or(0, |n| n + 1)
    }

    pub fn observed(&self, now: Instant) -> Observed {
        if self.current.is_some() {
            return Observed::Running;
        }
        if let Some(at) = self.retry_at {
            if at > now {
                return Observed::Restarting { due: false };
            }
        }
        match &self.last {
            None => Observed::NotStarted,
            Some(t) if self.done => Observed::Done {
                ok: t.exit_code == 0,
            },
            Some(_) => Observed::Restarting {
                due: self.restart_at.is_none_or(|at| at <= now),
            },
        }
    }

    /// Records how the current instance ended and decides the restart: the delay before
    /// it, `None` when it is not restarted.
    #[expect(
        clippy::too_many_arguments,
        reason = "one exit, described field by field"
    )]
    pub fn record_exit(
        &mut self,
        code: i32,
        signal: Option<i32>,
        reason: &str,
        message: Option<String>,
        policy: &str,
        cfg: &BackoffConfig,
        now: Instant,
    ) -> Option<Duration> {
        let inst = self.current.take()?;
        let finished = Utc::now();
        let t = Terminated {
            exit_code: code,
            signal,
            reason: reason.to_owned(),
            message,
            started_at: Some(inst.started_at),
            finished_at: finished,
            container_id: Some(container_id_uri(inst.container.id())),
        };
        self.before_last = self.last.replace(t);
        if !self.ephemeral && should_restart(policy, self.init, code) {
            let ran = (finished - inst.started_at).to_std().unwrap_or_default();
            let delay = self.backoff.on_exit(cfg, ran);
            self.done = false;
            self.restart_at = Some(now + delay);
            Some(delay)
        } else {
            self.done = true;
            self.restart_at = None;
            None
        }
    }

    /// Looks at the current instance: `Some((code, signal, oom))` if it ended.
    pub fn poll(&mut self) -> Option<(i32, Option<i32>, bool, Option<String>)> {
        let inst = self.current.as_mut()?;
        match inst.container.try_wait() {
            Ok(None) => None,
            Ok(Some(st)) => {
                let oom = inst.container.oom_killed();
                let signal = match st {
                    crate::runtime::ExitStatus::Signal(s) => Some(s),
                    crate::runtime::ExitStatus::Code(_) => None,
                };
                Some((st.exit_code(), signal, oom, None))
            }
            Err(RuntimeError::Lost { .. }) => Some((
                137,
                None,
                false,
                Some("the container's shim is gone".into()),
            )),
            Err(e) => {
                log::warn!("container {}: {e}", inst.container.id());
                None
            }
        }
    }

    /// The status view; `ready` from the readiness probe (true without one).
    /// `initializing`: init containers still run (app containers wait for them).
    pub fn view(&self, ready: bool, initializing: bool, now: Instant) -> ContainerView {
        let (state, last) = match (&self.current, &self.last) {
            (Some(i), _) => (
                CState::Running {
                    started_at: i.started_at,
                },
                self.last.clone(),
            ),
            (None, Some(t)) if self.done => {
                (CState::Terminated(t.clone()), self.before_last.clone())
            }
            (None, last) => {
                let (reason, message) = self.waiting.clone().unwrap_or_else(|| {
                    let backing_off = last.is_some() && self.restart_at.is_some_and(|at| at > now);
                    if backing_off {
                        ("CrashLoopBackOff".into(), None)
                    } else if initializing && !self.init {
                        ("PodInitializing".into(), None)
                    } else {
                        ("ContainerCreating".into(), None)
                    }
                });
                (CState::Waiting { reason, message }, last.clone())
            }
        };
        ContainerView {
            name: self.name.clone(),
            ready: ready && matches!(state, CState::Running { .. }),
            state,
            last,
            restart_count: self.started.unwrap_or(0),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            container_id: self
                .current
                .as_ref()
                .map(|i| container_id_uri(i.container.id()))
                .or_else(|| self.last.as_ref().and_then(|t| t.container_id.clone())),
        }
    }
}
