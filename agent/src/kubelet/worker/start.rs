//! Starting one container instance: image (imagePullPolicy), env, argv, mounts, user,
//! cgroup, then the runtime. Failures leave the container waiting with the kubelet's
//! reason (ErrImagePull/ImagePullBackOff, CreateContainerConfigError, ...) and a retry.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use tokio::time::Instant;

use super::super::env::{self, EnvInputs, Sources};
use super::super::layout;
use super::super::volumes::{self, config_map_data, secret_data};
use super::slot::Instance;
use super::{ns_name, Worker};
use crate::cpclient::{CpClient, Gettable};
use crate::image::ImageRecord;
use crate::runtime::cgroups::container_resources;
use crate::runtime::console::Stdio;
use crate::runtime::spec::{merge_env, resolve_argv};
use crate::runtime::{ContainerSpec, HostNamespaces, VolumeMount};
use crate::sandbox::PodFiles;

/// How long a container start waits for the first list of Services (their env vars).
const SERVICES_SYNC_WAIT: Duration = Duration::from_secs(5);

/// The pull policy Kubernetes defaults: Always for `:latest` or no tag, else IfNotPresent.
pub fn pull_policy(c: &Container) -> String {
    if let Some(p) = &c.image_pull_policy {
        return p.clone();
    }
    let image = c.image.as_deref().unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or_default();
    let tag = last.split_once(':').map(|(_, t)| t);
    if image.contains('@') || tag.is_some_and(|t| t != "latest") {
        "IfNotPresent".into()
    } else {
        "Always".into()
    }
}

fn retry_delay(failures: u32, base: Duration, max: Duration) -> Duration {
    base.saturating_mul(1 << failures.min(16)).min(max)
}

async fn fetch<K: Gettable>(
    client: &CpClient,
    ns: &str,
    names: &[String],
    data: fn(&K) -> BTreeMap<String, Vec<u8>>,
) -> Result<Sources, String> {
    let mut out = Sources::new();
    for n in names {
        let v = match client.get::<K>(ns, n).await {
            Ok(k) => Some(
                data(&k)
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                    .collect(),
            ),
            Err(e) if e.code() == Some(tonic::Code::NotFound) => None,
            Err(e) => return Err(e.to_string()),
        };
        out.insert(n.clone(), v);
    }
    Ok(out)
}

/// `uid[:gid]` of an image's User when numeric.
fn numeric_user(user: &str) -> Option<(u32, u32)> {
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let uid = u.parse().ok()?;
    Some((uid, g.parse().unwrap_or(uid)))
}

impl Worker {
    /// Leaves slot `i` waiting with `reason`, retried after the slot's back-off.
    fn start_failed(&mut self, i: usize, reason: &str, message: String) {
        let cfg = self.ctx.cfg.backoff;
        let s = &mut self.slots[i];
        s.waiting = Some((reason.into(), Some(message)));
        s.retry_at = Some(Instant::now() + retry_delay(s.pull_failures, cfg.base, cfg.max));
        s.pull_failures += 1;
    }

    /// The spec of container `name`; an ephemeral container's as a [`Container`] (it has
    /// the same fields, and the ones it may not set are empty).
    pub(super) fn container_spec(&self, pod: &Pod, init: bool, name: &str) -> Option<Container> {
        let spec = pod.spec.as_ref()?;
        if init {
            let list = spec.init_containers.as_ref()?;
            return list.iter().find(|c| c.name == name).cloned();
        }
        if let Some(c) = spec.containers.iter().find(|c| c.name == name) {
            return Some(c.clone());
        }
        let e = spec
            .ephemeral_containers
            .as_ref()?
            .iter()
            .find(|c| c.name == name)?;
        match serde_json::to_value(e).and_then(serde_json::from_value) {
            Ok(c) => Some(c),
            Err(err) => {
                log::warn!("kubelet: ephemeral container {name}: {err}");
                None
            }
        }
    }

    fn resolve_image(&mut self, i: usize, pod: &Pod, c: &Container) -> Option<ImageRecord> {
        let image = c.image.clone().unwrap_or_default();
        let target = Some((self.slots[i].init, c.name.as_str()));
        match self.ctx.images.resolve(&image) {
            Ok(rec) => {
                if self.slots[i].image_id != rec.id {
                    let msg = format!("Container image \"{image}\" already present on machine");
                    self.ctx.events.pod(pod, target, false, "Pulled", msg);
                }
                self.slots[i].image_id = rec.id.clone();
                self.slots[i].pull_failures = 0;
                Some(rec)
            }
            Err(e) => {
                let never = pull_policy(c) == "Never";
                let first = self.slots[i].pull_failures == 0;
                let (reason, msg) = if never {
                    ("ErrImageNeverPull", format!("Container image \"{image}\" is not present with pull policy of Never: {e}"))
                } else if first {
                    ("ErrImagePull", format!("{e}"))
                } else {
                    (
                        "ImagePullBackOff",
                        format!("Back-off pulling image \"{image}\": {e}"),
                    )
                };
                if first || never {
                    self.ctx.events.pod(
                        pod,
                        target,
                        true,
                        "Failed",
                        format!("Failed to pull image \"{image}\": {e}"),
                    );
                    self.ctx
                        .events
                        .pod(pod, target, true, "Failed", format!("Error: {reason}"));
                } else {
                    self.ctx.events.pod(
                        pod,
                        target,
                        false,
                        "BackOff",
                        format!("Back-off pulling image \"{image}\""),
                    );
                }
                self.start_failed(i, reason, msg);
                None
            }
        }
    }

    async fn container_env(
        &mut self,
        pod: &Pod,
        c: &Container,
    ) -> Result<Vec<(String, String)>, String> {
        let (ns, _) = ns_name(pod);
        let (cms, secrets) = env::references(c);
        let client = &self.ctx.client;
        let config_maps = fetch::<ConfigMap>(client, &ns, &cms, config_map_data).await?;
        let secrets = fetch::<Secret>(client, &ns, &secrets, secret_data).await?;
        if !self.ctx.services.wait_synced(SERVICES_SYNC_WAIT).await {
            log::warn!(
                "kubelet: Services not listed yet; starting {} without their env",
                c.name
            );
        }
        let services = self.ctx.services.list();
        let inputs = EnvInputs {
            pod_ip: self.pod_ip().map(|ip| ip.to_string()).unwrap_or_default(),
            host_ip: self.ctx.node_ip.to_string(),
            node_name: self.ctx.cfg.node_name.clone(),
            services: &services,
            config_maps,
            secrets,
        };
        env::resolve(pod, c, &inputs)
    }

    fn mounts(&self, pod: &Pod, c: &Container) -> Result<Vec<VolumeMount>, String> {
        let volumes = self.volumes.clone().unwrap_or_default();
        let mut out = Vec::new();
        for m in c.volume_mounts.iter().flatten() {
            let mut host = volumes
                .get(&m.name)
                .cloned()
                .ok_or_else(|| format!("volumeMount {:?}: no such volume", m.name))?;
            if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                host = host.join(sub);
                if !host.exists() {
                    std::fs::create_dir_all(&host)
                        .map_err(|e| format!("subPath {}: {e}", host.display()))?;
                }
            }
            out.push(VolumeMount {
                host_path: host,
                container_path: PathBuf::from(&m.mount_path),
                read_only: m.read_only.unwrap_or(false) || volumes::read_only_source(pod, &m.name),
            });
        }
        let files = self.ctx.net.files_dir(&self.uid);
        for (file, at) in [
            (PodFiles::HOSTS, "/etc/hosts"),
            (PodFiles::RESOLV_CONF, "/etc/resolv.conf"),
            (PodFiles::HOSTNAME, "/etc/hostname"),
        ] {
            let taken = out
                .iter()
                .any(|m| m.container_path == std::path::Path::new(at));
            if !taken {
                out.push(VolumeMount {
                    host_path: files.join(file),
                    container_path: at.into(),
                    read_only: false,
                });
            }
        }
        Ok(out)
    }

    fn user(pod: &Pod, c: &Container, image_user: &str) -> Option<(u32, u32)> {
        let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
        let csc = c.security_context.as_ref();
        let uid = csc
            .and_then(|s| s.run_as_user)
            .or(psc.and_then(|s| s.run_as_user));
        let gid = csc
            .and_then(|s| s.run_as_group)
            .or(psc.and_then(|s| s.run_as_group));
        let from_image = numeric_user(image_user);
        match (uid, from_image) {
            (Some(u), img) => Some((
                u as u32,
                gid.map_or(img.map_or(u as u32, |(_, g)| g), |g| g as u32),
            )),
            (None, Some((u, g))) => Some((u, gid.map_or(g, |g| g as u32))),
            (None, None) => {
                if !image_user.is_empty() {
                    log::warn!("kubelet: container {}: image user {image_user:?} is not numeric; running as root", c.name);
                }
                None
            }
        }
    }

    /// Starts slot `i`'s next instance.
    pub(super) async fn start(&mut self, i: usize, pod: &Arc<Pod>) {
        let (init, name) = (self.slots[i].init, self.slots[i].name.clone());
        let Some(c) = self.container_spec(pod, init, &name) else {
            return;
        };
        let target = Some((init, name.as_str()));
        let Some(image) = self.resolve_image(i, pod, &c) else {
            return;
        };
        let env = match self.container_env(pod, &c).await {
            Ok(e) => e,
            Err(msg) => {
                self.ctx
                    .events
                    .pod(pod, target, true, "Failed", format!("Error: {msg}"));
                return self.start_failed(i, "CreateContainerConfigError", msg);
            }
        };
        let lookup = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let expand = |v: &Option<Vec<String>>| -> Vec<String> {
            v.iter()
                .flatten()
                .map(|s| env::expand(s, &lookup))
                .collect()
        };
        let args = resolve_argv(&image.config, &expand(&c.command), &expand(&c.args));
        let mounts = match self.mounts(pod, &c) {
            Ok(m) if !args.is_empty() => m,
            Ok(_) => {
                return self.start_failed(i, "CreateContainerError", "no command specified".into())
            }
            Err(msg) => return self.start_failed(i, "CreateContainerConfigError", msg),
        };
        let restart = self.slots[i].next_restart();
        let cfg = &self.ctx.cfg;
        let id = layout::container_id(&self.uid, &name, restart);
        let cgroup = self.ctx.tree.container_path(self.qos, &self.uid, &id);
        let working_dir = c.working_dir.clone().filter(|w| !w.is_empty());
        let mut spec = ContainerSpec {
            id: id.clone(),
            rootfs: PathBuf::new(),
            args,
            env: merge_env(&image.config.env, &env),
            cwd: working_dir.unwrap_or_else(|| image.config.working_dir.clone()),
            // Sharing the node's network, a pod has the node's name (Kubernetes shares the
            // UTS namespace too).
            hostname: Some(if super::network::host_network(pod) {
                self.ctx.cfg.node_name.clone()
            } else {
                crate::sandbox::files::hostname(pod)
            }),
            user: Self::user(pod, &c, &image.config.user),
            netns: self
                .network
                .as_ref()
                .and_then(|n| n.netns_path())
                .map(std::path::Path::to_path_buf),
            mounts,
            log_path: layout::log_path(&cfg.state_dir, &self.uid, &name, restart),
            log_max_bytes: cfg.log_max_bytes,
            log_max_files: cfg.log_max_files,
            cgroup: Some(cgroup.clone()),
            stdio: Stdio {
                stdin: c.stdin.unwrap_or(false),
                stdin_once: c.stdin_once.unwrap_or(false),
                tty: c.tty.unwrap_or(false),
            },
            host: pod
                .spec
                .as_ref()
                .map_or_else(Default::default, |s| HostNamespaces {
                    pid: s.host_pid.unwrap_or(false),
                    ipc: s.host_ipc.unwrap_or(false),
                }),
        };
        let resources = container_resources(&c);
        let ctx = self.ctx.clone();
        let (uid, cname) = (self.uid.clone(), name.clone());
        let started = tokio::task::spawn_blocking(move || {
            // The previous instance's writable layer goes; its state (exit status) and
            // log stay for lastState and `logs --previous`; older ones go entirely.
            if restart >= 1 {
                let _ = ctx
                    .images
                    .release_rootfs(&layout::container_id(&uid, &cname, restart - 1));
            }
            if restart >= 2 {
                let old = layout::container_id(&uid, &cname, restart - 2);
                if let Ok(c) = ctx.runtime.adopt(&old) {
                    let _ = c.destroy();
                }
            }
            let rootfs = ctx
                .images
                .prepare_rootfs(&spec.id, &image)
                .map_err(|e| e.to_string())?;
            spec.rootfs = rootfs.path;
            if let Some(dir) = spec.log_path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            ctx.cgroups
                .apply(&cgroup, &resources)
                .map_err(|e| e.to_string())?;
            ctx.runtime.start(&spec).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("container start panicked: {e}")));
        match started {
            Ok(container) => {
                self.ctx.events.pod(
                    pod,
                    target,
                    false,
                    "Created",
                    format!("Created container {name}"),
                );
                let s = &mut self.slots[i];
                s.current = Some(Instance {
                    container,
                    started_at: Utc::now(),
                });
                s.started = Some(restart);
                s.waiting = None;
                s.retry_at = None;
                s.restart_at = None;
                self.ctx.events.pod(
                    pod,
                    target,
                    false,
                    "Started",
                    format!("Started container {name}"),
                );
                self.post_start(i, pod).await;
            }
            Err(msg) => {
                self.ctx
                    .events
                    .pod(pod, target, true, "Failed", format!("Error: {msg}"));
                self.start_failed(i, "RunContainerError", msg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults() {
        let c = |image: &str| Container {
            image: Some(image.into()),
            ..Default::default()
        };
        assert_eq!(pull_policy(&c("busybox")), "Always");
        assert_eq!(pull_policy(&c("busybox:latest")), "Always");
        assert_eq!(
            pull_policy(&c("registry:5000/busybox:1.36")),
            "IfNotPresent"
        );
        assert_eq!(pull_policy(&c("registry:5000/busybox")), "Always");
    }

    #[test]
    fn numeric_users() {
        assert_eq!(numeric_user("1000:100"), Some((1000, 100)));
        assert_eq!(numeric_user("65534"), Some((65534, 65534)));
        assert_eq!(numeric_user("nobody"), None);
    }
}
