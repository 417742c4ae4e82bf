//! Root test: local pod-to-pod delivery in `skiff_from_pod` through
//! BPF_PROG_TEST_RUN. A packet for a pod in `LOCAL_ENDPOINTS` leaves the
//! program as `TC_ACT_REDIRECT` (`bpf_redirect_peer`: the test run returns
//! the verdict, nothing is sent) with the MACs the node's routing would have
//! written, the TTL one less and both checksums valid; any other packet
//! passes untouched. Service NAT happens first, so a ClusterIP packet is
//! redirected to its local backend already DNATed.

#[allow(
    dead_code,
    reason = "shared with bpf_prog_run; these tests use part of it"
)]
#[path = "bpf_prog_run/support.rs"]
mod support;

use anyhow::Result;
use skiff_common::{stats, LocalEndpoint, PROTO_TCP, PROTO_UDP};
use support::*;

/// `TC_ACT_REDIRECT`.
const REDIRECT: u32 = 7;
const POD_A: [u8; 4] = [10, 244, 0, 5];
const POD_B: [u8; 4] = [10, 244, 0, 6];
const REMOTE: [u8; 4] = [10, 244, 1, 9];
const VIP: [u8; 4] = [10, 96, 0, 40];

/// Pod `n`'s entry: host veth index `100 + n`, MACs ending in `n`.
fn ep(n: u8) -> LocalEndpoint {
    LocalEndpoint {
        ifindex: 100 + u32::from(n),
        pod_mac: [0x02, 0xaa, 0, 0, 0, n],
        host_mac: [0x02, 0xbb, 0, 0, 0, n],
    }
}

macro_rules! fixture {
    ($tag:expr) => {
        match Fixture::new($tag, false)? {
            Some(fx) => fx,
            None => return Ok(()),
        }
    };
}

/// The frame went out towards `e`: MACs rewritten, TTL 64 → 63, valid
/// IPv4 checksum (`check` verifies the L4 one for TCP/UDP).
#[track_caller]
fn assert_delivered_to(frame: &[u8], e: &LocalEndpoint) {
    assert_eq!(frame[0..6], e.pod_mac, "destination MAC");
    assert_eq!(frame[6..12], e.host_mac, "source MAC");
    assert_eq!(frame[14 + 8], 63, "TTL");
    assert_eq!(fold(sum(&frame[14..34])), 0xffff, "IPv4 header checksum");
}

#[test]
fn a_packet_for_a_local_pod_is_redirected_into_it() -> Result<()> {
    let mut fx = fixture!("local");
    fx.local_endpoint(POD_A, ep(5))?;
    fx.local_endpoint(POD_B, ep(6))?;
    for pkt in [
        Pkt::tcp(POD_A, 40000, POD_B, 8080),
        Pkt::udp(POD_A, 40000, POD_B, 5353),
        Pkt::new(PROTO_ICMP, POD_A, 0, POD_B, 0),
    ] {
        let (rc, out, d) = fx.run(&pkt.bytes())?;
        assert_eq!(rc, REDIRECT, "proto {}", pkt.proto);
        assert_counts(&d, &[(stats::LOCAL_REDIRECT, 1)]);
        assert_delivered_to(&out, &ep(6));
        assert_eq!((&out[26..30], &out[30..34]), (&POD_A[..], &POD_B[..]));
        if pkt.proto != PROTO_ICMP {
            let seen = check(&out);
            assert_eq!((seen.src, seen.dst), (POD_A, POD_B));
        }
    }
    // The reply goes the other way just the same.
    let (rc, out, _) = fx.run(&Pkt::tcp(POD_B, 8080, POD_A, 40000).bytes())?;
    assert_eq!(rc, REDIRECT);
    assert_delivered_to(&out, &ep(5));
    Ok(())
}

#[test]
fn other_packets_pass_to_the_stack_untouched() -> Result<()> {
    let mut fx = fixture!("local-pass");
    fx.local_endpoint(POD_B, ep(6))?;
    let mut expiring = Pkt::tcp(POD_A, 40000, POD_B, 8080).bytes();
    expiring[14 + 8] = 1; // TTL 1: the stack answers Time Exceeded
    expiring[24..26].copy_from_slice(&[0, 0]);
    let c = !fold(sum(&expiring[14..34]));
    expiring[24..26].copy_from_slice(&c.to_be_bytes());
    let gre = Pkt::new(47, POD_A, 0, POD_B, 0).bytes();
    let mut fragment = Pkt::udp(POD_A, 40000, POD_B, 5353);
    fragment.frag = 0x2000; // MF: delivered too, the pod reassembles
    for (what, frame) in [
        ("remote pod", Pkt::tcp(POD_A, 40000, REMOTE, 8080).bytes()),
        ("TTL 1", expiring),
        ("GRE", gre),
    ] {
        let (rc, out, d) = fx.run(&frame)?;
        assert_eq!(rc, OK, "{what}");
        assert_counts(&d, &[]);
        assert_eq!(out, frame, "{what} was rewritten");
    }
    let frame = fragment.bytes();
    let (rc, out, _) = fx.run(&frame)?;
    assert_eq!((rc, out), (REDIRECT, out_of(&frame, &ep(6))));
    Ok(())
}

/// `frame` as delivered to `e`: MACs, TTL 63, header checksum.
fn out_of(frame: &[u8], e: &LocalEndpoint) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[0..6].copy_from_slice(&e.pod_mac);
    f[6..12].copy_from_slice(&e.host_mac);
    f[14 + 8] -= 1;
    f[24..26].copy_from_slice(&[0, 0]);
    let c = !fold(sum(&f[14..34]));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

#[test]
fn a_clusterip_packet_for_a_local_backend_is_dnatted_then_redirected() -> Result<()> {
    let mut fx = fixture!("local-svc");
    fx.local_endpoint(POD_A, ep(5))?;
    fx.local_endpoint(POD_B, ep(6))?;
    fx.backend(1, POD_B, 8080, PROTO_TCP)?;
    fx.service(VIP, 80, PROTO_TCP, 1, &[1])?;
    fx.backend(2, POD_B, 5353, PROTO_UDP)?;
    fx.service(VIP, 53, PROTO_UDP, 2, &[2])?;

    let (rc, out, d) = fx.run(&Pkt::tcp(POD_A, 40000, VIP, 80).bytes())?;
    assert_eq!(rc, REDIRECT);
    assert_counts(
        &d,
        &[
            (stats::SERVICE_PACKETS, 1),
            (stats::NEW_FLOWS, 1),
            (stats::LOCAL_REDIRECT, 1),
        ],
    );
    assert_delivered_to(&out, &ep(6));
    let seen = check(&out);
    assert_eq!(
        (seen.src, seen.sport, seen.dst, seen.dport),
        (POD_A, 40000, POD_B, 8080)
    );

    // The backend's reply: reverse NAT on its own veth, then straight into
    // the client (whose `skiff_to_pod` is bypassed, and has nothing to do).
    let mut synack = Pkt::tcp(POD_B, 8080, POD_A, 40000);
    synack.tcp_flags = 0x12;
    let (rc, out, d) = fx.run(&synack.bytes())?;
    assert_eq!(rc, REDIRECT);
    assert_counts(&d, &[(stats::REV_NAT, 1), (stats::LOCAL_REDIRECT, 1)]);
    assert_delivered_to(&out, &ep(5));
    let seen = check(&out);
    assert_eq!(
        (seen.src, seen.sport, seen.dst, seen.dport),
        (VIP, 80, POD_A, 40000)
    );

    let (rc, out, _) = fx.run(&Pkt::udp(POD_A, 40001, VIP, 53).bytes())?;
    assert_eq!(rc, REDIRECT);
    assert_delivered_to(&out, &ep(6));
    assert_eq!(check(&out).dport, 5353);
    Ok(())
}

#[test]
fn hairpin_through_the_service_is_redirected_back_into_the_pod() -> Result<()> {
    let mut fx = fixture!("local-hairpin");
    fx.local_endpoint(POD_A, ep(5))?;
    fx.backend(1, POD_A, 8080, PROTO_TCP)?;
    fx.service(VIP, 80, PROTO_TCP, 1, &[1])?;
    let (rc, out, _) = fx.run(&Pkt::tcp(POD_A, 40000, VIP, 80).bytes())?;
    assert_eq!(rc, REDIRECT);
    assert_delivered_to(&out, &ep(5));
    let seen = check(&out);
    assert_eq!((seen.src, seen.dst, seen.dport), (HAIRPIN, POD_A, 8080));
    let mut synack = Pkt::tcp(POD_A, 8080, HAIRPIN, 40000);
    synack.tcp_flags = 0x12;
    let (rc, out, _) = fx.run(&synack.bytes())?;
    assert_eq!(rc, REDIRECT);
    let seen = check(&out);
    assert_eq!((seen.src, seen.sport, seen.dst), (VIP, 80, POD_A));
    Ok(())
}
