use chrono::TimeZone;
use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::*;

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
}

fn pod(policy: &str, init: &[&str], apps: &[&str]) -> Pod {
    let c = |n: &&str| Container {
        name: n.to_string(),
        ..Default::default()
    };
    Pod {
        spec: Some(PodSpec {
            restart_policy: Some(policy.into()),
            init_containers: (!init.is_empty()).then(|| init.iter().map(c).collect()),
            containers: apps.iter().map(c).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn view(name: &str, state: CState) -> ContainerView {
    ContainerView {
        ready: matches!(state, CState::Running { .. }),
        name: name.into(),
        state,
        last: None,
        restart_count: 0,
        image: "busybox".into(),
        image_id: "sha256:ab".into(),
        container_id: None,
    }
}

fn exited(code: i32) -> CState {
    CState::Terminated(Terminated {
        exit_code: code,
        signal: None,
        reason: if code == 0 { "Completed" } else { "Error" }.into(),
        message: None,
        started_at: Some(t(0)),
        finished_at: t(1),
        container_id: Some("skiff://x".into()),
    })
}

fn waiting(reason: &str) -> CState {
    CState::Waiting {
        reason: reason.into(),
        message: None,
    }
}

fn pv(init: Vec<ContainerView>, apps: Vec<ContainerView>) -> PodView {
    PodView {
        init,
        containers: apps,
        ephemeral: Vec::new(),
        pod_ip: Some(Ipv4Addr::new(10, 244, 0, 5)),
        host_ip: Some(Ipv4Addr::new(192, 168, 200, 10)),
        start_time: Some(t(0)),
        sandbox_ready: true,
        qos_class: "BestEffort".into(),
    }
}

#[test]
fn phases_follow_the_kubelet() {
    let running = CState::Running { started_at: t(0) };
    let p = pod("Always", &[], &["a"]);
    assert_eq!(
        phase(
            &p,
            &pv(vec![], vec![view("a", waiting("ContainerCreating"))])
        ),
        "Pending"
    );
    assert_eq!(
        phase(&p, &pv(vec![], vec![view("a", running.clone())])),
        "Running"
    );
    assert_eq!(
        phase(&p, &pv(vec![], vec![view("a", exited(1))])),
        "Running"
    );
    let never = pod("Never", &[], &["a", "b"]);
    let both = |x, y| pv(vec![], vec![view("a", exited(x)), view("b", exited(y))]);
    assert_eq!(phase(&never, &both(0, 0)), "Succeeded");
    assert_eq!(phase(&never, &both(0, 2)), "Failed");
    let on_failure = pod("OnFailure", &[], &["a", "b"]);
    assert_eq!(phase(&on_failure, &both(0, 0)), "Succeeded");
    // Restarting after a crash (back-off) counts as stopped, not waiting.
    let mut crashing = view("a", waiting("CrashLoopBackOff"));
    crashing.last = match exited(1) {
        CState::Terminated(t) => Some(t),
        _ => None,
    };
    assert_eq!(phase(&p, &pv(vec![], vec![crashing])), "Running");
}

#[test]
fn init_containers_gate_the_pod() {
    let p = pod("Never", &["i1", "i2"], &["a"]);
    let app = || view("a", waiting("PodInitializing"));
    let v = pv(
        vec![
            view("i1", exited(0)),
            view("i2", CState::Running { started_at: t(0) }),
        ],
        vec![app()],
    );
    assert_eq!(phase(&p, &v), "Pending");
    let s = compute(&p, &v, None, t(5));
    assert_eq!(condition_map(&s)["Initialized"], "False");
    let msg = s
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Initialized")
        .unwrap();
    assert_eq!(
        msg.message.as_deref(),
        Some("containers with incomplete status: [i2]")
    );
    let failed = pv(
        vec![
            view("i1", exited(3)),
            view("i2", waiting("PodInitializing")),
        ],
        vec![app()],
    );
    assert_eq!(phase(&p, &failed), "Failed");
    assert_eq!(
        phase(&pod("Always", &["i1", "i2"], &["a"]), &failed),
        "Pending"
    );
}

#[test]
fn a_running_pod_is_ready_with_ips_and_statuses() {
    let p = pod("Always", &[], &["a"]);
    let mut a = view("a", CState::Running { started_at: t(2) });
    a.container_id = Some("skiff://u_a_0".into());
    a.restart_count = 2;
    let s = compute(&p, &pv(vec![], vec![a]), None, t(5));
    assert_eq!(s.phase.as_deref(), Some("Running"));
    let conds = condition_map(&s);
    for c in [
        "PodScheduled",
        "Initialized",
        "ContainersReady",
        "Ready",
        "PodReadyToStartContainers",
    ] {
        assert_eq!(conds[c], "True", "{c}");
    }
    assert_eq!(s.pod_ip.as_deref(), Some("10.244.0.5"));
    assert_eq!(s.pod_ips.as_ref().unwrap()[0].ip, "10.244.0.5");
    assert_eq!(s.host_ip.as_deref(), Some("192.168.200.10"));
    assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
    let cs = &s.container_statuses.as_ref().unwrap()[0];
    assert_eq!(
        (cs.ready, cs.restart_count, cs.started),
        (true, 2, Some(true))
    );
    assert_eq!(cs.container_id.as_deref(), Some("skiff://u_a_0"));
    assert!(cs.state.as_ref().unwrap().running.is_some());
}

#[test]
fn an_ephemeral_container_is_reported_apart_and_leaves_readiness_alone() {
    let p = pod("Always", &[], &["a"]);
    let a = view("a", CState::Running { started_at: t(2) });
    let mut v = pv(vec![], vec![a]);
    v.ephemeral = vec![view("debugger", exited(1))];
    let s = compute(&p, &v, None, t(5));
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(condition_map(&s)["Ready"], "True");
    assert_eq!(s.container_statuses.as_ref().unwrap().len(), 1);
    let e = &s.ephemeral_container_statuses.as_ref().unwrap()[0];
    assert_eq!(e.name, "debugger");
    assert!(e.state.as_ref().unwrap().terminated.is_some());
}

#[test]
fn transition_times_move_only_on_change() {
    let p = pod("Always", &[], &["a"]);
    let creating = pv(vec![], vec![view("a", waiting("ContainerCreating"))]);
    let s1 = compute(&p, &creating, None, t(1));
    let s2 = compute(&p, &creating, Some(&s1), t(9));
    assert_eq!(
        s1, s2,
        "nothing changed: the same status (no update is sent)"
    );
    let running = pv(
        vec![],
        vec![view("a", CState::Running { started_at: t(3) })],
    );
    let s3 = compute(&p, &running, Some(&s2), t(10));
    let time = |s: &PodStatus, ty: &str| {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == ty)
            .unwrap()
            .last_transition_time
            .clone()
    };
    assert_eq!(time(&s3, "Ready"), Some(Time(t(10))));
    assert_eq!(time(&s3, "PodScheduled"), Some(Time(t(1))));
}
