//! Delivery to a pod on this node without a trip through the node's stack.
//!
//! `skiff_from_pod` calls [`deliver`] last, once any service DNAT or
//! reverse NAT is written: when the packet's (new) destination is a pod of
//! this node (`LOCAL_ENDPOINTS`), the frame becomes what the node's routing
//! would have sent into that pod's veth (destination MAC the pod's, source
//! MAC its gateway's, TTL one less with the header checksum updated per
//! RFC 1624) and `bpf_redirect_peer` hands it to the pod's interface inside
//! the pod's netns: no routing, netfilter or veth transmit on the node.
//! The destination's `skiff_to_pod` (TC egress of its host veth) does not
//! run; it only reverse-NATs replies of backends on other nodes, which
//! arrive through the stack, never from a local pod.
//!
//! Anything else passes to the stack as before: not TCP, UDP or ICMP, a TTL
//! that would expire (the stack sends the ICMP error), an address without an
//! entry (one outside `LOCAL_PREFIX` skips the lookup), or a kernel without the helper (`CFG_F_LOCAL_REDIRECT` off: the
//! verifier prunes the call as dead code).

use aya_ebpf::{bindings::TC_ACT_REDIRECT, helpers::bpf_redirect_peer, programs::TcContext};
use skiff_common::{stats, Config, CFG_F_LOCAL_REDIRECT, PROTO_TCP, PROTO_UDP};

use crate::{
    maps::{LOCAL_ENDPOINTS, LOCAL_PREFIX},
    parse::ETH_HLEN,
    pkt::{csum_replace2, ptr_at, Ipv4Hdr},
    stats::{inc, OK},
};

const PROTO_ICMP: u8 = 1;
const REDIRECT: i32 = TC_ACT_REDIRECT as i32;

/// Redirects the packet into the pod it is addressed to when that pod is on
/// this node; `OK` (the stack routes it) otherwise.
#[inline(always)]
pub fn deliver(ctx: &TcContext, cfg: Config) -> i32 {
    if cfg.flags & CFG_F_LOCAL_REDIRECT == 0 {
        return OK;
    }
    // Pointers taken afresh: the rewrites before may have moved the data.
    let (Some(eth), Some(ip)) = (
        ptr_at::<_, [[u8; 6]; 2]>(ctx, 0),
        ptr_at::<_, Ipv4Hdr>(ctx, ETH_HLEN),
    ) else {
        return OK;
    };
    // SAFETY: both pointers are bounds-checked by ptr_at; the program's
    // prologue made a cloned skb's header writable.
    let (proto, ttl, daddr) = unsafe { ((*ip).proto, (*ip).ttl, (*ip).daddr) };
    if !matches!(proto, PROTO_TCP | PROTO_UDP | PROTO_ICMP) || ttl <= 1 {
        return OK;
    }
    if !LOCAL_PREFIX.get(0).is_none_or(|p| p.contains(daddr)) {
        return OK;
    }
    // SAFETY: the value is copied out of the map at once.
    let Some(ep) = (unsafe { LOCAL_ENDPOINTS.get(&daddr) }).copied() else {
        return OK;
    };
    // SAFETY: as above. TTL and protocol form one 16-bit word of the header.
    unsafe {
        let old = u16::from_ne_bytes([ttl, proto]);
        let new = u16::from_ne_bytes([ttl - 1, proto]);
        (*ip).csum = csum_replace2((*ip).csum, old, new);
        (*ip).ttl = ttl - 1;
        eth.write_unaligned([ep.pod_mac, ep.host_mac]);
    }
    // SAFETY: a helper taking plain integers; it only records the target
    // (the kernel moves the skb after the program returns).
    let rc = unsafe { bpf_redirect_peer(ep.ifindex, 0) } as i32;
    if rc != REDIRECT {
        // Not taken (only invalid flags make it fail): the stack routes it.
        return OK;
    }
    inc(stats::LOCAL_REDIRECT);
    REDIRECT
}
