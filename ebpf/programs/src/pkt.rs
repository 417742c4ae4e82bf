//! Packet access shared by the XDP and TC flavours of the NodePort program:
//! direct packet access for parsing and MAC rewrites, and one trait method
//! per operation whose implementation differs (checksums, verdicts, FIB).
//!
//! XDP has no checksum helpers: addresses and ports are rewritten in place
//! with RFC 1624 incremental updates. The packet must carry complete
//! checksums, which is what a NIC delivers (a veth carrying
//! `CHECKSUM_PARTIAL` packets of a local socket does not: see
//! ARCHITECTURE.md). TC updates the L4 checksum with the kernel's helper,
//! which keeps the skb's checksum state right in every case (`csum.rs`).
//!
//! The pod programs parse with [`parse`] too: direct access only, no
//! `bpf_skb_load_bytes` call per packet.

use core::mem::{size_of, MaybeUninit};

use aya_ebpf::{
    bindings::{
        bpf_fib_lookup as FibParams, bpf_redir_neigh, xdp_action, BPF_FIB_LKUP_RET_NO_NEIGH,
        BPF_FIB_LKUP_RET_SUCCESS, TC_ACT_OK, TC_ACT_SHOT,
    },
    helpers::{bpf_fib_lookup, bpf_redirect, bpf_redirect_neigh},
    programs::{TcContext, XdpContext},
    EbpfContext,
};
use skiff_common::{PROTO_TCP, PROTO_UDP};

use crate::{
    csum::RewriteError,
    parse::{Flow, Parsed, ETH_HLEN},
};

const ETH_P_IP: u16 = 0x0800;
const IPV4_HLEN: usize = 20;
const AF_INET: u8 = 2;

/// A program context the NodePort logic runs on.
pub trait Pkt {
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
    /// Makes the first `len` bytes directly accessible (TC: pulls
    /// non-linear data in); false if the packet is shorter.
    fn linear(&self, len: usize) -> bool;
    /// Rewrites the tuple of `flow` to `saddr:sport → daddr:dport`.
    fn rewrite(
        &self,
        flow: &Flow,
        saddr: u32,
        daddr: u32,
        sport: u16,
        dport: u16,
    ) -> Result<(), RewriteError>;
    /// The interface the packet arrived on.
    fn ifindex(&self) -> u32;
    fn ctx_ptr(&self) -> *mut core::ffi::c_void;
    fn pass(&self) -> i32;
    fn drop_verdict(&self) -> i32;
    /// Sends the packet back out of the interface it came in on.
    fn tx(&self) -> i32;
    /// Sends the packet out of interface `ifindex`.
    fn redirect(&self, ifindex: u32) -> i32 {
        // SAFETY: a helper taking plain integers.
        unsafe { bpf_redirect(ifindex, 0) as i32 }
    }
    /// Sends the packet out of `ifindex` to next hop `nh`, resolving its
    /// MAC in the kernel; `None` where the hook cannot (XDP).
    fn redirect_neigh(&self, _ifindex: u32, _nh: u32) -> Option<i32> {
        None
    }
}

/// A pointer to a `T` at `off`, bounds-checked against `data_end`.
#[inline(always)]
pub fn ptr_at<P: Pkt, T>(p: &P, off: usize) -> Option<*mut T> {
    let start = p.data() + off;
    if start + size_of::<T>() > p.data_end() {
        return None;
    }
    Some(start as *mut T)
}

/// The fixed IPv4 header; multi-byte fields in network byte order.
#[repr(C)]
pub struct Ipv4Hdr {
    pub ver_ihl: u8,
    pub tos: u8,
    pub tot_len: u16,
    pub id: u16,
    pub frag_off: u16,
    pub ttl: u8,
    pub proto: u8,
    pub csum: u16,
    pub saddr: u32,
    pub daddr: u32,
}

/// Parses Ethernet → IPv4 (options allowed) → TCP/UDP with direct access.
#[inline(always)]
pub fn parse<P: Pkt>(p: &P) -> Parsed {
    if !p.linear(ETH_HLEN) {
        return Parsed::Malformed;
    }
    let Some(eth_type) = ptr_at::<P, u16>(p, 12) else {
        return Parsed::Malformed;
    };
    // SAFETY: bounds-checked by ptr_at.
    if u16::from_be(unsafe { eth_type.read_unaligned() }) != ETH_P_IP {
        return Parsed::NotIpv4;
    }
    if !p.linear(ETH_HLEN + IPV4_HLEN) {
        return Parsed::Malformed;
    }
    let Some(ip) = ptr_at::<P, Ipv4Hdr>(p, ETH_HLEN) else {
        return Parsed::Malformed;
    };
    // SAFETY: bounds-checked by ptr_at. Field by field, each one load (the
    // verifier allows unaligned packet access on the architectures Skiff
    // runs on); a copy of the struct would be assembled byte by byte.
    let (ver_ihl, tot_len, frag_off, proto, saddr, daddr) = unsafe {
        (
            (*ip).ver_ihl,
            (*ip).tot_len,
            (*ip).frag_off,
            (*ip).proto,
            (*ip).saddr,
            (*ip).daddr,
        )
    };
    let ihl = (ver_ihl & 0x0f) as usize;
    if ver_ihl >> 4 != 4 || ihl < 5 || (u16::from_be(tot_len) as usize) < ihl * 4 {
        return Parsed::Malformed;
    }
    if u16::from_be(frag_off) & 0x3fff != 0 {
        return Parsed::Fragment { daddr };
    }
    let need = match proto {
        PROTO_TCP => 20,
        PROTO_UDP => 8,
        _ => return Parsed::OtherProto { daddr },
    };
    let l4_off = ETH_HLEN + ihl * 4;
    if !p.linear(l4_off + need) {
        return Parsed::Malformed;
    }
    let Some(ports) = ptr_at::<P, [u16; 2]>(p, l4_off) else {
        return Parsed::Malformed;
    };
    // SAFETY: bounds-checked by ptr_at.
    let [sport, dport] = unsafe { *ports };
    let mut tcp_flags = 0;
    if proto == PROTO_TCP {
        let Some(f) = ptr_at::<P, [u8; 14]>(p, l4_off) else {
            return Parsed::Malformed;
        };
        // SAFETY: bounds-checked by ptr_at.
        tcp_flags = unsafe { (*f)[13] };
    }
    Parsed::L4(Flow {
        saddr,
        daddr,
        sport,
        dport,
        proto,
        tcp_flags,
        l4_off: l4_off as u32,
    })
}

/// One's-complement sum folded to 16 bits.
#[inline(always)]
fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`, for a 32-bit field. Works on
/// words as stored (byte order does not matter to one's-complement sums).
#[inline(always)]
pub fn csum_replace4(csum: u16, from: u32, to: u32) -> u16 {
    let s = u32::from(!csum)
        + u32::from(!(from as u16))
        + u32::from(!((from >> 16) as u16))
        + (to & 0xffff)
        + (to >> 16);
    !fold(s)
}

/// [`csum_replace4`] for a 16-bit field.
#[inline(always)]
pub fn csum_replace2(csum: u16, from: u16, to: u16) -> u16 {
    !fold(u32::from(!csum) + u32::from(!from) + u32::from(to))
}

impl Pkt for XdpContext {
    #[inline(always)]
    fn data(&self) -> usize {
        XdpContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        XdpContext::data_end(self)
    }
    #[inline(always)]
    fn linear(&self, len: usize) -> bool {
        self.data() + len <= self.data_end()
    }
    #[inline(always)]
    fn rewrite(
        &self,
        flow: &Flow,
        saddr: u32,
        daddr: u32,
        sport: u16,
        dport: u16,
    ) -> Result<(), RewriteError> {
        let l4 = (flow.l4_off & 0x7f) as usize;
        let ip = ptr_at::<Self, Ipv4Hdr>(self, ETH_HLEN).ok_or(RewriteError)?;
        let ports = ptr_at::<Self, [u16; 2]>(self, l4).ok_or(RewriteError)?;
        let csum_off = if flow.proto == PROTO_TCP { 16 } else { 6 };
        let l4c = ptr_at::<Self, u16>(self, l4 + csum_off).ok_or(RewriteError)?;
        // SAFETY: all three pointers are bounds-checked by ptr_at.
        unsafe {
            let mut ipc = (*ip).csum;
            ipc = csum_replace4(ipc, flow.saddr, saddr);
            ipc = csum_replace4(ipc, flow.daddr, daddr);
            (*ip).csum = ipc;
            (*ip).saddr = saddr;
            (*ip).daddr = daddr;
            let old = l4c.read_unaligned();
            // UDP checksum 0 means "none": leave it so.
            if !(flow.proto == PROTO_UDP && old == 0) {
                let mut c = csum_replace4(old, flow.saddr, saddr);
                c = csum_replace4(c, flow.daddr, daddr);
                c = csum_replace2(c, flow.sport, sport);
                c = csum_replace2(c, flow.dport, dport);
                if flow.proto == PROTO_UDP && c == 0 {
                    c = 0xffff;
                }
                l4c.write_unaligned(c);
            }
            ports.write_unaligned([sport, dport]);
        }
        Ok(())
    }
    #[inline(always)]
    fn ifindex(&self) -> u32 {
        self.ingress_ifindex() as u32
    }
    #[inline(always)]
    fn ctx_ptr(&self) -> *mut core::ffi::c_void {
        self.as_ptr()
    }
    #[inline(always)]
    fn pass(&self) -> i32 {
        xdp_action::XDP_PASS as i32
    }
    #[inline(always)]
    fn drop_verdict(&self) -> i32 {
        xdp_action::XDP_DROP as i32
    }
    #[inline(always)]
    fn tx(&self) -> i32 {
        xdp_action::XDP_TX as i32
    }
}

impl Pkt for TcContext {
    #[inline(always)]
    fn data(&self) -> usize {
        TcContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        TcContext::data_end(self)
    }
    #[inline(always)]
    fn linear(&self, len: usize) -> bool {
        if self.data() + len <= self.data_end() {
            return true;
        }
        if (self.len() as usize) < len || self.pull_data(len as u32).is_err() {
            return false;
        }
        self.data() + len <= self.data_end()
    }
    #[inline(always)]
    fn rewrite(
        &self,
        flow: &Flow,
        saddr: u32,
        daddr: u32,
        sport: u16,
        dport: u16,
    ) -> Result<(), RewriteError> {
        crate::csum::rewrite(self, flow, saddr, daddr, sport, dport)
    }
    #[inline(always)]
    fn ifindex(&self) -> u32 {
        // SAFETY: the context pointer is valid for the program's run.
        unsafe { (*self.skb.skb).ifindex }
    }
    #[inline(always)]
    fn ctx_ptr(&self) -> *mut core::ffi::c_void {
        self.as_ptr()
    }
    #[inline(always)]
    fn pass(&self) -> i32 {
        TC_ACT_OK as i32
    }
    #[inline(always)]
    fn drop_verdict(&self) -> i32 {
        TC_ACT_SHOT as i32
    }
    #[inline(always)]
    fn tx(&self) -> i32 {
        self.redirect(Pkt::ifindex(self))
    }
    #[inline(always)]
    fn redirect_neigh(&self, ifindex: u32, nh: u32) -> Option<i32> {
        let mut slot = MaybeUninit::<bpf_redir_neigh>::uninit();
        let p = slot.as_mut_ptr();
        // SAFETY: a local slot; all-zero (20 bytes, u32 fields) is a valid
        // bpf_redir_neigh, then the IPv4 next hop is set; plen is its size.
        let rc = unsafe {
            zero_in_place(p);
            (*p).nh_family = u32::from(AF_INET);
            (*p).__bindgen_anon_1.ipv4_nh = nh;
            bpf_redirect_neigh(ifindex, p, size_of::<bpf_redir_neigh>() as i32, 0)
        };
        Some(rc as i32)
    }
}

/// Zeroes `*v` with 4-byte volatile stores, in place. `mem::zeroed` (or a
/// zeroed value moved into place) becomes a call to the BPF target's
/// byte-at-a-time `memset`: for the 64-byte FIB parameters, ~7 % of the
/// NodePort path's CPU. Volatile stores are neither merged back into a
/// `memset` nor copied.
///
/// # Safety
/// `v` is valid for writes, 4-aligned, and all-zero is a valid `T` whose
/// size is a multiple of 4.
#[inline(always)]
unsafe fn zero_in_place<T>(v: *mut T) {
    const {
        assert!(size_of::<T>() % 4 == 0 && core::mem::align_of::<T>() >= 4);
    }
    let w = v.cast::<u32>();
    let mut i = 0;
    while i < size_of::<T>() / 4 {
        // SAFETY: inside `*v`, per the caller.
        unsafe { w.add(i).write_volatile(0) };
        i += 1;
    }
}

/// Whether the packet may be routed on: its TTL is above 1. A router drops
/// the others and answers with ICMP time exceeded; the callers hand them to
/// the stack untouched instead, which treats them as it treats any packet
/// to the node (a pod's reply: routed, so the ICMP answer; a client's
/// packet to a nodePort: delivered locally, a RST or port unreachable).
#[inline(always)]
pub fn ttl_forwardable<P: Pkt>(p: &P) -> bool {
    match ptr_at::<P, Ipv4Hdr>(p, ETH_HLEN) {
        // SAFETY: bounds-checked by ptr_at.
        Some(ip) => unsafe { (*ip).ttl > 1 },
        None => false,
    }
}

/// Routes a rewritten packet as a router does: FIB lookup from `saddr` to
/// `daddr`, TTL decremented (the caller checked [`ttl_forwardable`]), MACs
/// rewritten, then out of the same interface (TX) or another (redirect);
/// TC has the kernel resolve a missing neighbour. `None` when there is no
/// route, XDP finds no neighbour, or the TTL ran out.
#[inline(always)]
pub fn forward<P: Pkt>(p: &P, flow_proto: u8, saddr: u32, daddr: u32) -> Option<i32> {
    let mut slot = MaybeUninit::<FibParams>::uninit();
    let f = slot.as_mut_ptr();
    // SAFETY: a local slot; all-zero (64 bytes, u32-aligned) is a valid
    // bpf_fib_lookup input, then the query is set; ctx is valid and plen
    // is the struct's size. The helper writes its answer into the slot.
    let (rc, fib) = unsafe {
        zero_in_place(f);
        (*f).family = AF_INET;
        (*f).l4_protocol = flow_proto;
        (*f).ifindex = p.ifindex();
        (*f).__bindgen_anon_3.ipv4_src = saddr;
        (*f).__bindgen_anon_4.ipv4_dst = daddr;
        let rc = bpf_fib_lookup(p.ctx_ptr(), f, size_of::<FibParams>() as i32, 0);
        (rc, &*f)
    };
    let no_neigh = rc == i64::from(BPF_FIB_LKUP_RET_NO_NEIGH);
    if !no_neigh && rc != i64::from(BPF_FIB_LKUP_RET_SUCCESS) {
        return None;
    }
    let ip = ptr_at::<P, Ipv4Hdr>(p, ETH_HLEN)?;
    // SAFETY: bounds-checked by ptr_at. TTL and protocol share a 16-bit
    // word of the header checksum; both are read as stored.
    unsafe {
        let ttl = (*ip).ttl;
        if ttl <= 1 {
            return None;
        }
        let word = ip.cast::<u8>().add(8).cast::<u16>();
        let from = word.read_unaligned();
        (*ip).ttl = ttl - 1;
        (*ip).csum = csum_replace2((*ip).csum, from, word.read_unaligned());
    }
    if no_neigh {
        // The route is known, the neighbour is not: TC can have the kernel
        // resolve it (`bpf_redirect_neigh`); XDP cannot.
        // SAFETY: reading the union member the lookup wrote (IPv4).
        let nh = unsafe { fib.__bindgen_anon_4.ipv4_dst };
        return p.redirect_neigh(fib.ifindex, nh);
    }
    let eth = ptr_at::<P, [[u8; 6]; 2]>(p, 0)?;
    // SAFETY: bounds-checked by ptr_at.
    unsafe { eth.write_unaligned([fib.dmac, fib.smac]) };
    Some(if fib.ifindex == p.ifindex() {
        p.tx()
    } else {
        p.redirect(fib.ifindex)
    })
}
