use std::collections::HashMap;

use super::super::algorithm::*;
use super::super::cache::Cache;
use super::super::fixtures::*;
use super::info;

fn cluster(n: usize) -> Cache {
    let mut c = Cache::new();
    for i in 0..n {
        c.upsert_node(&node(&format!("n{i}"), "4", "8Gi", 110))
            .unwrap();
    }
    c
}

#[test]
fn feasible_nodes_to_find() {
    assert_eq!(num_feasible_nodes_to_find(0, 50), 50);
    assert_eq!(
        num_feasible_nodes_to_find(0, 200),
        100,
        "floor of 100 nodes"
    );
    assert_eq!(num_feasible_nodes_to_find(0, 1000), 420);
    assert_eq!(num_feasible_nodes_to_find(0, 5000), 500);
    assert_eq!(num_feasible_nodes_to_find(0, 10_000), 500, "5 % minimum");
    assert_eq!(num_feasible_nodes_to_find(30, 1000), 300);
    assert_eq!(num_feasible_nodes_to_find(100, 5000), 5000);
}

#[test]
fn samples_from_a_rotating_start() {
    let c = cluster(1000);
    let mut a = Algorithm::new(0);
    let p1 = a.schedule(&c, &info(&pod("a", "", ""))).unwrap();
    assert_eq!((p1.evaluated, p1.feasible), (420, 420));
    let p2 = a.schedule(&c, &info(&pod("b", "", ""))).unwrap();
    assert_eq!(p2.evaluated, 420);
    // The second pod only saw nodes 420..840 (slots follow creation order here).
    assert!((420..840).contains(&(p2.slot as usize)), "{}", p2.slot);
}

#[test]
fn ties_are_deterministic_and_spread() {
    let c = cluster(10);
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for i in 0..200 {
        let p = info(&pod(&format!("p{i}"), "", ""));
        let s1 = Algorithm::new(0).schedule(&c, &p).unwrap().slot;
        let s2 = Algorithm::new(0).schedule(&c, &p).unwrap().slot;
        assert_eq!(s1, s2, "same pod, same cluster, same node");
        *counts.entry(s1).or_default() += 1;
    }
    assert_eq!(
        counts.len(),
        10,
        "equal nodes all get some pods: {counts:?}"
    );
}

#[test]
fn scores_prefer_free_spread_and_affinity() {
    let mut c = cluster(3);
    c.upsert_pod(&bound_to(pod("big", "3", "6Gi"), "n0"))
        .unwrap();
    c.upsert_pod(&bound_to(owned_by(pod("s1", "", ""), "rs"), "n1"))
        .unwrap();
    let mut a = Algorithm::new(0);
    let placed = |a: &mut Algorithm, c: &Cache, p| {
        let slot = a.schedule(c, &info(&p)).unwrap().slot;
        c.node_name(slot).unwrap().to_string()
    };
    assert_eq!(
        placed(&mut a, &c, owned_by(pod("x", "100m", "100Mi"), "rs")),
        "n2"
    );
    let slot = c.slot_of("n2").unwrap();
    let s = a.last_scores(slot).unwrap();
    assert_eq!(s[1], 100, "no sibling on n2");
    let pref = with_preferred_term(
        pod("y", "", ""),
        50,
        vec![requirement("kubernetes.io/hostname", "In", &["n0"])],
    );
    assert_eq!(
        placed(&mut a, &c, pref),
        "n0",
        "weight 2 × 100 beats a busier node"
    );
    let soft = with_taint(node("n2", "4", "8Gi", 110), "soft", "", "PreferNoSchedule");
    c.upsert_node(&soft).unwrap();
    assert_eq!(placed(&mut a, &c, pod("z", "100m", "100Mi")), "n1");
}

#[test]
fn fit_error_message() {
    let mut c = Cache::new();
    c.upsert_node(&with_taint(
        node("n0", "4", "8Gi", 110),
        "k",
        "v",
        "NoSchedule",
    ))
    .unwrap();
    c.upsert_node(&node("n1", "1", "8Gi", 110)).unwrap();
    c.upsert_node(&node("n2", "1", "1Gi", 110)).unwrap();
    let err = Algorithm::new(0)
        .schedule(&c, &info(&pod("p", "2", "2Gi")))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu."
    );
    let empty = Algorithm::new(0)
        .schedule(&Cache::new(), &info(&pod("p", "", "")))
        .unwrap_err();
    assert_eq!(empty.to_string(), "no nodes available to schedule pods");
}
