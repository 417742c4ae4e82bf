//! Unit tests of [`super::desired`].

use k8s_openapi::api::core::v1::{Pod, Service};
use serde_json::json;

use super::desired::desired;

fn svc(publish: bool) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": {"selector": {"app": "web"}, "publishNotReadyAddresses": publish,
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                           {"name": "metrics", "port": 9100, "targetPort": 9100}]}
    }))
    .unwrap()
}

fn pod(name: &str, ip: &str, ready: bool, named: bool) -> Pod {
    let ports = if named {
        json!([{"name": "http", "containerPort": 8080}])
    } else {
        json!([])
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i", "ports": ports}]},
        "status": {"podIP": ip, "phase": "Running",
                   "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
    }))
    .unwrap()
}

#[test]
fn pods_without_the_named_port_get_their_own_slice() {
    let pods = [
        pod("a", "10.0.0.1", true, true),
        pod("b", "10.0.0.2", true, false),
    ];
    let d = desired(&svc(false), pods.iter());
    assert_eq!(d.slices.len(), 2);
    let mut port_sets: Vec<Vec<(String, i32)>> = d
        .slices
        .iter()
        .map(|s| {
            s.ports
                .iter()
                .flatten()
                .map(|p| (p.name.clone().unwrap(), p.port.unwrap()))
                .collect()
        })
        .collect();
    port_sets.sort();
    assert_eq!(
        port_sets,
        vec![
            vec![("http".to_string(), 8080), ("metrics".to_string(), 9100)],
            vec![("metrics".to_string(), 9100)],
        ]
    );
    assert_eq!(d.endpoints.subsets.unwrap().len(), 2);
}

#[test]
fn publish_not_ready_addresses_makes_every_endpoint_ready() {
    let pods = [pod("a", "10.0.0.1", false, true)];
    let d = desired(&svc(true), pods.iter());
    let c = d.slices[0].endpoints[0].conditions.clone().unwrap();
    assert_eq!(
        (c.ready, c.serving, c.terminating),
        (Some(true), Some(true), Some(false))
    );
    let d = desired(&svc(false), pods.iter());
    let c = d.slices[0].endpoints[0].conditions.clone().unwrap();
    assert_eq!(c.ready, Some(false));
    let subsets = d.endpoints.subsets.unwrap();
    assert!(subsets[0].addresses.is_none());
    assert_eq!(subsets[0].not_ready_addresses.as_ref().unwrap().len(), 1);
}

#[test]
fn no_pods_gives_one_empty_slice_and_no_subsets() {
    let d = desired(&svc(false), std::iter::empty());
    assert_eq!(d.slices.len(), 1);
    assert!(d.slices[0].endpoints.is_empty());
    assert!(d.endpoints.subsets.is_none());
}
