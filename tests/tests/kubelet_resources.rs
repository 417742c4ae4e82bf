//! Root: resource limits of a pod on a kubelet in a lab node against a real control plane
//! (fixtures: `skiff_tests::kubelet_lab`). Shown: a container allocating past its memory
//! limit is OOM-killed and reported as `OOMKilled` (state, exit code, OOMKilling event); a
//! busy container under a 100m CPU limit is throttled (the runtime's cgroup stats) and
//! uses about a tenth of a core.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_agent::kubelet::{layout, BackoffConfig};
use skiff_agent::runtime::cgroups::{host_manager, CgroupStats};
use skiff_agent::runtime::Runtime;
use skiff_tests::kubelet_lab::{app_status, eventually, pod, World, DEADLINE, IMAGE};
use skiff_tests::wait;

fn limited(w: &World, name: &str, script: &str, policy: &str, res: &str, qty: &str) -> Pod {
    let mut p = pod(name, IMAGE, script, policy);
    let spec = p.spec.as_mut().unwrap();
    spec.node_name = Some(w.cfg().node_name.clone());
    spec.containers[0].resources = Some(ResourceRequirements {
        limits: Some(BTreeMap::from([(res.into(), Quantity(qty.into()))])),
        ..Default::default()
    });
    p
}

#[test]
fn allocating_past_the_memory_limit_is_oom_killed() {
    let w = World::new(BackoffConfig::default());
    let script = "echo start; head -c 100m /dev/zero | tail";
    w.create(&limited(&w, "hog", script, "Never", "memory", "32Mi"));
    let p = w.wait_phase("hog", "Failed");
    // Requests default to the limits; without a CPU limit the pod is Burstable.
    assert_eq!(
        p.status.as_ref().unwrap().qos_class.as_deref(),
        Some("Burstable")
    );
    let t = app_status(&p).unwrap().state.unwrap().terminated.unwrap();
    assert_eq!(
        (t.reason.as_deref(), t.exit_code),
        (Some("OOMKilled"), 137),
        "{t:?}"
    );
    eventually("an OOMKilling event", || {
        w.events("hog")
            .iter()
            .any(|(r, _)| r == "OOMKilling")
            .then_some(())
    });
    w.delete_all(&["hog"]);
}

/// The cgroup counters of the pod's running app container, through the runtime.
fn app_stats(w: &World, name: &str) -> Result<CgroupStats, String> {
    let p = w.pod(name).ok_or("no pod")?;
    let cs = app_status(&p).ok_or_else(|| format!("no container status: {:?}", p.status))?;
    if cs.state.as_ref().and_then(|s| s.running.as_ref()).is_none() {
        return Err(format!("not running: {cs:?}"));
    }
    let id = cs.container_id.ok_or("no containerID")?;
    let id = id.strip_prefix("skiff://").ok_or("not a skiff:// id")?;
    let cg = host_manager().map_err(|e| e.to_string())?;
    let rt = Runtime::new(&layout::containers_dir(&w.cfg().state_dir), Some(cg))
        .map_err(|e| e.to_string())?;
    let c = rt.adopt(id).map_err(|e| e.to_string())?;
    c.stats().map_err(|e| e.to_string())
}

#[test]
fn a_cpu_limit_throttles_a_busy_container() {
    let w = World::new(BackoffConfig::default());
    let busy = "while true; do :; done";
    w.create(&limited(&w, "spin", busy, "Always", "cpu", "100m"));
    let mut last = String::new();
    let first = wait::try_until(DEADLINE, || {
        app_stats(&w, "spin").map_err(|e| last = e).ok()
    })
    .unwrap_or_else(|t| panic!("spin running with cgroup stats after {t:?}: {last}"));
    let t0 = Instant::now();
    let (later, dt) = eventually("2 s of throttled periods", || {
        let s = app_stats(&w, "spin").ok()?;
        let dt = t0.elapsed();
        (dt >= Duration::from_secs(2) && s.nr_throttled > first.nr_throttled).then_some((s, dt))
    });
    let cores = (later.cpu_usage_ns - first.cpu_usage_ns) as f64 / dt.as_nanos() as f64;
    assert!(
        later.nr_throttled > 5,
        "throttled in more than a few periods: {later:?}"
    );
    assert!(
        cores < 0.3,
        "a 100m limit keeps the loop near 0.1 core, it used {cores:.2}: {later:?}"
    );
    w.delete_all(&["spin"]);
}
