//! Stopping a pod: preStop hooks (together, within the grace period), SIGTERM, the grace period, SIGKILL; then tearing down what
//! the pod had on the node (containers, rootfs, cgroup, sandbox, files).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use super::super::layout;
use super::hooks::{self, Hook, MIN_GRACE_AFTER_HOOK};
use super::Worker;
use crate::runtime::cgroups::QosClass;
use crate::sandbox::Sandbox;

/// How long after SIGKILL a container may take to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// `metadata.deletionGracePeriodSeconds`, else `spec.terminationGracePeriodSeconds`,
/// else 30 s.
pub fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref()?.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

impl Worker {
    /// Stops every running container within `grace`; records how each ended (no
    /// restarts follow).
    pub(super) async fn terminate(&mut self, grace: Duration) {
        let pod = self.pod.clone();
        let mut deadline = Instant::now() + grace;
        if let Some(p) = &pod {
            let mut pre_stop = Vec::new();
            for (i, s) in self.slots.iter().enumerate() {
                if s.current.is_none() {
                    continue;
                }
                let target = Some((s.init, s.name.as_str()));
                self.ctx.events.pod(
                    p,
                    target,
                    false,
                    "Killing",
                    format!("Stopping container {}", s.name),
                );
                if !grace.is_zero() {
                    pre_stop.extend(self.hook_run(i, p, Hook::PreStop));
                }
            }
            // preStop hooks run together, within the grace period, before SIGTERM;
            // SIGKILL follows at least MIN_GRACE_AFTER_HOOK after them (the kubelet's).
            if !pre_stop.is_empty() {
                let (prober, events) = (&self.ctx.prober, &self.ctx.events);
                futures_util::future::join_all(
                    pre_stop
                        .iter()
                        .map(|h| hooks::run_reported(prober, events, p, h, grace)),
                )
                .await;
                deadline = deadline.max(Instant::now() + MIN_GRACE_AFTER_HOOK);
            }
        }
        for inst in self.slots.iter().filter_map(|s| s.current.as_ref()) {
            if let Err(e) = inst.container.kill(libc::SIGTERM) {
                log::warn!("kubelet: SIGTERM to {}: {e}", inst.container.id());
            }
        }
        let mut killed = false;
        loop {
            let mut running = false;
            let now = Instant::now();
            for s in &mut self.slots {
                if let Some((code, signal, oom, message)) = s.poll() {
                    let reason = match (oom, code) {
                        (true, _) => "OOMKilled",
                        (false, 0) => "Completed",
                        _ => "Error",
                    };
                    s.record_exit(
                        code,
                        signal,
                        reason,
                        message,
                        "Never",
                        &self.ctx.cfg.backoff,
                        now,
                    );
                    s.done = true;
                }
                running |= s.current.is_some();
            }
            if !running {
                break;
            }
            if now >= deadline && !killed {
                killed = true;
                for s in self.slots.iter().filter_map(|s| s.current.as_ref()) {
                    let _ = s.container.kill(libc::SIGKILL);
                }
            }
            if now >= deadline + KILL_WAIT {
                log::warn!(
                    "kubelet: pod {}: containers still running {KILL_WAIT:?} after SIGKILL",
                    self.uid
                );
                break;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Removes everything pod `uid` has on the node. Idempotent.
    pub(super) async fn teardown(&mut self) {
        self.slots.iter_mut().for_each(|s| s.current = None);
        self.network = None;
        let ctx = self.ctx.clone();
        let uid = self.uid.clone();
        let result = tokio::task::spawn_blocking(move || -> Vec<String> {
            let mut errors = Vec::new();
            for id in ctx.runtime.list().unwrap_or_default() {
                if layout::parse_container_id(&id).is_none_or(|k| k.uid != uid) {
                    continue;
                }
                match ctx.runtime.adopt(&id).map(|c| c.destroy()) {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) | Err(e) => errors.push(format!("container {id}: {e}")),
                }
                if let Err(e) = ctx.images.release_rootfs(&id) {
                    errors.push(format!("rootfs of {id}: {e}"));
                }
            }
            for qos in [
                QosClass::Guaranteed,
                QosClass::Burstable,
                QosClass::BestEffort,
            ] {
                let path = ctx.tree.pod_path(qos, &uid);
                if let Err(e) = ctx.cgroups.remove(&path) {
                    errors.push(format!("cgroup {path}: {e}"));
                }
            }
            if let Err(e) = Sandbox::teardown(&ctx.net, &uid) {
                errors.push(format!("sandbox: {e}"));
            }
            let dir = layout::pod_dir(&ctx.cfg.state_dir, &uid);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    errors.push(format!("removing {}: {e}", dir.display()));
                }
            }
            errors
        })
        .await
        .unwrap_or_else(|e| vec![format!("teardown panicked: {e}")]);
        for e in result {
            log::warn!("kubelet: tearing down pod {}: {e}", self.uid);
        }
    }
}
