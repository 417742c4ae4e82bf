//! HorizontalPodAutoscaler with the real kubectl and a stand-in kubelet: the pods' CPU
//! (read from the kubelet's `/metrics/resource`, as metrics-server does) against their
//! request drives the Deployment's scale up to `maxReplicas`, and the status carries the
//! utilization `kubectl get hpa` shows; `kubectl top` reads the same kubelet metrics.

mod ctrl;
mod kube;

use std::time::Instant;

use axum::routing::get;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use skiff_controlplane::api::ApiClient;

const BURN: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: burn}
spec:
  replicas: 1
  selector: {matchLabels: {app: burn}}
  template:
    metadata: {labels: {app: burn}}
    spec:
      containers:
      - {name: c, image: "busybox:1", resources: {requests: {cpu: 100m}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: burn}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burn}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"#;

/// A kubelet's resource metrics where every `app=burn` pod has used half a core since
/// `start` (500 % of its 100m request).
async fn metrics(api: ApiClient, start: Instant) -> String {
    let secs = start.elapsed().as_secs_f64() * 0.5;
    let mut out = format!(
        "node_cpu_usage_seconds_total {}\nnode_memory_working_set_bytes 1073741824\n\
         # TYPE container_cpu_usage_seconds_total counter\n",
        secs * 4.0
    );
    for p in ctrl::live_pods(&api, "default", "app=burn").await {
        let name = p.metadata.name.unwrap_or_default();
        out.push_str(&format!(
            "container_cpu_usage_seconds_total{{container=\"c\",namespace=\"default\",pod=\"{name}\"}} {secs}\n"
        ));
    }
    out
}

/// Play the kubelet: bind every `app=burn` pod to n1 and mark it ready.
async fn play_kubelet(api: &ApiClient) {
    for p in ctrl::live_pods(api, "default", "app=burn").await {
        let name = p.metadata.name.clone().unwrap();
        if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none() {
            let _ = api.bind("default", &name, "n1").await;
        }
        if !ctrl::is_ready(&p) {
            ctrl::mark_ready(api, "default", &name).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_above_the_target_scales_the_deployment_up_to_max_replicas() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (served, start) = (api.clone(), Instant::now());
    let app = axum::Router::new().route(
        "/metrics/resource",
        get(move || metrics(served.clone(), start)),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let node = format!(
        r#"{{"apiVersion": "v1", "kind": "Node", "metadata": {{"name": "n1"}},
            "status": {{"addresses": [{{"type": "InternalIP", "address": "127.0.0.1"}}],
                        "daemonEndpoints": {{"kubeletEndpoint": {{"Port": {port}}}}}}}}}"#
    );
    assert!(c.apply(&node, &[]).await.ok);
    assert!(c.apply(BURN, &[]).await.ok);

    // Play the kubelet until the HPA scaled.
    let api2 = api.clone();
    ctrl::eventually_within(
        "the Deployment scaled to 3 by the HPA",
        std::time::Duration::from_secs(60),
        || async {
            play_kubelet(&api2).await;
            let d: Deployment = api2.get(Some("default"), "burn").await.ok()?;
            let h: HorizontalPodAutoscaler = api2.get(Some("default"), "burn").await.ok()?;
            let written = h.status?.desired_replicas == 3;
            (d.spec?.replicas == Some(3) && written).then_some(())
        },
    )
    .await;
    let hpa: HorizontalPodAutoscaler = api.get(Some("default"), "burn").await.unwrap();
    let s = hpa.status.unwrap();
    assert_eq!(s.desired_replicas, 3);
    assert!(s.last_scale_time.is_some());
    let cpu = &s.current_metrics.unwrap()[0];
    let used = cpu
        .resource
        .as_ref()
        .unwrap()
        .current
        .average_utilization
        .unwrap();
    assert!((400..=600).contains(&used), "utilization {used}");
    let limited = s
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "ScalingLimited")
        .unwrap();
    assert_eq!(limited.reason.as_deref(), Some("TooManyReplicas"));
    let table = c.ok(&["get", "hpa", "burn"]).await;
    assert!(table.contains("%/50%"), "{table}");

    // The same reads serve the metrics API: kubectl top. The third pod shows once it is
    // bound and has been sampled twice (a rate needs two points).
    let top = ctrl::eventually_within(
        "kubectl top lists the three pods",
        std::time::Duration::from_secs(60),
        || async {
            play_kubelet(&api).await;
            let top = c
                .kubectl(&["top", "pod", "-l", "app=burn", "--no-headers"])
                .await;
            (top.ok && top.stdout.lines().count() == 3).then_some(top.stdout)
        },
    )
    .await;
    let lines: Vec<&str> = top.lines().collect();
    for l in lines {
        let cpu: u32 = l
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_end_matches('m')
            .parse()
            .unwrap();
        assert!((400..=600).contains(&cpu), "{l}");
    }
    let top = c.ok(&["top", "node", "--no-headers"]).await;
    assert!(top.starts_with("n1 ") && top.contains("1024Mi"), "{top}");
}

/// `kubectl autoscale` posts autoscaling/v1: stored as v2 with a CPU Utilization metric,
/// read back in either version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_autoscale_creates_a_cpu_autoscaler() {
    let c = kube::start().await;
    let deploy = BURN.split("---").next().unwrap();
    assert!(c.apply(deploy, &[]).await.ok);
    let out = c
        .ok(&[
            "autoscale",
            "deployment",
            "burn",
            "--cpu-percent=60",
            "--min=2",
            "--max=5",
        ])
        .await;
    assert!(out.contains("autoscaled"), "{out}");
    let v2 = c.json(&["get", "hpa", "burn", "-o", "json"]).await;
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(v2["spec"]["minReplicas"], 2);
    assert_eq!(
        v2.pointer("/spec/metrics/0/resource/target/averageUtilization"),
        Some(&serde_json::json!(60))
    );
    let raw = c
        .ok(&[
            "get",
            "--raw",
            "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/burn",
        ])
        .await;
    let v1: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
    assert_eq!(v1["spec"]["maxReplicas"], 5);
    c.ok(&["delete", "hpa", "burn"]).await;
}
