use super::super::fixtures::*;
use super::super::scores::*;
use super::{cache_with, first, info};

#[test]
fn least_allocated_counts_pod_and_defaults() {
    let c = cache_with(&node("n", "4", "8Gi", 10), &[]);
    let ctx = ScoreCtx::default();
    assert_eq!(
        least_allocated(&info(&pod("p", "1", "2Gi")), first(&c), &ctx),
        75
    );
    // No requests: 100m and 200Mi count when scoring.
    let cpu = (4000 - 100) * 100 / 4000;
    let mem = ((8i64 << 30) - (200 << 20)) * 100 / (8i64 << 30);
    assert_eq!(
        least_allocated(&info(&pod("p", "", "")), first(&c), &ctx),
        (cpu + mem) / 2
    );
    let busy = cache_with(
        &node("n", "4", "8Gi", 10),
        &[bound_to(pod("a", "2", "4Gi"), "n")],
    );
    assert_eq!(
        least_allocated(&info(&pod("p", "1", "2Gi")), first(&busy), &ctx),
        25
    );
    let over = cache_with(&node("n", "1", "1Gi", 10), &[]);
    assert_eq!(
        least_allocated(&info(&pod("p", "2", "2Gi")), first(&over), &ctx),
        0
    );
}

#[test]
fn owner_spread_counts_siblings() {
    let pods = [
        bound_to(owned_by(pod("a", "", ""), "rs1"), "n"),
        bound_to(owned_by(pod("b", "", ""), "rs1"), "n"),
        bound_to(owned_by(pod("c", "", ""), "rs2"), "n"),
    ];
    let c = cache_with(&node("n", "4", "8Gi", 10), &pods);
    let p = info(&owned_by(pod("p", "", ""), "rs1"));
    let ctx = ScoreCtx {
        owner: c.owner_id("rs1"),
    };
    assert_eq!(owner_spread(&p, first(&c), &ctx), 2);
    let none = ScoreCtx {
        owner: c.owner_id("rs9"),
    };
    assert_eq!(owner_spread(&p, first(&c), &none), 0);
}

#[test]
fn preferred_affinity_sums_weights() {
    let n = with_label(
        with_label(node("n", "1", "1Gi", 10), "zone", "a"),
        "disk",
        "ssd",
    );
    let c = cache_with(&n, &[]);
    let p = with_preferred_term(
        pod("p", "", ""),
        10,
        vec![requirement("zone", "In", &["a"])],
    );
    let p = with_preferred_term(p, 5, vec![requirement("disk", "In", &["ssd"])]);
    let p = with_preferred_term(p, 7, vec![requirement("zone", "In", &["b"])]);
    assert_eq!(
        preferred_affinity(&info(&p), first(&c), &ScoreCtx::default()),
        15
    );
}

#[test]
fn prefer_no_schedule_taints() {
    let n = with_taint(
        with_taint(node("n", "1", "1Gi", 10), "a", "1", "PreferNoSchedule"),
        "b",
        "2",
        "PreferNoSchedule",
    );
    let n = with_taint(n, "c", "3", "NoSchedule");
    let c = cache_with(&n, &[]);
    let ctx = ScoreCtx::default();
    assert_eq!(
        prefer_no_schedule(&info(&pod("p", "", "")), first(&c), &ctx),
        2
    );
    let p = with_toleration(pod("p", "", ""), "a", "Exists", "", "PreferNoSchedule");
    assert_eq!(prefer_no_schedule(&info(&p), first(&c), &ctx), 1);
    let p = with_toleration(pod("p", "", ""), "b", "Equal", "2", "");
    assert_eq!(prefer_no_schedule(&info(&p), first(&c), &ctx), 1);
    let p = with_toleration(pod("p", "", ""), "a", "Exists", "", "NoSchedule");
    assert_eq!(
        prefer_no_schedule(&info(&p), first(&c), &ctx),
        2,
        "wrong effect"
    );
}

#[test]
fn normalisation() {
    let mut v = vec![0, 5, 10];
    normalize(Normalize::Max, &mut v);
    assert_eq!(v, [0, 50, 100]);
    let mut v = vec![0, 5, 10];
    normalize(Normalize::Reverse, &mut v);
    assert_eq!(v, [100, 50, 0]);
    let mut v = vec![0, 0];
    normalize(Normalize::Reverse, &mut v);
    assert_eq!(v, [100, 100]);
    let mut v = vec![0, 0];
    normalize(Normalize::Max, &mut v);
    assert_eq!(v, [0, 0]);
    let mut v = vec![42, 7];
    normalize(Normalize::None, &mut v);
    assert_eq!(v, [42, 7]);
}
