//! Packet parsing: Ethernet → IPv4 (options allowed) → TCP/UDP ports.
//!
//! Ethernet and the fixed IPv4 header are read with direct packet access
//! (bounds-checked against `data_end`, pulling non-linear data in when the
//! packet is long enough); the L4 header, whose offset depends on the IHL, is
//! read with `bpf_skb_load_bytes`, which bounds-checks against the skb length.

use aya_ebpf::programs::TcContext;
use skiff_common::{PROTO_TCP, PROTO_UDP};

pub const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const IPV4_HLEN: usize = 20;

/// Offsets of the IPv4 fields the data path rewrites.
pub const IP_CSUM_OFF: u32 = (ETH_HLEN + 10) as u32;
pub const IP_SADDR_OFF: u32 = (ETH_HLEN + 12) as u32;
pub const IP_DADDR_OFF: u32 = (ETH_HLEN + 16) as u32;

const TCP_HLEN: usize = 20;
const UDP_HLEN: usize = 8;
/// Offset of the checksum inside the TCP / UDP header.
const TCP_CSUM: u32 = 16;
const UDP_CSUM: u32 = 6;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

#[repr(C)]
struct Ipv4Hdr {
    ver_ihl: u8,
    tos: u8,
    tot_len: u16,
    id: u16,
    frag_off: u16,
    ttl: u8,
    proto: u8,
    csum: u16,
    saddr: u32,
    daddr: u32,
}

/// The first 14 bytes of a TCP header (ports, seq, ack, offset, flags) or
/// a UDP header and 6 more bytes.
#[repr(C)]
struct L4Hdr {
    sport: u16,
    dport: u16,
    _seq_or_udp: u32,
    _ack: u32,
    _doff: u8,
    flags: u8,
}

/// A TCP or UDP packet that is not a fragment. Addresses and ports are in
/// network byte order, as the maps store them.
#[derive(Clone, Copy)]
pub struct Flow {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    /// Offset of the L4 header from the start of the frame.
    pub l4_off: u32,
}

impl Flow {
    /// Offset of the L4 checksum field.
    #[inline(always)]
    pub fn csum_off(&self) -> u32 {
        self.l4_off
            + if self.proto == PROTO_TCP {
                TCP_CSUM
            } else {
                UDP_CSUM
            }
    }

    #[inline(always)]
    pub fn sport_off(&self) -> u32 {
        self.l4_off
    }

    #[inline(always)]
    pub fn dport_off(&self) -> u32 {
        self.l4_off + 2
    }
}

pub enum Parsed {
    /// Not IPv4 (ARP, IPv6, ...): none of our business.
    NotIpv4,
    /// Truncated or invalid headers.
    Malformed,
    /// An IPv4 fragment (MF set or a non-zero offset).
    Fragment { daddr: u32 },
    /// IPv4 carrying neither TCP nor UDP.
    OtherProto { daddr: u32 },
    /// A TCP/UDP packet with its full fixed L4 header present.
    L4(Flow),
}

/// Makes the first `len` bytes directly accessible; false if the packet is
/// shorter than that.
#[inline(always)]
fn ensure_linear(ctx: &TcContext, len: usize) -> bool {
    if ctx.data() + len <= ctx.data_end() {
        return true;
    }
    if (ctx.len() as usize) < len || ctx.pull_data(len as u32).is_err() {
        return false;
    }
    ctx.data() + len <= ctx.data_end()
}

#[inline(always)]
pub fn parse(ctx: &TcContext) -> Parsed {
    if !ensure_linear(ctx, ETH_HLEN) {
        return Parsed::Malformed;
    }
    let data = ctx.data();
    if data + ETH_HLEN > ctx.data_end() {
        return Parsed::Malformed;
    }
    // SAFETY: bounds-checked just above.
    let ethertype = u16::from_be(unsafe { core::ptr::read_unaligned((data + 12) as *const u16) });
    if ethertype != ETH_P_IP {
        return Parsed::NotIpv4;
    }

    if !ensure_linear(ctx, ETH_HLEN + IPV4_HLEN) {
        return Parsed::Malformed;
    }
    let data = ctx.data();
    if data + ETH_HLEN + IPV4_HLEN > ctx.data_end() {
        return Parsed::Malformed;
    }
    // SAFETY: bounds-checked just above.
    let ip = unsafe { core::ptr::read_unaligned((data + ETH_HLEN) as *const Ipv4Hdr) };
    let ihl = (ip.ver_ihl & 0x0f) as usize;
    if ip.ver_ihl >> 4 != 4 || ihl < 5 || (u16::from_be(ip.tot_len) as usize) < ihl * 4 {
        return Parsed::Malformed;
    }
    if u16::from_be(ip.frag_off) & 0x3fff != 0 {
        return Parsed::Fragment { daddr: ip.daddr };
    }
    let need = match ip.proto {
        PROTO_TCP => TCP_HLEN,
        PROTO_UDP => UDP_HLEN,
        _ => return Parsed::OtherProto { daddr: ip.daddr },
    };
    let l4_off = ETH_HLEN + ihl * 4;
    // The full fixed header must be there: the checksum is rewritten in place.
    if (ctx.len() as usize) < l4_off + need {
        return Parsed::Malformed;
    }
    let (sport, dport, tcp_flags) = if ip.proto == PROTO_TCP {
        match ctx.load::<L4Hdr>(l4_off) {
            Ok(h) => (h.sport, h.dport, h.flags),
            Err(_) => return Parsed::Malformed,
        }
    } else {
        match ctx.load::<[u16; 2]>(l4_off) {
            Ok(p) => (p[0], p[1], 0),
            Err(_) => return Parsed::Malformed,
        }
    };
    Parsed::L4(Flow {
        saddr: ip.saddr,
        daddr: ip.daddr,
        sport,
        dport,
        proto: ip.proto,
        tcp_flags,
        l4_off: l4_off as u32,
    })
}
