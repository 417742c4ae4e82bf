//! Socket-level load balancing for the node itself: processes of the node's
//! own network namespace (the kubelet's probes of hostNetwork pods, node
//! daemons, hostNetwork pods) reach ClusterIPs.
//!
//! Their packets never cross a pod veth, so the TC programs do not see them.
//! Instead the cgroup hooks translate the address at the socket: `connect`
//! (TCP, connected UDP) and `sendmsg` (unconnected UDP) to a frontend (a
//! ClusterIP, or a NodePort / externalIP address of this node) get a
//! backend's address, chosen as a pod's flow would be, and the socket then
//! talks to the backend directly, with no per-packet work at all. A frontend
//! without backends refuses the connection (ECONNREFUSED, as kube-proxy's
//! reject rule does), rather than let it leave with the VIP. `recvmsg` and
//! `getpeername` report the frontend again, from [`SOCK_REV`], so the
//! program only ever sees the address it asked for.
//!
//! The hooks sit on the cgroup v2 root, which every network namespace of
//! the machine shares: a socket of another namespace (a pod's, or another
//! lab node's) is left alone, by comparing namespace cookies.

use aya_ebpf::{
    bindings::bpf_sock_addr,
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie, bpf_set_retval},
    programs::SockAddrContext,
};
use skiff_common::{
    SockRevKey, SockRevValue, PROTO_TCP, PROTO_UDP, SCOPE_EXTERNAL, SCOPE_INTERNAL,
};

use crate::{
    clock, lb,
    maps::{host_netns, SOCK_REV},
    parse::Flow,
};

/// The hooks' verdict: go on (the only one `recvmsg` may return).
const ALLOW: i32 = 1;
/// The hooks' verdict: fail the call (with the error `bpf_set_retval` set).
const REJECT: i32 = 0;
const ECONNREFUSED: i32 = 111;

/// The socket address, if the socket belongs to the node's namespace and
/// speaks TCP or UDP over IPv4.
#[inline(always)]
fn node_socket(ctx: &SockAddrContext) -> Option<(*mut bpf_sock_addr, u8)> {
    let want = host_netns();
    // SAFETY: the context of a cgroup sock_addr program.
    if want == 0 || unsafe { bpf_get_netns_cookie(ctx.sock_addr.cast()) } != want {
        return None;
    }
    let sa = ctx.sock_addr;
    // SAFETY: `sa` is the program's context, readable field by field.
    let proto = unsafe { (*sa).protocol };
    if proto == u32::from(PROTO_TCP) {
        Some((sa, PROTO_TCP))
    } else if proto == u32::from(PROTO_UDP) {
        Some((sa, PROTO_UDP))
    } else {
        None
    }
}

/// The socket's cookie (unique for its lifetime).
#[inline(always)]
fn cookie(ctx: &SockAddrContext) -> u64 {
    // SAFETY: the context of a cgroup sock_addr program.
    unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) }
}

/// `connect` and `sendmsg`: a frontend's address becomes a backend's.
#[inline(always)]
pub fn to_backend(ctx: &SockAddrContext) -> i32 {
    let Some((sa, proto)) = node_socket(ctx) else {
        return ALLOW;
    };
    // SAFETY: the context; `user_port` holds the port in network order.
    let (daddr, dport) = unsafe { ((*sa).user_ip4, (*sa).user_port as u16) };
    let (fe, scope) = match lb::frontend(daddr, dport, proto) {
        Some(fe) => (fe, SCOPE_INTERNAL),
        None => match lb::frontend_scoped(daddr, dport, proto, SCOPE_EXTERNAL) {
            Some(fe) => (fe, SCOPE_EXTERNAL),
            None => return ALLOW,
        },
    };
    if fe.count == 0 {
        // SAFETY: a helper of these hooks (Linux ≥ 5.18), no preconditions.
        unsafe { bpf_set_retval(-ECONNREFUSED) };
        return REJECT;
    }
    let cookie = cookie(ctx);
    // The source port is not chosen yet: the socket's cookie stands in for
    // it, so one socket (an unconnected UDP one's every datagram) stays with
    // one backend and successive sockets spread as flows do. Affinity is per
    // client address, the node's for every socket here.
    let flow = Flow {
        saddr: 0,
        daddr,
        sport: (cookie ^ (cookie >> 16) ^ (cookie >> 32) ^ (cookie >> 48)) as u16,
        dport,
        proto,
        tcp_flags: 0,
        l4_off: 0,
    };
    let Some((_, b)) = lb::select_affine(&flow, &fe, scope, clock::now()) else {
        // The agent is between writes of this frontend: as if unbalanced.
        return ALLOW;
    };
    let key = SockRevKey {
        cookie,
        addr: b.addr,
        port: b.port,
        _pad: 0,
    };
    let value = SockRevValue {
        addr: daddr,
        port: dport,
        _pad: 0,
    };
    // Looked up first: an unconnected UDP socket passes here per datagram,
    // and an LRU update takes a lock. Best effort: without the entry,
    // recvmsg and getpeername report the backend.
    // SAFETY: copied out at once.
    if unsafe { SOCK_REV.get(&key) }.copied() != Some(value) {
        let _ = SOCK_REV.insert(&key, &value, 0);
    }
    // SAFETY: the context's address fields are writable in these hooks.
    unsafe {
        (*sa).user_ip4 = b.addr;
        (*sa).user_port = u32::from(b.port);
    }
    ALLOW
}

/// `recvmsg` and `getpeername`: a backend's address is reported as the
/// frontend the socket asked for.
#[inline(always)]
pub fn to_frontend(ctx: &SockAddrContext) -> i32 {
    let Some((sa, _)) = node_socket(ctx) else {
        return ALLOW;
    };
    // SAFETY: the context; `user_port` holds the port in network order.
    let key = unsafe {
        SockRevKey {
            cookie: cookie(ctx),
            addr: (*sa).user_ip4,
            port: (*sa).user_port as u16,
            _pad: 0,
        }
    };
    // SAFETY: copied out at once.
    if let Some(v) = unsafe { SOCK_REV.get(&key) }.copied() {
        // SAFETY: the context's address fields are writable in these hooks.
        unsafe {
            (*sa).user_ip4 = v.addr;
            (*sa).user_port = u32::from(v.port);
        }
    }
    ALLOW
}
