//! `kubectl drain`: pods/eviction honours PodDisruptionBudgets (429, drain retries and
//! gives up at its timeout), then evicts once the budget allows.

mod kube;

use kube::start;

const WORLD: &str = r#"apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Pod
metadata: {name: web-a, labels: {app: web}}
spec:
  nodeName: n1
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, labels: {app: web}}
spec:
  nodeName: n1
  containers: [{name: c, image: busybox}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
"#;

const READY: &str =
    r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_respects_the_disruption_budget_then_evicts() {
    let c = start().await;
    let out = c.apply(WORLD, &[]).await;
    assert!(out.ok, "{out:?}");
    for p in ["web-a", "web-b"] {
        c.ok(&[
            "patch",
            "pod",
            p,
            "--subresource=status",
            "--type=merge",
            "-p",
            READY,
        ])
        .await;
    }
    let drain = ["drain", "n1", "--force", "--grace-period=0", "--timeout=4s"];
    let blocked = c.kubectl(&drain).await;
    assert!(!blocked.ok, "{blocked:?}");
    assert!(
        blocked.stderr.contains("disruption budget"),
        "{}",
        blocked.stderr
    );
    let node = c.json(&["get", "node", "n1"]).await;
    assert_eq!(node["spec"]["unschedulable"], true, "cordoned first");
    let pods = c.ok(&["get", "pods", "-o", "name"]).await;
    assert_eq!(pods.lines().count(), 2, "nothing evicted: {pods}");

    c.ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":1}}"#,
    ])
    .await;
    let partial = c.kubectl(&drain).await;
    assert!(
        !partial.ok,
        "the second pod is the budget's last: {partial:?}"
    );
    let pods = c.ok(&["get", "pods", "-o", "name"]).await;
    assert_eq!(pods.lines().count(), 1, "one evicted: {pods}");

    c.ok(&["delete", "pdb", "web"]).await;
    let done = c.kubectl(&drain).await;
    assert!(done.ok, "{done:?}");
    assert!(done.stdout.contains("drained"), "{}", done.stdout);
    assert_eq!(c.ok(&["get", "pods", "-o", "name"]).await.trim(), "");
}
