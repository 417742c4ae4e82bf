use serde_json::{json, Value};

use super::*;

fn range(mut items: Vec<Value>) -> Value {
    for i in &mut items {
        default_item(i);
    }
    json!({"metadata": {"name": "lr"}, "spec": {"limits": items}})
}

fn pod(containers: Value) -> Value {
    json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
}

#[test]
fn items_default_like_kubernetes() {
    let mut item = json!({"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"},
                          "default": {"memory": "256Mi"}});
    default_item(&mut item);
    assert_eq!(item["default"], json!({"cpu": "2", "memory": "256Mi"}));
    assert_eq!(
        item["defaultRequest"],
        json!({"cpu": "2", "memory": "256Mi"})
    );
    let mut pod_item = json!({"type": "Pod", "max": {"cpu": "2"}});
    default_item(&mut pod_item);
    assert!(pod_item.get("default").is_none());
}

#[test]
fn defaults_fill_only_what_is_missing_and_say_so() {
    let lr = range(vec![json!({"type": "Container",
        "default": {"cpu": "500m", "memory": "256Mi"},
        "defaultRequest": {"cpu": "100m", "memory": "128Mi"}})]);
    let mut p = pod(json!([
        {"name": "app", "image": "x"},
        {"name": "side", "image": "x", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}},
    ]));
    default_pod(std::slice::from_ref(&lr), &mut p);
    assert_eq!(
        p["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "100m", "memory": "128Mi"},
               "limits": {"cpu": "500m", "memory": "256Mi"}})
    );
    assert_eq!(
        p["spec"]["containers"][1]["resources"],
        json!({"requests": {"cpu": "1", "memory": "128Mi"},
               "limits": {"cpu": "1", "memory": "256Mi"}})
    );
    assert_eq!(
        p["metadata"]["annotations"][ANNOTATION],
        "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app; memory request for container side; memory limit for container side"
    );
    assert!(check_pod(&[lr], &p).is_empty());
}

#[test]
fn bounds_refuse_with_kubernetes_messages() {
    let lr = range(vec![
        json!({"type": "Container", "max": {"cpu": "1"}, "min": {"cpu": "100m"},
                               "maxLimitRequestRatio": {"memory": "2"}}),
    ]);
    let mut p = pod(json!([{"name": "app", "image": "x", "resources": {
        "limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "50m", "memory": "256Mi"}}}]));
    default_pod(std::slice::from_ref(&lr), &mut p);
    assert_eq!(
        check_pod(&[lr], &p),
        vec![
            "minimum cpu usage per Container is 100m, but request is 50m",
            "maximum cpu usage per Container is 1, but limit is 2",
            "memory max limit to request ratio per Container is 2, but provided ratio is 4.000000",
        ]
    );
}

#[test]
fn a_max_without_a_limit_is_refused() {
    // No default: the item's `max` is on memory, the container names none.
    let lr = json!({"spec": {"limits": [{"type": "Container", "max": {"memory": "1Gi"}}]}});
    let p = pod(json!([{"name": "app", "image": "x"}]));
    assert_eq!(
        check_pod(&[lr], &p),
        vec!["maximum memory usage per Container is 1Gi.  No limit is specified"]
    );
}

#[test]
fn pod_items_bound_the_sum_of_containers() {
    let lr = range(vec![json!({"type": "Pod", "max": {"cpu": "1"}})]);
    let p = pod(json!([
        {"name": "a", "image": "x", "resources": {"limits": {"cpu": "600m"}}},
        {"name": "b", "image": "x", "resources": {"limits": {"cpu": "600m"}}},
    ]));
    assert_eq!(
        check_pod(&[lr], &p),
        vec!["maximum cpu usage per Pod is 1, but limit is 1200m"]
    );
}

#[test]
fn claims_are_bounded_by_their_request() {
    let lr = range(vec![json!({"type": "PersistentVolumeClaim",
                               "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}})]);
    let claim = |size: &str| json!({"spec": {"resources": {"requests": {"storage": size}}}});
    assert!(check_claim(std::slice::from_ref(&lr), &claim("1Gi")).is_empty());
    assert_eq!(
        check_claim(std::slice::from_ref(&lr), &claim("5Gi")),
        vec!["maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"]
    );
    assert_eq!(
        check_claim(&[lr], &claim("500Mi")),
        vec!["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
    );
}
