//! `skiff_from_pod`: TC ingress on the host side of a pod veth.
//!
//! Replies of a backend are reverse-NATed from their conntrack entry;
//! packets to a ClusterIP frontend are pinned to a backend (conntrack, else a
//! flow-hash pick) and DNATed, with hairpin SNAT when the client is the
//! backend. Everything else passes untouched.

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::TcContext};
use aya_log_ebpf::debug;
use skiff_common::{
    stats, Config, CtValue, ServiceValue, CFG_F_DEBUG, CT_DIR_REPLY, CT_DIR_SERVICE, CT_F_HAIRPIN,
    SCOPE_INTERNAL,
};

use crate::{
    conntrack::{self, NewEntry},
    lb,
    maps::config,
    nat,
    parse::{self, Flow, Parsed},
    reply,
    stats::{drop_with, inc, OK},
};

#[inline(always)]
pub fn run(ctx: &TcContext) -> i32 {
    inc(stats::PACKETS);
    match parse::parse(ctx) {
        Parsed::NotIpv4 => OK,
        Parsed::Malformed => {
            inc(stats::PASS_MALFORMED);
            OK
        }
        Parsed::Fragment { daddr } if lb::is_vip(daddr) => drop_with(stats::DROP_FRAGMENT),
        Parsed::OtherProto { daddr } if lb::is_vip(daddr) => {
            drop_with(stats::DROP_UNSUPPORTED_PROTO)
        }
        Parsed::Fragment { .. } | Parsed::OtherProto { .. } => OK,
        Parsed::L4(flow) => l4(ctx, &flow, config()),
    }
}

#[inline(always)]
fn l4(ctx: &TcContext, flow: &Flow, cfg: Config) -> i32 {
    // The frontend lookup comes first: a packet to a frontend is never a
    // reply (replies go to client pods, never to a VIP), so the service path
    // skips the reply lookup.
    let Some(fe) = lb::frontend(flow.daddr, flow.dport, flow.proto) else {
        if let Some(ct) = conntrack::lookup(flow, CT_DIR_REPLY) {
            return reply::rev_nat(ctx, flow, ct, cfg);
        }
        conntrack::forget_closed_flow(flow);
        return OK;
    };
    inc(stats::SERVICE_PACKETS);
    // SAFETY: a helper without arguments or preconditions.
    let now = unsafe { bpf_ktime_get_ns() };

    let (addr, port, snat) = match conntrack::lookup(flow, CT_DIR_SERVICE) {
        Some(ct) => {
            // SAFETY: pointer from a successful lookup; copied out.
            let v: CtValue = unsafe { *ct };
            match lb::backend(v.backend_id) {
                Some(b) if v.rev_nat_id == fe.rev_nat_id => {
                    conntrack::touch(ct, flow, now);
                    let snat = if v.flags & CT_F_HAIRPIN != 0 {
                        v.nat_addr
                    } else {
                        0
                    };
                    (b.addr, b.port, snat)
                }
                _ => {
                    // Backend gone (or the frontend was recreated): pick again.
                    inc(stats::RESELECTED);
                    if cfg.flags & CFG_F_DEBUG != 0 {
                        debug!(ctx, "skiff: reselect backend_id={}", v.backend_id);
                    }
                    match new_flow(ctx, flow, &fe, now, cfg) {
                        Ok(t) => t,
                        Err(action) => return action,
                    }
                }
            }
        }
        None => {
            if fe.count == 0 {
                return drop_with(stats::DROP_NO_BACKEND);
            }
            match new_flow(ctx, flow, &fe, now, cfg) {
                Ok(t) => t,
                Err(action) => return action,
            }
        }
    };
    if nat::dnat(ctx, flow, addr, port, snat).is_err() {
        return drop_with(stats::DROP_REWRITE);
    }
    OK
}

/// Selects a backend and writes both conntrack entries; returns the DNAT
/// target (backend addr, port, hairpin SNAT addr or 0) or the action to take.
#[inline(always)]
fn new_flow(
    ctx: &TcContext,
    flow: &Flow,
    fe: &ServiceValue,
    now: u64,
    cfg: Config,
) -> Result<(u32, u16, u32), i32> {
    let Some((id, b)) = lb::select_affine(flow, fe, SCOPE_INTERNAL, now) else {
        return Err(drop_with(stats::DROP_NO_BACKEND));
    };
    // Linux drops a packet whose source is the receiver's own address.
    let hairpin = b.addr == flow.saddr;
    let entry = NewEntry {
        backend_id: id,
        backend_addr: b.addr,
        backend_port: b.port,
        rev_nat_id: fe.rev_nat_id,
        snat_addr: if hairpin { cfg.hairpin_addr } else { 0 },
        flags: if hairpin { CT_F_HAIRPIN } else { 0 },
    };
    if conntrack::create(flow, &entry, now).is_err() {
        return Err(drop_with(stats::DROP_CT_FULL));
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
    Ok((b.addr, b.port, entry.snat_addr))
}
