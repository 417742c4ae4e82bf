//! Root: the whole cluster end to end, as a user runs it: 3 nodes, each running a
//! control-plane replica (`skiff server`, Raft) and an agent (kubelet + eBPF service
//! proxy) as real processes; workloads applied with the real kubectl. The checks, in
//! order (each builds on the state the previous one left):
//!
//! 1. a Deployment of 6 replicas spreads over the nodes;
//! 2. its ClusterIP answers from a pod on every node, every backend gets traffic, and
//!    the backends see the client pod's own address;
//! 3. its NodePort answers an external client on every node's address, with backends on
//!    other nodes reached through SNAT;
//! 4. `externalTrafficPolicy: Local` uses local backends only and keeps the client IP;
//! 5. `sessionAffinity: ClientIP` sticks;
//! 6. scaling down drains: established connections to terminating pods keep working
//!    through their grace period, new ones avoid them, and the others never notice;
//!    scaling to 0: while every endpoint is terminating, new connections still reach
//!    them (KEP-1669's fallback);
//! 7. deleting a Service removes its map entries and conntrack entries on every node;
//! 8. every agent's /metrics measures the network-programming latency of every change;
//! 9. tests/e2e/kubectl-e2e.sh (kubectl only: apply, get, describe, logs, scale,
//!    rollout, a Job to completion, delete) passes against the cluster;
//! 10. killing a node (agent and pod processes) makes its endpoints disappear and its
//!     pods come back on the other nodes.

#[path = "cluster_e2e/checks.rs"]
mod checks;

use std::time::Duration;

use skiff_tests::cluster::{echo_box_layout, Cluster, ClusterSpec, ECHO_BOX as IMAGE};
use skiff_tests::kubelet_lab::{busybox_layer, write_layout};
use skiff_tests::wait;

/// What tests/e2e/kubectl-e2e.sh deploys.
const BUSYBOX: &str = "skiff.local/busybox:latest";
const NODES: usize = 3;

fn client_pods(c: &Cluster) -> String {
    (0..NODES)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: client-{i}, labels: {{app: client}}}}\n\
                 spec:\n  nodeSelector: {{kubernetes.io/hostname: {node}}}\n  \
                 terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    \
                 image: {IMAGE}\n    imagePullPolicy: Never\n    command: [sleep, \"3600\"]\n",
                node = c.node(i).name()
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

#[test]
fn services_across_three_nodes() {
    let work = std::env::temp_dir().join(format!("skiff-cluster-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let busybox = work.join("busybox");
    write_layout(&busybox, BUSYBOX, &[busybox_layer()], vec!["sh".into()]);
    let echo = std::path::Path::new(env!("CARGO_BIN_EXE_skiff-echo"));
    let images = vec![echo_box_layout(&work, echo), busybox];
    let mut spec = ClusterSpec::new(NODES, 3, images, work.clone());
    // A node is declared gone after 6 s without a heartbeat, its pods evicted 4 s later.
    spec.server_args = ["--node-grace-s", "6", "--pod-eviction-s", "4"]
        .map(String::from)
        .to_vec();
    spec.agent_args = [
        "--heartbeat-interval-ms",
        "1000",
        "--ct-gc-interval-ms",
        "1000",
    ]
    .map(String::from)
    .to_vec();
    let mut c =
        Cluster::start(spec, &|m| eprintln!("[cluster] {m}")).expect("starting the cluster");
    eprintln!("[cluster] logs in {}", work.join("logs").display());

    c.apply("workload", include_str!("cluster_e2e/manifests.yaml"))
        .unwrap();
    c.apply("clients", &client_pods(&c)).unwrap();
    wait::until(Duration::from_secs(180), "6 echo replicas ready", || {
        (c.jsonpath(&["deployment", "echo"], "{.status.readyReplicas}")
            .ok()?
            == "6")
            .then_some(())
    });
    let clients = wait::until(
        Duration::from_secs(120),
        "a client pod on every node",
        || {
            let pods = c.pods("app=client").ok()?;
            (pods.len() == NODES).then_some(pods)
        },
    );

    checks::spread(&c);
    checks::neighbours_managed(&c);
    checks::cluster_ip(&c, &clients);
    checks::node_port(&c);
    checks::local_policy(&c);
    checks::affinity(&c, &clients);
    checks::scale_down_drains(&c, &clients[0]);
    checks::all_terminating_still_serve(&c, &clients[1]);
    checks::service_delete_cleans_maps(&c, &clients[0]);
    checks::programming_latency(&c);
    checks::kubectl_script(&c);
    checks::node_loss(&mut c, NODES - 1);

    c.stop();
    let _ = std::fs::remove_dir_all(&work);
}
