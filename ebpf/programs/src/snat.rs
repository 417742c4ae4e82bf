//! NodePort SNAT towards backends on other nodes: port allocation and the
//! two entries of a flow in the `SNAT` map.
//!
//! A port is claimed by inserting the reply-direction entry
//! `(backend, node, bport, port)` with `BPF_NOEXIST`: the insert is atomic,
//! so two CPUs can never hand out the same (backend, port) pair, and no
//! port is shared by two flows to the same backend. Candidates are probed
//! from a hash of the flow; when all [`TRIES`] are taken the flow fails
//! closed (dropped and counted). Ports are unique per (backend address,
//! backend port, protocol), so the range is rarely the limit.

use aya_ebpf::bindings::BPF_NOEXIST;
use skiff_common::{
    Backend, CtKey, NodePortConfig, SnatValue, CT_REFRESH_NS, SNAT_DIR_IN, SNAT_DIR_OUT,
};

use crate::{conntrack, lb, maps::SNAT, parse::Flow};

/// Candidate ports probed per new flow.
const TRIES: u32 = 32;

#[inline(always)]
fn out_key(flow: &Flow, b: &Backend) -> CtKey {
    conntrack::key(
        flow.saddr,
        b.addr,
        flow.sport,
        b.port,
        flow.proto,
        SNAT_DIR_OUT,
    )
}

/// The reply-direction key of a flow to backend `b` SNATed to `port`.
#[inline(always)]
fn in_key(b: &Backend, cfg: &NodePortConfig, port: u16, proto: u8) -> CtKey {
    conntrack::key(b.addr, cfg.node_addr, b.port, port, proto, SNAT_DIR_IN)
}

/// Refreshes `last_seen_ns` (at most once per CT_REFRESH_NS) and the
/// closing flag of an entry the packet hit.
#[inline(always)]
pub fn touch(v: *mut SnatValue, flow: &Flow, now: u64) {
    // SAFETY: `v` comes from a successful lookup in this run; plain stores
    // into the map value (a race only loses a refresh).
    unsafe {
        if (now.wrapping_sub((*v).last_seen_ns) as i64) >= CT_REFRESH_NS as i64 {
            (*v).last_seen_ns = now;
        }
        let flags = conntrack::flags_after((*v).flags, flow);
        if flags != (*v).flags {
            (*v).flags = flags;
        }
    }
}

/// The SNAT port (network order) of the flow `flow` (client → frontend)
/// now going to backend `b`: the existing one, or a newly claimed one.
/// `None`: every candidate port is taken (or the map refused the entry).
#[inline(always)]
pub fn port_for(
    flow: &Flow,
    b: &Backend,
    rev_nat_id: u32,
    cfg: &NodePortConfig,
    now: u64,
) -> Option<u16> {
    let ok = out_key(flow, b);
    if let Some(v) = SNAT.get_ptr_mut(&ok) {
        touch(v, flow, now);
        // SAFETY: pointer from a successful lookup.
        return Some(unsafe { (*v).port });
    }
    let (min, max) = (u32::from(cfg.snat_port_min), u32::from(cfg.snat_port_max));
    if min == 0 || max < min {
        return None;
    }
    // NonZero: `%` without a divide-by-zero panic path (the verifier
    // rejects the panic call).
    let range = core::num::NonZeroU32::new(max - min + 1)?;
    let probe = Flow {
        saddr: flow.saddr,
        daddr: b.addr,
        sport: flow.sport,
        dport: b.port,
        proto: flow.proto,
        tcp_flags: 0,
        l4_off: 0,
    };
    let start = lb::flow_hash(&probe) % range;
    let flags = conntrack::flags_after(0, flow);
    for i in 0..TRIES {
        // Odd stride: consecutive tries land far apart.
        let port = ((min + start.wrapping_add(i * 97) % range) as u16).to_be();
        let ik = in_key(b, cfg, port, flow.proto);
        let iv = SnatValue {
            addr: flow.saddr,
            port: flow.sport,
            _pad: 0,
            rev_nat_id,
            flags,
            last_seen_ns: now,
        };
        if SNAT.insert(&ik, &iv, u64::from(BPF_NOEXIST)).is_err() {
            continue;
        }
        let ov = SnatValue {
            addr: cfg.node_addr,
            port,
            _pad: 0,
            rev_nat_id,
            flags,
            last_seen_ns: now,
        };
        if SNAT.insert(&ok, &ov, 0).is_err() {
            let _ = SNAT.remove(&ik);
            return None;
        }
        return Some(port);
    }
    None
}

/// Removes both SNAT entries of flow `flow` (client → frontend) to backend
/// `b`, if it has them.
#[inline(always)]
pub fn forget(flow: &Flow, b: &Backend, cfg: &NodePortConfig) {
    let ok = out_key(flow, b);
    // SAFETY: copied out at once.
    let Some(port) = (unsafe { SNAT.get(&ok) }).map(|v| v.port) else {
        return;
    };
    let _ = SNAT.remove(&in_key(b, cfg, port, flow.proto));
    let _ = SNAT.remove(&ok);
}

/// The reply-direction entry a packet `backend → node:port` hits, if any.
#[inline(always)]
pub fn lookup_in(flow: &Flow) -> Option<*mut SnatValue> {
    let k = conntrack::key(
        flow.saddr,
        flow.daddr,
        flow.sport,
        flow.dport,
        flow.proto,
        SNAT_DIR_IN,
    );
    SNAT.get_ptr_mut(&k)
}
