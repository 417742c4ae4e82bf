//! Desired state vs. map contents → an ordered list of map operations.
//!
//! The data path reads the maps while they change, so the order is chosen
//! such that after every single operation each frontend's `count` names only
//! slots that exist and slots name only backends that exist:
//!
//! 1. upsert backends, rev-NAT entries and VIP markers;
//! 2. upsert slots (`1..=count` of the new count);
//! 3. upsert frontends (slot 0): a growing count only after its slots exist,
//!    a shrinking count before its surplus slots go;
//! 4. delete frontends of removed services;
//! 5. delete surplus slots (shrunk or removed frontends);
//! 6. delete backends and rev-NAT entries nothing refers to any more;
//! 7. delete VIP markers of removed ClusterIPs.

use std::collections::BTreeMap;
use std::fmt;

use skiff_common::{Backend, RevNat, ServiceKey, ServiceValue};

use super::apply::{MapOpError, ServiceMaps};
use super::{vip_marker_key, DesiredState, IdAllocator};

/// What the service maps hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CurrentState {
    pub services: BTreeMap<ServiceKey, ServiceValue>,
    pub backends: BTreeMap<u32, Backend>,
    pub rev_nat: BTreeMap<u32, RevNat>,
}

impl CurrentState {
    /// The state after `ops` were applied to it: the agent's mirror of what
    /// it wrote, so a pass need not read every map entry back.
    pub fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            match *op {
                Op::UpsertBackend(id, b) => {
                    self.backends.insert(id, b);
                }
                Op::UpsertRevNat(id, r) => {
                    self.rev_nat.insert(id, r);
                }
                Op::UpsertService(k, v) => {
                    self.services.insert(k, v);
                }
                Op::DeleteService(k) => {
                    self.services.remove(&k);
                }
                Op::DeleteBackend(id) => {
                    self.backends.remove(&id);
                }
                Op::DeleteRevNat(id) => {
                    self.rev_nat.remove(&id);
                }
            }
        }
    }

    /// Reads the services, backends and rev-NAT maps.
    pub fn read(maps: &mut dyn ServiceMaps) -> Result<Self, MapOpError> {
        Ok(Self {
            services: maps.services().entries()?.into_iter().collect(),
            backends: maps.backends().entries()?.into_iter().collect(),
            rev_nat: maps.rev_nat().entries()?.into_iter().collect(),
        })
    }
}

/// One map write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    UpsertBackend(u32, Backend),
    UpsertRevNat(u32, RevNat),
    UpsertService(ServiceKey, ServiceValue),
    DeleteService(ServiceKey),
    DeleteBackend(u32),
    DeleteRevNat(u32),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UpsertBackend(id, _) => write!(f, "upsert backend {id}"),
            Self::UpsertRevNat(id, _) => write!(f, "upsert rev-nat {id}"),
            Self::UpsertService(k, v) => write!(f, "upsert service {} = {v:?}", fmt_key(k)),
            Self::DeleteService(k) => write!(f, "delete service {}", fmt_key(k)),
            Self::DeleteBackend(id) => write!(f, "delete backend {id}"),
            Self::DeleteRevNat(id) => write!(f, "delete rev-nat {id}"),
        }
    }
}

fn fmt_key(k: &ServiceKey) -> String {
    let ip = std::net::Ipv4Addr::from(k.addr.to_ne_bytes());
    let port = u16::from_be(k.port);
    format!("{ip}:{port}/{} slot {} scope {}", k.proto, k.slot, k.scope)
}

/// The map contents a desired state asks for, with ids resolved.
#[derive(Debug, Default)]
struct Wanted {
    services: BTreeMap<ServiceKey, ServiceValue>,
    backends: BTreeMap<u32, Backend>,
    rev_nat: BTreeMap<u32, RevNat>,
}

fn wanted(desired: &DesiredState, ids: &mut IdAllocator) -> Wanted {
    let mut w = Wanted::default();
    // A backend that gets no id (every id is taken until the removals of this pass are
    // applied) is left out of its frontends this pass and comes in on the next one.
    for (addr, &flags) in &desired.backends {
        if let Some(id) = ids.backend(addr) {
            w.backends.insert(id, addr.to_backend(flags));
        }
    }
    for vip in &desired.vips {
        w.services
            .insert(vip_marker_key(*vip), ServiceValue::default());
    }
    for (fk, fe) in &desired.frontends {
        let rev_nat_id = ids.rev_nat(&fk.l4);
        let rn = RevNat {
            addr: skiff_common::ipv4_be(fk.l4.addr.octets()),
            port: skiff_common::port_be(fk.l4.port),
            _pad: 0,
        };
        w.rev_nat.insert(rev_nat_id, rn);
        let with_ids: Vec<(&super::L4Addr, u32)> = fe
            .backends
            .iter()
            .filter_map(|b| Some((b, ids.backend(b)?)))
            .collect();
        for (i, &(b, backend_id)) in with_ids.iter().enumerate() {
            let slot = u16::try_from(i + 1).unwrap_or(u16::MAX);
            // A slot backend always has an entry, even if the caller forgot it.
            w.backends
                .entry(backend_id)
                .or_insert_with(|| b.to_backend(0));
            let v = ServiceValue {
                backend_id,
                ..ServiceValue::default()
            };
            w.services.insert(fk.slot_key(slot), v);
        }
        let front = ServiceValue {
            backend_id: 0,
            count: u32::try_from(with_ids.len()).unwrap_or(u32::MAX),
            rev_nat_id,
            flags: fe.flags,
            affinity_timeout_s: fe.affinity_timeout_s,
        };
        w.services.insert(fk.slot_key(0), front);
    }
    w
}

fn is_marker(k: &ServiceKey) -> bool {
    k.slot == 0 && k.proto == 0
}

/// The operations that turn `current` into `desired`, in a safe order
/// (see the module docs). Allocates ids for new addresses in `ids`.
pub fn diff(desired: &DesiredState, ids: &mut IdAllocator, current: &CurrentState) -> Vec<Op> {
    let w = wanted(desired, ids);
    let mut ops = Vec::new();
    // 1. Things slots and frontends point to.
    for (&id, &b) in &w.backends {
        if current.backends.get(&id) != Some(&b) {
            ops.push(Op::UpsertBackend(id, b));
        }
    }
    for (&id, &rn) in &w.rev_nat {
        if current.rev_nat.get(&id) != Some(&rn) {
            ops.push(Op::UpsertRevNat(id, rn));
        }
    }
    let changed = |k: &ServiceKey, v: &ServiceValue| current.services.get(k) != Some(v);
    let upserts = w.services.iter().filter(|(k, v)| changed(k, v));
    let (markers, rest): (Vec<_>, Vec<_>) = upserts.partition(|(k, _)| is_marker(k));
    ops.extend(markers.iter().map(|(&k, &v)| Op::UpsertService(k, v)));
    // 2. Slots, then 3. frontends.
    let (fronts, slots): (Vec<_>, Vec<_>) = rest.into_iter().partition(|(k, _)| k.slot == 0);
    ops.extend(slots.iter().map(|(&k, &v)| Op::UpsertService(k, v)));
    ops.extend(fronts.iter().map(|(&k, &v)| Op::UpsertService(k, v)));
    // 4.-7. Deletions.
    let stale: Vec<ServiceKey> = current
        .services
        .keys()
        .filter(|k| !w.services.contains_key(k))
        .copied()
        .collect();
    let del = |pred: &dyn Fn(&ServiceKey) -> bool| {
        stale
            .iter()
            .filter(|k| pred(k))
            .map(|&k| Op::DeleteService(k))
            .collect::<Vec<_>>()
    };
    ops.extend(del(&|k| k.slot == 0 && !is_marker(k)));
    ops.extend(del(&|k| k.slot != 0));
    for &id in current.backends.keys() {
        if !w.backends.contains_key(&id) {
            ops.push(Op::DeleteBackend(id));
        }
    }
    for &id in current.rev_nat.keys() {
        if !w.rev_nat.contains_key(&id) {
            ops.push(Op::DeleteRevNat(id));
        }
    }
    ops.extend(del(&is_marker));
    ops
}
