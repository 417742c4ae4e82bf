//! Network-programming latency: parsing the trigger-time annotation and the rule for which
//! trigger times are observed (each newer one once, after the pass that programmed it).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::fixtures::{slice, Ep};
use crate::kubelet::http::metrics::Registry;
use crate::proxy::latency::{
    parse_trigger_time, trigger_time, ProgrammingTracker, ProxyMetrics, PROGRAMMING_METRIC,
    SYNC_METRIC, TRIGGER_TIME_ANNOTATION,
};

const BASE_S: u64 = 1_700_000_000;

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(BASE_S * 1000 + ms)
}

/// `2023-11-14T22:13:20Z` + `ms` as the controller writes it.
fn stamp(ms: u64) -> String {
    format!(
        "2023-11-14T22:13:{:02}.{:03}000000Z",
        20 + ms / 1000,
        ms % 1000
    )
}

fn annotated(name: &str, annotation: Option<&str>) -> EndpointSlice {
    let mut s = slice(
        "default",
        name,
        &[("http", 80, "TCP")],
        &[("10.0.0.1", Ep::Ready)],
    );
    s.metadata.annotations =
        annotation.map(|v| BTreeMap::from([(TRIGGER_TIME_ANNOTATION.to_string(), v.to_string())]));
    s
}

#[test]
fn parses_rfc3339_with_any_precision_and_offset() {
    assert_eq!(parse_trigger_time(&stamp(250)).unwrap(), at(250));
    assert_eq!(
        parse_trigger_time("2023-11-14T22:13:20.25Z").unwrap(),
        at(250)
    );
    assert_eq!(parse_trigger_time("2023-11-14T22:13:20Z").unwrap(), at(0));
    assert_eq!(
        parse_trigger_time("2023-11-14T23:13:20.001+01:00").unwrap(),
        at(1)
    );
    let e = parse_trigger_time("yesterday").unwrap_err().to_string();
    assert!(
        e.contains(TRIGGER_TIME_ANNOTATION) && e.contains("yesterday"),
        "{e}"
    );
}

#[test]
fn reads_the_annotation_of_a_slice() {
    assert!(trigger_time(&annotated("web", None)).is_none());
    assert_eq!(
        trigger_time(&annotated("web", Some(&stamp(7))))
            .unwrap()
            .unwrap(),
        at(7)
    );
    assert!(trigger_time(&annotated("web", Some("x"))).unwrap().is_err());
}

#[test]
fn each_newer_trigger_time_is_observed_once_after_programming() {
    let mut t = ProgrammingTracker::new(at(0));
    t.snapshot(&[annotated("web", Some(&stamp(100)))]);
    assert_eq!(t.programmed(at(130)), [Duration::from_millis(30)]);
    // The same slice again (another slice changed, or a relist): nothing new.
    t.snapshot(&[
        annotated("web", Some(&stamp(100))),
        annotated("db", Some(&stamp(200))),
    ]);
    assert_eq!(t.programmed(at(210)), [Duration::from_millis(10)]);
    t.snapshot(&[
        annotated("web", Some(&stamp(100))),
        annotated("db", Some(&stamp(200))),
    ]);
    assert_eq!(t.programmed(at(300)), []);
    // An older time than the one seen (a stale read) is not observed either.
    t.snapshot(&[annotated("web", Some(&stamp(50)))]);
    assert_eq!(t.programmed(at(400)), []);
}

#[test]
fn times_taken_before_a_failed_pass_wait_for_the_next_successful_one() {
    let mut t = ProgrammingTracker::new(at(0));
    t.snapshot(&[annotated("web", Some(&stamp(100)))]);
    // The pass failed: nothing is observed; a newer snapshot comes, then a pass succeeds.
    t.snapshot(&[annotated("web", Some(&stamp(150)))]);
    assert_eq!(
        t.programmed(at(160)),
        [Duration::from_millis(60), Duration::from_millis(10)]
    );
}

#[test]
fn ignores_times_before_the_agent_started_and_missing_or_malformed_ones() {
    let mut t = ProgrammingTracker::new(at(1000));
    t.snapshot(&[
        annotated("old", Some(&stamp(500))),
        annotated("none", None),
        annotated("bad", Some("not a time")),
    ]);
    assert_eq!(t.programmed(at(1100)), []);
    // A slice that loses its annotation and gets it back later is measured again.
    t.snapshot(&[annotated("old", None)]);
    t.snapshot(&[annotated("old", Some(&stamp(1050)))]);
    assert_eq!(t.programmed(at(1100)), [Duration::from_millis(50)]);
}

#[test]
fn a_deleted_and_recreated_slice_is_measured_again() {
    let mut t = ProgrammingTracker::new(at(0));
    t.snapshot(&[annotated("web", Some(&stamp(100)))]);
    t.programmed(at(100));
    t.snapshot(&[]);
    t.snapshot(&[annotated("web", Some(&stamp(100)))]);
    assert_eq!(t.programmed(at(120)), [Duration::from_millis(20)]);
}

#[test]
fn a_trigger_time_ahead_of_this_clock_counts_as_zero() {
    let mut t = ProgrammingTracker::new(at(0));
    t.snapshot(&[annotated("web", Some(&stamp(500)))]);
    assert_eq!(t.programmed(at(400)), [Duration::ZERO]);
}

#[test]
fn metrics_are_registered_under_their_names() {
    let r = Registry::new();
    let m = ProxyMetrics::register(&r);
    m.programming.observe(0.02);
    m.sync.observe(0.0003);
    let text = r.render(None, &[]);
    assert!(
        text.contains(&format!("# TYPE {PROGRAMMING_METRIC} histogram\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{PROGRAMMING_METRIC}_bucket{{le=\"0.1\"}} 1\n")),
        "{text}"
    );
    assert!(text.contains(&format!("{SYNC_METRIC}_count 1\n")), "{text}");
}
