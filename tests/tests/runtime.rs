//! Root: containers from an imported busybox image — namespaces, pivot_root,
//! logs, exit codes, signals, cgroup limits (OOM, CPU throttling) and
//! re-adoption after a restart of the runtime.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use skiff_agent::image::build::{write_oci_layout, LayerBuilder};
use skiff_agent::image::{ImageConfig, ImageStore};
use skiff_agent::runtime::cgroups::{
    host_manager, CgroupManager, CgroupResources, CgroupTree, QosClass,
};
use skiff_agent::runtime::console::{self, frame::Frame, Stdio};
use skiff_agent::runtime::{Container, ContainerSpec, ExitStatus, Runtime, VolumeMount};
use skiff_tests::wait;

const T: Duration = Duration::from_secs(10);
const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "cat", "hostname", "ls", "dd", "true", "id", "touch", "stty",
];
static SEQ: AtomicUsize = AtomicUsize::new(0);

/// One test's world: a state dir, an image store with busybox, a netns, a
/// cgroup parent; all removed on drop (containers first).
struct Fixture {
    name: String,
    dir: PathBuf,
    store: ImageStore,
    runtime: Runtime,
    tree: CgroupTree,
    cgroups: &'static dyn CgroupManager,
    netns: PathBuf,
    containers: Vec<String>,
}

impl Fixture {
    fn new() -> Self {
        // Shims come from the spawner, as in the agent (the kubelet tests, which
        // run the kubelet in-process without one, cover forking them here).
        skiff_agent::runtime::spawner::start().expect("starting the shim spawner");
        let name = format!(
            "skrt{}-{}",
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
            .dir("tmp");
        for a in APPLETS {
            layer = layer.symlink(&format!("bin/{a}"), "busybox");
        }
        let config = ImageConfig {
            cmd: vec!["sh".into()],
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
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(status.success(), "ip netns add {name}");
        let cgroups = host_manager().unwrap();
        let tree = CgroupTree::new(name.clone());
        tree.ensure_node(cgroups).unwrap();
        Self {
            runtime: Runtime::new(&dir.join("containers"), Some(cgroups)).unwrap(),
            netns: PathBuf::from("/run/netns").join(&name),
            name,
            dir,
            store,
            tree,
            cgroups,
            containers: Vec::new(),
        }
    }

    fn log(&self, id: &str) -> PathBuf {
        self.dir.join("logs").join(id).join("0.log")
    }

    fn cgroup(&self, id: &str) -> String {
        self.tree.container_path(QosClass::Burstable, "u1", id)
    }

    /// Starts `args` in a container of pod `u1` with `res` on its cgroup.
    fn start(&mut self, id: &str, args: &[&str], res: CgroupResources) -> Container {
        self.start_with(id, args, res, |_| {})
    }

    fn start_with(
        &mut self,
        id: &str,
        args: &[&str],
        res: CgroupResources,
        tweak: impl FnOnce(&mut ContainerSpec),
    ) -> Container {
        self.containers.push(id.to_owned());
        let image = self.store.resolve("skiff.local/busybox").unwrap();
        let rootfs = self.store.prepare_rootfs(id, &image).unwrap();
        let pod = self.tree.pod_path(QosClass::Burstable, "u1");
        self.cgroups
            .apply(
                &pod,
                &CgroupResources {
                    cpu_period_us: 100_000,
                    ..Default::default()
                },
            )
            .unwrap();
        self.cgroups.apply(&self.cgroup(id), &res).unwrap();
        let mut spec = ContainerSpec {
            id: id.into(),
            rootfs: rootfs.path,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: image.config.env.clone(),
            cwd: "/".into(),
            hostname: Some("web-0".into()),
            user: None,
            netns: Some(self.netns.clone()),
            mounts: Vec::new(),
            log_path: self.log(id),
            log_max_bytes: 1 << 20,
            log_max_files: 2,
            cgroup: Some(self.cgroup(id)),
            stdio: Default::default(),
            host: Default::default(),
        };
        tweak(&mut spec);
        self.runtime.start(&spec).unwrap()
    }

    /// Starts `args` with `stdio` and connects to its console.
    fn start_attached(&mut self, id: &str, args: &[&str], stdio: Stdio) -> (Container, Attach) {
        let c = self.start_with(id, args, CgroupResources::default(), |s| s.stdio = stdio);
        (c, self.attach(id))
    }

    /// A new attach session to the console of `id`.
    fn attach(&self, id: &str) -> Attach {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = self.dir.join("containers").join(id);
        let conn = rt
            .block_on(console::connect(&dir))
            .expect("the console listens");
        Attach(conn.into_std().unwrap())
    }

    /// The lines the container wrote (the content of the CRI records).
    fn lines(&self, id: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.log(id)).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.splitn(4, ' ').nth(3))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for id in &self.containers {
            if let Ok(c) = self.runtime.adopt(id) {
                let _ = c.destroy();
            }
            let _ = self.cgroups.remove(&self.cgroup(id));
            let _ = self.store.release_rootfs(id);
        }
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

/// One attach session's input side.
struct Attach(std::os::unix::net::UnixStream);

impl Attach {
    fn send(&mut self, f: Frame) {
        use std::io::Write as _;
        self.0.set_nonblocking(false).unwrap();
        self.0.write_all(&f.encode()).unwrap();
    }

    fn line(&mut self, text: &str) {
        self.send(Frame::Stdin(format!("{text}\n").into_bytes()));
    }
}

fn run_to_end(fx: &mut Fixture, id: &str, args: &[&str]) -> ExitStatus {
    let mut c = fx.start(id, args, CgroupResources::default());
    c.wait_timeout(T)
        .unwrap()
        .unwrap_or_else(|| panic!("{id} did not finish in {T:?}"))
}

#[test]
fn echo_logs_and_exit_codes() {
    let mut fx = Fixture::new();
    assert_eq!(
        run_to_end(&mut fx, "echo", &["echo", "hello"]),
        ExitStatus::Code(0)
    );
    assert_eq!(fx.lines("echo"), ["hello"]);
    assert_eq!(
        run_to_end(&mut fx, "exit3", &["sh", "-c", "exit 3"]),
        ExitStatus::Code(3)
    );
}

#[test]
fn stdin_reaches_the_container_and_closes_with_its_attach() {
    let mut fx = Fixture::new();
    let once = Stdio {
        stdin: true,
        stdin_once: true,
        tty: false,
    };
    let script = "read x; echo got:$x; cat; echo done";
    let (mut c, mut a) = fx.start_attached("in", &["sh", "-c", script], once);
    a.line("hello");
    a.line("more");
    a.send(Frame::CloseStdin);
    let end = c.wait_timeout(T).unwrap();
    assert_eq!(end, Some(ExitStatus::Code(0)), "stdin closed: cat ends");
    assert_eq!(fx.lines("in"), ["got:hello", "more", "done"]);

    // stdinOnce: the first session's end (here, a disconnect) closes stdin.
    let script = "read a; read b || echo eof; echo a=$a";
    let (mut c, mut a) = fx.start_attached("once", &["sh", "-c", script], once);
    a.line("first");
    drop(a);
    assert_eq!(c.wait_timeout(T).unwrap(), Some(ExitStatus::Code(0)));
    assert_eq!(fx.lines("once"), ["eof", "a=first"]);

    // Without it, stdin outlives a session: the next attach writes on.
    let open = Stdio {
        stdin_once: false,
        ..once
    };
    let script = "read a; read b; echo $a+$b";
    let (mut c, mut a) = fx.start_attached("open", &["sh", "-c", script], open);
    a.line("one");
    a.send(Frame::CloseStdin);
    drop(a);
    fx.attach("open").line("two");
    assert_eq!(c.wait_timeout(T).unwrap(), Some(ExitStatus::Code(0)));
    assert_eq!(fx.lines("open"), ["one+two"]);
}

#[test]
fn a_terminal_is_the_containers_controlling_tty_and_takes_resizes() {
    let mut fx = Fixture::new();
    let tty = Stdio {
        stdin: true,
        stdin_once: true,
        tty: true,
    };
    let script = "test -t 0 && test -t 1 && echo isatty; read x; stty size; echo got:$x";
    let (mut c, mut a) = fx.start_attached("tty", &["sh", "-c", script], tty);
    // Typed before the shell got there, the echo of the input would come first.
    wait::until(T, "the shell to find its terminal", || {
        fx.lines("tty")
            .into_iter()
            .find(|l| l.starts_with("isatty"))
    });
    a.send(Frame::Resize {
        cols: 100,
        rows: 30,
    });
    a.line("hi");
    assert_eq!(c.wait_timeout(T).unwrap(), Some(ExitStatus::Code(0)));
    // A terminal echoes the input and ends lines with \r\n; all of it is stdout.
    let lines: Vec<String> = fx
        .lines("tty")
        .iter()
        .map(|l| l.trim_end_matches('\r').to_owned())
        .collect();
    assert_eq!(lines, ["isatty", "hi", "30 100", "got:hi"]);
    let log = std::fs::read_to_string(fx.log("tty")).unwrap();
    assert!(log.lines().all(|l| l.contains(" stdout ")), "{log}");
}

#[test]
fn a_missing_command_fails_start_with_the_reason() {
    let mut fx = Fixture::new();
    let image = fx.store.resolve("skiff.local/busybox").unwrap();
    let rootfs = fx.store.prepare_rootfs("nocmd", &image).unwrap();
    fx.containers.push("nocmd".into());
    let spec = ContainerSpec {
        id: "nocmd".into(),
        rootfs: rootfs.path,
        args: vec!["/bin/nope".into()],
        env: vec![],
        cwd: "/".into(),
        hostname: None,
        user: None,
        netns: None,
        mounts: vec![],
        log_path: fx.log("nocmd"),
        log_max_bytes: 1 << 20,
        log_max_files: 1,
        cgroup: None,
        stdio: Default::default(),
        host: Default::default(),
    };
    let err = fx.runtime.start(&spec).unwrap_err().to_string();
    assert!(err.contains("exec") && err.contains("/bin/nope"), "{err}");
}

#[test]
fn namespaces_pid_hostname_and_netns() {
    let mut fx = Fixture::new();
    let script = "echo pid=$$; hostname; ls /sys/class/net; cat /proc/1/cmdline; echo; ls /dev";
    assert_eq!(
        run_to_end(&mut fx, "ns", &["sh", "-c", script]),
        ExitStatus::Code(0)
    );
    let lines = fx.lines("ns");
    assert_eq!(lines[0], "pid=1", "{lines:?}");
    assert_eq!(lines[1], "web-0", "{lines:?}");
    assert_eq!(lines[2], "lo", "only the pod netns' loopback: {lines:?}");
    let all = lines.join(" ");
    for node in ["null", "zero", "urandom", "pts", "shm", "tty"] {
        assert!(all.contains(node), "/dev/{node} missing: {lines:?}");
    }
}

#[test]
fn volumes_user_and_working_dir() {
    let mut fx = Fixture::new();
    let host = fx.dir.join("vol");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "from-host\n").unwrap();
    let script = "cat /data/f; id -u; id -g; pwd; touch /data/x || echo read-only";
    let mut c = fx.start_with(
        "vol",
        &["sh", "-c", script],
        CgroupResources::default(),
        |s| {
            s.mounts.push(VolumeMount {
                host_path: host.clone(),
                container_path: "/data".into(),
                read_only: true,
            });
            s.user = Some((65534, 65534));
            s.cwd = "/tmp".into();
        },
    );
    assert_eq!(c.wait_timeout(T).unwrap(), Some(ExitStatus::Code(0)));
    let lines = fx.lines("vol");
    for want in ["from-host", "65534", "/tmp", "read-only"] {
        assert!(
            lines.iter().any(|l| l == want),
            "{want:?} missing: {lines:?}"
        );
    }
    assert!(!host.join("x").exists());
}

#[test]
fn sigterm_reaches_pid_1() {
    let mut fx = Fixture::new();
    let script = "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.05; done";
    let mut c = fx.start("term", &["sh", "-c", script], CgroupResources::default());
    wait::until(T, "the container to log ready", || {
        fx.lines("term")
            .contains(&"ready".to_string())
            .then_some(())
    });
    assert_eq!(c.try_wait().unwrap(), None);
    c.kill(libc::SIGTERM).unwrap();
    assert_eq!(c.wait_timeout(T).unwrap(), Some(ExitStatus::Code(7)));
    assert!(fx.lines("term").contains(&"got-term".to_string()));
}

#[test]
fn memory_limit_oom_kill_is_detected() {
    let mut fx = Fixture::new();
    let res = CgroupResources {
        memory_limit: Some(32 << 20),
        cpu_period_us: 100_000,
        ..Default::default()
    };
    let mut c = fx.start(
        "oom",
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
        res,
    );
    let status = c.wait_timeout(T).unwrap().expect("dd to be killed");
    assert_eq!(status, ExitStatus::Signal(libc::SIGKILL), "{status:?}");
    let stats = c.stats().unwrap();
    assert!(stats.oom_kills >= 1, "{stats:?}");
    assert!(c.oom_killed());
}

#[test]
fn cpu_limit_throttles_a_busy_loop() {
    let mut fx = Fixture::new();
    let res = CgroupResources {
        cpu_shares: Some(102),
        cpu_quota_us: Some(10_000),
        cpu_period_us: 100_000,
        ..Default::default()
    };
    let c = fx.start("busy", &["sh", "-c", "while true; do :; done"], res);
    let start = Instant::now();
    let stats = wait::until(T, "the busy loop to be throttled", || {
        let s = c.stats().unwrap();
        (s.nr_throttled >= 5).then_some(s)
    });
    let wall_ns = start.elapsed().as_nanos() as f64;
    // 100m = 10% of one CPU; allow one period of slack.
    let allowed = wall_ns * 0.1 + 100_000_000.0;
    assert!(
        (stats.cpu_usage_ns as f64) <= allowed,
        "{stats:?} over {wall_ns} ns"
    );
}

#[test]
fn shims_come_from_the_spawner_and_their_exits_are_seen() {
    let mut fx = Fixture::new();
    let spawner = skiff_agent::runtime::spawner::pid().expect("spawner started");
    assert_ne!(spawner, std::process::id());
    let mut long = fx.start("long", &["sleep", "1000"], CgroupResources::default());
    let shim = long.state().shim_pid;
    let status = std::fs::read_to_string(format!("/proc/{shim}/status")).unwrap();
    let ppid = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap();
    assert_eq!(ppid.trim().parse::<u32>().unwrap(), spawner, "{status}");
    let mut short = fx.start("short", &["sh", "-c", "exit 7"], CgroupResources::default());
    assert_eq!(short.wait_timeout(T).unwrap(), Some(ExitStatus::Code(7)));
    long.kill(libc::SIGKILL).unwrap();
    assert_eq!(
        long.wait_timeout(T).unwrap(),
        Some(ExitStatus::Signal(libc::SIGKILL))
    );
}

#[test]
fn a_huge_environment_is_started_by_forking_here() {
    let mut fx = Fixture::new();
    // 4 × 100 KB: each under execve's per-string limit, the whole too large for one
    // spawner request, so the shim is forked from this process instead.
    let mut c = fx.start_with(
        "bigenv",
        &["sh", "-c", "echo ${#E0} ${#E3}"],
        CgroupResources::default(),
        |spec| {
            for i in 0..4 {
                spec.env.push(format!("E{i}={}", "x".repeat(100_000)));
            }
        },
    );
    assert_eq!(c.wait_timeout(T).unwrap(), Some(ExitStatus::Code(0)));
    assert_eq!(fx.lines("bigenv"), ["100000 100000"]);
}

#[test]
fn a_restarted_runtime_re_adopts_a_running_container() {
    let mut fx = Fixture::new();
    let first = fx.start("keep", &["sleep", "1000"], CgroupResources::default());
    let pid = first.pid();
    drop(first);
    let again = Runtime::new(&fx.dir.join("containers"), Some(fx.cgroups)).unwrap();
    assert_eq!(again.list().unwrap(), ["keep"]);
    let mut c = again.adopt("keep").unwrap();
    assert_eq!(c.pid(), pid);
    assert_eq!(c.try_wait().unwrap(), None, "still running");
    assert_eq!(fx.cgroups.procs(&fx.cgroup("keep")), [pid]);
    c.kill(libc::SIGKILL).unwrap();
    assert_eq!(
        c.wait_timeout(T).unwrap(),
        Some(ExitStatus::Signal(libc::SIGKILL))
    );
}

#[test]
fn drop_cleans_up_cgroups_mounts_and_state() {
    let (dir, cg, rootfs);
    {
        let mut fx = Fixture::new();
        let _c = fx.start("clean", &["sleep", "1000"], CgroupResources::default());
        dir = fx.dir.clone();
        cg = fx.cgroup("clean");
        rootfs = fx.store.root().join("rootfs/clean/merged");
    }
    assert!(!dir.exists());
    assert!(fx_cgroup_gone(&cg), "{cg} left behind");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&rootfs.display().to_string()));
}

fn fx_cgroup_gone(path: &str) -> bool {
    [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/cpu",
    ]
    .iter()
    .all(|root| !Path::new(root).join(path).exists())
}
