//! The benchmark's BPF programs, a separate object (`skiff-bench-ebpf`) that
//! the agent never loads: `cargo xtask bench dataplane` drives a NodePort
//! with them the way a traffic generator and a backend machine would.
//!
//! - `skiff_bench_gen` is run through `BPF_PROG_TEST_RUN` in live-frames
//!   mode: it writes a UDP frame's header (random source port among
//!   `flows`) and returns `XDP_TX`, which sends the frame out of the
//!   interface named in the run's context.
//! - `skiff_bench_sink` sits on the backend node's interface: it counts
//!   UDP to the configured destination, as delivered when a router NATed
//!   and forwarded it right (MAC, TTL, source, both checksums), else as bad,
//!   and drops it; the rest passes.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_get_prandom_u32,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
    Global,
};
use skiff_common::bench::{
    sink_slot, udp_csum_add, GenConfig, SinkConfig, GEN_HDR_LEN, GEN_HDR_WORDS, SINK_FRAME_LEN,
};

#[unsafe(no_mangle)]
static SKIFF_BENCH_GEN: Global<GenConfig> = Global::new(GenConfig {
    hdr: [0; GEN_HDR_WORDS],
    sport_base: 0,
    flows: 1,
    _pad: [0; 2],
});

#[unsafe(no_mangle)]
static SKIFF_BENCH_SINK: Global<SinkConfig> = Global::new(SinkConfig {
    daddr: 0,
    sources: [0; 2],
    dport: 0,
    mac: [0; 6],
    ttl: 0,
    _pad: [0; 3],
});

#[map(name = "SINK_COUNTS")]
static SINK_COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(sink_slot::COUNT, 0);

/// Offsets in an Ethernet + IPv4 (no options) + UDP frame.
const ETH_TYPE: usize = 12;
const IP_VHL: usize = 14;
const IP_TTL: usize = 22;
const IP_PROTO: usize = 23;
const IP_SADDR: usize = 26;
const IP_DADDR: usize = 30;
const UDP_SPORT: usize = 34;
const UDP_DPORT: usize = 36;
const UDP_LEN: usize = 38;
const UDP_CSUM: usize = 40;

#[xdp]
pub fn skiff_bench_gen(ctx: XdpContext) -> u32 {
    let (data, end) = (ctx.data(), ctx.data_end());
    if data + GEN_HDR_LEN > end {
        return xdp_action::XDP_ABORTED;
    }
    let cfg = SKIFF_BENCH_GEN.load();
    // SAFETY: the verifier-checked bound above covers the header (the
    // checksum past the last whole word is written below). Frame data
    // starts 8-byte aligned in live-frames mode, and x86 and arm64 allow
    // unaligned packet stores anyway: word stores, not byte shuffles.
    unsafe {
        for (k, w) in cfg.hdr.iter().take(GEN_HDR_LEN / 8).enumerate() {
            *((data + 8 * k) as *mut u64) = *w;
        }
    }
    // SAFETY: a helper without arguments.
    let i = (unsafe { bpf_get_prandom_u32() } % u32::from(cfg.flows.max(1))) as u16;
    let sport = cfg.sport_base.wrapping_add(i);
    let c0 = u16::from_be_bytes(((cfg.hdr[UDP_CSUM / 8] >> (8 * (UDP_CSUM % 8))) as u16).to_le_bytes());
    let csum = udp_csum_add(c0, i);
    // SAFETY: inside the checked header.
    unsafe {
        core::ptr::write_unaligned((data + UDP_SPORT) as *mut [u8; 2], sport.to_be_bytes());
        core::ptr::write_unaligned((data + UDP_CSUM) as *mut [u8; 2], csum.to_be_bytes());
    }
    xdp_action::XDP_TX
}

#[xdp]
pub fn skiff_bench_sink(ctx: XdpContext) -> u32 {
    let (data, end) = (ctx.data(), ctx.data_end());
    let cfg = SKIFF_BENCH_SINK.load();
    let slot = if data + GEN_HDR_LEN > end {
        sink_slot::OTHER
    } else {
        // SAFETY: every read is inside the checked header.
        let (ety, vhl, proto, daddr, dport) = unsafe {
            (
                *((data + ETH_TYPE) as *const [u8; 2]),
                *((data + IP_VHL) as *const u8),
                *((data + IP_PROTO) as *const u8),
                *((data + IP_DADDR) as *const [u8; 4]),
                *((data + UDP_DPORT) as *const [u8; 2]),
            )
        };
        if ety == [0x08, 0x00]
            && vhl == 0x45
            && proto == 17
            && u32::from_ne_bytes(daddr) == cfg.daddr
            && u16::from_ne_bytes(dport) == cfg.dport
        {
            if forwarded_right(data, end, &cfg) {
                sink_slot::DELIVERED
            } else {
                sink_slot::BAD
            }
        } else {
            sink_slot::OTHER
        }
    };
    count(slot);
    if slot == sink_slot::OTHER {
        xdp_action::XDP_PASS
    } else {
        xdp_action::XDP_DROP
    }
}

/// The frame is exactly [`SINK_FRAME_LEN`] bytes and carries what a router
/// that NATed it right would send: the configured MAC, TTL and a source
/// among `sources`, a valid IPv4 header checksum and a valid UDP checksum
/// (or none).
#[inline(always)]
fn forwarded_right(data: usize, end: usize, cfg: &SinkConfig) -> bool {
    // The verifier learns a packet range from `>` only; then the length.
    if data + SINK_FRAME_LEN > end {
        return false;
    }
    if end - data != SINK_FRAME_LEN {
        return false;
    }
    let word = |off: usize| -> u32 {
        // SAFETY: callers stay below SINK_FRAME_LEN, checked above.
        u32::from(u16::from_be_bytes(unsafe { *((data + off) as *const [u8; 2]) }))
    };
    // SAFETY: inside the checked frame.
    let (mac, ttl, saddr) = unsafe {
        (
            *(data as *const [u8; 6]),
            *((data + IP_TTL) as *const u8),
            *((data + IP_SADDR) as *const [u8; 4]),
        )
    };
    let saddr = u32::from_ne_bytes(saddr);
    if mac != cfg.mac || ttl != cfg.ttl || (saddr != cfg.sources[0] && saddr != cfg.sources[1]) {
        return false;
    }
    let mut ip = 0u32;
    for k in 0..10 {
        ip += word(IP_VHL + 2 * k);
    }
    if fold(ip) != 0xffff {
        return false;
    }
    let udp_len = word(UDP_LEN);
    if udp_len != (SINK_FRAME_LEN - UDP_SPORT) as u32 {
        return false;
    }
    if word(UDP_CSUM) == 0 {
        return true;
    }
    // Pseudo header (addresses, protocol, length), then header and payload.
    let mut sum = word(IP_SADDR) + word(IP_SADDR + 2) + word(IP_DADDR) + word(IP_DADDR + 2);
    sum += 17 + udp_len;
    for k in 0..(SINK_FRAME_LEN - UDP_SPORT) / 2 {
        sum += word(UDP_SPORT + 2 * k);
    }
    fold(sum) == 0xffff
}

#[inline(always)]
fn fold(mut s: u32) -> u32 {
    s = (s & 0xffff) + (s >> 16);
    (s & 0xffff) + (s >> 16)
}

#[inline(always)]
fn count(slot: u32) {
    if let Some(c) = SINK_COUNTS.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot; nothing else runs on this CPU meanwhile.
        unsafe { *c += 1 };
    }
}

/// Dual licensed like the crate; the kernel sees the GPL side.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program.
    loop {}
}
