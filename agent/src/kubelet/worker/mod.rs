//! One pod's worker: a loop of idempotent syncs of the pod (spec, deletionTimestamp)
//! against the node (sandbox, volumes, containers), woken by a new version of the pod,
//! a back-off deadline or the sync period. [`Worker::sync`] never depends on having seen
//! an event: it looks at what runs and decides from that ([`reconcile::plan`]).

mod adopt;
mod hooks;
mod network;
mod probes;
mod slot;
mod start;
mod terminate;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tokio::sync::watch;
use tokio::time::Instant;

use super::lookup::{ContainerEntry, PodEntry};
use super::reconcile::{self, Observed, Plan};
use super::status::{self, PodView};
use super::volumes::VolumePaths;
use super::{layout, volumes, Ctx};
use crate::runtime::cgroups::{pod_resources, qos_class, CgroupResources, QosClass};
use network::PodNet;
use slot::Slot;

/// Retry pause after a sandbox or volume error.
const SETUP_RETRY: Duration = Duration::from_secs(2);

enum Flow {
    Again(Duration),
    Exit,
}

pub struct Worker {
    ctx: Arc<Ctx>,
    uid: String,
    desired: watch::Receiver<Option<Arc<Pod>>>,
    pod: Option<Arc<Pod>>,
    /// The pod's network, once set up.
    network: Option<PodNet>,
    /// The pod cgroup's resources as last applied.
    cgroup_applied: Option<CgroupResources>,
    volumes: Option<VolumePaths>,
    /// Init containers first, then app containers, in spec order.
    slots: Vec<Slot>,
    adopted: bool,
    start_time: Option<DateTime<Utc>>,
    reported: Option<PodStatus>,
    /// Why the pod cannot start containers yet (sandbox, volumes).
    blocked: Option<String>,
    qos: QosClass,
    /// Probe workers of the running app containers, by container name.
    probes: HashMap<String, probes::ContainerProbes>,
}

fn ns_name(pod: &Pod) -> (String, String) {
    (
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

fn restart_policy(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into())
}

impl Worker {
    pub fn new(ctx: Arc<Ctx>, uid: String, desired: watch::Receiver<Option<Arc<Pod>>>) -> Self {
        Self {
            ctx,
            uid,
            desired,
            pod: None,
            network: None,
            cgroup_applied: None,
            volumes: None,
            slots: Vec::new(),
            adopted: false,
            start_time: None,
            reported: None,
            blocked: None,
            qos: QosClass::BestEffort,
            probes: HashMap::new(),
        }
    }

    pub async fn run(mut self) {
        loop {
            let wake = match self.sync().await {
                Flow::Exit => break,
                Flow::Again(d) => d,
            };
            let probed = probes::any_changed(self.probe_changes());
            tokio::select! {
                changed = self.desired.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(wake) => {}
                _ = probed => {}
            }
        }
        self.ctx.registry.remove(&self.uid);
    }

    async fn sync(&mut self) -> Flow {
        let desired = self.desired.borrow_and_update().clone();
        if !self.adopted {
            self.adopted = true;
            if let Some(p) = &desired {
                self.pod = Some(p.clone());
                self.reported = p.status.clone();
                self.qos = qos_class(p);
                self.ensure_slots();
            }
            self.adopt().await;
        }
        let pod = match desired {
            None => {
                let grace = self
                    .pod
                    .as_deref()
                    .map_or(Duration::from_secs(2), terminate::grace_period);
                self.terminate(grace.min(Duration::from_secs(2))).await;
                self.teardown().await;
                return Flow::Exit;
            }
            Some(p) if p.metadata.deletion_timestamp.is_some() => {
                self.pod = Some(p.clone());
                self.ensure_slots();
                self.terminate(terminate::grace_period(&p)).await;
                self.push_status().await;
                self.teardown().await;
                let (ns, name) = ns_name(&p);
                match self.ctx.client.delete_pod(&ns, &name, &self.uid).await {
                    Ok(_) => log::info!("kubelet: pod {ns}/{name} stopped and deleted"),
                    Err(e) if e.code() == Some(tonic::Code::NotFound) => {}
                    Err(e) => {
                        log::warn!("kubelet: deleting pod {ns}/{name}: {e}");
                        return Flow::Again(SETUP_RETRY);
                    }
                }
                return Flow::Exit;
            }
            Some(p) => p,
        };
        self.pod = Some(pod.clone());
        self.ensure_slots();
        self.check_probes(&pod).await;
        self.poll_exits(&pod);
        let wake = match self.converge(&pod).await {
            Ok(()) => self.next_wake(),
            Err(()) => SETUP_RETRY,
        };
        // Probe workers for the containers just started.
        self.check_probes(&pod).await;
        // The HTTP side (attach, exec, logs) learns of a started container before the API
        // does: a client that sees the pod Running and attaches at once finds it.
        self.publish(&pod);
        self.push_status().await;
        Flow::Again(wake)
    }

    /// Sandbox, volumes, then the containers [`reconcile::plan`] says to start.
    async fn converge(&mut self, pod: &Arc<Pod>) -> Result<(), ()> {
        if let Err(e) = self.ensure_sandbox(pod).await {
            self.ctx
                .events
                .pod(pod, None, true, "FailedCreatePodSandBox", e.clone());
            self.blocked = Some(e);
            return Err(());
        }
        if self.volumes.is_none() {
            let state = &self.ctx.cfg.state_dir;
            let dir = layout::volumes_dir(state, &self.uid);
            let claims = layout::claims_dir(state);
            let store = volumes::ClaimStore {
                dir: &claims,
                node: &self.ctx.cfg.node_name,
            };
            match volumes::prepare(&self.ctx.client, pod, &dir, &store).await {
                Ok(v) => self.volumes = Some(v),
                Err(e) => {
                    self.ctx
                        .events
                        .pod(pod, None, true, "FailedMount", e.clone());
                    self.blocked = Some(e);
                    return Err(());
                }
            }
        }
        self.blocked = None;
        let now = Instant::now();
        let observe = |f: &dyn Fn(&Slot) -> bool| -> Vec<Observed> {
            self.slots
                .iter()
                .filter(|s| f(s))
                .map(|s| s.observed(now))
                .collect()
        };
        let init = observe(&|s| s.init);
        let apps = observe(&|s| !s.init && !s.ephemeral);
        let ephemeral = observe(&|s| s.ephemeral);
        let (n_init, n_apps) = (init.len(), apps.len());
        // Ephemeral containers start whatever the init containers do (debugging a stuck
        // init is what they are for), but not in a pod whose containers have all ended.
        let plan = reconcile::plan(&init, &apps);
        let finished = matches!(plan, Plan::InitFailed(_))
            || (n_apps > 0 && apps.iter().all(|o| matches!(o, Observed::Done { .. })));
        match plan {
            Plan::StartInit(i) => self.start(i, pod).await,
            Plan::WaitInit | Plan::InitFailed(_) => {}
            Plan::StartApps(list) => {
                for i in list {
                    self.start(n_init + i, pod).await;
                }
            }
        }
        for (j, o) in ephemeral.iter().enumerate() {
            let due = matches!(o, Observed::NotStarted | Observed::Restarting { due: true });
            if due && !finished {
                self.start(n_init + n_apps + j, pod).await;
            }
        }
        Ok(())
    }

    /// One slot per container of the spec, keeping what is tracked.
    fn ensure_slots(&mut self) {
        let Some(spec) = self.pod.as_ref().and_then(|p| p.spec.clone()) else {
            return;
        };
        let image = |i: &Option<String>| i.clone().unwrap_or_default();
        // (init, ephemeral, name, image)
        let wanted: Vec<(bool, bool, String, String)> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| (true, false, c.name.clone(), image(&c.image)))
            .chain(
                spec.containers
                    .iter()
                    .map(|c| (false, false, c.name.clone(), image(&c.image))),
            )
            .chain(
                spec.ephemeral_containers
                    .iter()
                    .flatten()
                    .map(|c| (false, true, c.name.clone(), image(&c.image))),
            )
            .collect();
        let same = wanted.len() == self.slots.len()
            && wanted
                .iter()
                .zip(&self.slots)
                .all(|((i, e, n, _), s)| *i == s.init && *e == s.ephemeral && *n == s.name);
        if same {
            return;
        }
        let mut old: Vec<Slot> = std::mem::take(&mut self.slots);
        for (init, ephemeral, name, image) in wanted {
            match old.iter().position(|s| s.name == name) {
                Some(i) => self.slots.push(old.swap_remove(i)),
                None => {
                    let mut slot = Slot::new(&name, init, &image);
                    slot.ephemeral = ephemeral;
                    self.slots.push(slot);
                }
            }
        }
    }

    /// The pod's network sandbox (once) and its cgroup (whenever its resources
    /// differ from the last applied), on a blocking thread: both wait on kernel
    /// locks (rtnl, cgroup_mutex) that concurrent pod starts contend for, and the
    /// agent's one async thread must not wait with them.
    async fn ensure_sandbox(&mut self, pod: &Arc<Pod>) -> Result<(), String> {
        let resources = pod_resources(pod);
        let create = self.network.is_none();
        let apply = self.cgroup_applied.as_ref() != Some(&resources);
        if create || apply {
            let (ctx, uid, pod) = (self.ctx.clone(), self.uid.clone(), pod.clone());
            let path = self.ctx.tree.pod_path(self.qos, &self.uid);
            let res = resources.clone();
            let (sandbox, cgroup) = tokio::task::spawn_blocking(move || {
                let sandbox = if create {
                    network::create(&ctx, &uid, &pod).map(Some)
                } else {
                    Ok(None)
                };
                let cgroup = if apply && sandbox.is_ok() {
                    ctx.cgroups
                        .apply(&path, &res)
                        .map_err(|e| format!("pod cgroup {path}: {e}"))
                } else {
                    Ok(())
                };
                (sandbox, cgroup)
            })
            .await
            .map_err(|e| format!("creating the pod sandbox: {e}"))?;
            if let Some(net) = sandbox? {
                self.network = Some(net);
            }
            cgroup?;
            self.cgroup_applied = Some(resources);
        }
        self.start_time.get_or_insert_with(Utc::now);
        Ok(())
    }

    /// Records the containers that exited since the last sync.
    fn poll_exits(&mut self, pod: &Pod) {
        let policy = restart_policy(pod);
        let now = Instant::now();
        let cfg = self.ctx.cfg.backoff;
        for slot in &mut self.slots {
            let Some((code, signal, oom, message)) = slot.poll() else {
                continue;
            };
            let reason = match (oom, code) {
                (true, _) => "OOMKilled",
                (false, 0) => "Completed",
                _ => "Error",
            };
            let cname = slot.name.clone();
            let target = Some((slot.init, cname.as_str()));
            if oom {
                let msg = format!(
                    "Memory cgroup out of memory: killed a process of container {}",
                    slot.name
                );
                self.ctx.events.pod(pod, target, true, "OOMKilling", msg);
            }
            let delay = slot.record_exit(code, signal, reason, message, &policy, &cfg, now);
            if let Some(d) = delay.filter(|d| !d.is_zero()) {
                let (ns, name) = ns_name(pod);
                let msg = format!(
                    "Back-off restarting failed container {} in pod {name}_{ns}({})",
                    slot.name, self.uid
                );
                slot.waiting = Some((
                    "CrashLoopBackOff".into(),
                    Some(format!(
                        "back-off {d:?} restarting failed container={} pod={name}_{ns}({})",
                        slot.name, self.uid
                    )),
                ));
                self.ctx.events.pod(pod, target, true, "BackOff", msg);
            }
        }
    }

    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        let mut wake = self.ctx.cfg.sync_period;
        for s in &self.slots {
            for at in [s.restart_at, s.retry_at].into_iter().flatten() {
                if at > now {
                    wake = wake.min(at - now);
                }
            }
        }
        wake.max(Duration::from_millis(10))
    }

    /// Readiness of slot `i`'s running instance: its readinessProbe's (after its
    /// startupProbe); without probes a running container is ready (as Kubernetes
    /// defaults it).
    fn ready(&self, i: usize) -> bool {
        self.probed_ready(i)
    }

    fn view(&self) -> PodView {
        let now = Instant::now();
        let initializing = self
            .slots
            .iter()
            .any(|s| s.init && !matches!(&s.last, Some(t) if s.done && t.exit_code == 0));
        let blocked = |mut v: status::ContainerView| {
            if let (Some(msg), status::CState::Waiting { message, .. }) =
                (&self.blocked, &mut v.state)
            {
                *message = Some(msg.clone());
            }
            v
        };
        let views = |init: bool, ephemeral: bool| {
            self.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.init == init && s.ephemeral == ephemeral)
                // An ephemeral container is never ready: it serves nothing.
                .map(|(i, s)| blocked(s.view(self.ready(i) && !ephemeral, initializing, now)))
                .collect()
        };
        PodView {
            init: views(true, false),
            containers: views(false, false),
            ephemeral: views(false, true),
            pod_ip: self.pod_ip(),
            host_ip: Some(self.ctx.node_ip),
            start_time: self.start_time,
            sandbox_ready: self.network.is_some(),
            qos_class: self.qos.as_str().to_owned(),
        }
    }

    /// The pod's address, once its network is set up.
    fn pod_ip(&self) -> Option<std::net::Ipv4Addr> {
        self.network.as_ref().map(|n| n.ip(self.ctx.node_ip))
    }

    /// Sends the status if it changed since the last one reported.
    async fn push_status(&mut self) {
        let Some(pod) = self.pod.clone() else { return };
        let st = status::compute(&pod, &self.view(), self.reported.as_ref(), Utc::now());
        if self.reported.as_ref() == Some(&st) {
            return;
        }
        let (ns, name) = ns_name(&pod);
        match self
            .ctx
            .client
            .update_pod_status(&ns, &name, &st, None)
            .await
        {
            Ok(_) => self.reported = Some(st),
            Err(e) => log::warn!("kubelet: status of pod {ns}/{name}: {e}"),
        }
    }

    /// What the HTTP side sees of this pod.
    fn publish(&self, pod: &Pod) {
        let (namespace, name) = ns_name(pod);
        let containers = self
            .slots
            .iter()
            .map(|s| ContainerEntry {
                name: s.name.clone(),
                restart_count: s.started.unwrap_or(0),
                running: s.current.is_some(),
                cgroup: s
                    .current
                    .as_ref()
                    .and_then(|i| i.container.state().cgroup.clone()),
                process: s.current.as_ref().map(|i| {
                    let st = i.container.state();
                    (st.pid, st.pid_start)
                }),
                stdin: wants_stdin(pod, &s.name),
            })
            .collect();
        self.ctx.registry.set(
            &self.uid,
            PodEntry {
                namespace,
                name,
                containers,
            },
        );
    }
}

/// Whether container `name` of `pod` asks for stdin (`stdin: true`).
fn wants_stdin(pod: &Pod, name: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let init = spec.init_containers.iter().flatten();
    let asks = |stdin: Option<bool>, tty: Option<bool>| stdin == Some(true) || tty == Some(true);
    match init.chain(spec.containers.iter()).find(|c| c.name == name) {
        Some(c) => asks(c.stdin, c.tty),
        None => spec
            .ephemeral_containers
            .iter()
            .flatten()
            .find(|c| c.name == name)
            .is_some_and(|c| asks(c.stdin, c.tty)),
    }
}
