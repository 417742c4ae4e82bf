//! Root test: `skiff_from_pod` on crafted packets through BPF_PROG_TEST_RUN.
//!
//! Loads the BPF object with its maps pinned in a private directory under
//! /sys/fs/bpf/skiff/, fills the service maps by hand and checks every
//! rewritten packet (addresses, ports, IPv4 and L4 checksums) and the exact
//! STATS counters each packet moved. Nothing is attached to any interface.

#[path = "bpf_prog_run/support.rs"]
mod support;

use anyhow::Result;
use skiff_common::{
    stats, CT_DIR_REPLY, CT_DIR_SERVICE, CT_F_CLOSING, CT_F_HAIRPIN, PROTO_TCP, PROTO_UDP,
};
use support::*;

const CLIENT: [u8; 4] = [10, 244, 1, 5];
const VIP: [u8; 4] = [10, 96, 0, 10];
const BE1: [u8; 4] = [10, 244, 0, 2];
const BE2: [u8; 4] = [10, 244, 0, 3];

/// VIP:80/tcp → {1: BE1:8080, 2: BE2:8080}, rev-NAT 1.
fn tcp_service(fx: &mut Fixture) -> Result<()> {
    fx.backend(1, BE1, 8080, PROTO_TCP)?;
    fx.backend(2, BE2, 8080, PROTO_TCP)?;
    fx.service(VIP, 80, PROTO_TCP, 1, &[1, 2])
}

/// Of [`tcp_service`]'s backends: (id of the one at `first`, id and address
/// of the other).
fn split(first: [u8; 4]) -> (u32, u32, [u8; 4]) {
    if first == BE1 {
        (1, 2, BE2)
    } else {
        (2, 1, BE1)
    }
}

/// `pkt` (client port `sport`) picks a backend again: backend `keep` at
/// `keep_addr`, recorded in its service entry.
fn expect_reselected(
    fx: &Fixture,
    pkt: &[u8],
    sport: u16,
    keep: u32,
    keep_addr: [u8; 4],
) -> Result<()> {
    let (rc, out, d) = fx.run(pkt)?;
    assert_eq!(rc, OK);
    assert_counts(
        &d,
        &[
            (stats::SERVICE_PACKETS, 1),
            (stats::RESELECTED, 1),
            (stats::NEW_FLOWS, 1),
        ],
    );
    assert_eq!(check(&out).dst, keep_addr);
    let svc = fx
        .ct_get(ct_key(CLIENT, sport, VIP, 80, PROTO_TCP, CT_DIR_SERVICE))
        .unwrap();
    assert_eq!(svc.backend_id, keep);
    Ok(())
}

macro_rules! fixture {
    ($tag:expr) => {
        fixture!($tag, false)
    };
    ($tag:expr, $debug:expr) => {
        match Fixture::new($tag, $debug)? {
            Some(fx) => fx,
            None => return Ok(()),
        }
    };
}

#[test]
fn tcp_dnat_is_sticky_and_replies_are_reverse_natted() -> Result<()> {
    let mut fx = fixture!("tcp", true);
    tcp_service(&mut fx)?;
    let syn = Pkt::tcp(CLIENT, 40000, VIP, 80);
    let (rc, out, d) = fx.run(&syn.bytes())?;
    assert_eq!(rc, OK);
    assert_counts(&d, &[(stats::SERVICE_PACKETS, 1), (stats::NEW_FLOWS, 1)]);
    let seen = check(&out);
    assert!(seen.dst == BE1 || seen.dst == BE2, "DNAT target {seen:?}");
    assert_eq!((seen.src, seen.sport, seen.dport), (CLIENT, 40000, 8080));
    let be = seen.dst;

    // The same flow, later packets: same backend, no new conntrack entry.
    let mut ack = syn.clone();
    ack.tcp_flags = 0x10;
    ack.payload = b"GET / HTTP/1.0\r\n\r\n!".to_vec();
    for _ in 0..3 {
        let (rc, out, d) = fx.run(&ack.bytes())?;
        assert_eq!(rc, OK);
        assert_counts(&d, &[(stats::SERVICE_PACKETS, 1)]);
        assert_eq!(check(&out).dst, be, "flow moved to another backend");
    }
    let svc = fx.ct_get(ct_key(CLIENT, 40000, VIP, 80, PROTO_TCP, CT_DIR_SERVICE));
    assert!(svc.is_some_and(|v| v.rev_nat_id == 1 && v.flags & CT_F_HAIRPIN == 0));
    assert!(fx
        .ct_get(ct_key(be, 8080, CLIENT, 40000, PROTO_TCP, CT_DIR_REPLY))
        .is_some());

    // The backend's reply comes back from VIP:80.
    let mut synack = Pkt::tcp(be, 8080, CLIENT, 40000);
    synack.tcp_flags = 0x12;
    let (rc, out, d) = fx.run(&synack.bytes())?;
    assert_eq!(rc, OK);
    assert_counts(&d, &[(stats::REV_NAT, 1)]);
    let seen = check(&out);
    assert_eq!(
        (seen.src, seen.sport, seen.dst, seen.dport),
        (VIP, 80, CLIENT, 40000)
    );

    // FIN from either side marks that direction's entry closing.
    let mut fin = ack.clone();
    fin.tcp_flags = 0x11;
    assert_eq!(check(&fx.run(&fin.bytes())?.1).dst, be);
    let svc = fx
        .ct_get(ct_key(CLIENT, 40000, VIP, 80, PROTO_TCP, CT_DIR_SERVICE))
        .unwrap();
    assert_ne!(
        svc.flags & CT_F_CLOSING,
        0,
        "FIN did not mark the flow closing"
    );
    let mut fin = synack.clone();
    fin.tcp_flags = 0x11;
    assert_eq!(check(&fx.run(&fin.bytes())?.1).src, VIP);
    let rep = fx
        .ct_get(ct_key(be, 8080, CLIENT, 40000, PROTO_TCP, CT_DIR_REPLY))
        .unwrap();
    assert_ne!(rep.flags & CT_F_CLOSING, 0);

    // Many flows: every one sticks to its backend, and both backends serve.
    let mut used = [0; 2];
    for sport in 41000..41064 {
        let f = Pkt::tcp(CLIENT, sport, VIP, 80).bytes();
        let first = check(&fx.run(&f)?.1).dst;
        assert_eq!(check(&fx.run(&f)?.1).dst, first);
        used[usize::from(first == BE2)] += 1;
    }
    assert!(
        used[0] > 10 && used[1] > 10,
        "poor spread over 2 backends: {used:?}"
    );
    Ok(())
}

#[test]
fn udp_dnat_keeps_a_zero_checksum_zero() -> Result<()> {
    let mut fx = fixture!("udp");
    fx.backend(3, [10, 244, 0, 4], 5353, PROTO_UDP)?;
    fx.service(VIP, 53, PROTO_UDP, 2, &[3])?;
    for (sport, no_csum) in [(5000, false), (5001, true)] {
        let mut q = Pkt::udp(CLIENT, sport, VIP, 53);
        q.udp_no_csum = no_csum;
        q.payload = b"query".to_vec();
        let (rc, out, d) = fx.run(&q.bytes())?;
        assert_eq!(rc, OK);
        assert_counts(&d, &[(stats::SERVICE_PACKETS, 1), (stats::NEW_FLOWS, 1)]);
        let seen = check(&out);
        assert_eq!(
            (seen.dst, seen.dport, seen.udp_csum_zero),
            ([10, 244, 0, 4], 5353, no_csum)
        );

        let mut a = Pkt::udp([10, 244, 0, 4], 5353, CLIENT, sport);
        a.udp_no_csum = no_csum;
        let (rc, out, d) = fx.run(&a.bytes())?;
        assert_eq!(rc, OK);
        assert_counts(&d, &[(stats::REV_NAT, 1)]);
        let seen = check(&out);
        assert_eq!(
            (seen.src, seen.sport, seen.udp_csum_zero),
            (VIP, 53, no_csum)
        );
    }
    Ok(())
}

#[test]
fn hairpin_is_snatted_and_its_reply_unsnatted() -> Result<()> {
    let mut fx = fixture!("hairpin", true);
    let pod = [10, 244, 0, 7];
    let vip = [10, 96, 0, 30];
    fx.backend(21, pod, 8080, PROTO_TCP)?;
    fx.service(vip, 80, PROTO_TCP, 7, &[21])?;
    let (rc, out, d) = fx.run(&Pkt::tcp(pod, 40001, vip, 80).bytes())?;
    assert_eq!(rc, OK);
    assert_counts(&d, &[(stats::SERVICE_PACKETS, 1), (stats::NEW_FLOWS, 1)]);
    let seen = check(&out);
    assert_eq!(
        (seen.src, seen.sport, seen.dst, seen.dport),
        (HAIRPIN, 40001, pod, 8080)
    );
    let svc = fx
        .ct_get(ct_key(pod, 40001, vip, 80, PROTO_TCP, CT_DIR_SERVICE))
        .unwrap();
    assert_ne!(svc.flags & CT_F_HAIRPIN, 0);

    let mut reply = Pkt::tcp(pod, 8080, HAIRPIN, 40001);
    reply.tcp_flags = 0x12;
    let (rc, out, d) = fx.run(&reply.bytes())?;
    assert_eq!(rc, OK);
    assert_counts(&d, &[(stats::REV_NAT, 1)]);
    let seen = check(&out);
    assert_eq!(
        (seen.src, seen.sport, seen.dst, seen.dport),
        (vip, 80, pod, 40001)
    );

    // Later packets of the flow keep the SNAT.
    let mut ack = Pkt::tcp(pod, 40001, vip, 80);
    ack.tcp_flags = 0x10;
    let seen = check(&fx.run(&ack.bytes())?.1);
    assert_eq!((seen.src, seen.dst), (HAIRPIN, pod));
    Ok(())
}

#[test]
fn a_flow_whose_backend_is_gone_reselects() -> Result<()> {
    let mut fx = fixture!("reselect", true);
    tcp_service(&mut fx)?;
    let pkt = Pkt::tcp(CLIENT, 42000, VIP, 80).bytes();
    let first = check(&fx.run(&pkt)?.1).dst;
    let (gone, keep, keep_addr) = split(first);
    // What the agent does when an endpoint disappears: count shrinks to the
    // surviving slot, the backend entry goes.
    fx.service(VIP, 80, PROTO_TCP, 1, &[keep])?;
    fx.backends.set(gone, skiff_common::Backend::default(), 0)?;

    expect_reselected(&fx, &pkt, 42000, keep, keep_addr)?;

    let (_, out, d) = fx.run(&pkt)?;
    assert_counts(&d, &[(stats::SERVICE_PACKETS, 1)]);
    assert_eq!(check(&out).dst, keep_addr);
    let (_, out, d) = fx.run(&Pkt::tcp(keep_addr, 8080, CLIENT, 42000).bytes())?;
    assert_counts(&d, &[(stats::REV_NAT, 1)]);
    assert_eq!(check(&out).src, VIP);

    // The old backend's reply entry is stale now: a packet with its tuple is
    // left alone, and the entry goes.
    let gone_addr = if keep_addr == BE1 { BE2 } else { BE1 };
    let (rc, out, d) = fx.run(&Pkt::tcp(gone_addr, 8080, CLIENT, 42000).bytes())?;
    assert_eq!(rc, OK);
    assert_counts(&d, &[]);
    assert_eq!(check(&out).src, gone_addr, "a stale reply entry rewrote");
    let stale = ct_key(gone_addr, 8080, CLIENT, 42000, PROTO_TCP, CT_DIR_REPLY);
    assert!(fx.ct_get(stale).is_none(), "stale reply entry kept");
    Ok(())
}

#[test]
fn a_terminating_backend_keeps_its_flows_but_not_a_new_syn_on_their_tuple() -> Result<()> {
    let mut fx = fixture!("terminating");
    tcp_service(&mut fx)?;
    let syn = Pkt::tcp(CLIENT, 43000, VIP, 80);
    let first = check(&fx.run(&syn.bytes())?.1).dst;
    let (leaving, keep, keep_addr) = split(first);
    // What the agent does when an endpoint starts terminating: it leaves the
    // slots, its backend entry stays, flagged.
    fx.service(VIP, 80, PROTO_TCP, 1, &[keep])?;
    fx.set_terminating(leaving)?;

    // The established flow keeps going to it, a retransmitted SYN and the
    // FIN included.
    let mut ack = syn.clone();
    ack.tcp_flags = 0x10;
    let mut fin = syn.clone();
    fin.tcp_flags = 0x11;
    for p in [&ack, &syn, &fin] {
        let (rc, out, d) = fx.run(&p.bytes())?;
        assert_eq!(rc, OK);
        assert_counts(&d, &[(stats::SERVICE_PACKETS, 1)]);
        assert_eq!(check(&out).dst, first, "flags {:#x}", p.tcp_flags);
    }
    // A new connection on the closed flow's tuple (port reuse) does not.
    expect_reselected(&fx, &syn.bytes(), 43000, keep, keep_addr)?;
    let stale = ct_key(first, 8080, CLIENT, 43000, PROTO_TCP, CT_DIR_REPLY);
    assert!(
        fx.ct_get(stale).is_none(),
        "the old flow's reply entry kept"
    );
    Ok(())
}

#[test]
fn affinity_holds_while_every_slot_is_terminating() -> Result<()> {
    let mut fx = fixture!("affinity");
    tcp_service(&mut fx)?;
    fx.set_affinity(VIP, 80, PROTO_TCP, 100)?;
    let first = check(&fx.run(&Pkt::tcp(CLIENT, 44000, VIP, 80).bytes())?.1).dst;
    // Scaled to 0: both endpoints terminating and still serving, both kept
    // in the slots (KEP-1669's fallback). The client's new connections stay
    // with its backend; by hash alone, ten would all land on it one time in
    // a thousand.
    fx.set_terminating(1)?;
    fx.set_terminating(2)?;
    for sport in 44001..44011 {
        let (rc, out, _) = fx.run(&Pkt::tcp(CLIENT, sport, VIP, 80).bytes())?;
        assert_eq!(rc, OK);
        assert_eq!(check(&out).dst, first, "client port {sport}");
    }
    Ok(())
}

#[test]
fn a_direct_connection_reusing_a_closed_flows_tuple_is_not_rewritten() -> Result<()> {
    let mut fx = fixture!("reuse");
    tcp_service(&mut fx)?;
    // A service flow, closed by FINs both ways.
    let syn = Pkt::tcp(CLIENT, 43000, VIP, 80);
    let be = check(&fx.run(&syn.bytes())?.1).dst;
    let mut fin = syn.clone();
    fin.tcp_flags = 0x11;
    fx.run(&fin.bytes())?;
    let mut fin_back = Pkt::tcp(be, 8080, CLIENT, 43000);
    fin_back.tcp_flags = 0x11;
    assert_eq!(check(&fx.run(&fin_back.bytes())?.1).src, VIP);

    // The client now connects to the backend's own address from the same
    // port: untouched, and the closed flow's entries are forgotten.
    let direct = Pkt::tcp(CLIENT, 43000, be, 8080);
    let (rc, out, d) = fx.run(&direct.bytes())?;
    assert_eq!(rc, OK);
    assert_counts(&d, &[]);
    assert_eq!(check(&out).dst, be);
    assert!(fx
        .ct_get(ct_key(be, 8080, CLIENT, 43000, PROTO_TCP, CT_DIR_REPLY))
        .is_none());
    assert!(fx
        .ct_get(ct_key(CLIENT, 43000, VIP, 80, PROTO_TCP, CT_DIR_SERVICE))
        .is_none());
    // The backend's SYN-ACK keeps its own source address.
    let mut synack = Pkt::tcp(be, 8080, CLIENT, 43000);
    synack.tcp_flags = 0x12;
    let (rc, out, d) = fx.run(&synack.bytes())?;
    assert_eq!(rc, OK);
    assert_counts(&d, &[]);
    assert_eq!(check(&out).src, be, "direct reply rewritten to the VIP");
    Ok(())
}

#[test]
fn a_remote_backends_reply_is_reverse_natted_on_the_way_into_the_client() -> Result<()> {
    let mut fx = fixture!("topod", true);
    let remote = [10, 244, 2, 9];
    fx.backend(31, remote, 8080, PROTO_TCP)?;
    fx.service(VIP, 80, PROTO_TCP, 1, &[31])?;
    let seen = check(&fx.run(&Pkt::tcp(CLIENT, 46000, VIP, 80).bytes())?.1);
    assert_eq!((seen.dst, seen.dport), (remote, 8080));

    // The reply crossed the underlay untouched; it enters the client's veth.
    let mut synack = Pkt::tcp(remote, 8080, CLIENT, 46000);
    synack.tcp_flags = 0x12;
    let (rc, out, d) = fx.run_to_pod(&synack.bytes())?;
    assert_eq!(rc, OK);
    assert_counts(&d, &[(stats::REV_NAT, 1)]);
    let seen = check(&out);
    assert_eq!(
        (seen.src, seen.sport, seen.dst, seen.dport),
        (VIP, 80, CLIENT, 46000)
    );

    // Already reverse-NATed (local backend) or unrelated: untouched.
    for f in [
        out,
        Pkt::tcp(VIP, 80, CLIENT, 46001).bytes(),
        Pkt::udp(remote, 53, CLIENT, 1).bytes(),
    ] {
        let (rc, again, d) = fx.run_to_pod(&f)?;
        assert_eq!((rc, &again), (OK, &f));
        assert_counts(&d, &[]);
    }
    Ok(())
}

#[test]
fn a_frontend_without_backends_drops() -> Result<()> {
    let mut fx = fixture!("nobackend");
    let vip = [10, 96, 0, 40];
    fx.service(vip, 80, PROTO_TCP, 9, &[])?;
    let (rc, _, d) = fx.run(&Pkt::tcp(CLIENT, 43000, vip, 80).bytes())?;
    assert_eq!(rc, SHOT);
    assert_counts(
        &d,
        &[(stats::SERVICE_PACKETS, 1), (stats::DROP_NO_BACKEND, 1)],
    );
    assert!(fx
        .ct_get(ct_key(CLIENT, 43000, vip, 80, PROTO_TCP, CT_DIR_SERVICE))
        .is_none());
    Ok(())
}

#[test]
fn malformed_and_unsupported_packets_are_passed_or_dropped_and_counted() -> Result<()> {
    let mut fx = fixture!("malformed");
    tcp_service(&mut fx)?;
    let mut with_opts = Pkt::tcp(CLIENT, 44000, VIP, 80);
    with_opts.ip_opts = vec![1, 1, 1, 0]; // NOP NOP NOP EOL
    with_opts.payload.clear();
    let mut plain = with_opts.clone();
    plain.ip_opts.clear();
    plain.sport = 44001;

    // Truncated at every length up to the full TCP header, with and without
    // options. The kernel itself refuses frames shorter than an Ethernet
    // header (6.18: shorter than Ethernet + IPv4 for an IPv4 ethertype) with
    // EINVAL; every frame it does run must pass untouched and be counted.
    for p in [&plain, &with_opts] {
        let full = p.bytes();
        let mut ran = 0;
        for len in 0..full.len() {
            match fx.run(&full[..len]) {
                Err(e) if len < 14 + 20 => {
                    let errno = e
                        .downcast_ref::<skiff_tests::prog_run::ProgRunError>()
                        .and_then(|e| e.errno());
                    assert_eq!(errno, Some(libc::EINVAL), "len {len}: {e}");
                }
                Err(e) => return Err(e.context(format!("len {len}"))),
                Ok((rc, out, d)) => {
                    assert!(len >= 14, "kernel ran a {len}-byte frame");
                    assert_eq!(rc, OK, "len {len}");
                    assert_counts(&d, &[(stats::PASS_MALFORMED, 1)]);
                    assert_eq!(out, full[..len], "len {len}: truncated frame was modified");
                    ran += 1;
                }
            }
        }
        assert!(
            ran >= full.len() - 34,
            "only {ran} truncated frames reached the program"
        );
        // The complete frame is load-balanced, IP options or not.
        let (rc, out, d) = fx.run(&full)?;
        assert_eq!(rc, OK);
        assert_counts(&d, &[(stats::SERVICE_PACKETS, 1), (stats::NEW_FLOWS, 1)]);
        let seen = check(&out);
        assert!(seen.dst == BE1 || seen.dst == BE2);
        assert_eq!((seen.sport, seen.dport), (p.sport, 8080));
    }

    // IHL < 5 (and a bad version) → passed untouched, counted.
    for first in [0x44u8, 0x40, 0x65] {
        let mut f = plain.bytes();
        f[14] = first;
        let (rc, out, d) = fx.run(&f)?;
        assert_eq!((rc, &out), (OK, &f));
        assert_counts(&d, &[(stats::PASS_MALFORMED, 1)]);
    }

    // Fragments: to a VIP dropped, elsewhere untouched.
    for frag in [0x2000u16, 0x0010, 0x2010] {
        let mut p = plain.clone();
        p.frag = frag;
        let (rc, _, d) = fx.run(&p.bytes())?;
        assert_eq!(rc, SHOT, "fragment {frag:#x} to a VIP");
        assert_counts(&d, &[(stats::DROP_FRAGMENT, 1)]);
        p.dst = [10, 244, 0, 99];
        let f = p.bytes();
        let (rc, out, d) = fx.run(&f)?;
        assert_eq!((rc, &out), (OK, &f));
        assert_counts(&d, &[]);
    }

    // ICMP (or any non-TCP/UDP) to a VIP dropped, elsewhere untouched.
    let mut icmp = Pkt::new(PROTO_ICMP, CLIENT, 0, VIP, 0);
    icmp.payload = vec![8, 0, 0xf7, 0xff, 0, 0, 0, 0];
    let (rc, _, d) = fx.run(&icmp.bytes())?;
    assert_eq!(rc, SHOT);
    assert_counts(&d, &[(stats::DROP_UNSUPPORTED_PROTO, 1)]);
    icmp.dst = [10, 244, 0, 99];
    let f = icmp.bytes();
    let (rc, out, d) = fx.run(&f)?;
    assert_eq!((rc, &out), (OK, &f));
    assert_counts(&d, &[]);

    // Not a service: untouched. Not IPv4 (ARP): untouched, only PACKETS.
    for f in [
        Pkt::tcp(CLIENT, 45000, VIP, 81).bytes(),
        Pkt::udp(CLIENT, 45000, VIP, 80).bytes(),
    ] {
        let (rc, out, d) = fx.run(&f)?;
        assert_eq!((rc, &out), (OK, &f));
        assert_counts(&d, &[]);
    }
    let mut arp = vec![0xff; 6];
    arp.extend([2, 0, 0, 0, 0, 2, 0x08, 0x06]);
    arp.extend([0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend([0; 20]);
    let (rc, out, d) = fx.run(&arp)?;
    assert_eq!((rc, &out), (OK, &arp));
    assert_counts(&d, &[]);
    Ok(())
}
