//! The loop through the real store: one replica in a tempdir, the in-process API client as
//! the `SchedulerApi` (bindings, status patches and Events written through Raft).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use tokio::sync::oneshot;

use super::super::fixtures::*;
use super::super::pod_info::bound_node;
use super::super::{QueueConfig, Scheduler, SchedulerConfig};
use crate::api::bootstrap::ensure_namespaces;
use crate::api::client::Selectors;
use crate::api::objects::Objects;
use crate::api::ApiClient;
use crate::{ControlPlane, NodeConfig};

const WAIT: Duration = Duration::from_secs(20);

/// Poll `cond` (an API read) until it holds or `WAIT` passes.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get_pod(c: &ApiClient, name: &str) -> Pod {
    c.get::<Pod>(Some("default"), name).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::new(1, dir.path(), "127.0.0.1:0".parse().unwrap());
    cfg.heartbeat = Duration::from_millis(50);
    cfg.election_timeout = (Duration::from_millis(150), Duration::from_millis(300));
    let cp = Arc::new(ControlPlane::start(cfg).await.unwrap());
    cp.bootstrap().await.unwrap();
    let client = ApiClient::new(Objects::new(cp.clone()));
    eventually("a writable store", || async {
        ensure_namespaces(&client).await.is_ok()
    })
    .await;

    for n in [
        node("n1", "2", "4Gi", 110),
        with_taint(node("n2", "2", "4Gi", 110), "k", "v", "NoSchedule"),
    ] {
        client.create::<Node>(None, &n).await.unwrap();
    }
    for i in 0..4 {
        client
            .create(
                Some("default"),
                &owned_by(pod(&format!("web-{i}"), "250m", "256Mi"), "rs"),
            )
            .await
            .unwrap();
    }
    client
        .create(Some("default"), &pod("huge", "3", ""))
        .await
        .unwrap();

    let sched = Scheduler::new(SchedulerConfig {
        queue: QueueConfig {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            max_in_unschedulable: Duration::from_secs(60),
        },
        ..SchedulerConfig::default()
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(sched.run(Arc::new(client.clone()), async move {
        let _ = stopped.await;
    }));

    for i in 0..4 {
        let name = format!("web-{i}");
        eventually(&format!("{name} bound"), || async {
            bound_node(&get_pod(&client, &name).await).is_some()
        })
        .await;
        assert_eq!(
            bound_node(&get_pod(&client, &name).await),
            Some("n1"),
            "n2 is tainted"
        );
    }
    let want =
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {k: v}.";
    eventually("huge reported unschedulable", || async {
        let p = get_pod(&client, "huge").await;
        p.status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .any(|c| {
                c.type_ == "PodScheduled"
                    && c.reason.as_deref() == Some("Unschedulable")
                    && c.message.as_deref() == Some(want)
            })
    })
    .await;
    eventually("Scheduled and FailedScheduling events", || async {
        let evs = client
            .list::<Event>(Some("default"), &Selectors::default())
            .await
            .unwrap()
            .items;
        let has = |reason: &str| evs.iter().any(|e| e.reason.as_deref() == Some(reason));
        has("Scheduled") && has("FailedScheduling")
    })
    .await;

    // A bigger node appears: the parked pod is retried and bound there.
    client
        .create::<Node>(None, &node("n3", "4", "8Gi", 110))
        .await
        .unwrap();
    eventually("huge bound to n3", || async {
        bound_node(&get_pod(&client, "huge").await) == Some("n3")
    })
    .await;

    let _ = stop.send(());
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}
