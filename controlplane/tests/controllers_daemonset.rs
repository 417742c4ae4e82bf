//! DaemonSet controller with the real kubectl: one pod per fitting node (pinned by node
//! affinity, with the daemon tolerations), none on a node with an untolerated taint, a pod
//! for a node that joins, eviction by a `NoExecute` taint, and a rolling update that never
//! has more than `maxUnavailable` nodes without an available pod, its history and undo.

mod ctrl;
mod kube;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use skiff_controlplane::api::ApiClient;

const NODES: &str = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Node, metadata: {name: n1, labels: {role: worker}}}
- {apiVersion: v1, kind: Node, metadata: {name: n2, labels: {role: worker}}}
- apiVersion: v1
  kind: Node
  metadata: {name: n3, labels: {role: worker}}
  spec: {taints: [{key: dedicated, value: db, effect: NoSchedule}]}
- {apiVersion: v1, kind: Node, metadata: {name: n4, labels: {role: edge}}}
"#;

const AGENT: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {role: worker}
      containers: [{name: c, image: "busybox:1", command: ["sleep", "3600"]}]
"#;

/// The node each live pod of the set is pinned to.
fn node_of(p: &Pod) -> String {
    let terms = p
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.clone())
        .unwrap_or_default();
    let fields = terms[0].match_fields.as_ref().unwrap();
    assert_eq!(fields[0].key, "metadata.name");
    fields[0].values.as_ref().unwrap()[0].clone()
}

async fn pods_by_node(api: &ApiClient) -> BTreeMap<String, Vec<Pod>> {
    let mut m: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for p in ctrl::live_pods(api, "default", "app=agent").await {
        m.entry(node_of(&p)).or_default().push(p);
    }
    m
}

async fn wait_nodes(api: &ApiClient, want: &[&str]) -> BTreeMap<String, Vec<Pod>> {
    ctrl::eventually(&format!("daemon pods on {want:?}"), || async {
        let m = pods_by_node(api).await;
        let ok = m.keys().map(String::as_str).eq(want.iter().copied())
            && m.values().all(|v| v.len() == 1);
        ok.then_some(m)
    })
    .await
}

fn hash(p: &Pod) -> String {
    p.metadata.labels.as_ref().unwrap()["controller-revision-hash"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_runs_one_pod_on_every_fitting_node() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    let out = c.apply(NODES, &[]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(c.apply(AGENT, &[]).await.ok);
    let ds: DaemonSet = api.get(Some("default"), "agent").await.unwrap();
    // n3's taint is not tolerated, n4 is not a worker.
    let m = wait_nodes(&api, &["n1", "n2"]).await;
    let pod = &m["n1"][0];
    let r = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((r.kind.as_str(), r.controller), ("DaemonSet", Some(true)));
    assert_eq!(&r.uid, ds.metadata.uid.as_ref().unwrap());
    let tolerations = pod.spec.as_ref().unwrap().tolerations.clone().unwrap();
    assert!(tolerations.iter().any(|t| {
        t.key.as_deref() == Some("node.kubernetes.io/unreachable")
            && t.effect.as_deref() == Some("NoExecute")
    }));

    assert_eq!(ctrl::ready_all(&api, "default", "app=agent").await, 2);
    c.ok(&["rollout", "status", "daemonset/agent", "--timeout=30s"])
        .await;
    let ds: DaemonSet = api.get(Some("default"), "agent").await.unwrap();
    let s = ds.status.unwrap();
    assert_eq!(
        (
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.number_ready,
            s.number_available,
            s.updated_number_scheduled,
            s.number_misscheduled
        ),
        (2, 2, 2, Some(2), Some(2), 0)
    );

    // A node that starts matching gets a pod; a NoExecute taint evicts one.
    c.ok(&["label", "node", "n4", "role=worker", "--overwrite"])
        .await;
    wait_nodes(&api, &["n1", "n2", "n4"]).await;
    c.ok(&["taint", "node", "n1", "evict=now:NoExecute"]).await;
    wait_nodes(&api, &["n2", "n4"]).await;
    // Tolerating the taint brings it back.
    c.ok(&["taint", "node", "n1", "evict=now:NoExecute-"]).await;
    wait_nodes(&api, &["n1", "n2", "n4"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_change_rolls_out_one_node_at_a_time() {
    let (c, _ctrl) = ctrl::start().await;
    let api = c.server.client();
    let out = c.apply(NODES, &[]).await;
    assert!(out.ok, "{}", out.stderr);
    c.ok(&["label", "node", "n4", "role=worker", "--overwrite"])
        .await;
    assert!(c.apply(AGENT, &[]).await.ok);
    let old = wait_nodes(&api, &["n1", "n2", "n4"]).await;
    ctrl::ready_all(&api, "default", "app=agent").await;
    c.ok(&["rollout", "status", "daemonset/agent", "--timeout=30s"])
        .await;
    let old_hash = hash(&old["n1"][0]);

    c.ok(&["set", "image", "daemonset/agent", "c=busybox:2"])
        .await;
    // Play the kubelet (new pods become ready) and check the budget at every step:
    // maxUnavailable 1 means at most one node lacks a ready pod.
    let new_hash = ctrl::eventually("every node on the new template", || async {
        let m = pods_by_node(&api).await;
        let lacking = ["n1", "n2", "n4"]
            .iter()
            .filter(|n| !m.get(**n).is_some_and(|v| v.iter().any(ctrl::is_ready)))
            .count();
        assert!(lacking <= 1, "{lacking} nodes without a ready pod");
        ctrl::ready_all(&api, "default", "app=agent").await;
        let hashes: Vec<String> = m.values().flatten().map(hash).collect();
        let done = m.len() == 3
            && m.values().all(|v| v.len() == 1)
            && hashes.iter().all(|h| *h != old_hash);
        done.then(|| hashes[0].clone())
    })
    .await;
    assert_ne!(new_hash, old_hash);
    ctrl::ready_all(&api, "default", "app=agent").await;
    c.ok(&["rollout", "status", "daemonset/agent", "--timeout=30s"])
        .await;
    let image = pods_by_node(&api).await["n2"][0]
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("busybox:2"));

    // Each template is a ControllerRevision: history lists both, undo brings back the first.
    let history = c.ok(&["rollout", "history", "daemonset/agent"]).await;
    assert_eq!(ctrl::revisions(&history), ["1", "2"], "{history}");
    c.ok(&["rollout", "undo", "daemonset/agent"]).await;
    ctrl::eventually("every node back on the first template", || async {
        let m = pods_by_node(&api).await;
        ctrl::ready_all(&api, "default", "app=agent").await;
        let back = m.len() == 3 && m.values().flatten().all(|p| hash(p) == old_hash);
        back.then_some(())
    })
    .await;
    let history = c.ok(&["rollout", "history", "daemonset/agent"]).await;
    assert_eq!(ctrl::revisions(&history), ["2", "3"], "{history}");

    // Deleting the set deletes its pods (garbage collector).
    c.ok(&["delete", "daemonset", "agent"]).await;
    ctrl::eventually("no pods left", || async {
        pods_by_node(&api).await.is_empty().then_some(())
    })
    .await;
}
