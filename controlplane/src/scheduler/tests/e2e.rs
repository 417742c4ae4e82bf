//! The loop end to end against the in-memory API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::super::api::EventType;
use super::super::fixtures::*;
use super::super::pod_info::bound_node;
use super::super::{InMemoryApi, QueueConfig, Scheduler, SchedulerConfig, Stats};

const WAIT: Duration = Duration::from_secs(10);

struct Running {
    api: Arc<InMemoryApi>,
    stats: Arc<Stats>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    fn start(api: Arc<InMemoryApi>) -> Self {
        let cfg = SchedulerConfig {
            queue: QueueConfig {
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
                max_in_unschedulable: Duration::from_secs(60),
            },
            ..SchedulerConfig::default()
        };
        let sched = Scheduler::new(cfg);
        let stats = sched.stats();
        let (stop, rx) = oneshot::channel();
        let task = tokio::spawn(sched.run(api.clone(), async move {
            let _ = rx.await;
        }));
        Self {
            api,
            stats,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.task.take().unwrap())
            .await
            .unwrap()
            .unwrap();
    }

    fn node_of(&self, name: &str) -> Option<String> {
        self.api
            .pod("default", name)
            .and_then(|p| bound_node(&p).map(str::to_string))
    }

    async fn wait_bound(&self, names: &[&str]) {
        let ok = self
            .api
            .wait_for(WAIT, |api| {
                names.iter().all(|n| {
                    api.pod("default", n)
                        .is_some_and(|p| bound_node(&p).is_some())
                })
            })
            .await;
        assert!(
            ok,
            "pods {names:?} not all bound: {:?}",
            self.api.pods().iter().map(summary).collect::<Vec<_>>()
        );
    }
}

fn summary(p: &Pod) -> (String, Option<String>) {
    (
        p.metadata.name.clone().unwrap_or_default(),
        bound_node(p).map(str::to_string),
    )
}

fn unschedulable_message(p: &Pod) -> Option<String> {
    let c = p
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")?;
    (c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
        .then(|| c.message.clone().unwrap_or_default())
}

#[tokio::test]
async fn spreads_replicas_across_nodes() {
    let api = Arc::new(InMemoryApi::new());
    for i in 0..3 {
        api.put_node(node(&format!("n{i}"), "4", "8Gi", 110));
    }
    let r = Running::start(api.clone());
    let names: Vec<String> = (0..6).map(|i| format!("web-{i}")).collect();
    for n in &names {
        api.put_pod(owned_by(pod(n, "100m", "128Mi"), "rs-web"));
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    r.wait_bound(&refs).await;
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for n in &names {
        *per_node.entry(r.node_of(n).unwrap()).or_default() += 1;
    }
    assert_eq!(
        per_node.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "{per_node:?}"
    );
    let ok = api
        .wait_for(WAIT, |a| {
            a.events()
                .iter()
                .filter(|e| e.reason == "Scheduled")
                .count()
                == 6
        })
        .await;
    assert!(ok, "one Scheduled event per pod");
    assert_eq!(Stats::get(&r.stats.scheduled), 6);
    r.stop().await;
}

#[tokio::test]
async fn respects_taints_and_affinity() {
    let api = Arc::new(InMemoryApi::new());
    api.put_node(with_taint(
        node("tainted", "4", "8Gi", 110),
        "dedicated",
        "db",
        "NoSchedule",
    ));
    api.put_node(with_label(node("zone-a", "4", "8Gi", 110), "zone", "a"));
    api.put_node(node("plain", "4", "8Gi", 110));
    let r = Running::start(api.clone());
    for i in 0..10 {
        api.put_pod(pod(&format!("free-{i}"), "100m", ""));
    }
    api.put_pod(with_node_selector(pod("zonal", "", ""), "zone", "a"));
    let db = with_toleration(pod("db", "", ""), "dedicated", "Equal", "db", "NoSchedule");
    api.put_pod(with_required_term(
        db,
        vec![requirement("kubernetes.io/hostname", "In", &["tainted"])],
        vec![],
    ));
    let mut all: Vec<String> = (0..10).map(|i| format!("free-{i}")).collect();
    all.extend(["zonal".to_string(), "db".to_string()]);
    r.wait_bound(&all.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    for i in 0..10 {
        assert_ne!(r.node_of(&format!("free-{i}")).unwrap(), "tainted");
    }
    assert_eq!(r.node_of("zonal").unwrap(), "zone-a");
    assert_eq!(r.node_of("db").unwrap(), "tainted");
    r.stop().await;
}

#[tokio::test]
async fn reports_unschedulable_then_retries_when_a_node_arrives() {
    let api = Arc::new(InMemoryApi::new());
    api.put_node(with_taint(
        node("t", "8", "8Gi", 110),
        "k",
        "v",
        "NoSchedule",
    ));
    api.put_node(node("small-1", "1", "8Gi", 110));
    api.put_node(node("small-2", "1", "8Gi", 110));
    let r = Running::start(api.clone());
    api.put_pod(pod("big", "2", "1Gi"));
    let want =
        "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu.";
    let ok = api
        .wait_for(WAIT, |a| {
            a.pod("default", "big")
                .and_then(|p| unschedulable_message(&p))
                .as_deref()
                == Some(want)
        })
        .await;
    assert!(
        ok,
        "condition: {:?}",
        api.pod("default", "big").and_then(|p| p.status)
    );
    let ok = api
        .wait_for(WAIT, |a| {
            a.events().iter().any(|e| {
                e.reason == "FailedScheduling" && e.type_ == EventType::Warning && e.message == want
            })
        })
        .await;
    assert!(ok, "events: {:?}", api.events());
    assert!(r.node_of("big").is_none());

    api.put_node(node("large", "4", "8Gi", 110));
    r.wait_bound(&["big"]).await;
    assert_eq!(r.node_of("big").unwrap(), "large");
    r.stop().await;
}

#[tokio::test]
async fn deleted_pod_frees_room_for_a_pending_one() {
    let api = Arc::new(InMemoryApi::new());
    api.put_node(node("n", "1", "1Gi", 110));
    api.put_pod(bound_to(pod("old", "1", ""), "n"));
    let r = Running::start(api.clone());
    api.put_pod(pod("new", "1", ""));
    let ok = api
        .wait_for(WAIT, |a| {
            a.pod("default", "new")
                .and_then(|p| unschedulable_message(&p))
                .is_some()
        })
        .await;
    assert!(ok);
    api.delete_pod("default", "old");
    r.wait_bound(&["new"]).await;
    r.stop().await;
}

#[tokio::test]
async fn failed_binds_are_retried_and_watches_relisted() {
    let api = Arc::new(InMemoryApi::new());
    api.put_node(node("n", "4", "8Gi", 110));
    api.fail_next_binds(2);
    let r = Running::start(api.clone());
    api.put_pod(pod("a", "100m", ""));
    r.wait_bound(&["a"]).await;
    assert_eq!(Stats::get(&r.stats.bind_errors), 2);

    api.close_watches();
    api.put_pod(pod("b", "100m", ""));
    r.wait_bound(&["b"]).await;
    let usage_ok = api
        .wait_for(WAIT, |_| Stats::get(&r.stats.scheduled) == 2)
        .await;
    assert!(usage_ok);
    r.stop().await;
}

#[tokio::test]
async fn ignores_other_schedulers_and_fills_nodes_exactly() {
    let api = Arc::new(InMemoryApi::new());
    api.put_node(node("n1", "1", "1Gi", 3));
    api.put_node(node("n2", "1", "1Gi", 3));
    let mut other = pod("other", "", "");
    other.spec.as_mut().unwrap().scheduler_name = Some("someone-else".into());
    api.put_pod(other);
    let r = Running::start(api.clone());
    for i in 0..7 {
        api.put_pod(pod(&format!("p{i}"), "", ""));
    }
    let ok = api
        .wait_for(WAIT, |a| {
            a.pods().iter().filter(|p| bound_node(p).is_some()).count() == 6
        })
        .await;
    assert!(
        ok,
        "{:?}",
        api.pods().iter().map(summary).collect::<Vec<_>>()
    );
    let ok = api
        .wait_for(WAIT, |a| {
            a.pods()
                .iter()
                .filter(|p| unschedulable_message(p).is_some())
                .count()
                == 1
        })
        .await;
    assert!(ok, "the 7th pod finds no room (3 pods per node)");
    let msg = api.pods().iter().find_map(unschedulable_message).unwrap();
    assert_eq!(msg, "0/2 nodes are available: 2 Too many pods.");
    assert!(r.node_of("other").is_none());
    r.stop().await;
}

/// `pod(...)` with a persistentVolumeClaim volume.
fn with_claim(mut p: Pod, claim: &str) -> Pod {
    let v: k8s_openapi::api::core::v1::Volume = serde_json::from_value(serde_json::json!(
        {"name": "data", "persistentVolumeClaim": {"claimName": claim}}
    ))
    .unwrap();
    p.spec.as_mut().unwrap().volumes = Some(vec![v]);
    p
}

#[tokio::test]
async fn a_claim_keeps_its_pods_on_the_node_that_first_used_it() {
    use super::super::volumes::SELECTED_NODE;
    let api = Arc::new(InMemoryApi::new());
    for i in 0..3 {
        api.put_node(node(&format!("n{i}"), "4", "8Gi", 110));
    }
    let r = Running::start(api.clone());
    // No claim yet: unschedulable, with the reason.
    api.put_pod(with_claim(pod("first", "100m", "128Mi"), "data"));
    let ok = api
        .wait_for(WAIT, |a| {
            a.pod("default", "first")
                .and_then(|p| unschedulable_message(&p))
                .is_some_and(|m| m.contains("persistentvolumeclaim \"data\" not found"))
        })
        .await;
    assert!(
        ok,
        "{:?}",
        api.pod("default", "first").and_then(|p| p.status)
    );
    let mut claim = k8s_openapi::api::core::v1::PersistentVolumeClaim::default();
    claim.metadata.name = Some("data".into());
    claim.metadata.namespace = Some("default".into());
    api.put_claim(claim.clone());
    // Not bound yet: still unschedulable, now for that.
    let ok = api
        .wait_for(WAIT, |a| {
            a.pod("default", "first")
                .and_then(|p| unschedulable_message(&p))
                .is_some_and(|m| m.contains("unbound immediate PersistentVolumeClaims"))
        })
        .await;
    assert!(
        ok,
        "{:?}",
        api.pod("default", "first").and_then(|p| p.status)
    );
    // Bound: the back-off retries it (no cluster change needed); the node it lands on
    // pins the claim.
    claim.status = Some(k8s_openapi::api::core::v1::PersistentVolumeClaimStatus {
        phase: Some("Bound".into()),
        ..Default::default()
    });
    api.put_claim(claim);
    r.wait_bound(&["first"]).await;
    let node = r.node_of("first").unwrap();
    let pinned = api
        .claim_now("default", "data")
        .unwrap()
        .metadata
        .annotations;
    assert_eq!(pinned.unwrap()[SELECTED_NODE], node);
    // Every later pod of the claim follows, even where spreading would put it elsewhere.
    let names: Vec<String> = (0..4).map(|i| format!("next-{i}")).collect();
    for n in &names {
        api.put_pod(with_claim(owned_by(pod(n, "100m", "128Mi"), "rs"), "data"));
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    r.wait_bound(&refs).await;
    for n in &names {
        assert_eq!(r.node_of(n).unwrap(), node, "{n}");
    }
    r.stop().await;
}
