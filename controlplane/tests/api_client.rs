//! The in-process typed client: the same semantics as HTTP requests (defaulting, validation,
//! optimistic concurrency, status subresource, finalizers, binding, watch resume and 410).

mod kube;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;
use skiff_controlplane::api::client::{DeleteOutcome, Event, Selectors};
use skiff_controlplane::api::objects::DeleteOptions;
use skiff_controlplane::api::patch::PatchType;

fn pod(name: &str, app: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("app".to_string(), app.to_string())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some("busybox".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

const NS: Option<&str> = Some("default");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_client_semantics() {
    let c = kube::start().await;
    let api = c.server.client();
    let created = api.create(NS, &pod("a", "x")).await.unwrap();
    let spec = created.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"), "defaulted");
    assert_eq!(
        created.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    assert_eq!(created.metadata.generation, Some(1));
    api.create(NS, &pod("b", "y")).await.unwrap();

    // Validation and existence errors.
    let err = api.create(NS, &pod("a", "x")).await.unwrap_err();
    assert_eq!((err.code, err.reason), (409, "AlreadyExists"));
    let mut bad = pod("bad", "x");
    bad.spec.as_mut().unwrap().containers[0].image = None;
    let err = api.create(NS, &bad).await.unwrap_err();
    assert_eq!((err.code, err.reason), (422, "Invalid"));
    let err = api.create(Some("nope"), &pod("c", "x")).await.unwrap_err();
    assert_eq!((err.code, err.reason), (404, "NotFound"));

    let sel = Selectors {
        labels: "app=x".into(),
        ..Default::default()
    };
    let list = api.list::<Pod>(NS, &sel).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let rv = list.resource_version;
    let mut watch = api.watch::<Pod>(NS, &sel, Some(rv)).await.unwrap();

    // Main-resource updates ignore status; stale versions conflict.
    let mut upd = created.clone();
    upd.spec.as_mut().unwrap().containers[0].image = Some("busybox:2".into());
    upd.status = Some(PodStatus {
        phase: Some("Running".into()),
        ..Default::default()
    });
    let updated = api.update(&upd).await.unwrap();
    assert_eq!(
        updated.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    assert_eq!(updated.metadata.generation, Some(2));
    let err = api.update(&upd).await.unwrap_err();
    assert_eq!((err.code, err.reason), (409, "Conflict"));

    // Pod specs are immutable except images (and a few more).
    let mut renamed = updated.clone();
    renamed.spec.as_mut().unwrap().containers[0].name = "other".into();
    let err = api.update(&renamed).await.unwrap_err();
    assert_eq!((err.code, err.reason), (422, "Invalid"));
    assert!(
        err.message
            .contains("spec: Forbidden: pod updates may not change"),
        "{err}"
    );

    // Status updates change only status.
    let mut st = updated.clone();
    st.status.as_mut().unwrap().phase = Some("Running".into());
    st.metadata.labels = None;
    let st = api.update_status(&st).await.unwrap();
    assert_eq!(
        st.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );
    assert!(st.metadata.labels.is_some());
    assert_eq!(st.metadata.generation, Some(2));

    api.bind("default", "a", "node-1").await.unwrap();
    let err = api.bind("default", "a", "node-2").await.unwrap_err();
    assert_eq!(err.code, 409);

    // A finalizer holds a delete until it is removed.
    let patch = json!({"metadata": {"finalizers": ["test/hold"]}});
    let _: Pod = api
        .patch(NS, "a", PatchType::Strategic, &patch, false)
        .await
        .unwrap();
    let opts = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    let held = api.delete::<Pod>(NS, "a", &opts).await.unwrap();
    assert!(matches!(held, DeleteOutcome::Pending(p) if p.metadata.deletion_timestamp.is_some()));
    let clear = json!({"metadata": {"finalizers": null}});
    let _: Pod = api
        .patch(NS, "a", PatchType::Merge, &clear, false)
        .await
        .unwrap();
    let err = api.get::<Pod>(NS, "a").await.unwrap_err();
    assert_eq!(err.code, 404);

    // The watch saw every change of the selected pod, in order, ending with its deletion.
    let mut kinds = Vec::new();
    let deadline = Duration::from_secs(10);
    while kinds.last() != Some(&"DELETED") {
        let ev = tokio::time::timeout(deadline, watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        kinds.push(match ev {
            Event::Added(_) => "ADDED",
            Event::Modified(_) => "MODIFIED",
            Event::Deleted(_) => "DELETED",
            Event::Bookmark(_) => continue,
        });
    }
    assert_eq!(
        kinds,
        ["MODIFIED", "MODIFIED", "MODIFIED", "MODIFIED", "MODIFIED", "DELETED"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_compacted_revision_is_gone() {
    let c = kube::start_with_history(4).await;
    let api = c.server.client();
    let first = api.create(NS, &pod("p0", "x")).await.unwrap();
    let rv: u64 = first.metadata.resource_version.unwrap().parse().unwrap();
    for i in 1..10 {
        api.create(NS, &pod(&format!("p{i}"), "x")).await.unwrap();
    }
    let mut w = api
        .watch::<Pod>(NS, &Selectors::default(), Some(rv))
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!((err.code, err.reason), (410, "Expired"));
    // Over HTTP the same is an ERROR event carrying a 410 Status.
    let url = format!(
        "{}/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}",
        c.url()
    );
    let out = c.kubectl(&["get", "--raw", &url[c.url().len()..]]).await;
    assert!(
        out.stdout.contains("\"type\":\"ERROR\"") && out.stdout.contains("410"),
        "{out:?}"
    );
}

/// A selector watch reports an object that starts matching as ADDED and one that stops
/// matching as DELETED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_watch_transitions() {
    let c = kube::start().await;
    let api = c.server.client();
    let sel = Selectors {
        labels: "app=x".into(),
        ..Default::default()
    };
    let mut w = api.watch::<Pod>(NS, &sel, None).await.unwrap();
    api.create(NS, &pod("p", "y")).await.unwrap();
    let relabel = |app: &str| json!({"metadata": {"labels": {"app": app}}});
    let _: Pod = api
        .patch(NS, "p", PatchType::Merge, &relabel("x"), false)
        .await
        .unwrap();
    let _: Pod = api
        .patch(NS, "p", PatchType::Merge, &relabel("z"), false)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            Event::Added(p) => seen.push(("ADDED", p.metadata.labels.unwrap()["app"].clone())),
            Event::Deleted(p) => seen.push(("DELETED", p.metadata.labels.unwrap()["app"].clone())),
            Event::Modified(_) => panic!("unexpected MODIFIED"),
            Event::Bookmark(_) => {}
        }
    }
    assert_eq!(
        seen,
        [("ADDED", "x".to_string()), ("DELETED", "z".to_string())]
    );
}
