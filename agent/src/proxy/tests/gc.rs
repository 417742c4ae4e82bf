use skiff_common::{
    CtKey, CtValue, RevNat, CT_DIR_REPLY, CT_DIR_SERVICE, CT_F_CLOSING, PROTO_TCP, PROTO_UDP,
};

use crate::proxy::conntrack::{gc_conntrack, max_ids_in_conntrack, monotonic_now_ns, CtTimeouts};
use crate::proxy::{KvMap, MemMaps, Proxy};

const SEC: u64 = 1_000_000_000;
const NOW: u64 = 100_000 * SEC;

fn key(sport: u16, proto: u8, dir: u8) -> CtKey {
    CtKey {
        saddr: u32::from_ne_bytes([10, 244, 0, 2]),
        daddr: u32::from_ne_bytes([10, 96, 0, 10]),
        sport: sport.to_be(),
        dport: 80u16.to_be(),
        proto,
        dir,
        _pad: [0; 2],
    }
}

fn val(rev_nat_id: u32, flags: u32, idle_s: u64) -> CtValue {
    CtValue {
        backend_id: 1,
        rev_nat_id,
        nat_addr: 0,
        flags,
        last_seen_ns: NOW - idle_s * SEC,
        ..CtValue::default()
    }
}

fn maps_with_rev_nat(ids: &[u32]) -> MemMaps {
    let mut m = MemMaps::default();
    for &id in ids {
        m.rev_nat.entries.insert(id, RevNat::default());
    }
    m
}

#[test]
fn entries_of_deleted_frontends_are_purged() {
    let mut m = maps_with_rev_nat(&[1]);
    m.conntrack
        .insert(key(1000, PROTO_TCP, CT_DIR_SERVICE), val(1, 0, 0))
        .unwrap();
    m.conntrack
        .insert(key(1000, PROTO_TCP, CT_DIR_REPLY), val(1, 0, 0))
        .unwrap();
    m.conntrack
        .insert(key(1001, PROTO_TCP, CT_DIR_SERVICE), val(2, 0, 0))
        .unwrap();
    m.conntrack
        .insert(key(1001, PROTO_TCP, CT_DIR_REPLY), val(2, 0, 0))
        .unwrap();
    let r = gc_conntrack(&mut m, NOW, &CtTimeouts::default()).unwrap();
    assert_eq!((r.scanned, r.orphaned, r.expired), (4, 2, 0));
    assert_eq!(m.conntrack.len(), 2);
    assert!(m
        .conntrack
        .get(&key(1001, PROTO_TCP, CT_DIR_SERVICE))
        .unwrap()
        .is_none());
}

#[test]
fn idle_entries_expire_by_protocol_and_closing_flag() {
    let mut m = maps_with_rev_nat(&[1]);
    let cases = [
        (2000, PROTO_TCP, CT_F_CLOSING, 9, true),
        (2001, PROTO_TCP, CT_F_CLOSING, 11, false),
        (2002, PROTO_TCP, 0, 3600, true),
        (2003, PROTO_TCP, 0, 6 * 3600 + 1, false),
        (2004, PROTO_UDP, 0, 119, true),
        (2005, PROTO_UDP, 0, 121, false),
    ];
    for (port, proto, flags, idle, _) in cases {
        m.conntrack
            .insert(key(port, proto, CT_DIR_SERVICE), val(1, flags, idle))
            .unwrap();
    }
    let r = gc_conntrack(&mut m, NOW, &CtTimeouts::default()).unwrap();
    assert_eq!(r.expired, 3);
    for (port, proto, _, idle, kept) in cases {
        let present = m
            .conntrack
            .get(&key(port, proto, CT_DIR_SERVICE))
            .unwrap()
            .is_some();
        assert_eq!(present, kept, "port {port} proto {proto} idle {idle}s");
    }
}

#[test]
fn entries_from_the_future_are_not_expired() {
    // last_seen may be slightly ahead of a clock read taken earlier.
    let mut m = maps_with_rev_nat(&[1]);
    let mut v = val(1, CT_F_CLOSING, 0);
    v.last_seen_ns = NOW + 5 * SEC;
    m.conntrack
        .insert(key(3000, PROTO_TCP, CT_DIR_SERVICE), v)
        .unwrap();
    assert_eq!(
        gc_conntrack(&mut m, NOW, &CtTimeouts::default())
            .unwrap()
            .expired,
        0
    );
}

#[test]
fn ids_held_by_conntrack_are_not_reused_after_restart() {
    let mut m = maps_with_rev_nat(&[]);
    let mut v = val(40, 0, 0);
    v.backend_id = 77;
    m.conntrack
        .insert(key(4000, PROTO_TCP, CT_DIR_SERVICE), v)
        .unwrap();
    assert_eq!(max_ids_in_conntrack(&mut m).unwrap(), (77, 40));
    let mut proxy = Proxy::recover(&mut m).unwrap();
    let d = super::fixtures::desired(
        &[super::fixtures::service(
            "default",
            "w",
            "10.96.0.1",
            &[("", 80, "TCP")],
        )],
        &[super::fixtures::slice(
            "default",
            "w",
            &[("", 80, "TCP")],
            &[("10.244.0.2", super::fixtures::Ep::Ready)],
        )],
    );
    proxy.reconcile(&d, &mut m).unwrap();
    assert!(m.backends.entries.keys().all(|&id| id > 77));
    assert!(m.rev_nat.entries.keys().all(|&id| id > 40));
}

#[test]
fn monotonic_clock_is_monotonic() {
    let a = monotonic_now_ns();
    let b = monotonic_now_ns();
    assert!(a > 0 && b >= a);
}
