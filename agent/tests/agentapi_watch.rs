//! The agent API's watches and pod status writes against a real in-process server, through
//! the real client: a node's pods (filtered, modified, deleted, resumed, relisted), pod
//! status visible through the HTTP API, and Services + EndpointSlices feeding the proxy's
//! source.

mod cp_common;

use std::time::Duration;

use cp_common::{eventually, next, node, pod, until, TestServer};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodIP, PodStatus, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use skiff_agent::cpclient::{ResumingWatch, Target, WatchItem, WatchObject};
use skiff_agent::source::{ControlPlaneSource, ServiceSource};
use skiff_controlplane::agentapi::proto::EventType;
use skiff_controlplane::api::objects::DeleteOptions;
use tonic::Code;

/// (type, pod name) of a pod event.
fn pod_event(item: &WatchItem) -> Option<(EventType, String)> {
    match item {
        WatchItem::Event {
            kind,
            object: WatchObject::Pod(p),
            ..
        } => Some((*kind, p.metadata.name.clone().unwrap_or_default())),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_this_node() {
    let ts = TestServer::start("podwatch", Duration::from_secs(40), Some(64)).await;
    let cp = ts.client().await;
    let api = ts.api();
    cp.register_node(&node("n1")).await.unwrap();
    api.create(Some("default"), &pod("early", Some("n1")))
        .await
        .unwrap();
    api.create(Some("default"), &pod("elsewhere", Some("n2")))
        .await
        .unwrap();

    let mut w = cp.watch_pods("n1");
    assert!(matches!(next(&mut w, "relist").await, WatchItem::Relist));
    let first = next(&mut w, "early pod listed").await;
    assert_eq!(pod_event(&first), Some((EventType::Added, "early".into())));
    assert!(matches!(
        next(&mut w, "synced").await,
        WatchItem::Synced { .. }
    ));

    // A pod bound later (binding subresource) is ADDED; one on n2 never shows.
    api.create(Some("default"), &pod("late", None))
        .await
        .unwrap();
    api.create(Some("default"), &pod("other", Some("n2")))
        .await
        .unwrap();
    api.bind("default", "late", "n1").await.unwrap();
    let ev = next(&mut w, "late pod bound").await;
    assert_eq!(pod_event(&ev), Some((EventType::Added, "late".into())));

    // MODIFIED on a change, DELETED on delete.
    let mut p: Pod = api.get(Some("default"), "early").await.unwrap();
    p.metadata.labels = Some([("v".to_string(), "2".to_string())].into());
    api.update(&p).await.unwrap();
    // The scheduler may still write `late`'s status (it saw it unbound): skip that.
    until(&mut w, "early modified", |i| match pod_event(i) {
        Some((EventType::Modified, n)) if n == "early" => Some(()),
        Some((EventType::Modified, n)) if n == "late" => None,
        Some(other) => panic!("unexpected event {other:?}"),
        None => None,
    })
    .await;
    let opts = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    api.delete::<Pod>(Some("default"), "late", &opts)
        .await
        .unwrap();
    let rv = until(&mut w, "late deleted", |i| match pod_event(i) {
        Some((EventType::Deleted, n)) if n == "late" => Some(w_rv(i)),
        _ => None,
    })
    .await;

    // Resume from that resourceVersion: only what came after.
    api.create(Some("default"), &pod("after", Some("n1")))
        .await
        .unwrap();
    let mut resumed = ResumingWatch::from(cp.clone(), Target::Pods("n1".into()), Some(rv));
    let ev = next(&mut resumed, "resumed watch").await;
    assert_eq!(pod_event(&ev), Some((EventType::Added, "after".into())));

    // A resourceVersion the store no longer keeps: OUT_OF_RANGE on the raw stream, a
    // relist through the resuming watch.
    let old = w_rv(&ev);
    for i in 0..80 {
        let cm = ConfigMap {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(format!("filler-{i}")),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(Some("default"), &cm).await.unwrap();
    }
    let mut raw = cp.watch_pods_raw("n1", &old).await.unwrap();
    let err = raw.message().await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    let mut relisting = ResumingWatch::from(cp.clone(), Target::Pods("n1".into()), Some(old));
    assert!(matches!(
        next(&mut relisting, "relist").await,
        WatchItem::Relist
    ));
    let mut names = Vec::new();
    while let Some((_, n)) = pod_event(&next(&mut relisting, "listed pods").await) {
        names.push(n);
    }
    names.sort();
    assert_eq!(names, ["after", "early"]);
    ts.stop().await;
}

fn w_rv(item: &WatchItem) -> String {
    match item {
        WatchItem::Event {
            resource_version, ..
        }
        | WatchItem::Synced { resource_version } => resource_version.clone(),
        WatchItem::Relist => panic!("no resourceVersion on a relist"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_status_updates() {
    let ts = TestServer::start("podstatus", Duration::from_secs(40), None).await;
    let cp = ts.client().await;
    let api = ts.api();
    cp.register_node(&node("n1")).await.unwrap();
    api.create(Some("default"), &pod("web", Some("n1")))
        .await
        .unwrap();

    let status = PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some("10.244.0.7".into()),
        pod_ips: Some(vec![PodIP {
            ip: "10.244.0.7".into(),
        }]),
        host_ip: Some("127.0.0.1".into()),
        ..Default::default()
    };
    let p = cp
        .update_pod_status("default", "web", &status, None)
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    // What kubectl sees.
    let seen = ts.http_get("/api/v1/namespaces/default/pods/web").await;
    assert_eq!(seen["status"]["phase"], "Running");
    assert_eq!(seen["status"]["podIP"], "10.244.0.7");

    // An invalid status: INVALID_ARGUMENT naming the field; nothing written.
    let bad = PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some("10.244.0.999".into()),
        ..Default::default()
    };
    let e = cp
        .update_pod_status("default", "web", &bad, None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument), "{e}");
    assert!(
        e.to_string()
            .contains("status.podIP: Invalid value: \"10.244.0.999\""),
        "{e}"
    );
    let seen = ts.http_get("/api/v1/namespaces/default/pods/web").await;
    assert_eq!(seen["status"]["podIP"], "10.244.0.7");

    // A stale resourceVersion precondition: ABORTED (conflict).
    let e = cp
        .update_pod_status("default", "web", &status, Some("1"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(Code::Aborted), "{e}");
    let e = cp
        .update_pod_status("default", "nope", &status, None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(Code::NotFound), "{e}");
    ts.stop().await;
}

fn web_service() -> Service {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))
    .unwrap()
}

fn web_slice() -> EndpointSlice {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.7"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_endpointslices() {
    let ts = TestServer::start("services", Duration::from_secs(40), None).await;
    let cp = ts.client().await;
    let api = ts.api();
    let mut w = cp.watch_services();
    assert!(matches!(next(&mut w, "relist").await, WatchItem::Relist));
    // The `kubernetes` Service and its slice are listed.
    until(&mut w, "synced", |i| {
        matches!(i, WatchItem::Synced { .. }).then_some(())
    })
    .await;
    let mut source = ControlPlaneSource::start(&ts.server().agent_addr().to_string());

    api.create(Some("default"), &web_service()).await.unwrap();
    api.create(Some("default"), &web_slice()).await.unwrap();
    let named = |i: &WatchItem, kind: &str| match i {
        WatchItem::Event {
            kind: EventType::Added,
            object: WatchObject::Service(s),
            ..
        } if kind == "Service" => s.metadata.name.clone(),
        WatchItem::Event {
            kind: EventType::Added,
            object: WatchObject::EndpointSlice(s),
            ..
        } if kind == "EndpointSlice" => s.metadata.name.clone(),
        _ => None,
    };
    until(&mut w, "Service web", |i| {
        (named(i, "Service").as_deref() == Some("web")).then_some(())
    })
    .await;
    until(&mut w, "EndpointSlice web-1", |i| {
        (named(i, "EndpointSlice").as_deref() == Some("web-1")).then_some(())
    })
    .await;

    // The proxy's source sees the same objects.
    let snap = eventually("the source's snapshot to hold web and web-1", || {
        let got = source.poll().expect("source poll");
        async move {
            let s = got?;
            let has_svc = s
                .services
                .iter()
                .any(|x| x.metadata.name.as_deref() == Some("web"));
            let has_eps = s
                .slices
                .iter()
                .any(|x| x.metadata.name.as_deref() == Some("web-1"));
            (has_svc && has_eps).then_some(s)
        }
    })
    .await;
    assert!(snap
        .services
        .iter()
        .any(|s| s.metadata.name.as_deref() == Some("kubernetes")));
    // A deletion reaches it too.
    api.delete::<EndpointSlice>(Some("default"), "web-1", &Default::default())
        .await
        .unwrap();
    eventually("web-1 gone from the source", || {
        let got = source.poll().expect("source poll");
        async move {
            let s = got?;
            (!s.slices
                .iter()
                .any(|x| x.metadata.name.as_deref() == Some("web-1")))
            .then_some(())
        }
    })
    .await;
    drop(source);
    ts.stop().await;
}
