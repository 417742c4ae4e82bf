//! Root: `runtime::exec` runs a command inside a running busybox container —
//! its pid, uts, net and mount namespaces, its root, env, user and cgroup —
//! with captured output, exit codes and a timeout.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use skiff_agent::image::build::{write_oci_layout, LayerBuilder};
use skiff_agent::image::{ImageConfig, ImageStore};
use skiff_agent::runtime::cgroups::{
    host_manager, CgroupManager, CgroupResources, CgroupTree, QosClass,
};
use skiff_agent::runtime::exec::{exec_blocking, ExecError, ExecRequest, ExecTarget};
use skiff_agent::runtime::{Container, ContainerSpec, ExitStatus, Runtime};
use skiff_tests::wait;

const T: Duration = Duration::from_secs(10);
const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "cat", "hostname", "ls", "id", "env", "tr",
];
static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A state dir, busybox imported, a netns and a cgroup parent; one
/// long-running container; all removed on drop.
struct Fixture {
    name: String,
    dir: PathBuf,
    store: ImageStore,
    runtime: Runtime,
    tree: CgroupTree,
    cgroups: &'static dyn CgroupManager,
    container: Option<Container>,
}

impl Fixture {
    fn new(user: Option<(u32, u32)>) -> Self {
        let name = format!(
            "skex{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let store = ImageStore::open(&dir).unwrap();
        let busybox =
            std::fs::read("/bin/busybox").expect("/bin/busybox (apt install busybox-static)");
        let mut layer = LayerBuilder::new()
            .dir("bin")
            .file("bin/busybox", 0o755, &busybox)
            .dir("tmp")
            .dir("work")
            .file("work/marker", 0o644, b"inside\n");
        for a in APPLETS {
            layer = layer.symlink(&format!("bin/{a}"), "busybox");
        }
        let config = ImageConfig {
            env: vec!["PATH=/bin".into()],
            ..ImageConfig::default()
        };
        let layout = dir.join("layout");
        write_oci_layout(
            &layout,
            "skiff.local/busybox:latest",
            &[layer.finish()],
            &config,
            true,
        )
        .unwrap();
        store.import(&layout).unwrap();
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(ok.success(), "ip netns add {name}");
        let cgroups = host_manager().unwrap();
        let tree = CgroupTree::new(name.clone());
        tree.ensure_node(cgroups).unwrap();
        let runtime = Runtime::new(&dir.join("containers"), Some(cgroups)).unwrap();
        let mut fx = Self {
            name,
            dir,
            store,
            runtime,
            tree,
            cgroups,
            container: None,
        };
        fx.container = Some(fx.start(user));
        fx
    }

    fn cgroup(&self) -> String {
        self.tree.container_path(QosClass::Burstable, "u1", "main")
    }

    fn start(&mut self, user: Option<(u32, u32)>) -> Container {
        let image = self.store.resolve("skiff.local/busybox").unwrap();
        let rootfs = self.store.prepare_rootfs("main", &image).unwrap();
        let pod = self.tree.pod_path(QosClass::Burstable, "u1");
        let res = CgroupResources {
            cpu_period_us: 100_000,
            ..Default::default()
        };
        self.cgroups.apply(&pod, &res).unwrap();
        self.cgroups.apply(&self.cgroup(), &res).unwrap();
        let mut env = image.config.env.clone();
        env.push("GREETING=hello from the pod".into());
        let spec = ContainerSpec {
            id: "main".into(),
            rootfs: rootfs.path,
            args: vec!["sleep".into(), "3600".into()],
            env,
            cwd: "/work".into(),
            hostname: Some("web-0".into()),
            user,
            netns: Some(PathBuf::from("/run/netns").join(&self.name)),
            mounts: Vec::new(),
            log_path: self.dir.join("logs/main/0.log"),
            log_max_bytes: 1 << 20,
            log_max_files: 1,
            cgroup: Some(self.cgroup()),
            stdio: Default::default(),
            host: Default::default(),
        };
        self.runtime.start(&spec).unwrap()
    }

    fn target(&self) -> ExecTarget {
        ExecTarget::of(self.container.as_ref().unwrap().state(), Some(self.cgroups))
    }

    fn run(
        &self,
        argv: &[&str],
        timeout: Duration,
    ) -> Result<(ExitStatus, String, String), ExecError> {
        let req = ExecRequest {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            timeout,
            max_output: 64 * 1024,
        };
        let out = exec_blocking(&self.target(), &req)?;
        Ok((
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(c) = self.container.take() {
            let _ = c.destroy();
        }
        let _ = self.cgroups.remove(&self.cgroup());
        let _ = self.store.release_rootfs("main");
        let _ = self
            .cgroups
            .remove(&self.tree.pod_path(QosClass::Burstable, "u1"));
        for q in [
            QosClass::Burstable,
            QosClass::BestEffort,
            QosClass::Guaranteed,
        ] {
            let _ = self.cgroups.remove(&self.tree.qos_path(q));
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn exec_sees_the_containers_namespaces_root_env_and_cgroup() {
    let fx = Fixture::new(None);
    let script = "echo pid=$$; hostname; ls /sys/class/net; cat /proc/1/cmdline; echo; \
                  pwd; cat marker; echo \"$GREETING\"; cat /proc/self/cgroup";
    let (status, out, err) = fx.run(&["sh", "-c", script], T).unwrap();
    assert_eq!(status, ExitStatus::Code(0), "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    let pid: u32 = lines[0].strip_prefix("pid=").unwrap().parse().unwrap();
    assert!(
        pid > 1,
        "a new process in the container's pid namespace: {lines:?}"
    );
    assert_eq!(lines[1], "web-0", "{lines:?}");
    assert_eq!(lines[2], "lo", "the pod netns: {lines:?}");
    assert!(
        lines[3].starts_with("sleep"),
        "pid 1 is the main process: {lines:?}"
    );
    assert_eq!(
        lines[4], "/work",
        "the container's working directory: {lines:?}"
    );
    assert_eq!(lines[5], "inside", "the container's root: {lines:?}");
    assert_eq!(
        lines[6], "hello from the pod",
        "the container's env: {lines:?}"
    );
    let cgroup_leaf = fx.cgroup();
    assert!(
        lines[7..].iter().any(|l| l.ends_with(&cgroup_leaf)),
        "joined {cgroup_leaf}: {lines:?}"
    );
}

#[test]
fn exit_codes_stderr_and_missing_commands() {
    let fx = Fixture::new(None);
    let (status, out, err) = fx
        .run(&["sh", "-c", "echo out; echo err >&2; exit 7"], T)
        .unwrap();
    assert_eq!(
        (status, out.as_str(), err.as_str()),
        (ExitStatus::Code(7), "out\n", "err\n")
    );
    let e = fx.run(&["/bin/nope"], T).unwrap_err().to_string();
    assert!(e.contains("/bin/nope"), "{e}");
}

#[test]
fn runs_as_the_containers_user() {
    let fx = Fixture::new(Some((1234, 4321)));
    let (status, out, _) = fx.run(&["sh", "-c", "id -u; id -g"], T).unwrap();
    assert_eq!(status, ExitStatus::Code(0));
    assert_eq!(out, "1234\n4321\n");
}

#[test]
fn a_command_past_its_timeout_is_killed() {
    let fx = Fixture::new(None);
    let t0 = Instant::now();
    let e = fx
        .run(&["sleep", "30"], Duration::from_millis(500))
        .unwrap_err();
    assert!(matches!(e, ExecError::Timeout { .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    // The killed sleep is gone from the container's pid namespace.
    wait::until(T, "the timed-out sleep to be gone", || {
        let (_, out, _) = fx
            .run(&["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"], T)
            .ok()?;
        (!out.contains("sleep 30")).then_some(())
    });
}

#[test]
fn a_finished_container_cannot_be_entered() {
    let mut fx = Fixture::new(None);
    let target = fx.target();
    let c = fx.container.as_mut().unwrap();
    c.kill(libc_sigkill()).unwrap();
    c.wait_timeout(T)
        .unwrap()
        .expect("killed container to finish");
    let req = ExecRequest {
        argv: vec!["true".into()],
        timeout: T,
        max_output: 16,
    };
    assert!(matches!(
        exec_blocking(&target, &req),
        Err(ExecError::NotRunning { .. })
    ));
}

fn libc_sigkill() -> i32 {
    9
}

/// An exec probe through the kubelet's prober: failure with the command's
/// output, success once the condition holds, timeout as failure.
#[test]
fn exec_probes_run_in_the_container() {
    use k8s_openapi::api::core::v1::{ExecAction, Probe};
    use skiff_agent::kubelet::probe::{ProbeResult, ProbeTarget, Prober};

    let fx = Fixture::new(None);
    let probe = |cmd: &[&str], timeout: i32| Probe {
        exec: Some(ExecAction {
            command: Some(cmd.iter().map(|s| s.to_string()).collect()),
        }),
        timeout_seconds: Some(timeout),
        ..Probe::default()
    };
    let target = ProbeTarget {
        pod_ip: std::net::Ipv4Addr::UNSPECIFIED,
        ports: vec![],
        exec: Some(fx.target()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prober = Prober::new();
    let ready = probe(&["cat", "/tmp/ready"], 5);
    match rt.block_on(prober.check(&ready, &target)) {
        ProbeResult::Failure(m) => assert!(
            m.contains("exited with 1") && m.contains("/tmp/ready"),
            "{m}"
        ),
        r => panic!("{r:?}"),
    }
    fx.run(&["sh", "-c", "echo yes > /tmp/ready"], T).unwrap();
    assert_eq!(
        rt.block_on(prober.check(&ready, &target)),
        ProbeResult::Success
    );
    match rt.block_on(prober.check(&probe(&["sleep", "10"], 1), &target)) {
        ProbeResult::Failure(m) => assert!(m.contains("timed out"), "{m}"),
        r => panic!("{r:?}"),
    }
}
