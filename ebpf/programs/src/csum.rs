//! In-place rewrites of a TC packet's addresses and ports.
//!
//! The IPv4 header checksum is always complete: it is updated in the packet
//! directly (RFC 1624), as are the addresses and ports. The L4 checksum
//! depends on the skb's checksum state, which a TC program cannot read
//! (`CHECKSUM_PARTIAL` packets of a local socket carry only the pseudo
//! header sum, which the ports are not part of), so it is updated by
//! `bpf_l4_csum_replace` from a precomputed difference: one call for the
//! addresses (`BPF_F_PSEUDO_HDR`) and one for the ports, each only when
//! something changes. UDP's "no checksum" value 0 stays 0
//! (`BPF_F_MARK_MANGLED_0`; a result of 0 is written as 0xffff).

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    programs::TcContext,
};
use skiff_common::PROTO_UDP;

use crate::{
    parse::{Flow, ETH_HLEN},
    pkt::{csum_replace4, ptr_at, Ipv4Hdr},
};

/// A rewrite failed (helper error or the headers moved out of reach): the
/// packet may be half-written.
pub struct RewriteError;

/// One's-complement sum of `~from + to` for a 32-bit field, as the 32-bit
/// partial sum (`__wsum`) `bpf_l4_csum_replace` takes with size 0.
#[inline(always)]
fn diff4(from: u32, to: u32) -> u64 {
    u64::from(!from) + u64::from(to)
}

/// The same for a 16-bit field.
#[inline(always)]
fn diff2(from: u16, to: u16) -> u64 {
    u64::from(!from) + u64::from(to)
}

/// Folds a sum of a few 32-bit words into a 32-bit one's-complement sum.
#[inline(always)]
fn fold32(mut s: u64) -> u64 {
    s = (s & 0xffff_ffff) + (s >> 32);
    (s & 0xffff_ffff) + (s >> 32)
}

/// Rewrites the packet's tuple to `saddr:sport → daddr:dport`.
#[inline(always)]
pub fn rewrite(
    ctx: &TcContext,
    flow: &Flow,
    saddr: u32,
    daddr: u32,
    sport: u16,
    dport: u16,
) -> Result<(), RewriteError> {
    let mm0 = if flow.proto == PROTO_UDP {
        u64::from(BPF_F_MARK_MANGLED_0)
    } else {
        0
    };
    let csum_off = flow.csum_off() as usize;
    if flow.saddr != saddr || flow.daddr != daddr {
        let d = fold32(diff4(flow.saddr, saddr) + diff4(flow.daddr, daddr));
        ctx.l4_csum_replace(csum_off, 0, d, mm0 | u64::from(BPF_F_PSEUDO_HDR))
            .map_err(|_| RewriteError)?;
    }
    if flow.sport != sport || flow.dport != dport {
        let d = fold32(diff2(flow.sport, sport) + diff2(flow.dport, dport));
        ctx.l4_csum_replace(csum_off, 0, d, mm0)
            .map_err(|_| RewriteError)?;
    }
    // The helpers may have moved the data: pointers are taken after them.
    let ip = ptr_at::<_, Ipv4Hdr>(ctx, ETH_HLEN).ok_or(RewriteError)?;
    let ports = ptr_at::<_, [u16; 2]>(ctx, (flow.l4_off & 0x7f) as usize).ok_or(RewriteError)?;
    // SAFETY: both pointers are bounds-checked by ptr_at; the program's
    // prologue made a cloned skb's header writable.
    unsafe {
        let c = csum_replace4((*ip).csum, flow.saddr, saddr);
        (*ip).csum = csum_replace4(c, flow.daddr, daddr);
        (*ip).saddr = saddr;
        (*ip).daddr = daddr;
        ports.write_unaligned([sport, dport]);
    }
    Ok(())
}
