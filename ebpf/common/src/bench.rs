//! Configuration of the benchmark's own BPF programs (`skiff-bench-ebpf`, a
//! separate object the agent never loads): a packet generator run through
//! `BPF_PROG_TEST_RUN` in live-frames mode and a counting sink.

use core::mem::size_of;

/// Ethernet + IPv4 (no options) + UDP.
pub const GEN_HDR_LEN: usize = 42;
pub const GEN_HDR_WORDS: usize = GEN_HDR_LEN.div_ceil(8);

/// The generator's frame: the header it writes over every frame before
/// sending it (the receivers rewrite frames in place and the kernel reuses
/// their pages), and the spread of source ports.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenConfig {
    /// The header for source port `sport_base`, checksums complete, in
    /// words so that the program copies it in a few moves (bytes past
    /// [`GEN_HDR_LEN`] are unused).
    pub hdr: [u64; GEN_HDR_WORDS],
    /// Source ports are `sport_base + (random % flows)`, host order.
    pub sport_base: u16,
    pub flows: u16,
    pub _pad: [u16; 2],
}
const _: () = assert!(size_of::<GenConfig>() == 56);

/// What the sink expects, addresses and ports in network byte order: UDP to
/// `daddr:dport` is a delivered frame if a router forwarded it right —
/// addressed to `mac`, TTL `ttl`, source one of `sources` (the load
/// balancer's addresses: source NAT happened), both checksums valid. Every
/// such frame is dropped after counting.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkConfig {
    pub daddr: u32,
    pub sources: [u32; 2],
    pub dport: u16,
    pub mac: [u8; 6],
    pub ttl: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(size_of::<SinkConfig>() == 24);

/// Bytes of the frames the sink checks whole (the generator's: Ethernet,
/// IPv4 without options, UDP with 18 bytes of payload).
pub const SINK_FRAME_LEN: usize = 60;

/// Slots of the sink's per-CPU counter array `SINK_COUNTS`.
pub mod sink_slot {
    /// UDP to the configured destination, forwarded right (dropped after
    /// counting).
    pub const DELIVERED: u32 = 0;
    /// UDP to the configured destination with something wrong: checksum,
    /// MAC, TTL, length or source (dropped after counting).
    pub const BAD: u32 = 1;
    /// Anything else (passed to the stack: ARP, ...).
    pub const OTHER: u32 = 2;
    pub const COUNT: u32 = 3;
}

/// Global names the loader sets.
pub const GEN_GLOBAL: &str = "SKIFF_BENCH_GEN";
pub const SINK_GLOBAL: &str = "SKIFF_BENCH_SINK";
pub const SINK_COUNTS: &str = "SINK_COUNTS";

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: `#[repr(C)]`, integer fields with the padding written out.
    unsafe impl aya::Pod for GenConfig {}
    unsafe impl aya::Pod for SinkConfig {}
}

impl GenConfig {
    /// The configuration for `frame` (at least [`GEN_HDR_LEN`] bytes).
    pub fn new(frame: &[u8], sport_base: u16, flows: u16) -> Self {
        let mut hdr = [0u64; GEN_HDR_WORDS];
        for (i, b) in frame.iter().take(GEN_HDR_LEN).enumerate() {
            hdr[i / 8] |= u64::from(*b) << (8 * (i % 8));
        }
        Self {
            hdr: hdr.map(u64::from_le),
            sport_base,
            flows: flows.max(1),
            _pad: [0; 2],
        }
    }
}

/// The UDP checksum of a frame whose checksum was `c0` after its source
/// port grew by `delta` (RFC 1624; UDP's 0, "no checksum", stays 0, and a
/// computed 0 is sent as 0xffff).
#[inline(always)]
pub fn udp_csum_add(c0: u16, delta: u16) -> u16 {
    if c0 == 0 {
        return 0;
    }
    let mut s = u32::from(!c0) + u32::from(delta);
    s = (s & 0xffff) + (s >> 16);
    match !(s as u16) {
        0 => 0xffff,
        c => c,
    }
}
