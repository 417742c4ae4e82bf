//! Complete Ethernet/IPv4/UDP frames for the packet generator, checksums
//! included (a NIC hands the wire complete checksums; so does this).

use skiff_tests::rawpkt::checksum;
pub use skiff_tests::rawpkt::Flow as FrameSpec;

/// Bytes of a generated frame: the 60-byte Ethernet minimum (64 on the
/// wire with the FCS), 18 of them UDP payload.
pub const FRAME_LEN: usize = 60;
const ETH: usize = 14;
const IP: usize = 20;
const UDP: usize = 8;

/// The frame of one packet from source port `sport`.
pub fn frame(spec: &FrameSpec, sport: u16) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&spec.dst_mac);
    f[6..12].copy_from_slice(&spec.src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (FRAME_LEN - ETH) as u16;
    let ip = &mut f[ETH..ETH + IP];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&sport.to_be_bytes()); // identification
    ip[6] = 0x40; // DF
    ip[8] = 64; // TTL
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&spec.saddr.octets());
    ip[16..20].copy_from_slice(&spec.daddr.octets());
    let csum = checksum(ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    let udp_len = ip_len - IP as u16;
    let udp = &mut f[ETH + IP..];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&spec.dport.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    for (i, b) in udp[UDP..].iter_mut().enumerate() {
        *b = b"skiff-np-bench-pkt"[i % 18];
    }
    let mut csum = checksum(&[&pseudo_header(&f)[..], &f[ETH + IP..]].concat());
    if csum == 0 {
        csum = 0xffff;
    }
    f[ETH + IP + 6..ETH + IP + 8].copy_from_slice(&csum.to_be_bytes());
    f
}

/// The UDP pseudo-header of `f`: addresses, protocol, UDP length.
fn pseudo_header(f: &[u8; FRAME_LEN]) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[0..8].copy_from_slice(&f[ETH + 12..ETH + 20]);
    p[9] = 17;
    p[10..12].copy_from_slice(&f[ETH + IP + 4..ETH + IP + 6]);
    p
}

/// A frame spec for unit tests.
#[cfg(test)]
pub fn test_spec() -> FrameSpec {
    FrameSpec {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        saddr: std::net::Ipv4Addr::new(192, 168, 200, 250),
        daddr: std::net::Ipv4Addr::new(192, 168, 200, 10),
        dport: 30090,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify_to_zero() {
        for sport in [1, 1000, 40000, 65535] {
            let f = frame(&test_spec(), sport);
            assert_eq!(checksum(&f[ETH..ETH + IP]), 0, "IPv4 header checksum");
            let udp = [&pseudo_header(&f)[..], &f[ETH + IP..]].concat();
            assert_eq!(checksum(&udp), 0, "UDP checksum");
        }
    }

    #[test]
    fn headers_carry_the_flow() {
        let f = frame(&test_spec(), 4242);
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 46, "IPv4 total length");
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), 4242);
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 30090);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 26, "UDP length");
    }
}
