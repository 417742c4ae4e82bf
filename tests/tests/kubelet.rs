//! Root: the kubelet on a lab node against a real control plane. The control plane runs
//! in node 1's netns (its own tokio runtime, whose threads entered that netns), the
//! kubelet in node 0's, so every packet stays inside the lab; the test drives the
//! control plane through its in-process API client. Shown: a pod goes Running with its
//! IPs, conditions, events and the Service env vars, survives a kubelet restart untouched,
//! and is stopped, deleted and cleaned up; a crashing container backs off with a growing
//! restartCount; a missing image gives ErrImagePull then ImagePullBackOff.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Container, Event, Pod, PodSpec, Service, ServicePort, ServiceSpec,
};
use skiff_agent::cpclient::{ConnectOptions, CpClient};
use skiff_agent::image::build::{write_oci_layout, LayerBuilder};
use skiff_agent::image::{ImageConfig, ImageStore};
use skiff_agent::kubelet::{layout, BackoffConfig, Kubelet, KubeletConfig};
use skiff_agent::runtime::cgroups::host_manager;
use skiff_agent::runtime::Runtime;
use skiff_controlplane::api::client::Selectors;
use skiff_controlplane::api::objects::DeleteOptions;
use skiff_controlplane::api::ApiClient;
use skiff_controlplane::server::{Server, ServerConfig};
use skiff_tests::lab::Lab;
use tokio::runtime::Runtime as Rt;

const DEADLINE: Duration = Duration::from_secs(60);
const IMAGE: &str = "skiff.local/busybox:latest";
const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "cat", "env", "true", "false", "dd", "grep",
];

fn rt() -> Rt {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `f` until `Some`, or panics after the deadline.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct World {
    lab: Lab,
    cp: Rt,
    kl: Rt,
    server: Option<Server>,
    api: ApiClient,
    kubelet: Option<Kubelet>,
    cfg: KubeletConfig,
    cp_dir: PathBuf,
}

impl World {
    fn new(backoff: BackoffConfig) -> Self {
        let lab = Lab::builder()
            .nodes(2)
            .peer_routes(false)
            .build()
            .expect("lab (root)");
        let cp = lab.node(1).netns().run(rt).unwrap();
        let kl = lab.node(0).netns().run(rt).unwrap();
        let cp_dir = std::env::temp_dir().join(format!("{}-kubelet-cp", lab.prefix()));
        let state = std::env::temp_dir().join(format!("{}-kubelet-state", lab.prefix()));
        let _ = std::fs::remove_dir_all(&cp_dir);
        let addr = std::net::SocketAddr::new(lab.node(1).addr().into(), 0);
        let mut scfg = ServerConfig::new(&cp_dir, addr, "127.0.0.1:0".parse().unwrap());
        scfg.fast_raft = true;
        let server = cp
            .block_on(cp.spawn(Server::start(scfg)))
            .unwrap()
            .expect("control plane");
        let api = server.api().client();
        import_busybox(&state);
        let mut cfg = KubeletConfig::new(lab.node(0).name());
        cfg.node_ip = Some(lab.node(0).addr());
        cfg.state_dir = state;
        cfg.cgroup_parent = format!("{}-kubelet", lab.prefix());
        cfg.backoff = backoff;
        cfg.heartbeat_interval = Duration::from_secs(1);
        cfg.node_sync_interval = Duration::from_secs(1);
        cfg.sync_period = Duration::from_millis(100);
        let mut w = Self {
            lab,
            cp,
            kl,
            api,
            kubelet: None,
            cfg,
            cp_dir,
            server: Some(server),
        };
        w.start_kubelet();
        w
    }

    fn start_kubelet(&mut self) {
        let addr = self.server.as_ref().unwrap().agent_addr().to_string();
        let cfg = self.cfg.clone();
        let k = self.kl.block_on(self.kl.spawn(async move {
            let client = CpClient::connect(&addr, ConnectOptions::default())
                .await
                .expect("connect");
            Kubelet::start(cfg, client).await
        }));
        self.kubelet = Some(k.unwrap().expect("kubelet start"));
    }

    fn stop_kubelet(&mut self) {
        if let Some(k) = self.kubelet.take() {
            self.kl.block_on(self.kl.spawn(k.stop())).unwrap();
        }
    }

    fn create<K>(&self, obj: &K) -> K
    where
        K: k8s_openapi::Resource
            + serde::Serialize
            + serde::de::DeserializeOwned
            + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    {
        self.cp
            .block_on(self.api.create(Some("default"), obj))
            .expect("create")
    }

    fn pod(&self, name: &str) -> Option<Pod> {
        self.cp
            .block_on(self.api.get::<Pod>(Some("default"), name))
            .ok()
    }

    fn events(&self, pod: &str) -> Vec<(String, Option<String>)> {
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

    fn delete(&self, name: &str) {
        let _ = self.cp.block_on(self.api.delete::<Pod>(
            Some("default"),
            name,
            &DeleteOptions::default(),
        ));
    }

    fn log(&self, uid: &str, container: &str, restart: u32) -> String {
        std::fs::read_to_string(layout::log_path(
            &self.cfg.state_dir,
            uid,
            container,
            restart,
        ))
        .unwrap_or_default()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop_kubelet();
        if let Ok(cg) = host_manager() {
            if let Ok(rt) = Runtime::new(&layout::containers_dir(&self.cfg.state_dir), Some(cg)) {
                for id in rt.list().unwrap_or_default() {
                    if let Ok(c) = rt.adopt(&id) {
                        let _ = c.destroy();
                    }
                }
            }
            let p = &self.cfg.cgroup_parent;
            for path in [
                format!("{p}/burstable"),
                format!("{p}/besteffort"),
                p.clone(),
            ] {
                let _ = cg.remove(&path);
            }
        }
        let store = ImageStore::open(&self.cfg.state_dir);
        if let (Ok(store), Ok(dirs)) = (
            store,
            std::fs::read_dir(self.cfg.state_dir.join("images/rootfs")),
        ) {
            for d in dirs.flatten() {
                let _ = store.release_rootfs(&d.file_name().to_string_lossy());
            }
        }
        if let Some(s) = self.server.take() {
            self.cp.block_on(self.cp.spawn(s.shutdown())).unwrap();
        }
        let _ = std::fs::remove_dir_all(&self.cp_dir);
        let _ = std::fs::remove_dir_all(&self.cfg.state_dir);
        let _ = &self.lab;
    }
}

fn import_busybox(state: &std::path::Path) {
    let store = ImageStore::open(state).unwrap();
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (apt install busybox-static)");
    let mut layer = LayerBuilder::new()
        .dir("bin")
        .file("bin/busybox", 0o755, &busybox)
        .dir("tmp")
        .dir("etc");
    for a in APPLETS {
        layer = layer.symlink(&format!("bin/{a}"), "busybox");
    }
    let config = ImageConfig {
        cmd: vec!["sh".into()],
        env: vec!["PATH=/bin".into()],
        ..ImageConfig::default()
    };
    let layout_dir = state.join("busybox-layout");
    write_oci_layout(&layout_dir, IMAGE, &[layer.finish()], &config, true).unwrap();
    store.import(&layout_dir).unwrap();
}

fn pod(name: &str, image: &str, script: &str, policy: &str) -> Pod {
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

fn condition(p: &Pod, ty: &str) -> Option<String> {
    let conds = p.status.as_ref()?.conditions.as_ref()?;
    conds
        .iter()
        .find(|c| c.type_ == ty)
        .map(|c| c.status.clone())
}

fn app_status(p: &Pod) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()
        .cloned()
}

#[test]
fn pod_runs_with_service_env_survives_a_kubelet_restart_and_is_deleted() {
    let mut w = World::new(BackoffConfig::default());
    let mut svc = Service::default();
    svc.metadata.name = Some("mysql".into());
    svc.spec = Some(ServiceSpec {
        ports: Some(vec![ServicePort {
            port: 3306,
            ..Default::default()
        }]),
        ..Default::default()
    });
    let svc = w.create(&svc);
    let svc_ip = svc.spec.unwrap().cluster_ip.unwrap();
    let mut p = pod(
        "web",
        IMAGE,
        "env; echo ready; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
        "Always",
    );
    p.spec.as_mut().unwrap().node_name = Some(w.cfg.node_name.clone());
    let created = w.create(&p);
    let uid = created.metadata.uid.clone().unwrap();
    let running = eventually("pod Running and Ready", || {
        let p = w.pod("web")?;
        (p.status.as_ref()?.phase.as_deref() == Some("Running")
            && condition(&p, "Ready").as_deref() == Some("True"))
        .then_some(p)
    });
    let st = running.status.clone().unwrap();
    let pod_ip = st.pod_ip.clone().expect("podIP");
    assert!(pod_ip.starts_with("10.244."), "{pod_ip}");
    assert_eq!(
        st.host_ip.as_deref(),
        Some(w.lab.node(0).addr().to_string().as_str())
    );
    assert_eq!(st.qos_class.as_deref(), Some("BestEffort"));
    for c in ["Initialized", "ContainersReady", "PodScheduled"] {
        assert_eq!(condition(&running, c).as_deref(), Some("True"), "{c}");
    }
    let cs = app_status(&running).unwrap();
    assert!(cs.container_id.as_deref().unwrap().starts_with("skiff://"));
    assert!(cs.image_id.starts_with("sha256:"));
    eventually("the Service env in the container's log", || {
        let log = w.log(&uid, "app", 0);
        (log.contains(&format!("MYSQL_SERVICE_HOST={svc_ip}"))
            && log.contains("MYSQL_SERVICE_PORT=3306")
            && log.contains(&format!("MYSQL_PORT_3306_TCP=tcp://{svc_ip}:3306"))
            && log.contains("ready"))
        .then_some(())
    });
    eventually(
        "Pulled, Created and Started events on spec.containers{app}",
        || {
            let ev = w.events("web");
            let has = |r: &str| {
                ev.iter().any(|(reason, fp)| {
                    reason == r && fp.as_deref() == Some("spec.containers{app}")
                })
            };
            (has("Pulled") && has("Created") && has("Started")).then_some(())
        },
    );
    let state = |w: &World| {
        std::fs::read_to_string(
            w.cfg
                .state_dir
                .join("containers")
                .join(format!("{uid}_app_0/state.json")),
        )
        .unwrap()
    };
    let before = state(&w);

    w.stop_kubelet();
    w.start_kubelet();
    // The new kubelet reports the same container, same IP, restartCount 0.
    eventually("heartbeat of the re-adopted pod", || {
        let p = w.pod("web")?;
        let cs = app_status(&p)?;
        (cs.restart_count == 0 && cs.state.as_ref()?.running.is_some()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(0));
    let after = w.pod("web").unwrap();
    assert_eq!(
        after.status.as_ref().unwrap().pod_ip.as_deref(),
        Some(pod_ip.as_str())
    );
    assert_eq!(
        state(&w),
        before,
        "the same container process (pid, start time) after the restart"
    );
    assert!(
        !w.log(&uid, "app", 1).contains("ready"),
        "no second instance"
    );

    w.delete("web");
    eventually("pod gone", || w.pod("web").is_none().then_some(()));
    assert!(w.log(&uid, "app", 0).is_empty(), "pod files removed");
    assert!(
        !std::path::Path::new("/run/skiff/netns").join(&uid).exists(),
        "netns removed"
    );
    assert!(w.events("web").iter().any(|(r, _)| r == "Killing"));
}

#[test]
fn crash_loop_back_off_and_missing_image() {
    let ms = Duration::from_millis;
    let w = World::new(BackoffConfig::new(ms(300), ms(2000)));
    let mut crash = pod("crash", IMAGE, "echo boom; exit 3", "Always");
    crash.spec.as_mut().unwrap().node_name = Some(w.cfg.node_name.clone());
    w.create(&crash);
    let mut missing = pod("nope", "skiff.local/does-not-exist:1", "true", "Always");
    missing.spec.as_mut().unwrap().node_name = Some(w.cfg.node_name.clone());
    w.create(&missing);
    let mut seen = Vec::new();
    eventually("ErrImagePull then ImagePullBackOff", || {
        let cs = app_status(&w.pod("nope")?)?;
        let wt = cs.state?.waiting?;
        let reason = wt.reason?;
        assert!(
            wt.message
                .unwrap_or_default()
                .contains("skiff image import"),
            "the message says how to import"
        );
        if !seen.contains(&reason) {
            seen.push(reason);
        }
        (seen.contains(&"ErrImagePull".to_string())
            && seen.contains(&"ImagePullBackOff".to_string()))
        .then_some(())
    });
    let cs = eventually("CrashLoopBackOff with restartCount >= 3", || {
        let cs = app_status(&w.pod("crash")?)?;
        let waiting = cs.state.as_ref()?.waiting.as_ref()?.reason.clone()?;
        (waiting == "CrashLoopBackOff" && cs.restart_count >= 3).then_some(cs)
    });
    let last = cs.last_state.unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    assert!(w.events("crash").iter().any(|(r, _)| r == "BackOff"));
    assert_eq!(
        w.pod("nope").unwrap().status.unwrap().phase.as_deref(),
        Some("Pending")
    );
    w.delete("crash");
    w.delete("nope");
    eventually("pods gone", || {
        (w.pod("crash").is_none() && w.pod("nope").is_none()).then_some(())
    });
}
