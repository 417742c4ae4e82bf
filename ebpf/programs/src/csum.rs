//! In-place rewrites of addresses and ports with incremental checksums.
//!
//! The L4 checksum covers the IPv4 pseudo header, so an address change
//! updates it with `BPF_F_PSEUDO_HDR`. UDP's "no checksum" value 0 stays 0
//! (`BPF_F_MARK_MANGLED_0`; a result of 0 is written as 0xffff).

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    programs::TcContext,
};
use skiff_common::PROTO_UDP;

use crate::parse::{Flow, IP_CSUM_OFF};

/// A rewrite failed (helper error): the packet may be half-written.
pub struct RewriteError;

#[inline(always)]
fn l4_flags(flow: &Flow) -> u64 {
    if flow.proto == PROTO_UDP {
        u64::from(BPF_F_MARK_MANGLED_0)
    } else {
        0
    }
}

/// Replaces the IPv4 address at `off` (saddr or daddr) with `to`.
#[inline(always)]
pub fn set_addr(
    ctx: &TcContext,
    flow: &Flow,
    off: u32,
    from: u32,
    to: u32,
) -> Result<(), RewriteError> {
    if from == to {
        return Ok(());
    }
    let flags = l4_flags(flow) | u64::from(BPF_F_PSEUDO_HDR) | 4;
    ctx.l4_csum_replace(
        flow.csum_off() as usize,
        u64::from(from),
        u64::from(to),
        flags,
    )
    .map_err(|_| RewriteError)?;
    ctx.l3_csum_replace(IP_CSUM_OFF as usize, u64::from(from), u64::from(to), 4)
        .map_err(|_| RewriteError)?;
    ctx.store(off as usize, &to, 0).map_err(|_| RewriteError)
}

/// Replaces the TCP/UDP port at `off` (sport or dport) with `to`.
#[inline(always)]
pub fn set_port(
    ctx: &TcContext,
    flow: &Flow,
    off: u32,
    from: u16,
    to: u16,
) -> Result<(), RewriteError> {
    if from == to {
        return Ok(());
    }
    let flags = l4_flags(flow) | 2;
    ctx.l4_csum_replace(
        flow.csum_off() as usize,
        u64::from(from),
        u64::from(to),
        flags,
    )
    .map_err(|_| RewriteError)?;
    ctx.store(off as usize, &to, 0).map_err(|_| RewriteError)
}
