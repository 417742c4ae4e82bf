//! After an agent restart: the pod's sandbox and containers are found again from the
//! node (netns bind mount, IPAM, runtime state), so nothing healthy is restarted.

use std::collections::BTreeMap;
use std::time::SystemTime;

use chrono::{DateTime, TimeZone, Utc};
use tokio::time::Instant;

use super::super::layout;
use super::super::status::Terminated;
use super::network::PodNet;
use super::slot::{container_id_uri, Instance};
use super::{restart_policy, Worker};
use crate::runtime::{Container, ExitStatus};
use crate::sandbox::Sandbox;

fn exit_time(c: &Container, dir: &std::path::Path) -> DateTime<Utc> {
    std::fs::metadata(dir.join(c.id()).join("exit.json"))
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| SystemTime::now().into())
}

fn terminated(c: &mut Container, st: ExitStatus, dir: &std::path::Path) -> Terminated {
    let oom = c.oom_killed();
    let code = st.exit_code();
    Terminated {
        exit_code: code,
        signal: match st {
            ExitStatus::Signal(s) => Some(s),
            ExitStatus::Code(_) => None,
        },
        reason: match (oom, code) {
            (true, _) => "OOMKilled",
            (false, 0) => "Completed",
            _ => "Error",
        }
        .into(),
        message: None,
        started_at: Utc.timestamp_opt(c.state().started_at, 0).single(),
        finished_at: exit_time(c, dir),
        container_id: Some(container_id_uri(c.id())),
    }
}

impl Worker {
    /// Re-adopts the pod's sandbox and the latest two instances of each container.
    pub(super) async fn adopt(&mut self) {
        let ctx = self.ctx.clone();
        let uid = self.uid.clone();
        let found = tokio::task::spawn_blocking(move || {
            let sandbox = match Sandbox::open(&ctx.net, &uid) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("kubelet: pod {uid}: sandbox incomplete, will repair: {e}");
                    None
                }
            };
            let mut by_name: BTreeMap<String, Vec<(u32, Container)>> = BTreeMap::new();
            for id in ctx.runtime.list().unwrap_or_default() {
                let Some(k) = layout::parse_container_id(&id) else {
                    continue;
                };
                if k.uid != uid {
                    continue;
                }
                match ctx.runtime.adopt(&id) {
                    Ok(c) => by_name.entry(k.name).or_default().push((k.restart, c)),
                    Err(e) => log::warn!("kubelet: re-adopting container {id}: {e}"),
                }
            }
            (sandbox, by_name)
        })
        .await;
        let Ok((sandbox, mut by_name)) = found else {
            return;
        };
        if sandbox.is_some() {
            log::info!("kubelet: pod {}: re-adopted its sandbox", self.uid);
        }
        // A pod on the node's network has nothing to re-adopt: its files are written again.
        self.network = sandbox.map(PodNet::Sandbox);
        let policy = self
            .pod
            .as_deref()
            .map(restart_policy)
            .unwrap_or_else(|| "Always".into());
        let dir = crate::kubelet::layout::containers_dir(&self.ctx.cfg.state_dir);
        let now = Instant::now();
        for slot in &mut self.slots {
            let Some(mut instances) = by_name.remove(&slot.name) else {
                continue;
            };
            instances.sort_by_key(|(n, _)| *n);
            let Some((n, mut latest)) = instances.pop() else {
                continue;
            };
            if let Some((_, mut prev)) = instances.pop() {
                if let Ok(Some(st)) = prev.try_wait() {
                    slot.last = Some(terminated(&mut prev, st, &dir));
                }
            }
            slot.started = Some(n);
            if let Ok(image) = self.ctx.images.resolve(&slot.image) {
                slot.image_id = image.id;
            }
            let started_at = Utc
                .timestamp_opt(latest.state().started_at, 0)
                .single()
                .unwrap_or_else(Utc::now);
            match latest.try_wait() {
                Ok(None) => {
                    log::info!("kubelet: re-adopted running container {}", latest.id());
                    slot.current = Some(Instance {
                        container: latest,
                        started_at,
                    });
                }
                Ok(Some(st)) => {
                    let t = terminated(&mut latest, st, &dir);
                    let restart = !slot.ephemeral
                        && super::super::reconcile::should_restart(&policy, slot.init, t.exit_code);
                    slot.before_last = slot.last.replace(t);
                    slot.done = !restart;
                    slot.restart_at = restart.then_some(now);
                }
                Err(e) => log::warn!("kubelet: container {}: {e}", latest.id()),
            }
            self.start_time.get_or_insert(started_at);
        }
    }
}
