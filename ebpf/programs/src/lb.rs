//! Frontend lookup and backend selection.

use skiff_common::{
    AffinityKey, AffinityValue, Backend, ServiceKey, ServiceValue, BACKEND_F_TERMINATING,
    CT_F_CLOSING, SCOPE_INTERNAL, SVC_F_AFFINITY,
};

use crate::{
    maps::{AFFINITY, BACKENDS, SERVICES},
    parse::Flow,
};

/// The frontend (slot 0) for `addr:port/proto`, if any.
#[inline(always)]
pub fn frontend(addr: u32, port: u16, proto: u8) -> Option<ServiceValue> {
    frontend_scoped(addr, port, proto, SCOPE_INTERNAL)
}

/// The frontend (slot 0) for `addr:port/proto` in `scope`, if any.
#[inline(always)]
pub fn frontend_scoped(addr: u32, port: u16, proto: u8, scope: u8) -> Option<ServiceValue> {
    let key = ServiceKey {
        addr,
        port,
        slot: 0,
        proto,
        scope,
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
    // An all-zero entry is a free id.
    BACKENDS.get(id).copied().filter(|b| b.addr != 0)
}

/// Whether an established flow's packet stays with backend `b` (its entry's
/// flags `ct_flags`): always, unless `b` is terminating and the packet is a
/// fresh SYN on an entry that saw FIN or RST — a new connection reusing a
/// closed one's tuple, which the stack's conntrack would NAT afresh too. New
/// connections avoid terminating backends; a SYN retransmitted during the
/// handshake stays.
#[inline(always)]
pub fn keeps_flow(b: &Backend, ct_flags: u32, flow: &Flow) -> bool {
    b.flags & BACKEND_F_TERMINATING == 0 || ct_flags & CT_F_CLOSING == 0 || !flow.is_fresh_syn()
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

/// Picks a backend for a new flow of frontend `fe` (`flow.daddr:flow.dport`
/// in `scope`): slot `hash % count + 1`. None if the frontend has no backend
/// or the slot or backend is missing (the agent is mid-update).
#[inline(always)]
pub fn select_scoped(flow: &Flow, fe: &ServiceValue, scope: u8) -> Option<(u32, Backend)> {
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
        scope,
        _pad: [0; 2],
    };
    // SAFETY: copied out at once.
    let id = unsafe { SERVICES.get(&key) }?.backend_id;
    backend(id).map(|b| (id, b))
}

/// The backend `key`'s client last got, if that was less than `timeout_ns`
/// ago and the backend still exists; its use is refreshed.
#[inline(always)]
fn remembered(key: &AffinityKey, timeout_ns: u64, now: u64) -> Option<(u32, Backend)> {
    let v = AFFINITY.get_ptr_mut(key)?;
    // SAFETY: pointer from a successful lookup; fields copied out.
    let (id, last) = unsafe { ((*v).backend_id, (*v).last_used_ns) };
    // Signed: another CPU's coarse clock may be up to a tick ahead of ours, and
    // an entry it just wrote must not look ancient.
    if (now.wrapping_sub(last) as i64) > timeout_ns as i64 {
        return None;
    }
    let b = backend(id)?;
    // SAFETY: as above; a racing writer only loses a refresh.
    unsafe { (*v).last_used_ns = now };
    Some((id, b))
}

/// Like [`select_scoped`], honouring `sessionAffinity: ClientIP`: a client
/// whose last new flow to this frontend is younger than the timeout gets the
/// same backend again while it exists and is not terminating — or while
/// every slot is (KEP-1669's fallback, where a terminating backend is as
/// good as any); otherwise a backend is picked by flow hash and remembered.
#[inline(always)]
pub fn select_affine(
    flow: &Flow,
    fe: &ServiceValue,
    scope: u8,
    now: u64,
) -> Option<(u32, Backend)> {
    if fe.flags & SVC_F_AFFINITY == 0 {
        return select_scoped(flow, fe, scope);
    }
    let key = AffinityKey {
        client: flow.saddr,
        rev_nat_id: fe.rev_nat_id,
    };
    let timeout_ns = u64::from(fe.affinity_timeout_s) * 1_000_000_000;
    if let Some((id, b)) = remembered(&key, timeout_ns, now) {
        if b.flags & BACKEND_F_TERMINATING == 0 {
            return Some((id, b));
        }
    }
    let (id, b) = select_scoped(flow, fe, scope)?;
    if b.flags & BACKEND_F_TERMINATING != 0 {
        // Only in the fallback: look again rather than carry the first
        // result (the verifier rejects the partly initialised tuple LLVM
        // makes of it).
        if let Some(r) = remembered(&key, timeout_ns, now) {
            return Some(r);
        }
    }
    let v = AffinityValue {
        backend_id: id,
        _pad: 0,
        last_used_ns: now,
    };
    // Best effort: without the entry the next flow just hashes again.
    let _ = AFFINITY.insert(&key, &v, 0);
    Some((id, b))
}
