//! `skiff server` as a real process on ephemeral ports, driven with `skiff kubeconfig`,
//! the real `kubectl` and `skiff status`; SIGTERM stops it cleanly and a restart resumes
//! from its data directory.

mod server_proc;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use server_proc::{start, ServerProc, TempDir, DEADLINE, SKIFF};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run command");
    if !out.status.success() {
        panic!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = run(Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--request-timeout=20s")
        .args(args));
    String::from_utf8(out.stdout).unwrap()
}

fn status(url: &str) -> String {
    String::from_utf8(run(Command::new(SKIFF).args(["status", "--server", url])).stdout).unwrap()
}

fn terminate(mut p: ServerProc) {
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    let rc = unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(st) = p.child.try_wait().unwrap() {
            assert!(st.success(), "skiff server exited with {st}");
            break;
        }
        assert!(Instant::now() < deadline, "skiff server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rest: Vec<String> = p.lines.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("skiff server stopped")),
        "{rest:?}"
    );
}

#[test]
fn server_kubeconfig_kubectl_status_and_restart() {
    let dir = TempDir::new("server-cli");
    let data = dir.0.join("data");
    let server = start("server", &data, &[]);
    let kc = dir.0.join("kube").join("config");
    run(Command::new(SKIFF)
        .args(["kubeconfig", "--server", &server.url, "-o"])
        .arg(&kc));
    let ns = kubectl(&kc, &["get", "ns", "-o", "name"]);
    for want in [
        "namespace/default",
        "namespace/kube-system",
        "namespace/kube-node-lease",
    ] {
        assert!(ns.contains(want), "{ns}");
    }
    let svc = kubectl(
        &kc,
        &[
            "get",
            "svc",
            "kubernetes",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    );
    assert_eq!(svc, "10.96.0.1");
    let node = "apiVersion: v1\nkind: Node\nmetadata: {name: worker-1}\n";
    let manifest = dir.0.join("node.yaml");
    std::fs::write(&manifest, node).unwrap();
    kubectl(&kc, &["apply", "-f", manifest.to_str().unwrap()]);
    let deadline = Instant::now() + DEADLINE;
    let table = loop {
        let s = status(&server.url);
        if s.contains("10.244.0.0/24") {
            break s;
        }
        assert!(Instant::now() < deadline, "no pod CIDR in:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("{table}");
    assert!(
        table.contains("REPLICAS") && table.contains("leader"),
        "{table}"
    );
    let node_line = table.lines().find(|l| l.starts_with("worker-1")).unwrap();
    assert!(
        node_line.contains("Unknown") || node_line.contains("NotReady"),
        "{node_line}"
    );
    terminate(server);

    // Restart from the data directory: the state is there.
    let server = start("server", &data, &[]);
    run(Command::new(SKIFF)
        .args(["kubeconfig", "--server", &server.url, "-o"])
        .arg(&kc));
    let nodes = kubectl(&kc, &["get", "nodes", "-o", "name"]);
    assert!(nodes.contains("node/worker-1"), "{nodes}");
    terminate(server);
}

#[test]
fn a_second_server_joins_and_serves_the_same_cluster() {
    let dir = TempDir::new("server-join");
    let first = start("a", &dir.0.join("a"), &[]);
    assert!(!first.raft.is_empty());
    let second = start(
        "b",
        &dir.0.join("b"),
        &["--node-id", "2", "--join", first.raft.as_str()],
    );
    let kc = dir.0.join("kubeconfig");
    run(Command::new(SKIFF)
        .args(["kubeconfig", "--server", &second.url, "-o"])
        .arg(&kc));
    // A write through the follower: allocation and all go through the leader.
    let manifest = dir.0.join("svc.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Service\nmetadata: {name: np}\nspec:\n  type: NodePort\n  \
         ports: [{port: 80, nodePort: 30080}]\n",
    )
    .unwrap();
    kubectl(&kc, &["apply", "-f", manifest.to_str().unwrap()]);
    let ports = kubectl(
        &kc,
        &[
            "get",
            "svc",
            "np",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ],
    );
    assert_eq!(ports, "30080");
    let table = status(&second.url);
    println!("{table}");
    assert!(table.contains("answered by 2, leader 1"), "{table}");
    let roles: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|r| ["leader", "follower"].contains(r))
        .collect();
    assert_eq!(roles, ["leader", "follower"], "{table}");
    terminate(second);
    terminate(first);
}
