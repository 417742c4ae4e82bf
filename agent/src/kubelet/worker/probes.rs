//! The probes of a pod's running app containers: one [`probe::spawn_worker`] per probe
//! and instance. A startupProbe gates the others: liveness and readiness workers start
//! once it succeeds (so their `initialDelaySeconds` counts from then). A liveness (or
//! startup) failure kills the instance, and restartPolicy decides the rest; readiness
//! gives the container's `ready`. Workers stop when the instance is gone (their handles
//! abort them on drop) and a restarted instance gets new ones.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::super::probe::{self, Health, ProbeKind, ProbeStatus, ProbeTarget, Prober};
use super::{terminate, Worker};
use crate::runtime::exec::ExecTarget;

/// One running probe worker.
#[derive(Debug)]
struct Handle {
    kind: ProbeKind,
    rx: watch::Receiver<ProbeStatus>,
    task: JoinHandle<()>,
    /// Probes counted when the last failure was reported (one Unhealthy event per
    /// failed probe seen).
    reported: u64,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Handle {
    fn spawn(kind: ProbeKind, p: &Probe, target: &ProbeTarget, prober: &Arc<Prober>) -> Self {
        let (rx, task) = probe::spawn_worker(kind, p.clone(), target.clone(), prober.clone());
        Self {
            kind,
            rx,
            task,
            reported: 0,
        }
    }

    /// The health, and the failure message of a probe not reported yet.
    fn read(&mut self) -> (Health, Option<String>) {
        let st = self.rx.borrow_and_update().clone();
        let fresh = st.probes > self.reported;
        self.reported = st.probes;
        (st.health, st.message.filter(|_| fresh))
    }
}

/// The probe workers of one container instance.
#[derive(Debug)]
pub struct ContainerProbes {
    /// The instance (restart number) probed.
    instance: u32,
    target: ProbeTarget,
    startup: Option<Handle>,
    liveness: Option<Handle>,
    readiness: Option<Handle>,
    has_readiness: bool,
    /// No startupProbe, or it succeeded.
    pub started: bool,
    pub ready: bool,
    /// The instance is being killed (liveness or startup failure).
    killing: bool,
}

/// What a look at the probes found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Failed probes: `(kind, message)` for Unhealthy events.
    pub failures: Vec<(ProbeKind, String)>,
    /// Kill the instance: the probe that failed.
    pub kill: Option<ProbeKind>,
}

impl ContainerProbes {
    fn new(instance: u32, c: &Container, target: ProbeTarget, prober: &Arc<Prober>) -> Self {
        let mut p = Self {
            instance,
            target,
            startup: None,
            liveness: None,
            readiness: None,
            has_readiness: c.readiness_probe.is_some(),
            started: false,
            ready: false,
            killing: false,
        };
        match &c.startup_probe {
            Some(s) => p.startup = Some(Handle::spawn(ProbeKind::Startup, s, &p.target, prober)),
            None => p.on_started(c, prober),
        }
        p
    }

    fn on_started(&mut self, c: &Container, prober: &Arc<Prober>) {
        self.started = true;
        self.startup = None;
        let t = &self.target;
        self.liveness = c
            .liveness_probe
            .as_ref()
            .map(|l| Handle::spawn(ProbeKind::Liveness, l, t, prober));
        self.readiness = c
            .readiness_probe
            .as_ref()
            .map(|r| Handle::spawn(ProbeKind::Readiness, r, t, prober));
    }

    /// Reads every worker's latest status.
    fn update(&mut self, c: &Container, prober: &Arc<Prober>) -> Verdict {
        let mut v = Verdict::default();
        if let Some(h) = self.startup.as_mut() {
            match h.read() {
                (Health::Success, _) => self.on_started(c, prober),
                (health, msg) => {
                    v.failures.extend(msg.map(|m| (ProbeKind::Startup, m)));
                    if health == Health::Failure {
                        v.kill = Some(ProbeKind::Startup);
                    }
                }
            }
        }
        for h in [self.liveness.as_mut(), self.readiness.as_mut()]
            .into_iter()
            .flatten()
        {
            let (health, msg) = h.read();
            v.failures.extend(msg.map(|m| (h.kind, m)));
            match h.kind {
                ProbeKind::Liveness if health == Health::Failure => v.kill = Some(h.kind),
                ProbeKind::Readiness => self.ready = health == Health::Success,
                _ => {}
            }
        }
        if !self.has_readiness {
            self.ready = self.started;
        }
        if self.killing {
            v.kill = None;
        } else if v.kill.is_some() {
            self.killing = true;
            self.ready = false;
        }
        v
    }

    /// Resolves when any worker publishes a new status.
    fn changed(&self) -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>> {
        [&self.startup, &self.liveness, &self.readiness]
            .into_iter()
            .flatten()
            .map(|h| {
                let mut rx = h.rx.clone();
                Box::pin(async move {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }) as Pin<Box<dyn Future<Output = ()> + Send>>
            })
            .collect()
    }
}

/// Resolves when a probe of any container publishes a new status (never without probes).
pub async fn any_changed(futs: Vec<Pin<Box<dyn Future<Output = ()> + Send>>>) {
    if futs.is_empty() {
        return std::future::pending().await;
    }
    futures_util::future::select_all(futs).await;
}

fn has_probes(c: &Container) -> bool {
    c.startup_probe.is_some() || c.liveness_probe.is_some() || c.readiness_probe.is_some()
}

impl Worker {
    /// What wakes the worker when a probe result comes.
    pub(super) fn probe_changes(&self) -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>> {
        self.probes.values().flat_map(|p| p.changed()).collect()
    }

    /// Whether slot `i`'s running instance is ready (true without probes).
    pub(super) fn probed_ready(&self, i: usize) -> bool {
        let s = &self.slots[i];
        match self.probes.get(&s.name) {
            Some(p) => s.started == Some(p.instance) && p.ready,
            // Not probed yet: ready unless a readiness or startup probe must pass first.
            None => !self.pod.as_ref().is_some_and(|pod| {
                self.container_spec(pod, s.init, &s.name)
                    .is_some_and(|c| c.readiness_probe.is_some() || c.startup_probe.is_some())
            }),
        }
    }

    /// Keeps probe workers for the running app containers (new ones for a new instance,
    /// none for a stopped one), reports failed probes (Unhealthy) and kills the instances
    /// whose liveness or startup probe failed; [`Worker::poll_exits`] then records the exit
    /// and restartPolicy decides.
    pub(super) async fn check_probes(&mut self, pod: &Arc<Pod>) {
        let pod_ip = self.pod_ip();
        let mut kills = Vec::new();
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            let spec = (!s.init)
                .then(|| self.container_spec(pod, false, &s.name))
                .flatten()
                .filter(has_probes);
            let (Some(inst), Some(c), Some(ip)) = (&s.current, spec, pod_ip) else {
                self.probes.remove(&s.name);
                continue;
            };
            let n = s.started.unwrap_or(0);
            let name = s.name.clone();
            if self.probes.get(&name).is_none_or(|p| p.instance != n) {
                let exec = ExecTarget::of(inst.container.state(), Some(self.ctx.cgroups));
                let target = ProbeTarget::new(ip, &c, Some(exec));
                let p = ContainerProbes::new(n, &c, target, &self.ctx.prober);
                self.probes.insert(name.clone(), p);
            }
            let p = self.probes.get_mut(&name).expect("inserted");
            let v = p.update(&c, &self.ctx.prober);
            let target = Some((false, name.as_str()));
            for (kind, msg) in v.failures {
                let text = format!("{} probe failed: {msg}", kind.name());
                self.ctx.events.pod(pod, target, true, "Unhealthy", text);
            }
            if let Some(kind) = v.kill {
                let why = format!(
                    "Container {name} failed {} probe, will be restarted",
                    kind.name().to_lowercase()
                );
                kills.push((i, why));
            }
        }
        for (i, why) in kills {
            self.kill_container(i, pod, terminate::grace_period(pod), why)
                .await;
        }
    }
}
