use serde_json::{json, Value};

use super::*;

fn pod(resources: Value) -> Value {
    json!({"metadata": {"name": "p"},
           "spec": {"containers": [{"name": "app", "image": "x", "resources": resources}]}})
}

fn quota(hard: Value) -> Value {
    json!({"metadata": {"name": "q"}, "spec": {"hard": hard}})
}

#[test]
fn a_pod_uses_its_count_and_compute_resources() {
    let p = pod(json!({"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}));
    let u = usage("Pod", "pods", &p);
    let s: Vec<String> = u.iter().map(|(k, a)| format!("{k}={a}")).collect();
    assert_eq!(
        s,
        [
            "count/pods=1",
            "cpu=250m",
            "limits.cpu=1",
            "memory=64Mi",
            "pods=1",
            "requests.cpu=250m",
            "requests.memory=64Mi",
        ]
    );
    let mut done = p.clone();
    done["status"] = json!({"phase": "Succeeded"});
    assert!(usage("Pod", "pods", &done).is_empty());
}

#[test]
fn services_count_their_node_ports() {
    let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
    let u = usage("Service", "services", &svc);
    assert_eq!(u["services"].to_string(), "1");
    assert_eq!(u["services.nodeports"].to_string(), "2");
    assert_eq!(u["services.loadbalancers"].to_string(), "0");
    assert_eq!(u["count/services"].to_string(), "1");
}

#[test]
fn claims_count_storage_per_class() {
    let pvc = json!({"spec": {"storageClassName": "fast",
                              "resources": {"requests": {"storage": "2Gi"}}}});
    let u = usage("PersistentVolumeClaim", "persistentvolumeclaims", &pvc);
    assert_eq!(u["requests.storage"].to_string(), "2Gi");
    assert_eq!(
        u["fast.storageclass.storage.k8s.io/requests.storage"].to_string(),
        "2Gi"
    );
    assert_eq!(
        u["fast.storageclass.storage.k8s.io/persistentvolumeclaims"].to_string(),
        "1"
    );
}

#[test]
fn other_kinds_count_by_resource_name() {
    let u = usage("", "widgets.example.com", &json!({}));
    assert_eq!(u.keys().collect::<Vec<_>>(), ["count/widgets.example.com"]);
    assert!(usage("ConfigMap", "configmaps", &json!({})).contains_key("configmaps"));
}

#[test]
fn scoped_quotas_track_matching_pods_only() {
    let mut q = quota(json!({"pods": "2"}));
    q["spec"]["scopes"] = json!(["BestEffort", "NotTerminating"]);
    assert!(tracks(&q, "Pod", &pod(json!({}))));
    assert!(!tracks(&q, "Pod", &pod(json!({"requests": {"cpu": "1"}}))));
    assert!(!tracks(&q, "ConfigMap", &json!({})));
    let mut deadline = pod(json!({}));
    deadline["spec"]["activeDeadlineSeconds"] = json!(30);
    assert!(!tracks(&q, "Pod", &deadline));

    let mut pc = quota(json!({"pods": "2"}));
    pc["spec"]["scopeSelector"] = json!({"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]});
    let mut high = pod(json!({}));
    high["spec"]["priorityClassName"] = json!("high");
    assert!(tracks(&pc, "Pod", &high));
    assert!(!tracks(&pc, "Pod", &pod(json!({}))));
}

#[test]
fn compute_quotas_need_explicit_requests() {
    let q = quota(json!({"requests.cpu": "1", "limits.memory": "1Gi"}));
    assert_eq!(
        missing_explicit(&q, &pod(json!({"requests": {"cpu": "100m"}}))).as_deref(),
        Some("must specify limits.memory for: app")
    );
    assert_eq!(
        missing_explicit(&quota(json!({"pods": "1"})), &pod(json!({}))),
        None
    );
}

#[test]
fn admission_refuses_what_exceeds_hard() {
    let hard = resources::list(Some(&json!({"pods": "2", "requests.cpu": "1"})));
    let used = resources::list(Some(&json!({"pods": "1", "requests.cpu": "800m"})));
    let req = resources::list(Some(
        &json!({"pods": "1", "requests.cpu": "500m", "count/pods": "1"}),
    ));
    assert_eq!(
        admit("compute", &hard, &used, &req),
        Err("exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=800m, limited: requests.cpu=1".into())
    );
    let small = resources::list(Some(&json!({"pods": "1", "requests.cpu": "200m"})));
    let new = admit("compute", &hard, &used, &small).unwrap();
    assert_eq!(resources::pretty(&new), "pods=2,requests.cpu=1");
}
