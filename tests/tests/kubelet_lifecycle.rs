//! Root: a pod's life on a kubelet in a lab node against a real control plane (fixtures:
//! `skiff_tests::kubelet_lab`). Shown: init containers run in order before the app and a
//! failing one fails a Never pod; OnFailure/Never phases; SIGTERM within the grace period
//! and SIGKILL after it; configMap, secret and downwardAPI volumes as files.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, DownwardAPIVolumeFile, DownwardAPIVolumeSource,
    EmptyDirVolumeSource, HostPathVolumeSource, ObjectFieldSelector, Pod, Secret,
    SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::ByteString;
use skiff_agent::kubelet::BackoffConfig;
use skiff_tests::kubelet_lab::{app_status, condition, eventually, phase, pod, World, IMAGE};

fn fast_backoff() -> BackoffConfig {
    BackoffConfig::new(Duration::from_millis(200), Duration::from_millis(1000))
}

fn sh(name: &str, script: &str) -> Container {
    Container {
        name: name.into(),
        image: Some(IMAGE.into()),
        command: Some(vec!["sh".into(), "-c".into(), script.into()]),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

/// `pod(...)` bound to the world's first node.
fn bound(w: &World, name: &str, script: &str, policy: &str) -> Pod {
    let mut p = pod(name, IMAGE, script, policy);
    p.spec.as_mut().unwrap().node_name = Some(w.cfg().node_name.clone());
    p
}

/// The log lines' payloads (CRI: `<time> <stream> <tag> <line>`).
fn lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3).map(str::to_string))
        .collect()
}

#[test]
fn init_containers_run_in_order_and_a_failing_one_fails_the_pod() {
    let w = World::new(fast_backoff());
    let mut p = bound(&w, "init", "cat /work/out; sleep 3600", "Always");
    let spec = p.spec.as_mut().unwrap();
    spec.volumes = Some(vec![Volume {
        name: "work".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }]);
    spec.containers[0].volume_mounts = Some(vec![mount("work", "/work")]);
    let mut inits = vec![
        sh("first", "sleep 0.3; echo one >> /work/out"),
        sh("second", "echo two >> /work/out"),
    ];
    for c in &mut inits {
        c.volume_mounts = Some(vec![mount("work", "/work")]);
    }
    spec.init_containers = Some(inits);
    let uid = w.create(&p).metadata.uid.unwrap();

    let mut failing = bound(&w, "init-fail", "sleep 3600", "Never");
    failing.spec.as_mut().unwrap().init_containers = Some(vec![sh("broken", "exit 4")]);
    w.create(&failing);

    let running = w.wait_phase("init", "Running");
    assert_eq!(condition(&running, "Initialized").as_deref(), Some("True"));
    let inits = running.status.unwrap().init_container_statuses.unwrap();
    let names: Vec<_> = inits.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    for s in &inits {
        let t = s
            .state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .expect("terminated");
        assert_eq!(
            (t.exit_code, t.reason.as_deref()),
            (0, Some("Completed")),
            "{}",
            s.name
        );
    }
    eventually("the app sees both lines in order", || {
        (lines(&w.log(&uid, "app", 0)) == ["one", "two"]).then_some(())
    });

    let failed = w.wait_phase("init-fail", "Failed");
    let st = failed.status.unwrap();
    let broken = &st.init_container_statuses.unwrap()[0];
    let t = broken.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (4, Some("Error")));
    assert_eq!(broken.restart_count, 0);
    let app = &st.container_statuses.unwrap()[0];
    assert!(
        app.state.as_ref().is_none_or(|s| s.running.is_none()),
        "the app never ran: {app:?}"
    );
    w.delete_all(&["init", "init-fail"]);
}

#[test]
fn restart_policies_on_failure_and_never_give_succeeded_and_failed() {
    let w = World::new(fast_backoff());
    for (name, script, policy) in [
        ("ok-onfailure", "exit 0", "OnFailure"),
        ("bad-onfailure", "exit 1", "OnFailure"),
        ("ok-never", "exit 0", "Never"),
        ("bad-never", "exit 2", "Never"),
    ] {
        w.create(&bound(&w, name, script, policy));
    }
    let end = |name: &str, want: &str| {
        let p = w.wait_phase(name, want);
        let cs = app_status(&p).unwrap();
        let t = cs.state.unwrap().terminated.expect("terminated");
        (cs.restart_count, t.exit_code, t.reason.unwrap_or_default())
    };
    assert_eq!(end("ok-onfailure", "Succeeded"), (0, 0, "Completed".into()));
    assert_eq!(end("ok-never", "Succeeded"), (0, 0, "Completed".into()));
    assert_eq!(end("bad-never", "Failed"), (0, 2, "Error".into()));
    let cs = eventually("bad-onfailure restarted twice", || {
        let cs = app_status(&w.pod("bad-onfailure")?)?;
        (cs.restart_count >= 2).then_some(cs)
    });
    let last = cs.last_state.unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    let p = w.pod("bad-onfailure").unwrap();
    assert!(
        matches!(phase(&p).as_deref(), Some("Running" | "Pending")),
        "OnFailure never ends in a terminal phase after a failure: {:?}",
        phase(&p)
    );
    w.delete_all(&["ok-onfailure", "bad-onfailure", "ok-never", "bad-never"]);
}

/// Deletes `name` and returns how long until the API no longer has it.
fn time_deletion(w: &World, name: &str) -> Duration {
    let start = Instant::now();
    w.delete(name);
    eventually(&format!("{name} gone"), || {
        w.pod(name).is_none().then_some(())
    });
    start.elapsed()
}

#[test]
fn graceful_termination_sigterm_within_the_grace_then_sigkill() {
    let w = World::new(fast_backoff());
    let marks = std::env::temp_dir().join(format!("{}-marks", w.lab.prefix()));
    std::fs::create_dir_all(&marks).unwrap();
    let _rm = RemoveDir(marks.clone());
    let marked = |name: &str, script: &str, grace: i64| {
        let mut p = bound(&w, name, script, "Always");
        let spec = p.spec.as_mut().unwrap();
        spec.termination_grace_period_seconds = Some(grace);
        spec.volumes = Some(vec![Volume {
            name: "marks".into(),
            host_path: Some(HostPathVolumeSource {
                path: marks.to_string_lossy().into_owned(),
                type_: Some("Directory".into()),
            }),
            ..Default::default()
        }]);
        spec.containers[0].volume_mounts = Some(vec![mount("marks", "/marks")]);
        w.create(&p);
    };
    let loop_ = |name: &str| format!("echo up > /marks/{name}.up; while true; do sleep 0.1; done");
    marked(
        "polite",
        &format!(
            "trap 'echo bye > /marks/polite; exit 0' TERM; {}",
            loop_("polite")
        ),
        20,
    );
    marked(
        "stubborn",
        &format!("trap '' TERM; {}", loop_("stubborn")),
        3,
    );
    for name in ["polite", "stubborn"] {
        eventually(&format!("{name} running its loop"), || {
            let running = app_status(&w.pod(name)?)?.state?.running.is_some();
            (running && marks.join(format!("{name}.up")).exists()).then_some(())
        });
    }

    let polite = time_deletion(&w, "polite");
    assert_eq!(
        std::fs::read_to_string(marks.join("polite")).unwrap_or_default(),
        "bye\n",
        "the SIGTERM trap ran"
    );
    assert!(
        polite < Duration::from_secs(10),
        "a container that exits on SIGTERM is gone well within its 20 s grace: {polite:?}"
    );

    let stubborn = time_deletion(&w, "stubborn");
    assert!(
        stubborn >= Duration::from_millis(2800) && stubborn < Duration::from_secs(15),
        "a container ignoring SIGTERM is killed after its 3 s grace: {stubborn:?}"
    );
    assert!(w.events("stubborn").iter().any(|(r, _)| r == "Killing"));
}

struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn configmap_secret_and_downward_api_volumes_are_files() {
    let w = World::new(fast_backoff());
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("cfg".into());
    cm.data = Some(BTreeMap::from([
        ("a".into(), "alpha".into()),
        ("b".into(), "beta".into()),
    ]));
    w.create(&cm);
    let mut sec = Secret::default();
    sec.metadata.name = Some("sec".into());
    sec.data = Some(BTreeMap::from([(
        "token".into(),
        ByteString(b"s3cret".to_vec()),
    )]));
    w.create(&sec);

    let script = "for f in /cfg/a /cfg/b /sec/token /pod/labels; do echo \"$f=$(cat $f | tr '\\n' ',')\"; done; \
                  ls /cfg | tr '\\n' ' '; echo; sleep 3600";
    let mut p = bound(&w, "vols", script, "Always");
    p.metadata.labels = Some(BTreeMap::from([
        ("app".into(), "web".into()),
        ("tier".into(), "front".into()),
    ]));
    let spec = p.spec.as_mut().unwrap();
    spec.volumes = Some(vec![
        Volume {
            name: "cfg".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: "cfg".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "sec".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("sec".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "pod".into(),
            downward_api: Some(DownwardAPIVolumeSource {
                items: Some(vec![DownwardAPIVolumeFile {
                    path: "labels".into(),
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.labels".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]);
    spec.containers[0].volume_mounts = Some(vec![
        mount("cfg", "/cfg"),
        mount("sec", "/sec"),
        mount("pod", "/pod"),
    ]);
    let uid = w.create(&p).metadata.uid.unwrap();
    let got = eventually("the volume files in the log", || {
        let l = lines(&w.log(&uid, "app", 0));
        (l.len() >= 5).then_some(l)
    });
    assert_eq!(
        got[..5],
        [
            "/cfg/a=alpha",
            "/cfg/b=beta",
            "/sec/token=s3cret",
            "/pod/labels=app=\"web\",tier=\"front\",",
            "a b ",
        ]
    );
    w.delete_all(&["vols"]);
}
