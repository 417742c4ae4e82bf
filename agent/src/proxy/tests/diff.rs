use std::net::Ipv4Addr;

use skiff_common::{ServiceKey, SCOPE_INTERNAL};

use super::fixtures::{check_packet_view, desired, service, slice, Ep};
use crate::proxy::apply::apply_one;
use crate::proxy::{
    diff, vip_marker_key, CurrentState, DesiredState, FrontendKey, IdAllocator, L4Addr, MemMaps,
    Proto, Proxy,
};

/// Diffs and applies op by op, checking the packet view after every op.
fn step(ids: &mut IdAllocator, maps: &mut MemMaps, want: &DesiredState) -> usize {
    let current = CurrentState::read(maps).unwrap();
    ids.observe(&current);
    let ops = diff(want, ids, &current);
    for (i, op) in ops.iter().enumerate() {
        apply_one(op, maps).unwrap();
        if let Err(e) = check_packet_view(maps) {
            panic!("after op {i} ({op}) of {ops:#?}: {e}");
        }
    }
    let again = diff(want, ids, &CurrentState::read(maps).unwrap());
    assert!(again.is_empty(), "not converged: {again:?}");
    ops.len()
}

fn web(eps: &[&str]) -> DesiredState {
    let svc = service(
        "default",
        "web",
        "10.96.0.10",
        &[("http", 80, "TCP"), ("dns", 53, "UDP")],
    );
    let eps: Vec<(&str, Ep)> = eps.iter().map(|a| (*a, Ep::Ready)).collect();
    let sl = slice(
        "default",
        "web",
        &[("http", 8080, "TCP"), ("dns", 53, "UDP")],
        &eps,
    );
    desired(&[svc], &[sl])
}

fn front(m: &MemMaps, port: u16, proto: Proto) -> Option<skiff_common::ServiceValue> {
    let k = FrontendKey {
        l4: L4Addr::new(Ipv4Addr::new(10, 96, 0, 10), port, proto),
        scope: SCOPE_INTERNAL,
    };
    m.services.entries.get(&k.slot_key(0)).copied()
}

#[test]
fn grow_shrink_replace_delete_keep_every_packet_view_valid() {
    let mut maps = MemMaps::default();
    let mut ids = IdAllocator::default();
    let states = [
        web(&["10.244.0.2"]),
        web(&["10.244.0.2", "10.244.0.3", "10.244.1.2"]),
        web(&["10.244.1.2"]),
        web(&["10.244.2.2", "10.244.2.3"]),
        web(&[]),
        web(&["10.244.0.2"]),
        DesiredState::default(),
    ];
    for (i, s) in states.iter().enumerate() {
        step(&mut ids, &mut maps, s);
        let n = s.frontends.values().next().map_or(0, |f| f.backends.len());
        if i + 1 < states.len() {
            assert_eq!(front(&maps, 80, Proto::Tcp).unwrap().count as usize, n);
            assert!(maps
                .services
                .entries
                .contains_key(&vip_marker_key(Ipv4Addr::new(10, 96, 0, 10))));
            // Backends: exactly the wanted ones; slots: exactly 1..=n.
            assert_eq!(maps.backends.entries.len(), 2 * n);
            assert_eq!(maps.services.entries.len(), 1 + 2 * (1 + n));
        }
    }
    assert!(maps.services.entries.is_empty());
    assert!(maps.backends.entries.is_empty());
    assert!(maps.rev_nat.entries.is_empty());
}

#[test]
fn ops_are_ordered_upserts_slots_frontends_then_deletions() {
    let mut maps = MemMaps::default();
    let mut ids = IdAllocator::default();
    step(&mut ids, &mut maps, &web(&["10.244.0.2", "10.244.0.3"]));
    let current = CurrentState::read(&mut maps).unwrap();
    let ops = diff(&web(&["10.244.0.9"]), &mut ids, &current);
    let rank = |op: &crate::proxy::Op| -> u8 {
        use crate::proxy::Op::*;
        match op {
            UpsertBackend(..) | UpsertRevNat(..) => 0,
            UpsertService(k, _) if k.slot != 0 => 1,
            UpsertService(..) => 2,
            DeleteService(k) if k.slot == 0 => 3,
            DeleteService(_) => 4,
            DeleteBackend(_) | DeleteRevNat(_) => 5,
        }
    };
    let ranks: Vec<u8> = ops.iter().map(rank).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ops:#?}");
    assert!(ranks.contains(&4) && ranks.contains(&5));
}

#[test]
fn ids_stay_stable_across_reconciles_and_restarts() {
    let mut maps = MemMaps::default();
    let mut proxy = Proxy::default();
    let s1 = web(&["10.244.0.2", "10.244.0.3"]);
    proxy.reconcile(&s1, &mut maps).unwrap();
    let before = maps.clone();
    let b2 = L4Addr::new(Ipv4Addr::new(10, 244, 0, 2), 8080, Proto::Tcp);
    let id_b2 = proxy.ids().backend_id(&b2).unwrap();
    // Adding a backend keeps the existing ids.
    let r = proxy
        .reconcile(&web(&["10.244.0.2", "10.244.0.3", "10.244.0.4"]), &mut maps)
        .unwrap();
    assert!(r.ops > 0);
    assert_eq!(proxy.ids().backend_id(&b2), Some(id_b2));
    assert_eq!(
        front(&maps, 80, Proto::Tcp).unwrap().rev_nat_id,
        front(&before, 80, Proto::Tcp).unwrap().rev_nat_id
    );
    // A restarted agent recovers the ids from the maps: nothing to do.
    let mut restarted = Proxy::recover(&mut maps).unwrap();
    let s3 = web(&["10.244.0.2", "10.244.0.3", "10.244.0.4"]);
    assert_eq!(restarted.reconcile(&s3, &mut maps).unwrap().ops, 0);
    assert_eq!(restarted.ids().backend_id(&b2), Some(id_b2));
    // And back to s1: only removals, ids of survivors unchanged.
    restarted.reconcile(&s1, &mut maps).unwrap();
    let mut fresh = MemMaps::default();
    Proxy::default().reconcile(&s1, &mut fresh).unwrap();
    assert_eq!(maps.services.entries.len(), fresh.services.entries.len());
    assert_eq!(restarted.ids().backend_id(&b2), Some(id_b2));
}

#[test]
fn restart_after_a_partial_apply_converges() {
    let mut maps = MemMaps::default();
    let mut ids = IdAllocator::default();
    step(&mut ids, &mut maps, &web(&["10.244.0.2", "10.244.0.3"]));
    let target = web(&["10.244.0.7"]);
    let ops = diff(&target, &mut ids, &CurrentState::read(&mut maps).unwrap());
    for cut in 0..ops.len() {
        let mut m = maps.clone();
        for op in &ops[..cut] {
            apply_one(op, &mut m).unwrap();
        }
        let mut proxy = Proxy::recover(&mut m).unwrap();
        let mut ids2 = proxy.ids().clone();
        step(&mut ids2, &mut m, &target);
        assert_eq!(
            proxy.reconcile(&target, &mut m).unwrap().ops,
            0,
            "cut {cut}"
        );
    }
}

#[test]
fn failed_apply_leaves_a_valid_view_and_the_next_pass_repairs() {
    let mut maps = MemMaps::default();
    maps.backends.capacity = 2;
    let mut proxy = Proxy::default();
    let err = proxy
        .reconcile(&web(&["10.244.0.2", "10.244.0.3"]), &mut maps)
        .unwrap_err();
    assert_eq!(err.map, skiff_common::map_names::BACKENDS);
    check_packet_view(&maps).unwrap();
    maps.backends.capacity = usize::MAX;
    proxy
        .reconcile(&web(&["10.244.0.2", "10.244.0.3"]), &mut maps)
        .unwrap();
    assert_eq!(front(&maps, 80, Proto::Tcp).unwrap().count, 2);
}

#[test]
fn stray_entries_from_other_runs_are_removed_in_order() {
    let mut maps = MemMaps::default();
    let stray = ServiceKey {
        addr: u32::from_ne_bytes([10, 96, 9, 9]),
        port: 80u16.to_be(),
        slot: 5,
        proto: 6,
        scope: SCOPE_INTERNAL,
        _pad: [0; 2],
    };
    maps.services.entries.insert(stray, Default::default());
    let mut ids = IdAllocator::default();
    step(&mut ids, &mut maps, &web(&["10.244.0.2"]));
    assert!(!maps.services.entries.contains_key(&stray));
}

/// A tiny deterministic generator (xorshift) for the random walk below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_state(rng: &mut Rng) -> DesiredState {
    let mut services = Vec::new();
    let mut slices = Vec::new();
    for s in 0..rng.below(4) {
        let name = format!("s{s}");
        let vip = format!("10.96.0.{}", 10 + s);
        let ports: &[(&str, u16, &str)] = match rng.below(3) {
            0 => &[("a", 80, "TCP")],
            1 => &[("a", 80, "TCP"), ("b", 53, "UDP")],
            _ => &[("b", 53, "UDP")],
        };
        services.push(service("default", &name, &vip, ports));
        let states = [
            Ep::Ready,
            Ep::Ready,
            Ep::NotReady,
            Ep::TermServing,
            Ep::Unset,
        ];
        let addrs: Vec<String> = (0..rng.below(6))
            .map(|i| format!("10.244.{}.{}", i % 2, 2 + rng.below(5)))
            .collect();
        let eps: Vec<(&str, Ep)> = addrs
            .iter()
            .map(|a| (a.as_str(), states[usize::try_from(rng.below(5)).unwrap()]))
            .collect();
        slices.push(slice(
            "default",
            &name,
            &[("a", 8080, "TCP"), ("b", 5353, "UDP")],
            &eps,
        ));
    }
    desired(&services, &slices)
}

#[test]
fn random_walk_keeps_every_packet_view_valid() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut maps = MemMaps::default();
    let mut ids = IdAllocator::default();
    let mut total = 0;
    for _ in 0..300 {
        let s = random_state(&mut rng);
        total += step(&mut ids, &mut maps, &s);
    }
    assert!(
        total > 300,
        "the walk should exercise many ops, got {total}"
    );
}

#[test]
fn the_packet_view_check_catches_a_wrong_order() {
    // Self-test of the checker: frontends first (the naive order) must fail.
    let mut maps = MemMaps::default();
    let mut ids = IdAllocator::default();
    step(&mut ids, &mut maps, &web(&["10.244.0.2"]));
    let current = CurrentState::read(&mut maps).unwrap();
    let mut ops = diff(&web(&["10.244.0.2", "10.244.0.3"]), &mut ids, &current);
    ops.sort_by_key(|op| !matches!(op, crate::proxy::Op::UpsertService(k, _) if k.slot == 0));
    let failed = ops.iter().any(|op| {
        apply_one(op, &mut maps).unwrap();
        check_packet_view(&maps).is_err()
    });
    assert!(
        failed,
        "a count raised before its slots exist must be caught"
    );
}

/// Counts map reads: the mirror must spare an idle pass from reading every
/// entry back, and an audit must read them and repair drift.
#[test]
fn passes_diff_against_the_mirror_and_an_audit_repairs_drift() {
    let mut maps = MemMaps::default();
    let want = web(&["10.244.0.2", "10.244.0.3"]);
    let mut proxy = Proxy::default();
    proxy.reconcile(&want, &mut maps).unwrap();

    // Something outside the agent removes a slot.
    let slot = FrontendKey {
        l4: L4Addr::new(Ipv4Addr::new(10, 96, 0, 10), 80, Proto::Tcp),
        scope: SCOPE_INTERNAL,
    }
    .slot_key(1);
    let saved = maps.services.entries.remove(&slot).unwrap();
    // A pass against the mirror sees nothing to do...
    assert_eq!(proxy.reconcile(&want, &mut maps).unwrap().ops, 0);
    assert!(!maps.services.entries.contains_key(&slot));
    // ...an audit reads the maps back and puts the slot back.
    proxy.audit();
    assert_eq!(proxy.reconcile(&want, &mut maps).unwrap().ops, 1);
    assert_eq!(maps.services.entries.get(&slot), Some(&saved));
    check_packet_view(&maps).unwrap();
}

/// With every backend id taken, a new backend waits one pass: the removals of that pass
/// still apply and free ids, and the next pass brings it in (no pass fails).
#[test]
fn a_full_id_space_defers_new_backends_instead_of_failing() {
    let mut maps = MemMaps {
        backend_id_limit: 5,
        ..MemMaps::default()
    };
    let mut proxy = Proxy::recover(&mut maps).unwrap();
    // Two ports × two endpoints: ids 1..=4, the whole space.
    let two = web(&["10.244.0.2", "10.244.0.3"]);
    proxy.reconcile(&two, &mut maps).unwrap();
    assert_eq!(maps.backends.entries.len(), 4);
    // One endpoint replaced: its two new backends find no id yet.
    let swapped = web(&["10.244.0.2", "10.244.0.4"]);
    proxy.reconcile(&swapped, &mut maps).unwrap();
    check_packet_view(&maps).unwrap();
    assert_eq!(
        front(&maps, 80, Proto::Tcp).unwrap().count,
        1,
        "the survivor only"
    );
    proxy.reconcile(&swapped, &mut maps).unwrap();
    check_packet_view(&maps).unwrap();
    assert_eq!(
        front(&maps, 80, Proto::Tcp).unwrap().count,
        2,
        "the new one is in"
    );
    assert!(maps.backends.entries.keys().all(|&id| id < 5));
}
