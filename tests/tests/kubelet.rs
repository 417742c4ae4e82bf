//! Root: the kubelet on a lab node against a real control plane. The control plane runs
//! in node 1's netns (its own tokio runtime, whose threads entered that netns), the
//! kubelet in node 0's, so every packet stays inside the lab; the test drives the
//! control plane through its in-process API client (fixtures: `skiff_tests::kubelet_lab`).
//! Shown: a pod goes Running with its IPs, conditions, events and the Service env vars,
//! survives a kubelet restart untouched, and is stopped, deleted and cleaned up; a crashing
//! container backs off with a growing restartCount; a missing image gives ErrImagePull then
//! ImagePullBackOff; a hostNetwork/hostPID/hostIPC pod has the node's address, name, pid
//! and ipc namespaces.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use skiff_agent::kubelet::BackoffConfig;
use skiff_tests::kubelet_lab::{app_status, condition, eventually, pod, World, DEADLINE, IMAGE};
use skiff_tests::wait;

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
    p.spec.as_mut().unwrap().node_name = Some(w.cfg().node_name.clone());
    let created = w.create(&p);
    let uid = created.metadata.uid.clone().unwrap();
    let running = w.wait_pod("web", "Running and Ready", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            && condition(p, "Ready").as_deref() == Some("True")
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
            w.cfg()
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
fn a_host_network_pid_and_ipc_pod_shares_the_nodes_namespaces() {
    let mut w = World::new(BackoffConfig::default());
    let mut p = pod(
        "exporter",
        IMAGE,
        "cat /proc/net/fib_trie; echo host=$(hostname); echo pid=$(readlink /proc/self/ns/pid); \
         echo ipc=$(readlink /proc/self/ns/ipc); echo ready; while true; do sleep 0.1; done",
        "Always",
    );
    let spec = p.spec.as_mut().unwrap();
    spec.node_name = Some(w.cfg().node_name.clone());
    spec.host_network = Some(true);
    spec.host_pid = Some(true);
    spec.host_ipc = Some(true);
    let uid = w.create(&p).metadata.uid.unwrap();
    let running = w.wait_pod("exporter", "Running", |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    });
    let node_ip = w.lab.node(0).addr().to_string();
    let st = running.status.unwrap();
    assert_eq!(
        st.pod_ip.as_deref(),
        Some(node_ip.as_str()),
        "the node's address"
    );
    assert_eq!(st.host_ip.as_deref(), Some(node_ip.as_str()));
    let log = eventually("the container's view of the network", || {
        let log = w.log(&uid, "app", 0);
        log.contains("ready").then_some(log)
    });
    assert!(
        log.contains(&node_ip),
        "the node's address is local to the container:\n{log}"
    );
    assert!(
        log.contains(&format!("host={}", w.cfg().node_name)),
        "{log}"
    );
    // hostPID and hostIPC: the node's (here, the test's) pid and ipc namespaces.
    for ns in ["pid", "ipc"] {
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert!(
            log.contains(&format!("{ns}={}", ours.display())),
            "{ns}: {}\n{log}",
            ours.display()
        );
    }
    assert!(
        !w.cfg().netns_dir.join(&uid).exists(),
        "no network namespace of its own"
    );
    let hosts =
        std::fs::read_to_string(w.cfg().state_dir.join("pods").join(&uid).join("hosts")).unwrap();
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file (host network).")
            && hosts.contains(std::fs::read_to_string("/etc/hosts").unwrap().trim_end()),
        "the node's hosts file: {hosts}"
    );

    // Re-adopted after a kubelet restart, not started again.
    w.stop_kubelet();
    w.start_kubelet();
    eventually("the re-adopted pod", || {
        let p = w.pod("exporter")?;
        let cs = app_status(&p)?;
        let st = p.status.as_ref()?;
        (cs.restart_count == 0
            && cs.state.as_ref()?.running.is_some()
            && st.pod_ip.as_deref() == Some(node_ip.as_str()))
        .then_some(())
    });
    assert!(
        !w.log(&uid, "app", 1).contains("ready"),
        "no second instance"
    );
    w.delete("exporter");
    eventually("pod gone", || w.pod("exporter").is_none().then_some(()));
}

#[test]
fn crash_loop_back_off_and_missing_image() {
    let ms = Duration::from_millis;
    let w = World::new(BackoffConfig::new(ms(300), ms(2000)));
    let mut crash = pod("crash", IMAGE, "echo boom; exit 3", "Always");
    crash.spec.as_mut().unwrap().node_name = Some(w.cfg().node_name.clone());
    w.create(&crash);
    let mut missing = pod("nope", "skiff.local/does-not-exist:1", "true", "Always");
    missing.spec.as_mut().unwrap().node_name = Some(w.cfg().node_name.clone());
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
    let mut seen = None;
    let cs = wait::try_until(DEADLINE, || {
        let cs = app_status(&w.pod("crash")?)?;
        seen = Some(cs.clone());
        let waiting = cs.state.as_ref()?.waiting.as_ref()?.reason.clone()?;
        (waiting == "CrashLoopBackOff" && cs.restart_count >= 3).then_some(cs)
    })
    .unwrap_or_else(|t| panic!("no CrashLoopBackOff with restartCount >= 3 after {t:?}: {seen:?}"));
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
