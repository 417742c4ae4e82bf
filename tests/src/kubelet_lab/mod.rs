//! Root fixtures of the kubelet tests: a lab whose last node runs a real control plane
//! (in-process, on its own tokio runtime whose threads entered that node's netns) and
//! whose other nodes each run an in-process kubelet, so every packet stays inside the
//! lab. The tests drive the control plane through its in-process API client.
//! Everything (kubelets, containers, cgroups, rootfs mounts, state) is removed on drop.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Event, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use skiff_agent::cpclient::{ConnectOptions, CpClient};
use skiff_agent::image::ImageStore;
use skiff_agent::kubelet::{layout, BackoffConfig, Kubelet, KubeletConfig};
use skiff_agent::runtime::cgroups::host_manager;
use skiff_agent::runtime::Runtime;
use skiff_controlplane::api::client::Selectors;
use skiff_controlplane::api::objects::DeleteOptions;
use skiff_controlplane::api::ApiClient;
use skiff_controlplane::server::{Server, ServerConfig};
use tokio::runtime::Runtime as Rt;

use crate::lab::Lab;
use crate::wait;

mod images;

pub use images::{binary_layer, busybox_layer, import_binary, import_busybox, write_layout};

/// How long any one condition of a kubelet test may take.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// The busybox image [`import_busybox`] builds.
pub const IMAGE: &str = "skiff.local/busybox:latest";

/// A two-thread tokio runtime (build it inside a netns so its threads live there).
pub fn rt() -> Rt {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Polls `f` until `Some`, or panics after [`DEADLINE`].
pub fn eventually<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait::until(DEADLINE, what, f)
}

/// One kubelet node of a [`World`].
pub struct Host {
    pub rt: Rt,
    pub kubelet: Option<Kubelet>,
    pub cfg: KubeletConfig,
}

/// A control plane and `n` kubelets in a lab of `n + 1` nodes.
pub struct World {
    pub lab: Lab,
    pub cp: Rt,
    server: Option<Server>,
    pub api: ApiClient,
    pub hosts: Vec<Host>,
    cp_dir: PathBuf,
}

impl World {
    /// One kubelet (node 0), the control plane in node 1.
    pub fn new(backoff: BackoffConfig) -> Self {
        Self::with_kubelets(1, backoff)
    }

    /// `n` kubelets in nodes `0..n`, the control plane in node `n`.
    pub fn with_kubelets(n: usize, backoff: BackoffConfig) -> Self {
        // The kubelets' and control plane's logs with RUST_LOG set.
        let _ = env_logger::builder().is_test(true).try_init();
        let lab = Lab::builder()
            .nodes(n + 1)
            .peer_routes(false)
            .build()
            .expect("lab (root)");
        let cp = lab
            .node(n)
            .netns()
            .run(rt)
            .expect("enter the control plane node");
        let cp_dir = std::env::temp_dir().join(format!("{}-kubelet-cp", lab.prefix()));
        let _ = std::fs::remove_dir_all(&cp_dir);
        let addr = std::net::SocketAddr::new(lab.node(n).addr().into(), 0);
        let mut scfg = ServerConfig::new(&cp_dir, addr, "127.0.0.1:0".parse().unwrap());
        scfg.fast_raft = true;
        let server = cp
            .block_on(cp.spawn(Server::start(scfg)))
            .unwrap()
            .expect("control plane");
        let api = server.api().client();
        let mut hosts = Vec::new();
        for i in 0..n {
            let node = lab.node(i);
            let state = std::env::temp_dir().join(format!("{}-kubelet-state{i}", lab.prefix()));
            import_busybox(&state);
            let mut cfg = KubeletConfig::new(node.name());
            cfg.node_ip = Some(node.addr());
            cfg.state_dir = state;
            // Each kubelet tears down the pod netns it does not know: never share the dir.
            cfg.netns_dir = std::env::temp_dir().join(format!("{}-kubelet-netns{i}", lab.prefix()));
            cfg.cgroup_parent = format!("{}-kubelet{i}", lab.prefix());
            cfg.backoff = backoff;
            cfg.heartbeat_interval = Duration::from_secs(1);
            cfg.node_sync_interval = Duration::from_secs(1);
            cfg.sync_period = Duration::from_millis(100);
            let rt = node.netns().run(rt).expect("enter the kubelet node");
            hosts.push(Host {
                rt,
                kubelet: None,
                cfg,
            });
        }
        let mut w = Self {
            lab,
            cp,
            api,
            hosts,
            cp_dir,
            server: Some(server),
        };
        for i in 0..n {
            w.start_kubelet_on(i);
        }
        w
    }

    /// The first kubelet's configuration.
    pub fn cfg(&self) -> &KubeletConfig {
        &self.hosts[0].cfg
    }

    pub fn start_kubelet(&mut self) {
        self.start_kubelet_on(0);
    }

    pub fn stop_kubelet(&mut self) {
        self.stop_kubelet_on(0);
    }

    pub fn start_kubelet_on(&mut self, i: usize) {
        let addr = self.server.as_ref().unwrap().agent_addr().to_string();
        let h = &mut self.hosts[i];
        let cfg = h.cfg.clone();
        let k = h.rt.block_on(h.rt.spawn(async move {
            let client = CpClient::connect(&addr, ConnectOptions::default())
                .await
                .expect("connect to the agent API");
            Kubelet::start(cfg, client).await
        }));
        h.kubelet = Some(k.unwrap().expect("kubelet start"));
    }

    pub fn stop_kubelet_on(&mut self, i: usize) {
        let h = &mut self.hosts[i];
        if let Some(k) = h.kubelet.take() {
            h.rt.block_on(h.rt.spawn(k.stop())).unwrap();
        }
    }

    pub fn create<K>(&self, obj: &K) -> K
    where
        K: k8s_openapi::Resource
            + serde::Serialize
            + serde::de::DeserializeOwned
            + k8s_openapi::Metadata<Ty = ObjectMeta>,
    {
        self.cp
            .block_on(self.api.create(Some("default"), obj))
            .expect("create")
    }

    pub fn pod(&self, name: &str) -> Option<Pod> {
        self.cp
            .block_on(self.api.get::<Pod>(Some("default"), name))
            .ok()
    }

    /// (reason, fieldPath) of the events about pod `pod`.
    pub fn events(&self, pod: &str) -> Vec<(String, Option<String>)> {
        let list = self
            .cp
            .block_on(
                self.api
                    .list::<Event>(Some("default"), &Selectors::default()),
            )
            .unwrap();
        list.items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(pod))
            .map(|e| (e.reason.unwrap_or_default(), e.involved_object.field_path))
            .collect()
    }

    /// Waits until pod `name` satisfies `pred`; on timeout, panics with its last status.
    pub fn wait_pod(&self, name: &str, what: &str, mut pred: impl FnMut(&Pod) -> bool) -> Pod {
        let mut last = None;
        let got = wait::try_until(DEADLINE, || {
            let p = self.pod(name)?;
            let ok = pred(&p);
            last = Some(p);
            if ok {
                last.clone()
            } else {
                None
            }
        });
        got.unwrap_or_else(|t| {
            let status = last.and_then(|p| p.status);
            panic!("timed out after {t:?} waiting for {name}: {what}; its status: {status:#?}")
        })
    }

    /// Waits until pod `name` is in `phase`.
    pub fn wait_phase(&self, name: &str, want: &str) -> Pod {
        self.wait_pod(name, &format!("phase {want}"), |p| {
            phase(p).as_deref() == Some(want)
        })
    }

    pub fn delete(&self, name: &str) {
        let _ = self.cp.block_on(self.api.delete::<Pod>(
            Some("default"),
            name,
            &DeleteOptions::default(),
        ));
    }

    /// Deletes the pods and waits until the API no longer has them.
    pub fn delete_all(&self, names: &[&str]) {
        for n in names {
            self.delete(n);
        }
        eventually("pods gone", || {
            names.iter().all(|n| self.pod(n).is_none()).then_some(())
        });
    }

    /// A container's log on the first kubelet's node (CRI lines).
    pub fn log(&self, uid: &str, container: &str, restart: u32) -> String {
        self.log_on(0, uid, container, restart)
    }

    pub fn log_on(&self, i: usize, uid: &str, container: &str, restart: u32) -> String {
        let state = &self.hosts[i].cfg.state_dir;
        std::fs::read_to_string(layout::log_path(state, uid, container, restart))
            .unwrap_or_default()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for i in 0..self.hosts.len() {
            self.stop_kubelet_on(i);
        }
        for h in &self.hosts {
            clean_node(&h.cfg);
        }
        if let Some(s) = self.server.take() {
            self.cp.block_on(self.cp.spawn(s.shutdown())).unwrap();
        }
        let _ = std::fs::remove_dir_all(&self.cp_dir);
    }
}

/// Destroys every container under the kubelet's state, its cgroups and rootfs mounts,
/// and removes the state directory.
pub fn clean_node(cfg: &KubeletConfig) {
    if let Ok(cg) = host_manager() {
        if let Ok(rt) = Runtime::new(&layout::containers_dir(&cfg.state_dir), Some(cg)) {
            for id in rt.list().unwrap_or_default() {
                if let Ok(c) = rt.adopt(&id) {
                    let _ = c.destroy();
                }
            }
        }
        let p = &cfg.cgroup_parent;
        for path in [
            format!("{p}/burstable"),
            format!("{p}/besteffort"),
            p.clone(),
        ] {
            let _ = cg.remove(&path);
        }
    }
    let store = ImageStore::open(&cfg.state_dir);
    if let (Ok(store), Ok(dirs)) = (
        store,
        std::fs::read_dir(cfg.state_dir.join("images/rootfs")),
    ) {
        for d in dirs.flatten() {
            let _ = store.release_rootfs(&d.file_name().to_string_lossy());
        }
    }
    let _ = std::fs::remove_dir_all(&cfg.state_dir);
    unmount_netns_dir(&cfg.netns_dir);
}

/// Unmount the pod netns left under `dir` (and `dir`, itself a mount), then remove it.
pub fn unmount_netns_dir(dir: &std::path::Path) {
    let entries: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    for p in entries.iter().chain([&dir.to_path_buf()]) {
        if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
            // SAFETY: a plain syscall on a NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A pod with one container `app` running `sh -c script` in `image`.
pub fn pod(name: &str, image: &str, script: &str, policy: &str) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.spec = Some(PodSpec {
        restart_policy: Some(policy.into()),
        termination_grace_period_seconds: Some(5),
        containers: vec![Container {
            name: "app".into(),
            image: Some(image.into()),
            command: Some(vec!["sh".into(), "-c".into(), script.into()]),
            ..Default::default()
        }],
        ..Default::default()
    });
    p
}

/// The status ("True"/"False") of condition `ty`.
pub fn condition(p: &Pod, ty: &str) -> Option<String> {
    let conds = p.status.as_ref()?.conditions.as_ref()?;
    conds
        .iter()
        .find(|c| c.type_ == ty)
        .map(|c| c.status.clone())
}

/// The first app container's status.
pub fn app_status(p: &Pod) -> Option<ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()
        .cloned()
}

/// The pod's phase.
pub fn phase(p: &Pod) -> Option<String> {
    p.status.as_ref()?.phase.clone()
}
