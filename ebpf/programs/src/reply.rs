//! Reverse NAT of a backend's reply, shared by `skiff_from_pod` (the reply
//! leaves a local backend) and `skiff_to_pod` (the reply of a backend on
//! another node arrives for a local client).
//!
//! The reply entry names the frontend itself, so a reply costs its one
//! conntrack lookup. Whether the flow's service entry still exists (a reply
//! entry outliving it could rewrite an unrelated connection reusing the
//! tuple) is checked on a TCP SYN, i.e. the handshake of a new connection,
//! and otherwise once per refresh of the entry (`CT_REFRESH_NS`); a flow
//! that picks another backend removes its old reply entry at once.

use aya_ebpf::programs::TcContext;
use aya_log_ebpf::debug;
use skiff_common::{stats, Config, CtValue, CFG_F_DEBUG, CT_F_HAIRPIN, CT_F_NODEPORT};

use crate::{
    clock, conntrack, nat,
    parse::{Flow, TCP_SYN},
    pkt,
    stats::{drop_with, inc, OK},
};

/// A backend's reply: source back to the frontend, destination back to the
/// client when hairpin SNAT applied.
#[inline(always)]
pub fn rev_nat(ctx: &TcContext, flow: &Flow, ct: *mut CtValue, cfg: Config) -> i32 {
    // SAFETY: pointer from a successful lookup; copied out.
    let v: CtValue = unsafe { *ct };
    let now = clock::now();
    let check = flow.tcp_flags & TCP_SYN != 0 || conntrack::refresh_due(v.last_seen_ns, now);
    if check && !conntrack::reply_is_live(flow, &v) {
        return OK;
    }
    // A NodePort reply is routed out by this program: one whose TTL would
    // expire here goes to the stack untouched (which answers the pod with
    // ICMP time exceeded), as the node's forwarding would.
    if v.flags & CT_F_NODEPORT != 0 && !pkt::ttl_forwardable(ctx) {
        return OK;
    }
    conntrack::touch(ct, flow, now);
    let client = if v.flags & CT_F_HAIRPIN != 0 {
        v.nat_addr
    } else {
        flow.daddr
    };
    if nat::rev_nat(ctx, flow, v.addr, v.port, client).is_err() {
        return drop_with(stats::DROP_REWRITE);
    }
    inc(stats::REV_NAT);
    if v.flags & CT_F_NODEPORT != 0 {
        // Source is now a node address: out of the external interface
        // directly (see CT_F_NODEPORT).
        return match pkt::forward(ctx, flow.proto, v.addr, client) {
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
            u32::from_be(v.addr),
            u16::from_be(v.port),
            u32::from_be(client),
            u16::from_be(flow.dport)
        );
    }
    OK
}
