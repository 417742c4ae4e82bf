//! Connection tracking: one entry per direction, keyed by the full 5-tuple as
//! the packet carries it plus the direction. Each entry holds what its
//! packets are rewritten to (see [`CtValue`]).

use skiff_common::{
    CtKey, CtValue, CT_DIR_REPLY, CT_DIR_SERVICE, CT_F_CLOSING, CT_F_HAIRPIN, CT_REFRESH_NS,
    PROTO_TCP,
};

use crate::{
    maps::CONNTRACK,
    parse::{Flow, TCP_FIN, TCP_RST},
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

/// The key of the packet's own tuple in direction `dir`.
#[inline(always)]
fn own_key(flow: &Flow, dir: u8) -> CtKey {
    key(
        flow.saddr, flow.daddr, flow.sport, flow.dport, flow.proto, dir,
    )
}

/// The entry for the packet's own tuple in direction `dir`.
#[inline(always)]
pub fn lookup(flow: &Flow, dir: u8) -> Option<*mut CtValue> {
    CONNTRACK.get_ptr_mut(&own_key(flow, dir))
}

/// Removes the entry for the packet's own tuple in direction `dir`.
#[inline(always)]
pub fn remove(flow: &Flow, dir: u8) {
    let _ = CONNTRACK.remove(&own_key(flow, dir));
}

/// CT_F_CLOSING bits a packet implies for its entry: set on FIN/RST,
/// cleared by a fresh SYN (port reuse after close).
#[inline(always)]
pub fn flags_after(flags: u32, flow: &Flow) -> u32 {
    if flow.proto != PROTO_TCP {
        return flags;
    }
    if flow.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
        flags | CT_F_CLOSING
    } else if flow.is_fresh_syn() {
        flags & !CT_F_CLOSING
    } else {
        flags
    }
}

/// Whether `last_seen_ns` is due for a refresh at `now`. Signed: another
/// CPU's clock reading may be up to a tick ahead of this one's.
#[inline(always)]
pub fn refresh_due(last_seen_ns: u64, now: u64) -> bool {
    (now.wrapping_sub(last_seen_ns) as i64) >= CT_REFRESH_NS as i64
}

/// Refreshes `last_seen_ns` (at most once per CT_REFRESH_NS) and the closing
/// flag of an entry the packet hit. Writes only when something changes.
#[inline(always)]
pub fn touch(v: *mut CtValue, flow: &Flow, now: u64) {
    // SAFETY: `v` comes from a successful lookup in this run; the write is a
    // plain store into the map value (a race only loses a refresh).
    unsafe {
        if refresh_due((*v).last_seen_ns, now) {
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
    /// The frontend replies are rewritten back to (what the client asked
    /// for: the packet's destination before DNAT).
    pub front_addr: u32,
    pub front_port: u16,
    /// Hairpin source address, 0 when no SNAT applies.
    pub snat_addr: u32,
    pub flags: u32,
}

/// The conntrack map refused an entry: drop the packet (fail closed).
pub struct CtFull;

#[inline(always)]
fn service_entry(flow: &Flow, e: &NewEntry, now: u64) -> (CtKey, CtValue) {
    let k = own_key(flow, CT_DIR_SERVICE);
    let v = CtValue {
        backend_id: e.backend_id,
        rev_nat_id: e.rev_nat_id,
        nat_addr: e.snat_addr,
        flags: flags_after(e.flags, flow),
        last_seen_ns: now,
        addr: e.backend_addr,
        port: e.backend_port,
        _pad: 0,
    };
    (k, v)
}

/// Writes the service entry and the reply entry of a flow (creating or
/// replacing them). If the second write fails the first is undone.
#[inline(always)]
pub fn create(flow: &Flow, e: &NewEntry, now: u64) -> Result<(), CtFull> {
    let (svc_key, svc) = service_entry(flow, e, now);
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
        nat_addr: flow.saddr,
        addr: e.front_addr,
        port: e.front_port,
        ..svc
    };
    if CONNTRACK.insert(&reply_key, &reply, 0).is_err() {
        let _ = CONNTRACK.remove(&svc_key);
        return Err(CtFull);
    }
    Ok(())
}

/// Writes only the service entry of a flow (NodePort flows SNATed to a
/// backend on another node: their replies come back through the SNAT map,
/// never through a pod veth of this node).
#[inline(always)]
pub fn create_service(flow: &Flow, e: &NewEntry, now: u64) -> Result<(), CtFull> {
    let (k, v) = service_entry(flow, e, now);
    CONNTRACK.insert(&k, &v, 0).map_err(|_| CtFull)
}

/// Removes the reply entry of service entry `svc` (hit by `flow`): its
/// backend is gone or the flow is about to pick another one, and a reply
/// entry left behind could rewrite an unrelated connection that reuses the
/// tuple.
#[inline(always)]
pub fn remove_reply_of(flow: &Flow, svc: &CtValue) {
    let dst = if svc.flags & CT_F_HAIRPIN != 0 {
        svc.nat_addr
    } else {
        flow.saddr
    };
    let rk = key(
        svc.addr,
        dst,
        svc.port,
        flow.sport,
        flow.proto,
        CT_DIR_REPLY,
    );
    let _ = CONNTRACK.remove(&rk);
}

/// The service entry a reply entry belongs to: `(client, frontend, client
/// port, frontend port)`. `client_port` is the reply's destination port.
#[inline(always)]
fn service_key_of(reply: &CtValue, client_port: u16, proto: u8) -> CtKey {
    key(
        reply.nat_addr,
        reply.addr,
        client_port,
        reply.port,
        proto,
        CT_DIR_SERVICE,
    )
}

/// Whether the reply entry `reply` (hit by `flow`) still belongs to a live
/// service flow on the same backend. A stale one (its flow expired or was
/// evicted) is removed so it cannot rewrite an unrelated connection that
/// reuses the tuple.
#[inline(always)]
pub fn reply_is_live(flow: &Flow, reply: &CtValue) -> bool {
    let sk = service_key_of(reply, flow.dport, flow.proto);
    // SAFETY: copied out at once.
    let live = unsafe { CONNTRACK.get(&sk) }.is_some_and(|s| s.backend_id == reply.backend_id);
    if !live {
        remove(flow, CT_DIR_REPLY);
    }
    live
}

/// A new TCP connection (a SYN) to an address that is not a frontend: if its
/// reverse tuple is the reply tuple of a closed service flow (the client
/// reuses a source port towards the backend directly), that flow's entries
/// would rewrite the new connection's replies; remove them. Only SYNs pay
/// for this lookup.
#[inline(always)]
pub fn forget_closed_flow(flow: &Flow) {
    if !flow.is_fresh_syn() {
        return;
    }
    let rk = key(
        flow.daddr,
        flow.saddr,
        flow.dport,
        flow.sport,
        flow.proto,
        CT_DIR_REPLY,
    );
    // SAFETY: copied out at once.
    let Some(reply) = (unsafe { CONNTRACK.get(&rk) }).copied() else {
        return;
    };
    if reply.flags & CT_F_CLOSING == 0 {
        // An open service flow with the same reply tuple: a genuine clash,
        // left alone (documented in ARCHITECTURE.md).
        return;
    }
    let _ = CONNTRACK.remove(&service_key_of(&reply, flow.sport, flow.proto));
    let _ = CONNTRACK.remove(&rk);
}
