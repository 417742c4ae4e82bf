//! The simulated cluster and workload.

use k8s_openapi::api::core::v1::{Node, Pod};
use skiff_controlplane::scheduler::fixtures::{
    node, owned_by, pod, requirement, with_label, with_preferred_term, with_taint,
};

/// Nodes of 8 CPU / 32 GiB / 110 pods in 10 zones; 5 % (10 in every 200, all zones)
/// carry a `PreferNoSchedule` taint.
pub fn cluster(n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| {
            let mut nd = with_label(
                node(&format!("node-{i:05}"), "8", "32Gi", 110),
                "topology.kubernetes.io/zone",
                &format!("zone-{}", i % 10),
            );
            if (i / 10) % 20 == 0 {
                nd = with_taint(nd, "example.com/spot", "true", "PreferNoSchedule");
            }
            nd
        })
        .collect()
}

/// Pods of 100 ReplicaSets (100m / 128 MiB); every 10th prefers a zone (zones in turn).
pub fn workload(n: usize, prefix: &str) -> Vec<Pod> {
    (0..n)
        .map(|i| {
            let mut p = owned_by(
                pod(&format!("{prefix}-{i:05}"), "100m", "128Mi"),
                &format!("rs-{}", i % 100),
            );
            if i % 10 == 0 {
                let zone = format!("zone-{}", (i / 10) % 10);
                p = with_preferred_term(
                    p,
                    10,
                    vec![requirement("topology.kubernetes.io/zone", "In", &[&zone])],
                );
            }
            p
        })
        .collect()
}
