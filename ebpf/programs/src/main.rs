//! Skiff's BPF programs: entry points only; the logic lives in the modules.
#![no_std]
#![no_main]

mod conntrack;
mod csum;
mod from_pod;
mod lb;
mod maps;
mod nat;
mod parse;
mod reply;
mod stats;
mod to_pod;

use aya_ebpf::{macros::classifier, programs::TcContext};

/// TC ingress on the host side of every pod veth: ClusterIP load balancing of
/// the pod's packets and reverse NAT of its replies.
#[classifier]
pub fn skiff_from_pod(ctx: TcContext) -> i32 {
    from_pod::run(&ctx)
}

/// TC egress on the host side of every pod veth: reverse NAT of replies from
/// backends on other nodes.
#[classifier]
pub fn skiff_to_pod(ctx: TcContext) -> i32 {
    to_pod::run(&ctx)
}

/// The crate is dual licensed Apache-2.0 OR GPL-2.0; the kernel sees the GPL side.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: BPF has no unwinding and the
    // verifier rejects any path that could get here.
    loop {}
}
