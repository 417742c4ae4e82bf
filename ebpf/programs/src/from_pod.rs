//! `skiff_from_pod`: TC ingress on the host side of a pod veth.
//!
//! Packets of established flows are found by their conntrack entry first,
//! which holds what they are rewritten to: a packet to a frontend costs one
//! conntrack and one backend lookup (the backend must still exist), a reply
//! of a backend one conntrack lookup (two for the service direction's miss).
//! A packet to a frontend without an entry is a new flow: pinned to a
//! backend by flow hash and DNATed, with hairpin SNAT when the client is the
//! backend. Everything else passes untouched after three lookups.
//!
//! Last, a packet (rewritten or not) whose destination is a pod of this
//! node is redirected into that pod (`local::deliver`): one more lookup.

use aya_ebpf::programs::TcContext;
use aya_log_ebpf::debug;
use skiff_common::{
    stats, Config, CtValue, ServiceValue, CFG_F_DEBUG, CT_DIR_REPLY, CT_DIR_SERVICE, CT_F_HAIRPIN,
    SCOPE_INTERNAL,
};

use crate::{
    clock,
    conntrack::{self, NewEntry},
    lb, local,
    maps::config,
    nat,
    parse::{Flow, Parsed},
    pkt, reply,
    stats::{drop_with, inc, OK},
};

#[inline(always)]
pub fn run(ctx: &TcContext) -> i32 {
    inc(stats::PACKETS);
    let verdict = match pkt::parse(ctx) {
        Parsed::NotIpv4 => return OK,
        Parsed::Malformed => {
            inc(stats::PASS_MALFORMED);
            return OK;
        }
        Parsed::Fragment { daddr } if lb::is_vip(daddr) => return drop_with(stats::DROP_FRAGMENT),
        Parsed::OtherProto { daddr } if lb::is_vip(daddr) => {
            return drop_with(stats::DROP_UNSUPPORTED_PROTO)
        }
        Parsed::Fragment { .. } | Parsed::OtherProto { .. } => OK,
        Parsed::L4(flow) => l4(ctx, &flow),
    };
    // Only a packet the stack would route: not one dropped, nor a NodePort
    // reply already sent out of the external interface.
    if verdict != OK {
        return verdict;
    }
    local::deliver(ctx, config())
}

#[inline(always)]
fn l4(ctx: &TcContext, flow: &Flow) -> i32 {
    if let Some(ct) = conntrack::lookup(flow, CT_DIR_SERVICE) {
        return established(ctx, flow, ct);
    }
    if let Some(ct) = conntrack::lookup(flow, CT_DIR_REPLY) {
        return reply::rev_nat(ctx, flow, ct, config());
    }
    match lb::frontend(flow.daddr, flow.dport, flow.proto) {
        Some(fe) => {
            inc(stats::SERVICE_PACKETS);
            if fe.count == 0 {
                return drop_with(stats::DROP_NO_BACKEND);
            }
            new_flow(ctx, flow, &fe, config())
        }
        None => {
            conntrack::forget_closed_flow(flow);
            OK
        }
    }
}

/// A packet of a flow with a service entry: DNAT to its backend while that
/// backend exists (a terminating one included, except for a new connection
/// on a closed flow's tuple: [`lb::keeps_flow`]); otherwise pick again.
#[inline(always)]
fn established(ctx: &TcContext, flow: &Flow, ct: *mut CtValue) -> i32 {
    // SAFETY: pointer from a successful lookup; copied out.
    let v: CtValue = unsafe { *ct };
    if lb::backend(v.backend_id)
        .is_some_and(|b| b.addr == v.addr && b.port == v.port && lb::keeps_flow(&b, v.flags, flow))
    {
        inc(stats::SERVICE_PACKETS);
        conntrack::touch(ct, flow, clock::now());
        let snat = if v.flags & CT_F_HAIRPIN != 0 {
            v.nat_addr
        } else {
            0
        };
        if nat::dnat(ctx, flow, v.addr, v.port, snat).is_err() {
            return drop_with(stats::DROP_REWRITE);
        }
        return OK;
    }
    // The backend is gone (or takes no new connection): the flow's reply
    // entry goes with it.
    conntrack::remove_reply_of(flow, &v);
    let cfg = config();
    let Some(fe) = lb::frontend(flow.daddr, flow.dport, flow.proto) else {
        // So is the frontend: nothing to pick from, the packet passes as
        // one to any other address would.
        conntrack::remove(flow, CT_DIR_SERVICE);
        return OK;
    };
    inc(stats::SERVICE_PACKETS);
    inc(stats::RESELECTED);
    if cfg.flags & CFG_F_DEBUG != 0 {
        debug!(ctx, "skiff: reselect backend_id={}", v.backend_id);
    }
    new_flow(ctx, flow, &fe, cfg)
}

/// Selects a backend, writes both conntrack entries, then DNATs.
#[inline(always)]
fn new_flow(ctx: &TcContext, flow: &Flow, fe: &ServiceValue, cfg: Config) -> i32 {
    let now = clock::now();
    let Some((id, b)) = lb::select_affine(flow, fe, SCOPE_INTERNAL, now) else {
        return drop_with(stats::DROP_NO_BACKEND);
    };
    // Linux drops a packet whose source is the receiver's own address.
    let hairpin = b.addr == flow.saddr;
    let entry = NewEntry {
        backend_id: id,
        backend_addr: b.addr,
        backend_port: b.port,
        rev_nat_id: fe.rev_nat_id,
        front_addr: flow.daddr,
        front_port: flow.dport,
        snat_addr: if hairpin { cfg.hairpin_addr } else { 0 },
        flags: if hairpin { CT_F_HAIRPIN } else { 0 },
    };
    if conntrack::create(flow, &entry, now).is_err() {
        return drop_with(stats::DROP_CT_FULL);
    }
    inc(stats::NEW_FLOWS);
    if cfg.flags & CFG_F_DEBUG != 0 {
        debug!(
            ctx,
            "skiff: new flow {:i}:{} -> {:i}:{} backend {}={:i}:{} hairpin={}",
            u32::from_be(flow.saddr),
            u16::from_be(flow.sport),
            u32::from_be(flow.daddr),
            u16::from_be(flow.dport),
            id,
            u32::from_be(b.addr),
            u16::from_be(b.port),
            u8::from(hairpin)
        );
    }
    if nat::dnat(ctx, flow, b.addr, b.port, entry.snat_addr).is_err() {
        return drop_with(stats::DROP_REWRITE);
    }
    OK
}
