//! `skiff_to_pod`: TC egress on the host side of a pod veth (packets about
//! to enter the pod).
//!
//! Only reverse NAT: a client's conntrack entries live on the client's node,
//! so the reply of a backend on another node arrives here with the backend's
//! address and must get the frontend's back before the client sees it.
//! Replies of a local backend were already rewritten by `skiff_from_pod`
//! and miss here (their source is the frontend now).

use aya_ebpf::programs::TcContext;
use skiff_common::{stats, CT_DIR_REPLY};

use crate::{
    conntrack,
    maps::config,
    parse::Parsed,
    pkt, reply,
    stats::{inc, OK},
};

#[inline(always)]
pub fn run(ctx: &TcContext) -> i32 {
    inc(stats::PACKETS);
    match pkt::parse(ctx) {
        Parsed::L4(flow) => match conntrack::lookup(&flow, CT_DIR_REPLY) {
            Some(ct) => reply::rev_nat(ctx, &flow, ct, config()),
            None => OK,
        },
        Parsed::Malformed => {
            inc(stats::PASS_MALFORMED);
            OK
        }
        _ => OK,
    }
}
