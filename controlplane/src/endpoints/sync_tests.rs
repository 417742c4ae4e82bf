//! [`super::controller::sync`] through the real store (one replica in a tempdir): the
//! trigger-time annotation is written with a changed slice and left alone otherwise.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::controller::sync;
use super::reflector::Store;
use super::trigger::{format_trigger_time, LAST_CHANGE_TRIGGER_TIME};
use crate::api::bootstrap::ensure_namespaces;
use crate::api::client::Selectors;
use crate::api::objects::Objects;
use crate::api::ApiClient;
use crate::{ControlPlane, NodeConfig};

const WAIT: Duration = Duration::from_secs(20);

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
}

fn store<K>(key: &str, obj: K) -> Store<K> {
    Arc::new(RwLock::new(BTreeMap::from([(key.to_string(), obj)])))
}

async fn slice(c: &ApiClient) -> EndpointSlice {
    let mut items = c
        .list::<EndpointSlice>(Some("default"), &Selectors::default())
        .await
        .unwrap()
        .items;
    assert_eq!(items.len(), 1, "{items:?}");
    items.remove(0)
}

fn trigger_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<String> {
    meta.annotations
        .as_ref()?
        .get(LAST_CHANGE_TRIGGER_TIME)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotation_follows_slice_changes_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::new(1, dir.path(), "127.0.0.1:0".parse().unwrap());
    cfg.heartbeat = Duration::from_millis(50);
    cfg.election_timeout = (Duration::from_millis(150), Duration::from_millis(300));
    let cp = Arc::new(ControlPlane::start(cfg).await.unwrap());
    cp.bootstrap().await.unwrap();
    let client = ApiClient::new(Objects::new(cp.clone()));
    let deadline = tokio::time::Instant::now() + WAIT;
    while ensure_namespaces(&client).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "no writable store");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let svc: Service = super::tests::svc(false);
    let services = store("default/web", svc);
    let pods: Store<Pod> = store("default/a", super::tests::pod("a", "10.0.0.1", false, true));

    sync(&client, &services, &pods, "default/web", Some(at(1)))
        .await
        .unwrap();
    let first = slice(&client).await;
    assert_eq!(
        trigger_of(&first.metadata),
        Some(format_trigger_time(at(1)))
    );
    let ep = client
        .get::<Endpoints>(Some("default"), "web")
        .await
        .unwrap();
    assert_eq!(trigger_of(&ep.metadata), Some(format_trigger_time(at(1))));

    // A change that leaves the slice as it is: no write, the annotation stays.
    sync(&client, &services, &pods, "default/web", Some(at(2)))
        .await
        .unwrap();
    let same = slice(&client).await;
    assert_eq!(
        same.metadata.resource_version,
        first.metadata.resource_version
    );
    assert_eq!(trigger_of(&same.metadata), Some(format_trigger_time(at(1))));

    // The pod becomes ready: slice and Endpoints are written with the new time.
    pods.write().unwrap().insert(
        "default/a".into(),
        super::tests::pod("a", "10.0.0.1", true, true),
    );
    sync(&client, &services, &pods, "default/web", Some(at(3)))
        .await
        .unwrap();
    let changed = slice(&client).await;
    assert_ne!(
        changed.metadata.resource_version,
        first.metadata.resource_version
    );
    assert_eq!(
        trigger_of(&changed.metadata),
        Some(format_trigger_time(at(3)))
    );
    let ep = client
        .get::<Endpoints>(Some("default"), "web")
        .await
        .unwrap();
    assert_eq!(trigger_of(&ep.metadata), Some(format_trigger_time(at(3))));
}
