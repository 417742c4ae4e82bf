use super::super::filters::*;
use super::super::fixtures::*;
use super::{cache_with, first, info};

#[test]
fn ready_and_unschedulable() {
    let p = info(&pod("p", "100m", ""));
    let c = cache_with(&node("n", "1", "1Gi", 10), &[]);
    assert_eq!(node_ready(&p, first(&c)), Ok(()));
    let c = cache_with(&not_ready(node("n", "1", "1Gi", 10)), &[]);
    assert_eq!(
        node_ready(&p, first(&c)),
        Err(Failure::of(Reason::NotReady))
    );
    let tolerant = info(&with_toleration(
        pod("p", "", ""),
        "node.kubernetes.io/not-ready",
        "Exists",
        "",
        "NoSchedule",
    ));
    assert_eq!(node_ready(&tolerant, first(&c)), Ok(()));

    let c = cache_with(&cordoned(node("n", "1", "1Gi", 10)), &[]);
    assert_eq!(
        node_unschedulable(&p, first(&c)),
        Err(Failure::of(Reason::Unschedulable))
    );
    let tolerant = info(&with_toleration(
        pod("p", "", ""),
        "node.kubernetes.io/unschedulable",
        "Exists",
        "",
        "",
    ));
    assert_eq!(node_unschedulable(&tolerant, first(&c)), Ok(()));
}

#[test]
fn node_name_filter() {
    let c = cache_with(&node("n1", "1", "1Gi", 10), &[]);
    assert_eq!(node_name(&info(&pod("p", "", "")), first(&c)), Ok(()));
    assert_eq!(
        node_name(&info(&bound_to(pod("p", "", ""), "n1")), first(&c)),
        Ok(())
    );
    assert_eq!(
        node_name(&info(&bound_to(pod("p", "", ""), "n2")), first(&c)),
        Err(Failure::of(Reason::NodeName))
    );
}

#[test]
fn taints() {
    let n = with_taint(
        with_taint(node("n", "1", "1Gi", 10), "soft", "x", "PreferNoSchedule"),
        "k",
        "v",
        "NoSchedule",
    );
    let c = cache_with(&n, &[]);
    let err = taint_toleration(&info(&pod("p", "", "")), first(&c)).unwrap_err();
    assert!(err.has(Reason::UntoleratedTaint));
    assert_eq!(
        err.taint, 1,
        "PreferNoSchedule never blocks; the NoSchedule one is reported"
    );
    let ok = with_toleration(pod("p", "", ""), "k", "Equal", "v", "NoSchedule");
    assert_eq!(taint_toleration(&info(&ok), first(&c)), Ok(()));
    let wrong_value = with_toleration(pod("p", "", ""), "k", "Equal", "w", "");
    assert!(taint_toleration(&info(&wrong_value), first(&c)).is_err());

    let c = cache_with(
        &with_taint(node("n", "1", "1Gi", 10), "evict", "", "NoExecute"),
        &[],
    );
    assert!(taint_toleration(&info(&pod("p", "", "")), first(&c)).is_err());
    let ok = with_toleration(pod("p", "", ""), "evict", "Exists", "", "NoExecute");
    assert_eq!(taint_toleration(&info(&ok), first(&c)), Ok(()));
}

#[test]
fn affinity_and_selector() {
    let c = cache_with(&with_label(node("n1", "1", "1Gi", 10), "zone", "a"), &[]);
    let p = |p| node_affinity(&info(&p), first(&c));
    assert_eq!(p(pod("p", "", "")), Ok(()));
    assert_eq!(p(with_node_selector(pod("p", "", ""), "zone", "a")), Ok(()));
    assert_eq!(
        p(with_node_selector(pod("p", "", ""), "zone", "b")),
        Err(Failure::of(Reason::NodeAffinity))
    );
    let in_b = with_required_term(
        pod("p", "", ""),
        vec![requirement("zone", "In", &["b"])],
        vec![],
    );
    assert!(p(in_b.clone()).is_err());
    // Terms are ORed.
    let b_or_a = with_required_term(in_b, vec![requirement("zone", "Exists", &[])], vec![]);
    assert_eq!(p(b_or_a.clone()), Ok(()));
    // nodeSelector and affinity must both hold.
    assert!(p(with_node_selector(b_or_a, "disk", "ssd")).is_err());
    let by_name = with_required_term(
        pod("p", "", ""),
        vec![],
        vec![requirement("metadata.name", "In", &["n1"])],
    );
    assert_eq!(p(by_name), Ok(()));
    let not_name = with_required_term(
        pod("p", "", ""),
        vec![],
        vec![requirement("metadata.name", "NotIn", &["n1"])],
    );
    assert!(p(not_name).is_err());
}

#[test]
fn host_ports() {
    let used = bound_to(with_host_port(pod("a", "", ""), 8080, "TCP"), "n");
    let c = cache_with(&node("n", "1", "1Gi", 10), &[used]);
    let f = |p| node_ports(&info(&p), first(&c));
    assert_eq!(
        f(with_host_port(pod("b", "", ""), 8080, "TCP")),
        Err(Failure::of(Reason::HostPorts))
    );
    assert_eq!(f(with_host_port(pod("b", "", ""), 8080, "UDP")), Ok(()));
    assert_eq!(f(with_host_port(pod("b", "", ""), 8081, "TCP")), Ok(()));
    assert_eq!(f(pod("b", "", "")), Ok(()));
}

#[test]
fn resources_and_pod_count() {
    let bound = bound_to(pod("a", "1500m", "1Gi"), "n");
    let c = cache_with(&node("n", "2", "2Gi", 2), &[bound]);
    let fit = |p| resources_fit(&info(&p), first(&c));
    assert_eq!(fit(pod("b", "500m", "1Gi")), Ok(()));
    assert_eq!(
        fit(pod("b", "600m", "")),
        Err(Failure::of(Reason::InsufficientCpu))
    );
    assert_eq!(
        fit(pod("b", "", "1025Mi")),
        Err(Failure::of(Reason::InsufficientMemory))
    );
    let both = fit(pod("b", "1", "2Gi")).unwrap_err();
    assert!(both.has(Reason::InsufficientCpu) && both.has(Reason::InsufficientMemory));
    assert!(!both.has(Reason::TooManyPods));

    let c = cache_with(
        &node("n", "2", "2Gi", 1),
        &[bound_to(pod("a", "", ""), "n")],
    );
    let err = resources_fit(&info(&pod("b", "", "")), first(&c)).unwrap_err();
    assert_eq!(
        err,
        Failure::of(Reason::TooManyPods),
        "a request-less pod still needs a slot"
    );
    assert!(!fits_pod_count(first(&c)));
}

#[test]
fn table_stops_at_first_failure() {
    let n = with_taint(cordoned(node("n", "1", "1Gi", 10)), "k", "v", "NoSchedule");
    let c = cache_with(&n, &[]);
    let err = run_filters(&info(&pod("p", "2", "")), first(&c)).unwrap_err();
    assert_eq!(
        err.reasons().collect::<Vec<_>>(),
        vec![Reason::Unschedulable]
    );
    assert_eq!(FILTERS.len(), 8);
}
