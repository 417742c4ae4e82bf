//! What parsing yields: the flow of a TCP/UDP packet (see `pkt::parse`,
//! shared by every program) and the L4 checksum offset the rewrites use.

use skiff_common::PROTO_TCP;

pub const ETH_HLEN: usize = 14;

/// Offset of the checksum inside the TCP / UDP header.
const TCP_CSUM: u32 = 16;
const UDP_CSUM: u32 = 6;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

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

    /// A TCP SYN without ACK: the first packet of a new connection.
    #[inline(always)]
    pub fn is_fresh_syn(&self) -> bool {
        self.proto == PROTO_TCP && self.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
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
