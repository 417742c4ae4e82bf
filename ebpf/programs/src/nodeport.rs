//! NodePort and externalIP load balancing on the node's external interface
//! (`skiff_xdp_nodeport`, and `skiff_tc_nodeport` where XDP cannot attach).
//!
//! A packet to an external-scope frontend (`nodeIP:nodePort`,
//! `externalIP:port`) is pinned to a backend (conntrack, else affinity or
//! flow hash). A backend on this node: DNAT, then the stack routes it to
//! the pod (its reply is reverse-NATed by `skiff_from_pod` from the
//! conntrack reply entry). A backend on another node: DNAT + SNAT to the
//! node's address and a port from the SNAT map, MACs from a FIB lookup, TTL
//! decremented, out of the interface again (a TTL of 1 goes to the stack
//! untouched, which treats it as a packet to the node: a RST or port
//! unreachable rather than a router's ICMP time exceeded). That backend's
//! reply arrives at `node:snatPort` and is rewritten back (source = the
//! frontend, destination = the client) and sent out again. Everything else passes untouched after one hash
//! lookup (two when the port is in the SNAT range).

use skiff_common::{
    stats, Backend, CtValue, NodePortConfig, ServiceValue, BACKEND_F_LOCAL, CT_DIR_SERVICE,
    CT_F_NODEPORT, SCOPE_EXTERNAL, SVC_F_LOCAL_ONLY,
};

use crate::{
    clock,
    conntrack::{self, NewEntry},
    lb,
    maps::{nodeport_config, REV_NAT},
    parse::{Flow, Parsed},
    pkt::{self, Pkt},
    snat,
    stats::inc,
};

#[inline(always)]
fn drop_with<P: Pkt>(p: &P, counter: u32) -> i32 {
    inc(counter);
    p.drop_verdict()
}

#[inline(always)]
pub fn run<P: Pkt>(p: &P) -> i32 {
    inc(stats::PACKETS);
    match pkt::parse(p) {
        Parsed::L4(flow) => l4(p, &flow, &nodeport_config()),
        Parsed::Malformed => {
            inc(stats::PASS_MALFORMED);
            p.pass()
        }
        // ARP, IPv6, ICMP (ping of the node), fragments: the stack's.
        _ => p.pass(),
    }
}

#[inline(always)]
fn l4<P: Pkt>(p: &P, flow: &Flow, cfg: &NodePortConfig) -> i32 {
    let Some(fe) = lb::frontend_scoped(flow.daddr, flow.dport, flow.proto, SCOPE_EXTERNAL) else {
        let port = u16::from_be(flow.dport);
        if flow.daddr == cfg.node_addr && port >= cfg.snat_port_min && port <= cfg.snat_port_max {
            return rev_snat(p, flow);
        }
        return p.pass();
    };
    inc(stats::SERVICE_PACKETS);
    let now = clock::now();
    let b = match established(flow, &fe, cfg, now) {
        Some(b) => b,
        None => match new_flow(flow, &fe, now) {
            Ok(b) => b,
            Err(counter) => return drop_with(p, counter),
        },
    };
    if b.flags & BACKEND_F_LOCAL != 0 {
        if p.rewrite(flow, flow.saddr, b.addr, flow.sport, b.port)
            .is_err()
        {
            return drop_with(p, stats::DROP_REWRITE);
        }
        return p.pass();
    }
    if fe.flags & SVC_F_LOCAL_ONLY != 0 || cfg.node_addr == 0 {
        return drop_with(p, stats::DROP_NO_BACKEND);
    }
    if !pkt::ttl_forwardable(p) {
        return p.pass();
    }
    let Some(nat_port) = snat::port_for(flow, &b, fe.rev_nat_id, cfg, now) else {
        return drop_with(p, stats::DROP_SNAT_EXHAUSTED);
    };
    if p.rewrite(flow, cfg.node_addr, b.addr, nat_port, b.port)
        .is_err()
    {
        return drop_with(p, stats::DROP_REWRITE);
    }
    match pkt::forward(p, flow.proto, cfg.node_addr, b.addr) {
        Some(verdict) => {
            inc(stats::NODEPORT_TX);
            verdict
        }
        None => drop_with(p, stats::DROP_FIB),
    }
}

/// The backend of an established flow, if it still exists under the same
/// frontend (and still takes the packet: [`lb::keeps_flow`]).
#[inline(always)]
fn established(
    flow: &Flow,
    fe: &ServiceValue,
    cfg: &NodePortConfig,
    now: u64,
) -> Option<Backend> {
    let ct = conntrack::lookup(flow, CT_DIR_SERVICE)?;
    // SAFETY: pointer from a successful lookup; copied out.
    let v: CtValue = unsafe { *ct };
    if v.rev_nat_id != fe.rev_nat_id {
        inc(stats::RESELECTED);
        return None;
    }
    let Some(b) = lb::backend(v.backend_id) else {
        inc(stats::RESELECTED);
        return None;
    };
    if !lb::keeps_flow(&b, v.flags, flow) {
        // The closed flow's way back goes with it, so that a late packet
        // of the old backend cannot reach the client as the new flow's.
        if b.flags & BACKEND_F_LOCAL != 0 {
            conntrack::remove_reply_of(flow, &v);
        } else {
            snat::forget(flow, &b, cfg);
        }
        inc(stats::RESELECTED);
        return None;
    }
    conntrack::touch(ct, flow, now);
    Some(b)
}

/// Picks a backend and writes the conntrack entries (both directions for a
/// local backend, whose reply passes `skiff_from_pod`; the service entry
/// only for a remote one). Err: the drop counter.
#[inline(always)]
fn new_flow(flow: &Flow, fe: &ServiceValue, now: u64) -> Result<Backend, u32> {
    if fe.count == 0 {
        return Err(stats::DROP_NO_BACKEND);
    }
    let (id, b) = lb::select_affine(flow, fe, SCOPE_EXTERNAL, now).ok_or(stats::DROP_NO_BACKEND)?;
    let entry = NewEntry {
        backend_id: id,
        backend_addr: b.addr,
        backend_port: b.port,
        rev_nat_id: fe.rev_nat_id,
        front_addr: flow.daddr,
        front_port: flow.dport,
        snat_addr: 0,
        flags: CT_F_NODEPORT,
    };
    let created = if b.flags & BACKEND_F_LOCAL != 0 {
        conntrack::create(flow, &entry, now)
    } else {
        conntrack::create_service(flow, &entry, now)
    };
    if created.is_err() {
        return Err(stats::DROP_CT_FULL);
    }
    inc(stats::NEW_FLOWS);
    Ok(b)
}

/// A remote backend's reply to `node:snatPort`: back to `frontend → client`.
#[inline(always)]
fn rev_snat<P: Pkt>(p: &P, flow: &Flow) -> i32 {
    let Some(v) = snat::lookup_in(flow) else {
        return p.pass();
    };
    if !pkt::ttl_forwardable(p) {
        return p.pass();
    }
    let now = clock::now();
    snat::touch(v, flow, now);
    // SAFETY: pointer from a successful lookup; fields copied out.
    let (client, cport, rn_id) = unsafe { ((*v).addr, (*v).port, (*v).rev_nat_id) };
    // SAFETY: copied out at once.
    let Some(rn) = (unsafe { REV_NAT.get(&rn_id) }).copied() else {
        return p.pass();
    };
    if p.rewrite(flow, rn.addr, client, rn.port, cport).is_err() {
        return drop_with(p, stats::DROP_REWRITE);
    }
    inc(stats::NODEPORT_REV_SNAT);
    match pkt::forward(p, flow.proto, rn.addr, client) {
        Some(verdict) => {
            inc(stats::NODEPORT_TX);
            verdict
        }
        None => drop_with(p, stats::DROP_FIB),
    }
}
