//! Lifecycle hooks and killing one container: postStart after a start, preStop before
//! SIGTERM. A hook runs as a probe would (exec in the container through
//! `runtime::exec`, or an HTTP GET to the pod) with the `sleep` action done here; a
//! failure gives a FailedPostStartHook / FailedPreStopHook event.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod, Probe};
use tokio::time::Instant;

use super::super::events::Recorder;
use super::super::probe::{ProbeResult, ProbeTarget, Prober};
use super::{terminate, Worker};
use crate::runtime::exec::ExecTarget;

/// How long a killed container may take to be reaped after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// Kubernetes' minimum time between SIGTERM and SIGKILL once a preStop hook ran.
pub const MIN_GRACE_AFTER_HOOK: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(50);

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    PostStart,
    PreStop,
}

/// One hook ready to run: the handler and where.
pub struct HookRun {
    pub hook: Hook,
    pub container: String,
    pub handler: LifecycleHandler,
    pub target: ProbeTarget,
}

/// The handler of `hook` in `c`.
pub fn handler(c: &Container, hook: Hook) -> Option<&LifecycleHandler> {
    let l = c.lifecycle.as_ref()?;
    match hook {
        Hook::PostStart => l.post_start.as_ref(),
        Hook::PreStop => l.pre_stop.as_ref(),
    }
}

/// Runs the hook within `limit`; `Err(message)` on failure.
pub async fn run(prober: &Prober, h: &HookRun, limit: Duration) -> Result<(), String> {
    if let Some(s) = &h.handler.sleep {
        let d = Duration::from_secs(s.seconds.max(0) as u64);
        tokio::time::sleep(d.min(limit)).await;
        return Ok(());
    }
    let probe = Probe {
        exec: h.handler.exec.clone(),
        http_get: h.handler.http_get.clone(),
        tcp_socket: h.handler.tcp_socket.clone(),
        timeout_seconds: Some(limit.as_secs().clamp(1, i32::MAX as u64) as i32),
        ..Probe::default()
    };
    match tokio::time::timeout(
        limit.max(Duration::from_secs(1)),
        prober.check(&probe, &h.target),
    )
    .await
    {
        Ok(ProbeResult::Success) => Ok(()),
        Ok(ProbeResult::Failure(m)) => Err(m),
        Err(_) => Err(format!("the hook did not finish within {limit:?}")),
    }
}

/// Runs the hook and reports a failure as an event; returns whether it succeeded.
pub async fn run_reported(
    prober: &Prober,
    events: &Recorder,
    pod: &Pod,
    h: &HookRun,
    limit: Duration,
) -> bool {
    let Err(msg) = run(prober, h, limit).await else {
        return true;
    };
    let (reason, what) = match h.hook {
        Hook::PostStart => ("FailedPostStartHook", "PostStartHook"),
        Hook::PreStop => ("FailedPreStopHook", "PreStopHook"),
    };
    let text = format!("{what} failed: {msg}");
    log::warn!("kubelet: container {}: {text}", h.container);
    events.pod(pod, Some((false, h.container.as_str())), true, reason, text);
    false
}

impl Worker {
    /// Slot `i`'s `hook`, if its container has one and runs.
    pub(super) fn hook_run(&self, i: usize, pod: &Pod, hook: Hook) -> Option<HookRun> {
        let s = &self.slots[i];
        let inst = s.current.as_ref()?;
        let c = self.container_spec(pod, s.init, &s.name)?;
        let handler = handler(&c, hook)?.clone();
        let ip = self.pod_ip()?;
        let exec = ExecTarget::of(inst.container.state(), Some(self.ctx.cgroups));
        Some(HookRun {
            hook,
            container: s.name.clone(),
            handler,
            target: ProbeTarget::new(ip, &c, Some(exec)),
        })
    }

    /// Runs slot `i`'s postStart hook (bounded by the grace period); when it fails the
    /// instance is killed, and restartPolicy decides what follows.
    pub(super) async fn post_start(&mut self, i: usize, pod: &Arc<Pod>) {
        let Some(h) = self.hook_run(i, pod, Hook::PostStart) else {
            return;
        };
        let limit = terminate::grace_period(pod).max(MIN_GRACE_AFTER_HOOK);
        if !run_reported(&self.ctx.prober, &self.ctx.events, pod, &h, limit).await {
            let why = format!(
                "Container {} failed postStart hook, will be killed",
                h.container
            );
            self.kill_container(i, pod, Duration::ZERO, why).await;
        }
    }

    /// Kills slot `i`'s instance: Killing event, preStop hook, SIGTERM, up to `grace`,
    /// SIGKILL; returns once it exited (or [`KILL_WAIT`] after SIGKILL). The exit stays
    /// for [`Worker::poll_exits`] to record.
    pub(super) async fn kill_container(
        &mut self,
        i: usize,
        pod: &Arc<Pod>,
        grace: Duration,
        why: String,
    ) {
        let name = self.slots[i].name.clone();
        let init = self.slots[i].init;
        if self.slots[i].current.is_none() {
            return;
        }
        self.ctx
            .events
            .pod(pod, Some((init, name.as_str())), false, "Killing", why);
        let begun = Instant::now();
        let mut deadline = begun + grace;
        if !grace.is_zero() {
            if let Some(h) = self.hook_run(i, pod, Hook::PreStop) {
                run_reported(&self.ctx.prober, &self.ctx.events, pod, &h, grace).await;
                deadline = deadline.max(Instant::now() + MIN_GRACE_AFTER_HOOK);
            }
        }
        let Some(inst) = self.slots[i].current.as_mut() else {
            return;
        };
        let signal = if grace.is_zero() {
            libc::SIGKILL
        } else {
            libc::SIGTERM
        };
        if let Err(e) = inst.container.kill(signal) {
            log::warn!("kubelet: killing {}: {e}", inst.container.id());
        }
        let mut killed = signal == libc::SIGKILL;
        loop {
            if !matches!(inst.container.try_wait(), Ok(None)) {
                return;
            }
            let now = Instant::now();
            if now >= deadline && !killed {
                killed = true;
                let _ = inst.container.kill(libc::SIGKILL);
            }
            if now >= deadline + KILL_WAIT {
                log::warn!(
                    "kubelet: container {} still running {KILL_WAIT:?} after SIGKILL",
                    inst.container.id()
                );
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
