//! LimitRanges and ResourceQuotas with the real kubectl: defaults and bounds on pods, quota
//! refusals with Kubernetes' messages, `status.used` kept by the controller, a ReplicaSet
//! held at its quota (a `FailedCreate` event) that grows when the quota does, and
//! concurrent creates that never overrun a quota.

mod ctrl;
mod kube;

use serde_json::{json, Value};
use skiff_controlplane::api::objects::WriteOptions;
use skiff_controlplane::api::registry;

const LIMITS: &str = r#"
apiVersion: v1
kind: LimitRange
metadata: {name: limits}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 100m}
    max: {cpu: 1}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_ranges_default_and_bound_containers() {
    let (c, _ctrl) = ctrl::start().await;
    assert!(c.apply(LIMITS, &[]).await.ok);
    let lr = c.json(&["get", "limitrange", "limits"]).await;
    assert_eq!(
        lr["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "100m", "memory": "256Mi"}),
        "a default limit is the default request too"
    );
    c.ok(&["run", "plain", "--image=busybox", "--restart=Never"])
        .await;
    let pod = c.json(&["get", "pod", "plain"]).await;
    assert_eq!(
        pod["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"},
               "requests": {"cpu": "100m", "memory": "256Mi"}})
    );
    assert_eq!(pod["status"]["qosClass"], "Burstable");
    let note = pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"]
        .as_str()
        .unwrap_or_default();
    assert!(
        note.starts_with("LimitRanger plugin set: cpu, memory request for container plain"),
        "{note}"
    );

    let big = r#"{"spec":{"containers":[{"name":"big","image":"busybox","resources":{"limits":{"cpu":"2"}}}]}}"#;
    refused(
        &c,
        &[
            "run",
            "big",
            "--image=busybox",
            "--restart=Never",
            "--overrides",
            big,
        ],
        "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2",
    )
    .await;
    let pods = c.ok(&["get", "pods", "-o", "name"]).await;
    assert_eq!(pods.trim(), "pod/plain", "the refused pod was not written");

    // Malformed ranges and quotas are refused with the field at fault.
    let bad = "apiVersion: v1\nkind: LimitRange\nmetadata: {name: bad}\nspec:\n  limits:\n  - {type: Container, min: {cpu: \"2\"}, max: {cpu: \"1\"}}\n";
    let out = c.apply(bad, &[]).await;
    assert!(
        out.stderr.contains(
            "spec.limits[0][cpu]: Invalid value: \"2\": min value 2 is greater than max value 1"
        ),
        "{out:?}"
    );
    let bad = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: bad}\nspec: {hard: {pods: \"1.5\"}}\n";
    let out = c.apply(bad, &[]).await;
    assert!(out.stderr.contains("spec.hard[pods]"), "{out:?}");
    assert!(out.stderr.contains("must be an integer"), "{out:?}");
}

/// Runs kubectl and asserts the server refused the request with `why`.
async fn refused(c: &kube::Cluster, args: &[&str], why: &str) {
    let out = c.kubectl(args).await;
    assert!(!out.ok, "{out:?}");
    assert!(out.stderr.contains(why), "{}", out.stderr);
}

/// The `FailedCreate` events, printed with `-o <output>`.
async fn failed_create_events(c: &kube::Cluster, output: &str) -> String {
    c.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=FailedCreate",
        "-o",
        output,
    ])
    .await
}

fn used(q: &Value, name: &str) -> Option<String> {
    q.pointer(&format!("/status/used/{name}"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

const RS: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: busybox}]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_hold_a_replica_set_and_count_what_exists() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    c.ok(&[
        "create",
        "quota",
        "q",
        "--hard=pods=2,count/configmaps=10,services.nodeports=1",
    ])
    .await;
    let q = ctrl::eventually("the quota's first count", || async {
        let q = c.json(&["get", "quota", "q"]).await;
        used(&q, "pods").is_some().then_some(q)
    })
    .await;
    assert_eq!(q["status"]["hard"], q["spec"]["hard"]);
    assert_eq!(used(&q, "pods").as_deref(), Some("0"));

    assert!(c.apply(RS, &[]).await.ok);
    ctrl::eventually("the FailedCreate event", || async {
        let ev = failed_create_events(&c, "jsonpath={.items[*].message}").await;
        ev.contains("exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2")
            .then_some(())
    })
    .await;
    assert_eq!(ctrl::live_pods(&api, "default", "app=web").await.len(), 2);
    let rs = ctrl::eventually("the ReplicaFailure condition", || async {
        let rs = c.json(&["get", "rs", "web"]).await;
        let conds = rs["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conds.into_iter().find(|c| c["type"] == "ReplicaFailure")
    })
    .await;
    assert_eq!(rs["reason"], "FailedCreate");
    // Retried with backoff meanwhile, the same refusal is recorded once.
    let events = failed_create_events(&c, "name").await;
    assert_eq!(events.lines().count(), 1, "{events}");
    assert!(
        rs["message"]
            .as_str()
            .unwrap_or("")
            .contains("exceeded quota: q"),
        "{rs}"
    );
    let q = c.json(&["get", "quota", "q"]).await;
    assert_eq!(used(&q, "pods").as_deref(), Some("2"));
    let describe = c.ok(&["describe", "quota", "q"]).await;
    assert!(
        describe
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "2", "2"]),
        "{describe}"
    );

    let table = c.ok(&["get", "quota", "q"]).await;
    assert_eq!(kube::header(&table), ["NAME", "AGE", "REQUEST", "LIMIT"]);
    assert!(table.contains("pods: 2/2"), "{table}");

    c.ok(&[
        "patch",
        "quota",
        "q",
        "--type=merge",
        "-p",
        r#"{"spec":{"hard":{"pods":"3"}}}"#,
    ])
    .await;
    ctrl::eventually("the third pod", || async {
        (ctrl::live_pods(&api, "default", "app=web").await.len() == 3).then_some(())
    })
    .await;
    ctrl::eventually("the failure cleared", || async {
        let rs = c.json(&["get", "rs", "web"]).await;
        let conds = rs["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (!conds.iter().any(|c| c["type"] == "ReplicaFailure")).then_some(())
    })
    .await;

    // A NodePort Service uses one node port per port: the second is refused.
    refused(
        &c,
        &["create", "service", "nodeport", "np", "--tcp=80:8080,81:8081"],
        "exceeded quota: q, requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1",
    )
    .await;

    // Deleting pods gives their share back once the controller recounts.
    c.ok(&["scale", "rs", "web", "--replicas=0"]).await;
    ctrl::eventually("pods given back", || async {
        let q = c.json(&["get", "quota", "q"]).await;
        (used(&q, "pods").as_deref() == Some("0")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_quotas_need_requests_and_concurrent_creates_never_overrun() {
    let (c, _ctrl) = ctrl::start().await;
    c.ok(&[
        "create",
        "quota",
        "compute",
        "--hard=requests.cpu=1,requests.memory=1Gi",
    ])
    .await;
    refused(
        &c,
        &["run", "bare", "--image=busybox", "--restart=Never"],
        "pods \"bare\" is forbidden: failed quota: compute: must specify requests.cpu for: bare; requests.memory for: bare",
    )
    .await;
    c.ok(&["run", "sized", "--image=busybox", "--restart=Never", "--overrides",
           r#"{"spec":{"containers":[{"name":"sized","image":"busybox","resources":{"requests":{"cpu":"600m","memory":"256Mi"}}}]}}"#])
        .await;
    let more = r#"{"spec":{"containers":[{"name":"more","image":"busybox","resources":{"requests":{"cpu":"600m","memory":"256Mi"}}}]}}"#;
    refused(
        &c,
        &["run", "more", "--image=busybox", "--restart=Never", "--overrides", more],
        "exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1",
    )
    .await;

    // Requests default to limits, so limits alone satisfy a quota on requests.
    let limited = r#"{"spec":{"containers":[{"name":"lim","image":"busybox","resources":{"limits":{"cpu":"100m","memory":"64Mi"}}}]}}"#;
    c.ok(&[
        "run",
        "lim",
        "--image=busybox",
        "--restart=Never",
        "--overrides",
        limited,
    ])
    .await;
    let pod = c.json(&["get", "pod", "lim"]).await;
    assert_eq!(pod["status"]["qosClass"], "Guaranteed");
    let q = c.json(&["get", "quota", "compute"]).await;
    assert_eq!(used(&q, "requests.cpu").as_deref(), Some("700m"));

    c.ok(&["create", "namespace", "race"]).await;
    c.ok(&[
        "create",
        "quota",
        "five",
        "-n",
        "race",
        "--hard=configmaps=5",
    ])
    .await;
    let api = c.server.client();
    let objects = api.objects();
    let info = registry::by_kind("v1", "ConfigMap").unwrap();
    // Thirty creates at once, against a quota of five: exactly five get in.
    let creates = (0..30).map(|i| {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": format!("cm-{i}")}, "data": {"i": i.to_string()}});
        objects.create(info, Some("race"), cm, WriteOptions::default())
    });
    let results = futures_util::future::join_all(creates).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!((e.code, e.reason), (403, "Forbidden"), "{e:?}");
    }
    assert_eq!(ok, 5);
    let stored = c
        .ok(&["get", "configmaps", "-n", "race", "-o", "name"])
        .await;
    assert_eq!(stored.lines().count(), 5, "{stored}");
    let q = c.json(&["get", "quota", "five", "-n", "race"]).await;
    assert_eq!(used(&q, "configmaps").as_deref(), Some("5"));
}
