use k8s_openapi::api::core::v1::PodStatus;

use super::super::cache::{Cache, NodeChange};
use super::super::fixtures::*;
use super::super::resources::Resources;

fn used(c: &Cache, node: &str) -> (Resources, i64) {
    let u = c.usage(node).unwrap();
    (u.requested, u.pods)
}

#[test]
fn node_events() {
    let mut c = Cache::new();
    assert_eq!(
        c.upsert_node(&node("n1", "1", "1Gi", 10)).unwrap(),
        NodeChange::Added
    );
    assert_eq!(
        c.upsert_node(&node("n1", "1", "1Gi", 10)).unwrap(),
        NodeChange::Unchanged
    );
    assert_eq!(
        c.upsert_node(&node("n1", "2", "1Gi", 10)).unwrap(),
        NodeChange::Changed
    );
    c.upsert_node(&node("n2", "1", "1Gi", 10)).unwrap();
    c.upsert_node(&node("n3", "1", "1Gi", 10)).unwrap();
    c.remove_node("n1");
    assert_eq!(c.num_nodes(), 2);
    let mut names: Vec<_> = (0..2)
        .map(|i| c.node_at(i).1.node.name.to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["n2", "n3"],
        "swap-removed live list stays consistent"
    );
    assert!(
        c.slot_of("n1").is_none(),
        "an empty deleted node frees its slot"
    );
    let mut bad = node("n4", "1", "1Gi", 10);
    bad.status
        .as_mut()
        .unwrap()
        .allocatable
        .as_mut()
        .unwrap()
        .insert(
            "cpu".into(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("x".into()),
        );
    assert!(c.upsert_node(&bad).is_err());
}

#[test]
fn pod_accounting() {
    let mut c = Cache::new();
    c.upsert_node(&node("n1", "4", "4Gi", 10)).unwrap();
    c.upsert_node(&node("n2", "4", "4Gi", 10)).unwrap();
    let a = bound_to(
        owned_by(with_host_port(pod("a", "1", "1Gi"), 80, "TCP"), "rs"),
        "n1",
    );
    c.upsert_pod(&a).unwrap();
    c.upsert_pod(&a).unwrap(); // a repeated event changes nothing
    c.upsert_pod(&bound_to(owned_by(pod("b", "500m", ""), "rs"), "n1"))
        .unwrap();
    c.upsert_pod(&pod("pending", "1", "1Gi")).unwrap(); // unbound: not accounted
    assert_eq!(
        used(&c, "n1"),
        (
            Resources {
                milli_cpu: 1500,
                memory: 1 << 30
            },
            2
        )
    );
    assert_eq!(c.usage("n1").unwrap().owner_count(c.owner_id("rs")), 2);
    assert_eq!(c.usage("n1").unwrap().ports.len(), 1);
    assert_eq!(c.num_pods(), 2);

    // Moving (a re-created binding) and resizing are applied as remove + add.
    c.upsert_pod(&bound_to(owned_by(pod("b", "2", ""), "rs"), "n2"))
        .unwrap();
    assert_eq!(
        used(&c, "n1"),
        (
            Resources {
                milli_cpu: 1000,
                memory: 1 << 30
            },
            1
        )
    );
    assert_eq!(
        used(&c, "n2"),
        (
            Resources {
                milli_cpu: 2000,
                memory: 0
            },
            1
        )
    );

    // Terminated pods free their resources; deleted ones too.
    let mut done = a.clone();
    done.status = Some(PodStatus {
        phase: Some("Succeeded".into()),
        ..PodStatus::default()
    });
    c.upsert_pod(&done).unwrap();
    assert_eq!(used(&c, "n1"), (Resources::default(), 0));
    assert!(c.usage("n1").unwrap().ports.is_empty());
    assert!(c.usage("n1").unwrap().owners.is_empty());
    c.remove_pod("uid-b");
    assert_eq!(c.num_pods(), 0);
    assert!(
        c.owner_id("rs").is_none(),
        "owner ids are released with their last pod"
    );
}

#[test]
fn assume_confirm_forget() {
    let mut c = Cache::new();
    c.upsert_node(&node("n1", "4", "4Gi", 10)).unwrap();
    let slot = c.slot_of("n1").unwrap();
    let p = pod("p", "1", "1Gi");
    c.assume(&p, slot).unwrap();
    assert!(c.is_assumed("uid-p"));
    assert_eq!(used(&c, "n1").1, 1);
    // A pre-bind update of the still-unbound pod keeps the assumption.
    c.upsert_pod(&p).unwrap();
    assert!(c.is_assumed("uid-p"));
    c.forget("uid-p");
    assert_eq!(used(&c, "n1").1, 0);

    c.assume(&p, slot).unwrap();
    c.upsert_pod(&bound_to(p.clone(), "n1")).unwrap(); // the bind, observed
    assert!(!c.is_assumed("uid-p"));
    assert_eq!(used(&c, "n1").1, 1);
    c.forget("uid-p"); // too late: confirmed
    assert_eq!(used(&c, "n1").1, 1);
}

#[test]
fn deleted_node_keeps_usage_until_pods_go() {
    let mut c = Cache::new();
    c.upsert_node(&node("n1", "4", "4Gi", 10)).unwrap();
    c.upsert_pod(&bound_to(pod("a", "1", ""), "n1")).unwrap();
    c.remove_node("n1");
    assert_eq!(c.num_nodes(), 0);
    assert_eq!(used(&c, "n1").1, 1, "ghost node keeps its pods");
    c.upsert_node(&node("n1", "4", "4Gi", 10)).unwrap();
    assert_eq!(used(&c, "n1").1, 1, "re-added node finds its usage");
    c.remove_node("n1");
    c.remove_pod("uid-a");
    assert!(c.slot_of("n1").is_none());
    // A pod bound to a node not seen yet is accounted on a ghost slot.
    c.upsert_pod(&bound_to(pod("b", "1", ""), "later")).unwrap();
    c.upsert_node(&node("later", "4", "4Gi", 10)).unwrap();
    assert_eq!(
        c.candidate(c.slot_of("later").unwrap()).unwrap().usage.pods,
        1
    );
}
