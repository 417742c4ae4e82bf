//! Unit tests of [`super::desired`] and [`super::trigger`].

use k8s_openapi::api::core::v1::{Pod, Service};
use serde_json::json;

use super::desired::desired;

pub(super) fn svc(publish: bool) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": {"selector": {"app": "web"}, "publishNotReadyAddresses": publish,
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                           {"name": "metrics", "port": 9100, "targetPort": 9100}]}
    }))
    .unwrap()
}

pub(super) fn pod(name: &str, ip: &str, ready: bool, named: bool) -> Pod {
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
fn pods_in_the_services_subdomain_get_their_hostname() {
    let mut a = pod("web-0", "10.0.0.1", true, true);
    let spec = a.spec.as_mut().unwrap();
    spec.hostname = Some("web-0".into());
    spec.subdomain = Some("web".into());
    let mut b = pod("other", "10.0.0.2", true, true);
    let spec = b.spec.as_mut().unwrap();
    spec.hostname = Some("other".into());
    spec.subdomain = Some("elsewhere".into());
    let d = desired(&svc(false), [a, b].iter());
    let names: Vec<Option<String>> = d.slices[0]
        .endpoints
        .iter()
        .map(|e| e.hostname.clone())
        .collect();
    assert_eq!(names, [None, Some("web-0".to_string())]);
    let subset = &d.endpoints.subsets.unwrap()[0];
    let addrs = subset.addresses.as_ref().unwrap();
    assert_eq!(addrs[1].hostname.as_deref(), Some("web-0"));
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

mod trigger_time {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::{pod, svc};
    use crate::endpoints::desired::desired;
    use crate::endpoints::trigger::{
        endpoints_to_write, format_trigger_time, merge, slice_to_write, LAST_CHANGE_TRIGGER_TIME,
    };

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
    }

    fn annotation(
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Option<&str> {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(LAST_CHANGE_TRIGGER_TIME))
            .map(String::as_str)
    }

    #[test]
    fn formats_rfc3339_utc_with_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(format_trigger_time(t), "2023-11-14T22:13:20.123456789Z");
    }

    #[test]
    fn a_new_slice_is_written_with_the_trigger_time() {
        let pods = [pod("a", "10.0.0.1", true, true)];
        let want = desired(&svc(false), pods.iter()).slices.remove(0);
        let written = slice_to_write(None, want, Some(at(5))).expect("a new slice is written");
        assert_eq!(
            annotation(&written.metadata),
            Some(format_trigger_time(at(5)).as_str())
        );
    }

    #[test]
    fn an_unchanged_slice_is_not_written_and_keeps_its_annotation() {
        let pods = [pod("a", "10.0.0.1", true, true)];
        let want = desired(&svc(false), pods.iter()).slices.remove(0);
        let stored = slice_to_write(None, want.clone(), Some(at(5))).unwrap();
        // A later change (say, a pod label the selector ignores) that leaves the slice as it is.
        assert_eq!(
            slice_to_write(Some(&stored), want.clone(), Some(at(9))),
            None
        );
        assert_eq!(slice_to_write(Some(&stored), want, None), None);
    }

    #[test]
    fn a_changed_slice_gets_the_new_trigger_time() {
        let before = [pod("a", "10.0.0.1", false, true)];
        let after = [pod("a", "10.0.0.1", true, true)];
        let first = desired(&svc(false), before.iter()).slices.remove(0);
        let stored = slice_to_write(None, first, Some(at(5))).unwrap();
        let second = desired(&svc(false), after.iter()).slices.remove(0);
        let written =
            slice_to_write(Some(&stored), second, Some(at(7))).expect("readiness changed");
        assert_eq!(
            annotation(&written.metadata),
            Some(format_trigger_time(at(7)).as_str())
        );
    }

    #[test]
    fn a_change_without_a_trigger_drops_the_annotation() {
        let before = [pod("a", "10.0.0.1", true, true)];
        let after = [pod("a", "10.0.0.2", true, true)];
        let stored = slice_to_write(
            None,
            desired(&svc(false), before.iter()).slices.remove(0),
            Some(at(5)),
        )
        .unwrap();
        let want = desired(&svc(false), after.iter()).slices.remove(0);
        let written = slice_to_write(Some(&stored), want, None).expect("the address changed");
        assert_eq!(annotation(&written.metadata), None);
        assert_eq!(written.metadata.annotations, None);
    }

    #[test]
    fn endpoints_follow_the_same_rule() {
        let before = [pod("a", "10.0.0.1", false, true)];
        let after = [pod("a", "10.0.0.1", true, true)];
        let stored = endpoints_to_write(
            None,
            desired(&svc(false), before.iter()).endpoints,
            Some(at(1)),
        )
        .unwrap();
        assert_eq!(
            annotation(&stored.metadata),
            Some(format_trigger_time(at(1)).as_str())
        );
        let same = desired(&svc(false), before.iter()).endpoints;
        assert_eq!(endpoints_to_write(Some(&stored), same, Some(at(2))), None);
        let changed = desired(&svc(false), after.iter()).endpoints;
        let written = endpoints_to_write(Some(&stored), changed, Some(at(3))).unwrap();
        assert_eq!(
            annotation(&written.metadata),
            Some(format_trigger_time(at(3)).as_str())
        );
    }

    #[test]
    fn batched_changes_keep_the_earliest_time() {
        assert_eq!(merge(None, None), None);
        assert_eq!(merge(None, Some(at(4))), Some(at(4)));
        assert_eq!(merge(Some(at(4)), None), Some(at(4)));
        assert_eq!(merge(Some(at(4)), Some(at(2))), Some(at(2)));
        assert_eq!(merge(Some(at(2)), Some(at(4))), Some(at(2)));
    }
}
