//! NodePort SNAT and affinity GC.

use std::collections::BTreeSet;

use skiff_common::{
    map_names, AffinityKey, AffinityValue, CtKey, SnatValue, PROTO_UDP, SNAT_DIR_IN, SNAT_DIR_OUT,
};

use crate::proxy::apply::MemMap;
use crate::proxy::conntrack::{gc_affinity, gc_snat, snat_peer, CtTimeouts};
use crate::proxy::KvMap;

const SEC: u64 = 1_000_000_000;
const NOW: u64 = 100_000 * SEC;
const CLIENT: u32 = u32::from_ne_bytes([192, 168, 200, 250]);
const BACKEND: u32 = u32::from_ne_bytes([10, 244, 1, 2]);
const NODE: u32 = u32::from_ne_bytes([192, 168, 200, 10]);

/// Both halves of one UDP flow client:cport → backend:8080 SNATed to
/// node:nat, each idle for the given seconds.
fn pair(
    rev_nat_id: u32,
    cport: u16,
    nat: u16,
    out_idle: u64,
    in_idle: u64,
) -> [(CtKey, SnatValue); 2] {
    let k = |saddr, daddr, sport: u16, dport: u16, dir| CtKey {
        saddr,
        daddr,
        sport: sport.to_be(),
        dport: dport.to_be(),
        proto: PROTO_UDP,
        dir,
        _pad: [0; 2],
    };
    let v = |addr, port: u16, idle| SnatValue {
        addr,
        port: port.to_be(),
        rev_nat_id,
        last_seen_ns: NOW - idle * SEC,
        ..SnatValue::default()
    };
    [
        (
            k(CLIENT, BACKEND, cport, 8080, SNAT_DIR_OUT),
            v(NODE, nat, out_idle),
        ),
        (
            k(BACKEND, NODE, 8080, nat, SNAT_DIR_IN),
            v(CLIENT, cport, in_idle),
        ),
    ]
}

#[test]
fn halves_name_each_other() {
    let [(ok, ov), (ik, iv)] = pair(1, 5000, 61000, 0, 0);
    assert_eq!(snat_peer(&ok, &ov), Some(ik));
    assert_eq!(snat_peer(&ik, &iv), Some(ok));
}

/// A `KvMap` over a Vec (CtKey has no Ord for MemMap).
#[derive(Default)]
struct VecMap(Vec<(CtKey, SnatValue)>);

impl KvMap<CtKey, SnatValue> for VecMap {
    fn get(&self, key: &CtKey) -> Result<Option<SnatValue>, crate::proxy::MapOpError> {
        Ok(self.0.iter().find(|(k, _)| k == key).map(|e| e.1))
    }
    fn insert(&mut self, key: CtKey, value: SnatValue) -> Result<(), crate::proxy::MapOpError> {
        self.0.retain(|(k, _)| *k != key);
        self.0.push((key, value));
        Ok(())
    }
    fn remove(&mut self, key: &CtKey) -> Result<(), crate::proxy::MapOpError> {
        self.0.retain(|(k, _)| k != key);
        Ok(())
    }
    fn entries(&self) -> Result<Vec<(CtKey, SnatValue)>, crate::proxy::MapOpError> {
        Ok(self.0.clone())
    }
}

#[test]
fn removes_deleted_frontends_and_idle_pairs_only() {
    let t = CtTimeouts::default(); // UDP: 120 s
    let live: BTreeSet<u32> = [1, 2].into();
    let mut m = VecMap::default();
    // Live frontend, one half busy: kept whole.
    m.0.extend(pair(1, 5000, 61000, 500, 1));
    // Live frontend, both halves idle: removed.
    m.0.extend(pair(2, 5001, 61001, 500, 500));
    // Deleted frontend: removed although busy.
    m.0.extend(pair(3, 5002, 61002, 0, 0));
    assert_eq!(gc_snat(&mut m, &live, NOW, &t).unwrap(), 4);
    assert_eq!(m.0.len(), 2);
    assert!(m.0.iter().all(|(_, v)| v.rev_nat_id == 1));
}

#[test]
fn affinity_of_deleted_frontends_goes() {
    let mut m: MemMap<AffinityKey, AffinityValue> = MemMap::new(map_names::AFFINITY);
    for id in [1, 2] {
        let k = AffinityKey {
            client: CLIENT,
            rev_nat_id: id,
        };
        m.insert(k, AffinityValue::default()).unwrap();
    }
    assert_eq!(gc_affinity(&mut m, &[2].into()).unwrap(), 1);
    assert_eq!(
        m.entries.keys().map(|k| k.rev_nat_id).collect::<Vec<_>>(),
        [2]
    );
}
