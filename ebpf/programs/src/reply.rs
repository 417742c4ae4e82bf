//! Reverse NAT of a backend's reply, shared by `skiff_from_pod` (the reply
//! leaves a local backend) and `skiff_to_pod` (the reply of a backend on
//! another node arrives for a local client).

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::TcContext};
use aya_log_ebpf::debug;
use skiff_common::{stats, Config, CtValue, CFG_F_DEBUG, CT_F_HAIRPIN, CT_F_NODEPORT};

use crate::{
    conntrack,
    maps::REV_NAT,
    nat,
    parse::Flow,
    pkt,
    stats::{drop_with, inc, OK},
};

/// A backend's reply: source back to the frontend, destination back to the
/// client when hairpin SNAT applied.
#[inline(always)]
pub fn rev_nat(ctx: &TcContext, flow: &Flow, ct: *mut CtValue, cfg: Config) -> i32 {
    // SAFETY: pointer from a successful lookup; copied out.
    let v: CtValue = unsafe { *ct };
    // SAFETY: copied out at once.
    let Some(rn) = (unsafe { REV_NAT.get(&v.rev_nat_id) }).copied() else {
        // The frontend is gone; the agent's GC removes the entry.
        return OK;
    };
    if !conntrack::reply_is_live(flow, &v, &rn) {
        return OK;
    }
    // SAFETY: a helper without arguments or preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    conntrack::touch(ct, flow, now);
    let client = if v.flags & CT_F_HAIRPIN != 0 {
        v.nat_addr
    } else {
        flow.daddr
    };
    if nat::rev_nat(ctx, flow, rn.addr, rn.port, client).is_err() {
        return drop_with(stats::DROP_REWRITE);
    }
    inc(stats::REV_NAT);
    if v.flags & CT_F_NODEPORT != 0 {
        // Source is now a node address: out of the external interface
        // directly (see CT_F_NODEPORT).
        return match pkt::forward(ctx, flow.proto, rn.addr, client) {
            Some(verdict) => {
                inc(stats::NODEPORT_TX);
                verdict
            }
            None => drop_with(stats::DROP_FIB),
        };
    }
    if cfg.flags & CFG_F_DEBUG != 0 {
        debug!(
            ctx,
            "skiff: rev-nat {:i}:{} -> {:i}:{}",
            u32::from_be(rn.addr),
            u16::from_be(rn.port),
            u32::from_be(client),
            u16::from_be(flow.dport)
        );
    }
    OK
}
