//! Connection tracking: one entry per direction, keyed by the full 5-tuple as
//! the packet carries it plus the direction.

use skiff_common::{
    CtKey, CtValue, CT_DIR_REPLY, CT_DIR_SERVICE, CT_F_CLOSING, CT_REFRESH_NS, PROTO_TCP,
};

use crate::{
    maps::CONNTRACK,
    parse::{Flow, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN},
};

#[inline(always)]
pub fn key(saddr: u32, daddr: u32, sport: u16, dport: u16, proto: u8, dir: u8) -> CtKey {
    CtKey {
        saddr,
        daddr,
        sport,
        dport,
        proto,
        dir,
        _pad: [0; 2],
    }
}

/// The entry for the packet's own tuple in direction `dir`.
#[inline(always)]
pub fn lookup(flow: &Flow, dir: u8) -> Option<*mut CtValue> {
    let k = key(
        flow.saddr, flow.daddr, flow.sport, flow.dport, flow.proto, dir,
    );
    CONNTRACK.get_ptr_mut(&k)
}

/// CT_F_CLOSING bits a packet implies for its entry: set on FIN/RST,
/// cleared by a fresh SYN (port reuse after close).
#[inline(always)]
fn flags_after(flags: u32, flow: &Flow) -> u32 {
    if flow.proto != PROTO_TCP {
        return flags;
    }
    if flow.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
        flags | CT_F_CLOSING
    } else if flow.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
        flags & !CT_F_CLOSING
    } else {
        flags
    }
}

/// Refreshes `last_seen_ns` (at most once per CT_REFRESH_NS) and the closing
/// flag of an entry the packet hit. Writes only when something changes.
#[inline(always)]
pub fn touch(v: *mut CtValue, flow: &Flow, now: u64) {
    // SAFETY: `v` comes from a successful lookup in this run; the write is a
    // plain store into the map value (a race only loses a refresh).
    unsafe {
        if now.wrapping_sub((*v).last_seen_ns) >= CT_REFRESH_NS {
            (*v).last_seen_ns = now;
        }
        let flags = flags_after((*v).flags, flow);
        if flags != (*v).flags {
            (*v).flags = flags;
        }
    }
}

/// What a new or re-selected flow records.
pub struct NewEntry {
    pub backend_id: u32,
    pub backend_addr: u32,
    pub backend_port: u16,
    pub rev_nat_id: u32,
    /// Hairpin source address, 0 when no SNAT applies.
    pub snat_addr: u32,
    pub flags: u32,
}

/// The conntrack map refused an entry: drop the packet (fail closed).
pub struct CtFull;

/// Writes the service entry and the reply entry of a flow (creating or
/// replacing them). If the second write fails the first is undone.
#[inline(always)]
pub fn create(flow: &Flow, e: &NewEntry, now: u64) -> Result<(), CtFull> {
    let flags = flags_after(e.flags, flow);
    let svc_key = key(
        flow.saddr,
        flow.daddr,
        flow.sport,
        flow.dport,
        flow.proto,
        CT_DIR_SERVICE,
    );
    let svc = CtValue {
        backend_id: e.backend_id,
        rev_nat_id: e.rev_nat_id,
        nat_addr: e.snat_addr,
        flags,
        last_seen_ns: now,
    };
    CONNTRACK.insert(&svc_key, &svc, 0).map_err(|_| CtFull)?;

    let reply_dst = if e.snat_addr != 0 {
        e.snat_addr
    } else {
        flow.saddr
    };
    let reply_key = key(
        e.backend_addr,
        reply_dst,
        e.backend_port,
        flow.sport,
        flow.proto,
        CT_DIR_REPLY,
    );
    let reply = CtValue {
        backend_id: e.backend_id,
        rev_nat_id: e.rev_nat_id,
        nat_addr: flow.saddr,
        flags,
        last_seen_ns: now,
    };
    if CONNTRACK.insert(&reply_key, &reply, 0).is_err() {
        let _ = CONNTRACK.remove(&svc_key);
        return Err(CtFull);
    }
    Ok(())
}
