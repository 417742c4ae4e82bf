//! Rewrites of a flow: DNAT to the backend (plus hairpin SNAT) and reverse
//! NAT of replies.

use aya_ebpf::programs::TcContext;

use crate::{
    csum::{rewrite, RewriteError},
    parse::Flow,
};

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
