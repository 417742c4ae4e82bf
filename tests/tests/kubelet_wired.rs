//! Root: the kubelet's wired parts on a lab node against a real control plane (see
//! `kubelet_wired/world.rs`): a readiness probe gates the pod's Ready condition and its
//! EndpointSlice endpoint; a failing liveness probe restarts the container; a preStop
//! exec hook runs before SIGTERM; `kubectl logs` (real kubectl, through the API server's
//! proxy to the agent) with `-c`, `--tail` and `-f`; the agent's `/metrics`; pods
//! resolving Service names through the node's DNS.

#[path = "kubelet_wired/world.rs"]
mod world;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, ExecAction, HostPathVolumeSource, Lifecycle, LifecycleHandler,
    Node, Pod, PodSpec, Probe, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use skiff_agent::kubelet::BackoffConfig;
use world::{eventually, World, IMAGE};

fn container(name: &str, script: &str) -> Container {
    Container {
        name: name.into(),
        image: Some(IMAGE.into()),
        command: Some(vec!["sh".into(), "-c".into(), script.into()]),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: "/data".into(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// A pod on the world's node with `/data` a hostPath of `data`.
fn pod(w: &World, name: &str, data: &Path, containers: Vec<Container>) -> Pod {
    std::fs::create_dir_all(data).unwrap();
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.labels = Some(BTreeMap::from([("app".into(), name.into())]));
    p.spec = Some(PodSpec {
        node_name: Some(w.cfg.node_name.clone()),
        termination_grace_period_seconds: Some(5),
        containers,
        volumes: Some(vec![Volume {
            name: "data".into(),
            host_path: Some(HostPathVolumeSource {
                path: data.display().to_string(),
                type_: None,
            }),
            ..Default::default()
        }]),
        ..Default::default()
    });
    p
}

fn exec_probe(cmd: &[&str], period: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(cmd.iter().map(|s| s.to_string()).collect()),
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn condition(p: &Pod, ty: &str) -> Option<String> {
    let conds = p.status.as_ref()?.conditions.as_ref()?;
    conds
        .iter()
        .find(|c| c.type_ == ty)
        .map(|c| c.status.clone())
}

fn status_of(p: &Pod, name: &str) -> Option<ContainerStatus> {
    let st = p.status.as_ref()?.container_statuses.as_ref()?;
    st.iter().find(|c| c.name == name).cloned()
}

const LOOP: &str = "trap 'exit 0' TERM; while true; do sleep 0.1; done";

/// The `ready` condition of `ip`'s endpoint in Service `svc`'s EndpointSlices.
fn endpoint_ready(w: &World, svc: &str, ip: &str) -> Option<bool> {
    w.list::<EndpointSlice>()
        .into_iter()
        .filter(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                .is_some_and(|n| n == svc)
        })
        .flat_map(|s| s.endpoints)
        .find(|e| e.addresses.iter().any(|a| a == ip))
        .and_then(|e| e.conditions?.ready)
}

#[test]
fn readiness_probe_drives_ready_and_the_endpoint() {
    let w = World::new(BackoffConfig::default());
    let data = w.dir.join("ready-data");
    let mut svc = Service::default();
    svc.metadata.name = Some("web".into());
    svc.spec = Some(ServiceSpec {
        selector: Some(BTreeMap::from([("app".into(), "web".into())])),
        ports: Some(vec![ServicePort {
            port: 80,
            ..Default::default()
        }]),
        ..Default::default()
    });
    w.create(&svc);
    let mut c = container("app", LOOP);
    c.readiness_probe = Some(exec_probe(&["cat", "/data/ready"], 1, 1));
    w.create(&pod(&w, "web", &data, vec![c]));

    let ip = eventually("Running, not Ready, the endpoint ready=false", || {
        let p = w.get::<Pod>("web")?;
        let st = p.status.as_ref()?;
        let ip = st.pod_ip.clone()?;
        let not_ready = st.phase.as_deref() == Some("Running")
            && condition(&p, "Ready").as_deref() == Some("False")
            && condition(&p, "ContainersReady").as_deref() == Some("False")
            && !status_of(&p, "app")?.ready;
        (not_ready && endpoint_ready(&w, "web", &ip) == Some(false)).then_some(ip)
    });
    eventually("an Unhealthy event from the readiness probe", || {
        w.events("web")
            .iter()
            .any(|(r, m)| r == "Unhealthy" && m.starts_with("Readiness probe failed"))
            .then_some(())
    });
    assert_eq!(
        condition(&w.get::<Pod>("web").unwrap(), "Ready").as_deref(),
        Some("False"),
        "not Ready while the probe fails"
    );

    std::fs::write(data.join("ready"), "ok").unwrap();
    eventually("Ready, and the endpoint ready=true", || {
        let p = w.get::<Pod>("web")?;
        (condition(&p, "Ready").as_deref() == Some("True")
            && status_of(&p, "app")?.ready
            && endpoint_ready(&w, "web", &ip) == Some(true))
        .then_some(())
    });

    std::fs::remove_file(data.join("ready")).unwrap();
    eventually("not Ready again, the endpoint ready=false", || {
        let p = w.get::<Pod>("web")?;
        (condition(&p, "Ready").as_deref() == Some("False")
            && endpoint_ready(&w, "web", &ip) == Some(false))
        .then_some(())
    });
    let cs = status_of(&w.get::<Pod>("web").unwrap(), "app").unwrap();
    assert_eq!(cs.restart_count, 0, "readiness never restarts");
}

#[test]
fn pods_resolve_service_names_through_the_node_dns() {
    let w = World::new(BackoffConfig::default());
    let mut svc = Service::default();
    svc.metadata.name = Some("dnsweb".into());
    svc.spec = Some(ServiceSpec {
        selector: Some(BTreeMap::from([("app".into(), "dnsweb".into())])),
        ports: Some(vec![ServicePort {
            name: Some("http".into()),
            port: 80,
            ..Default::default()
        }]),
        ..Default::default()
    });
    let svc = w.create(&svc);
    let cluster_ip = svc.spec.unwrap().cluster_ip.unwrap();
    let script = "\
        for i in $(seq 1 50); do \
          nslookup dnsweb.default.svc.cluster.local > /tmp/found 2>&1 && break; sleep 0.2; \
        done; \
        sed 's/^/found: /' /tmp/found; \
        nslookup nosuch.default.svc.cluster.local > /dev/null 2>&1 || echo missing: nxdomain; \
        sed 's/^/resolv: /' /etc/resolv.conf; \
        echo done; sleep 3600";
    w.create(&pod(
        &w,
        "dnsclient",
        &w.dir.join("dns-data"),
        vec![container("app", script)],
    ));
    let lines = w.kubectl_until(&["logs", "-f", "dnsclient"], |l| l == "done");
    let has = |want: &str| lines.iter().any(|l| l.contains(want));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("found: Address") && l.contains(cluster_ip.as_str())),
        "the Service's cluster IP {cluster_ip}: {lines:#?}"
    );
    assert!(has("missing: nxdomain"), "{lines:#?}");
    let node_ip = w.lab.node(0).addr().to_string();
    assert!(
        has(&format!("resolv: nameserver {node_ip}")),
        "the node's address as the nameserver: {lines:#?}"
    );
    assert!(
        has("resolv: search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{lines:#?}"
    );
    // The node itself is answered (pods on its network ask from its address), but it is
    // not an open resolver: a query from another host (node 1) is refused.
    let ask = |node: usize, args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                w.lab.node(node).name(),
                "busybox",
                "nslookup",
            ])
            .args(args)
            .arg(&node_ip)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text.into_owned())
    };
    let ask_from = |node: usize| ask(node, &["dnsweb.default.svc.cluster.local"]);
    let (ok, text) = ask_from(0);
    assert!(ok && text.contains(&cluster_ip), "{text}");
    let (ok, text) = ask_from(1);
    assert!(!ok && text.contains("REFUSED"), "{text}");
    // The named port's SRV record, and a pod's record by its dashed address.
    let (ok, text) = ask(
        0,
        &["-type=SRV", "_http._tcp.dnsweb.default.svc.cluster.local"],
    );
    assert!(
        ok && text.contains("80 dnsweb.default.svc.cluster.local"),
        "{text}"
    );
    let (ok, text) = ask(0, &["10-244-0-9.default.pod.cluster.local"]);
    assert!(ok && text.contains("10.244.0.9"), "{text}");
}

#[test]
fn failing_liveness_probe_restarts_the_container() {
    let ms = Duration::from_millis;
    let w = World::new(BackoffConfig::new(ms(200), ms(1000)));
    let data = w.dir.join("live-data");
    let mut c = container("app", &format!("echo started >> /data/starts; {LOOP}"));
    c.liveness_probe = Some(exec_probe(&["cat", "/data/alive"], 1, 2));
    w.create(&pod(&w, "live", &data, vec![c]));

    eventually("restartCount >= 2", || {
        let cs = status_of(&w.get::<Pod>("live")?, "app")?;
        (cs.restart_count >= 2).then_some(())
    });
    let starts = std::fs::read_to_string(data.join("starts")).unwrap();
    assert!(starts.lines().count() >= 2, "{starts}");
    eventually("Unhealthy and Killing events", || {
        let ev = w.events("live");
        let unhealthy = ev
            .iter()
            .any(|(r, m)| r == "Unhealthy" && m.starts_with("Liveness probe failed"));
        let killing = ev.iter().any(|(r, m)| {
            r == "Killing" && m == "Container app failed liveness probe, will be restarted"
        });
        (unhealthy && killing).then_some(())
    });

    // Healthy from now on: the restarts stop.
    std::fs::write(data.join("alive"), "ok").unwrap();
    let settled = eventually("running with the liveness probe passing", || {
        let cs = status_of(&w.get::<Pod>("live")?, "app")?;
        cs.state.as_ref()?.running.as_ref()?;
        Some(cs.restart_count)
    });
    // Two failed probes (2 s) without a restart: it stays.
    let end = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < end {
        let cs = status_of(&w.get::<Pod>("live").unwrap(), "app").unwrap();
        assert!(cs.restart_count <= settled + 1, "restarted while healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn pre_stop_hook_runs_before_sigterm() {
    let w = World::new(BackoffConfig::default());
    let data = w.dir.join("hook-data");
    let mut c = container(
        "app",
        "trap 'echo term >> /data/order; exit 0' TERM; echo up > /data/up; \
         while true; do sleep 0.1; done",
    );
    c.lifecycle = Some(Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec![
                    "sh".into(),
                    "-c".into(),
                    "echo prestop >> /data/order".into(),
                ]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    w.create(&pod(&w, "hook", &data, vec![c]));
    eventually("the container up", || {
        data.join("up").exists().then_some(())
    });
    w.delete("hook");
    eventually("pod gone", || w.get::<Pod>("hook").is_none().then_some(()));
    let order = std::fs::read_to_string(data.join("order")).unwrap_or_default();
    assert_eq!(order, "prestop\nterm\n", "preStop, then SIGTERM");
}

#[test]
fn kubectl_logs_and_metrics_through_the_agent() {
    let w = World::new(BackoffConfig::default());
    let data = w.dir.join("logs-data");
    let app = container(
        "app",
        "for i in 1 2 3 4 5; do echo line $i; done; i=0; \
         while true; do i=$((i+1)); echo tick $i; sleep 0.2; done",
    );
    let side = container("side", &format!("echo side hello; {LOOP}"));
    w.create(&pod(&w, "logs", &data, vec![app, side]));
    eventually("both containers running", || {
        let p = w.get::<Pod>("logs")?;
        (condition(&p, "Ready").as_deref() == Some("True")).then_some(())
    });
    let node = w.get::<Node>(&w.cfg.node_name).expect("node");
    let port = node
        .status
        .and_then(|s| s.daemon_endpoints?.kubelet_endpoint)
        .map(|e| e.port);
    assert_eq!(
        port,
        Some(i32::from(w.kubelet_addr().port())),
        "published port"
    );

    let (ok, out, err) = w.kubectl(&["logs", "logs", "-c", "app"]);
    assert!(ok, "kubectl logs -c app: {err}");
    for i in 1..=5 {
        assert!(out.lines().any(|l| l == format!("line {i}")), "{out}");
    }
    let (ok, out, err) = w.kubectl(&["logs", "logs", "-c", "side"]);
    assert!(ok, "{err}");
    assert_eq!(out, "side hello\n");
    eventually("a few ticks", || {
        let (_, out, _) = w.kubectl(&["logs", "logs", "-c", "app"]);
        out.contains("tick 3").then_some(())
    });
    let (ok, out, err) = w.kubectl(&["logs", "logs", "-c", "app", "--tail", "2"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines.iter().all(|l| l.starts_with("tick ")), "{out}");
    let last: u32 = lines[1]["tick ".len()..].parse().unwrap();

    // -f follows: lines written after it started arrive, then it is killed.
    let want = format!("tick {}", last + 3);
    let followed = w.kubectl_until(&["logs", "-f", "logs", "-c", "app", "--tail", "1"], |l| {
        l == want
    });
    assert!(followed.len() >= 2, "{followed:?}");

    let metrics = w.kubelet_get("/metrics");
    for c in ["app", "side"] {
        let key = format!(
            "container_memory_working_set_bytes{{container=\"{c}\",namespace=\"default\",pod=\"logs\"}} "
        );
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&key))
            .unwrap_or_else(|| panic!("no {key} in:\n{metrics}"));
        let v: f64 = line[key.len()..].parse().unwrap();
        assert!(v > 0.0, "{line}");
    }
    assert!(metrics.contains("container_cpu_usage_seconds_total{container=\"app\""));
    assert_eq!(w.kubelet_get("/healthz"), "ok");
}

#[test]
fn kubectl_exec_runs_in_the_container() {
    let w = World::new(BackoffConfig::default());
    let data = w.dir.join("exec-data");
    let app = container("app", &format!("echo inside > /tmp/marker; {LOOP}"));
    let side = container("side", LOOP);
    w.create(&pod(&w, "exec", &data, vec![app, side]));
    eventually("the pod Ready", || {
        let p = w.get::<Pod>("exec")?;
        (condition(&p, "Ready").as_deref() == Some("True")).then_some(())
    });
    // `kubectl exec [-i] exec -c <container> -- <argv>`: (code, stdout, stderr).
    let exec = |c: &str, argv: &[&str], input: Option<&str>| {
        let mut args = vec!["exec"];
        args.extend(input.map(|_| "-i"));
        args.extend(["exec", "-c", c, "--"]);
        args.extend(argv);
        w.kubectl_with_input(&args, input)
    };
    let sh = |script: &str, input: Option<&str>| exec("app", &["sh", "-c", script], input);
    // Stdout, in the container's filesystem, uts and pid namespaces.
    let (code, out, err) = sh("cat /tmp/marker; hostname; echo $$", None);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"inside"), "{out}");
    assert_eq!(lines.get(1), Some(&"exec"), "the pod's hostname: {out}");
    let pid: u32 = lines.get(2).and_then(|l| l.parse().ok()).expect("a pid");
    assert!(
        pid > 1 && pid < 100,
        "a pid of the container's namespace: {pid}"
    );
    // Another container of the pod does not see the first one's files.
    assert_eq!(exec("side", &["cat", "/tmp/marker"], None).0, Some(1));
    // Stderr and the exit code.
    let (code, out, err) = sh("echo oops >&2; exit 3", None);
    assert_eq!((code, out.as_str()), (Some(3), ""));
    assert!(err.contains("oops"), "{err}");
    // Stdin, to its end.
    let (code, out, err) = sh("wc -l; cat", Some("a\nb\nc\n"));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.split_whitespace().next(), Some("3"), "{out}");
    // kubectl cp is tar through exec, both ways.
    let local = w.dir.join("to-copy.txt");
    std::fs::write(&local, "copied through exec\n").unwrap();
    let cp = |from: &str, to: &str| w.kubectl_with_input(&["cp", from, to, "-c", "app"], None);
    let (code, _, err) = cp(local.to_str().unwrap(), "exec:/tmp/copied.txt");
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = exec("app", &["cat", "/tmp/copied.txt"], None);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "copied through exec\n"),
        "{err}"
    );
    let back = w.dir.join("copied-back.txt");
    let (code, _, err) = cp("exec:/tmp/marker", back.to_str().unwrap());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "inside\n");
    // -it: a terminal. The shell prompts, sees a tty, and its exit code comes back.
    let (code, out, err) = w.kubectl_in_terminal(
        &["exec", "-it", "exec", "-c", "app", "--", "sh"],
        "[ -t 0 ] && echo tty-$((6*7))\nexit 5\n",
    );
    assert_eq!(code, Some(5), "{out}\n{err}");
    assert!(out.contains("tty-42"), "{out}");
    // A command that does not exist fails with a message, not a hang.
    let (code, _, err) = exec("app", &["/no/such"], None);
    assert_ne!(code, Some(0));
    assert!(err.contains("/no/such"), "{err}");
}
