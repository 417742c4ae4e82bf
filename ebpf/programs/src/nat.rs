//! Rewrites of a flow: DNAT to the backend (plus hairpin SNAT) and reverse
//! NAT of replies.

use aya_ebpf::programs::TcContext;

use crate::{
    csum::{set_addr, set_port, RewriteError},
    parse::{Flow, IP_DADDR_OFF, IP_SADDR_OFF},
};

/// Rewrites the packet's tuple to `saddr:sport → daddr:dport` (fields that
/// do not change are left alone).
#[inline(always)]
pub fn rewrite(
    ctx: &TcContext,
    flow: &Flow,
    saddr: u32,
    daddr: u32,
    sport: u16,
    dport: u16,
) -> Result<(), RewriteError> {
    set_addr(ctx, flow, IP_SADDR_OFF, flow.saddr, saddr)?;
    set_addr(ctx, flow, IP_DADDR_OFF, flow.daddr, daddr)?;
    set_port(ctx, flow, flow.sport_off(), flow.sport, sport)?;
    set_port(ctx, flow, flow.dport_off(), flow.dport, dport)
}

/// Client → frontend becomes client → backend; with `snat_addr` ≠ 0 the
/// source becomes the hairpin address.
#[inline(always)]
pub fn dnat(
    ctx: &TcContext,
    flow: &Flow,
    backend_addr: u32,
    backend_port: u16,
    snat_addr: u32,
) -> Result<(), RewriteError> {
    let saddr = if snat_addr != 0 {
        snat_addr
    } else {
        flow.saddr
    };
    rewrite(ctx, flow, saddr, backend_addr, flow.sport, backend_port)
}

/// Backend → client (or hairpin address) becomes frontend → client.
#[inline(always)]
pub fn rev_nat(
    ctx: &TcContext,
    flow: &Flow,
    front_addr: u32,
    front_port: u16,
    client_addr: u32,
) -> Result<(), RewriteError> {
    rewrite(ctx, flow, front_addr, client_addr, front_port, flow.dport)
}
