//! Frontend lookup and backend selection.

use skiff_common::{Backend, ServiceKey, ServiceValue, SCOPE_INTERNAL};

use crate::{
    maps::{BACKENDS, SERVICES},
    parse::Flow,
};

/// The frontend (slot 0) for `addr:port/proto`, if any.
#[inline(always)]
pub fn frontend(addr: u32, port: u16, proto: u8) -> Option<ServiceValue> {
    let key = ServiceKey {
        addr,
        port,
        slot: 0,
        proto,
        scope: SCOPE_INTERNAL,
        _pad: [0; 2],
    };
    // SAFETY: copied out at once; a concurrent update may tear the copy,
    // which the agent's write order (slots before count) tolerates.
    unsafe { SERVICES.get(&key).copied() }
}

/// Whether `addr` is a ClusterIP: the agent writes a marker frontend
/// `{vip, port 0, proto 0}` for each one.
#[inline(always)]
pub fn is_vip(addr: u32) -> bool {
    frontend(addr, 0, 0).is_some()
}

/// The backend with id `id`, if it still exists.
#[inline(always)]
pub fn backend(id: u32) -> Option<Backend> {
    // SAFETY: copied out at once (8 bytes).
    unsafe { BACKENDS.get(&id).copied() }
}

#[inline(always)]
fn mix(h: u32, k: u32) -> u32 {
    let k = k
        .wrapping_mul(0xcc9e_2d51)
        .rotate_left(15)
        .wrapping_mul(0x1b87_3593);
    (h ^ k)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

/// Murmur3-style hash of the flow's 5-tuple: the same flow always picks the
/// same slot, and no state is written to choose it.
#[inline(always)]
pub fn flow_hash(flow: &Flow) -> u32 {
    let ports = (u32::from(flow.sport) << 16) | u32::from(flow.dport);
    let mut h = mix(0x5eed_5c1f, flow.saddr);
    h = mix(h, flow.daddr);
    h = mix(h, ports);
    h = mix(h, u32::from(flow.proto));
    h ^= 16;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Picks a backend for a new flow of frontend `fe`: slot
/// `hash % count + 1`. None if the frontend has no backend or the slot or
/// backend is missing (the agent is mid-update).
#[inline(always)]
pub fn select(flow: &Flow, fe: &ServiceValue) -> Option<(u32, Backend)> {
    let count = fe.count.min(u32::from(u16::MAX));
    if count == 0 {
        return None;
    }
    let slot = (flow_hash(flow) % count + 1) as u16;
    let key = ServiceKey {
        addr: flow.daddr,
        port: flow.dport,
        slot,
        proto: flow.proto,
        scope: SCOPE_INTERNAL,
        _pad: [0; 2],
    };
    // SAFETY: copied out at once.
    let id = unsafe { SERVICES.get(&key) }?.backend_id;
    backend(id).map(|b| (id, b))
}
