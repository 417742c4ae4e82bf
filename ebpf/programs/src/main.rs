//! Skiff's BPF programs: entry points only; the logic lives in the modules.
#![no_std]
#![no_main]

mod clock;
mod conntrack;
mod csum;
mod from_pod;
mod lb;
mod local;
mod maps;
mod nat;
mod nodeport;
mod parse;
mod pkt;
mod reply;
mod snat;
mod sock;
mod stats;
mod to_pod;

use aya_ebpf::{
    macros::{cgroup_sock_addr, classifier, xdp},
    programs::{SockAddrContext, TcContext, XdpContext},
};

/// TC ingress on the host side of every pod veth: ClusterIP load balancing of
/// the pod's packets, reverse NAT of its replies, and direct delivery of
/// what is addressed to another pod of this node.
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

/// XDP on the node's external interface: NodePort and externalIP load
/// balancing, SNAT to backends on other nodes and its reverse.
#[xdp]
pub fn skiff_xdp_nodeport(ctx: XdpContext) -> u32 {
    nodeport::run(&ctx) as u32
}

/// The same logic on TC ingress of the external interface, where XDP
/// cannot attach.
#[classifier]
pub fn skiff_tc_nodeport(ctx: TcContext) -> i32 {
    nodeport::run(&ctx)
}

/// cgroup `connect4` for the node's own sockets: a ClusterIP becomes a
/// backend before the connection starts (socket-level load balancing).
#[cgroup_sock_addr(connect4)]
pub fn skiff_sock_connect4(ctx: SockAddrContext) -> i32 {
    sock::to_backend(&ctx)
}

/// cgroup `sendmsg4`: the same for unconnected UDP sends.
#[cgroup_sock_addr(sendmsg4)]
pub fn skiff_sock_sendmsg4(ctx: SockAddrContext) -> i32 {
    sock::to_backend(&ctx)
}

/// cgroup `recvmsg4`: a backend's reply is reported from the ClusterIP.
#[cgroup_sock_addr(recvmsg4)]
pub fn skiff_sock_recvmsg4(ctx: SockAddrContext) -> i32 {
    sock::to_frontend(&ctx)
}

/// cgroup `getpeername4`: a connected socket's peer is the ClusterIP.
#[cgroup_sock_addr(getpeername4)]
pub fn skiff_sock_getpeername4(ctx: SockAddrContext) -> i32 {
    sock::to_frontend(&ctx)
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
