//! The harness: a control plane in lab node 1's netns (its own runtime), the kubelet with
//! its HTTP server in node 0's, busybox imported, `kubectl` run inside node 1's netns
//! against the in-process API server. Everything is removed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Pod};
use skiff_agent::cpclient::{ConnectOptions, CpClient};
use skiff_agent::image::ImageStore;
use skiff_agent::kubelet::{layout, BackoffConfig, Kubelet, KubeletConfig};
use skiff_agent::runtime::cgroups::host_manager;
use skiff_agent::runtime::Runtime;
use skiff_controlplane::api::client::Selectors;
use skiff_controlplane::api::objects::DeleteOptions;
use skiff_controlplane::api::ApiClient;
use skiff_controlplane::server::{Server, ServerConfig};
use skiff_tests::kubelet_lab::import_busybox;
use skiff_tests::lab::Lab;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime as Rt;

pub const DEADLINE: Duration = Duration::from_secs(60);
pub use skiff_tests::kubelet_lab::IMAGE;
fn rt() -> Rt {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `f` until `Some`, or panics after the deadline.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
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

pub struct World {
    pub lab: Lab,
    cp: Rt,
    kl: Rt,
    server: Option<Server>,
    pub api: ApiClient,
    kubelet: Option<Kubelet>,
    pub cfg: KubeletConfig,
    /// Control plane data, kubeconfig, kubectl cache and the tests' hostPath dirs.
    pub dir: PathBuf,
}

impl World {
    pub fn new(backoff: BackoffConfig) -> Self {
        let lab = Lab::builder()
            .nodes(2)
            .peer_routes(false)
            .build()
            .expect("lab (root)");
        let cp = lab.node(1).netns().run(rt).unwrap();
        let kl = lab.node(0).netns().run(rt).unwrap();
        let dir = std::env::temp_dir().join(format!("{}-kubelet-wired", lab.prefix()));
        let state = dir.join("agent");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let addr = SocketAddr::new(lab.node(1).addr().into(), 0);
        let mut scfg = ServerConfig::new(dir.join("cp"), addr, "127.0.0.1:0".parse().unwrap());
        scfg.fast_raft = true;
        let server = cp
            .block_on(cp.spawn(Server::start(scfg)))
            .unwrap()
            .expect("control plane");
        let api = server.api().client();
        std::fs::write(
            dir.join("kubeconfig"),
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: \
                 http://{}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: \
                 skiff\n    namespace: default\ncurrent-context: skiff\nusers:\n- name: skiff\n  user: {{}}\n",
                server.api_addr()
            ),
        )
        .unwrap();
        import_busybox(&state);
        let mut cfg = KubeletConfig::new(lab.node(0).name());
        cfg.node_ip = Some(lab.node(0).addr());
        cfg.http_listen = Some(SocketAddr::new(lab.node(0).addr().into(), 0));
        cfg.state_dir = state;
        // Its own netns dir: a kubelet tears down netns of pods it does not know, so two
        // tests sharing /run/skiff/netns would remove each other's pods.
        cfg.netns_dir = dir.join("netns");
        cfg.cgroup_parent = format!("{}-kubelet", lab.prefix());
        cfg.backoff = backoff;
        cfg.heartbeat_interval = Duration::from_secs(1);
        cfg.node_sync_interval = Duration::from_secs(1);
        cfg.sync_period = Duration::from_millis(100);
        let addr = server.agent_addr().to_string();
        let kcfg = cfg.clone();
        let kubelet = kl
            .block_on(kl.spawn(async move {
                let client = CpClient::connect(&addr, ConnectOptions::default())
                    .await
                    .expect("connect");
                Kubelet::start(kcfg, client).await
            }))
            .unwrap()
            .expect("kubelet start");
        Self {
            lab,
            cp,
            kl,
            server: Some(server),
            api,
            kubelet: Some(kubelet),
            cfg,
            dir,
        }
    }

    /// The kubelet's bound HTTP address.
    pub fn kubelet_addr(&self) -> SocketAddr {
        self.kubelet
            .as_ref()
            .unwrap()
            .http_addr()
            .expect("HTTP server")
    }

    pub fn create<K>(&self, obj: &K) -> K
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

    pub fn get<K: k8s_openapi::Resource + serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Option<K> {
        self.cp
            .block_on(self.api.get::<K>(Some("default"), name))
            .ok()
    }

    pub fn list<K: k8s_openapi::Resource + serde::de::DeserializeOwned>(&self) -> Vec<K> {
        self.cp
            .block_on(self.api.list::<K>(Some("default"), &Selectors::default()))
            .map(|l| l.items)
            .unwrap_or_default()
    }

    /// `(reason, message)` of the events about pod `name`.
    pub fn events(&self, pod: &str) -> Vec<(String, String)> {
        self.list::<Event>()
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(pod))
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }

    pub fn delete(&self, name: &str) {
        let _ = self.cp.block_on(self.api.delete::<Pod>(
            Some("default"),
            name,
            &DeleteOptions::default(),
        ));
    }

    /// `GET path` on the kubelet's HTTP server (from node 0's netns): the body.
    pub fn kubelet_get(&self, path: &str) -> String {
        let addr = self.kubelet_addr();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let resp = self
            .kl
            .block_on(self.kl.spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await?;
                s.write_all(req.as_bytes()).await?;
                let mut out = Vec::new();
                s.read_to_end(&mut out).await?;
                Ok::<_, std::io::Error>(String::from_utf8_lossy(&out).into_owned())
            }))
            .unwrap()
            .unwrap_or_else(|e| panic!("GET {path} from the kubelet at {addr}: {e}"));
        resp.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }

    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.dir.join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.join("kube-cache"))
            .args(args)
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs kubectl in node 1's netns to completion (bounded): (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        let (code, out, err) = self.kubectl_with_input(args, None);
        (code == Some(0), out, err)
    }

    /// Runs kubectl with `input` on its stdin (closed after it), to completion
    /// (bounded): (exit code, stdout, stderr).
    pub fn kubectl_with_input(
        &self,
        args: &[&str],
        input: Option<&str>,
    ) -> (Option<i32>, String, String) {
        self.run_with_input(self.kubectl_cmd(args), args, input)
    }

    /// As [`World::kubectl_with_input`], with kubectl's stdin and stdout a terminal
    /// (`script(1)` runs it on a pty; `input` is typed into it).
    pub fn kubectl_in_terminal(&self, args: &[&str], input: &str) -> (Option<i32>, String, String) {
        let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
        let kubeconfig = self.dir.join("kubeconfig");
        let cache = self.dir.join("kube-cache");
        let mut line = format!(
            "kubectl --kubeconfig {} --cache-dir {}",
            quote(&kubeconfig.to_string_lossy()),
            quote(&cache.to_string_lossy())
        );
        for a in args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .env("HOME", &self.dir)
            .env("TERM", "dumb")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.run_with_input(cmd, args, Some(input))
    }

    fn run_with_input(
        &self,
        mut cmd: Command,
        args: &[&str],
        input: Option<&str>,
    ) -> (Option<i32>, String, String) {
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let proc = self.lab.node(1).netns().spawn(cmd).expect("spawn kubectl");
        let (mut out, mut err, stdin) = {
            let mut c = proc.child();
            (
                c.stdout.take().unwrap(),
                c.stderr.take().unwrap(),
                c.stdin.take(),
            )
        };
        if let (Some(mut w), Some(text)) = (stdin, input.map(str::to_owned)) {
            std::thread::spawn(move || {
                let _ = w.write_all(text.as_bytes());
            });
        }
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let Some(status) = proc.wait_timeout(DEADLINE) else {
            proc.kill();
            panic!("kubectl {args:?} timed out after {DEADLINE:?}");
        };
        (status.code(), t_out.join().unwrap(), t_err.join().unwrap())
    }

    /// Runs kubectl (e.g. `logs -f`) until a line of its stdout satisfies `until`, then
    /// kills it; panics after the deadline. Returns the lines read.
    pub fn kubectl_until(&self, args: &[&str], until: impl Fn(&str) -> bool) -> Vec<String> {
        let proc = self
            .lab
            .node(1)
            .netns()
            .spawn(self.kubectl_cmd(args))
            .expect("spawn kubectl");
        let out = proc.child().stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let end = Instant::now() + DEADLINE;
        let mut lines = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => {
                    let done = until(&l);
                    lines.push(l);
                    if done {
                        proc.kill();
                        return lines;
                    }
                }
                Err(_) => {
                    proc.kill();
                    panic!("kubectl {args:?}: no matching line within {DEADLINE:?}; got {lines:?}");
                }
            }
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(k) = self.kubelet.take() {
            let _ = self.kl.block_on(self.kl.spawn(k.stop()));
        }
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
        if let (Ok(store), Ok(dirs)) = (
            ImageStore::open(&self.cfg.state_dir),
            std::fs::read_dir(self.cfg.state_dir.join("images/rootfs")),
        ) {
            for d in dirs.flatten() {
                let _ = store.release_rootfs(&d.file_name().to_string_lossy());
            }
        }
        // Pods still running had their netns bind-mounted here (the dir itself is a mount).
        let dir = self.cfg.netns_dir.clone();
        let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        for p in entries.into_iter().chain([dir]) {
            if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
                // SAFETY: a plain syscall on a NUL-terminated path.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        if let Some(s) = self.server.take() {
            let _ = self.cp.block_on(self.cp.spawn(s.shutdown()));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
