use serde_json::json;

use super::*;

fn defaults() -> Behavior {
    Behavior::from_spec(None)
}

/// `normalize`, then the scale written (as the controller does on success).
fn step(
    current: u32,
    wanted: u32,
    bounds: (u32, u32),
    b: &Behavior,
    m: &mut Memory,
    now: Instant,
) -> (u32, Limit) {
    let out = normalize(current, wanted, bounds, b, m, now);
    m.scaled(current, out.0, now);
    out
}

#[test]
fn ratios_inside_the_tolerance_change_nothing() {
    assert_eq!(replicas_for(3, 3, 1.05), 3);
    assert_eq!(replicas_for(3, 3, 0.95), 3);
    assert_eq!(replicas_for(3, 3, 1.5), 5);
    assert_eq!(replicas_for(4, 4, 0.5), 2);
    assert_eq!(replicas_for(2, 2, f64::NAN), 2);
}

#[test]
fn default_behaviour_rate_limits_up_and_stabilizes_down() {
    let b = defaults();
    let t0 = Instant::now();
    let mut m = Memory::default();
    // Up: max(+4, +100 %) per 15 s from 1 is 5.
    assert_eq!(
        step(1, 20, (1, 10), &b, &mut m, t0),
        (5, Limit::ScaleUpLimit)
    );
    // Within the same 15 s the period started at 1: still at most 5.
    let t1 = t0 + Duration::from_secs(5);
    assert_eq!(step(5, 20, (1, 10), &b, &mut m, t1).0, 5);
    // A period later from 5: max(9, 10), capped by maxReplicas 8.
    let t2 = t0 + Duration::from_secs(20);
    assert_eq!(step(5, 20, (1, 8), &b, &mut m, t2), (8, Limit::TooMany));
    // A dip right after does not scale down: the 300 s window still holds 20.
    let t3 = t0 + Duration::from_secs(60);
    assert_eq!(step(8, 2, (1, 10), &b, &mut m, t3).0, 8);
    // Five minutes after the last high recommendation only low ones are left.
    let t4 = t2 + Duration::from_secs(301);
    assert_eq!(step(8, 2, (1, 10), &b, &mut m, t4), (2, Limit::Within));
    assert_eq!(
        step(3, 0, (2, 10), &b, &mut Memory::default(), t4),
        (2, Limit::TooFew)
    );
}

#[test]
fn spec_behavior_sets_windows_policies_and_selection() {
    let b = Behavior::from_spec(Some(&json!({
        "scaleDown": {"stabilizationWindowSeconds": 0,
                      "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
        "scaleUp": {"selectPolicy": "Disabled"}
    })));
    assert_eq!(b.down.window, Duration::ZERO);
    assert_eq!(
        b.up.window,
        Duration::ZERO,
        "unset fields keep their defaults"
    );
    let t0 = Instant::now();
    let mut m = Memory::default();
    // No stabilization: down at once, but one pod per minute.
    assert_eq!(
        step(5, 1, (1, 10), &b, &mut m, t0),
        (4, Limit::ScaleDownLimit)
    );
    assert_eq!(
        step(4, 1, (1, 10), &b, &mut m, t0 + Duration::from_secs(30)).0,
        4
    );
    assert_eq!(
        step(4, 1, (1, 10), &b, &mut m, t0 + Duration::from_secs(61)).0,
        3
    );
    // Scale-up disabled.
    assert_eq!(step(3, 9, (1, 10), &b, &mut Memory::default(), t0).0, 3);
    // Min picks the least permissive policy: +1 pod rather than +100 %.
    let min = Behavior::from_spec(Some(&json!({"scaleUp": {"selectPolicy": "Min",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 15},
                     {"type": "Percent", "value": 100, "periodSeconds": 15}]}})));
    assert_eq!(
        step(4, 9, (1, 10), &min, &mut Memory::default(), t0),
        (5, Limit::ScaleUpLimit)
    );
    // A scale-up stabilization window holds back a spike.
    let slow = Behavior::from_spec(Some(
        &json!({"scaleUp": {"stabilizationWindowSeconds": 60}}),
    ));
    let mut m = Memory::default();
    assert_eq!(step(2, 2, (1, 10), &slow, &mut m, t0).0, 2);
    assert_eq!(
        step(2, 6, (1, 10), &slow, &mut m, t0 + Duration::from_secs(30)).0,
        2
    );
    assert_eq!(
        step(2, 6, (1, 10), &slow, &mut m, t0 + Duration::from_secs(61)).0,
        6
    );
}
