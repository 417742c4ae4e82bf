//! Hand-made (mostly malformed) frames sent with an `AF_PACKET` socket, to
//! check that odd packets cannot break the data path.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Kinds of frames [`frame`] builds, all addressed to a frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// IPv4 header says TCP, only 8 bytes of TCP header follow.
    TruncatedTcp,
    /// A TCP SYN with 4 bytes of IP options (NOPs).
    IpOptionsSyn,
    /// First fragment (MF set) of a UDP datagram.
    FirstFragment,
    /// A later fragment (offset ≠ 0).
    TailFragment,
    /// ICMP echo request.
    Icmp,
    /// IHL of 3 words (< 5).
    BadIhl,
    /// An Ethernet header followed by 10 bytes of IPv4 header.
    TruncatedIp,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::TruncatedTcp,
        Kind::IpOptionsSyn,
        Kind::FirstFragment,
        Kind::TailFragment,
        Kind::Icmp,
        Kind::BadIhl,
        Kind::TruncatedIp,
    ];
}

/// Addresses of the frames.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub saddr: Ipv4Addr,
    pub daddr: Ipv4Addr,
    pub dport: u16,
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ipv4(flow: &Flow, proto: u8, options: &[u8], frag: u16, l4: &[u8], id: u16) -> Vec<u8> {
    let ihl = 5 + options.len() / 4;
    let total = (ihl * 4 + l4.len()) as u16;
    let mut h = vec![(0x40 | ihl) as u8, 0];
    h.extend(total.to_be_bytes());
    h.extend(id.to_be_bytes());
    h.extend(frag.to_be_bytes());
    h.extend([64, proto, 0, 0]);
    h.extend(flow.saddr.octets());
    h.extend(flow.daddr.octets());
    h.extend(options);
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend(l4);
    h
}

fn tcp_syn(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::with_capacity(20);
    t.extend(sport.to_be_bytes());
    t.extend(dport.to_be_bytes());
    t.extend(1u32.to_be_bytes()); // seq
    t.extend(0u32.to_be_bytes()); // ack
    t.extend([0x50, 0x02]); // data offset 5, SYN
    t.extend(1024u16.to_be_bytes());
    t.extend([0, 0, 0, 0]); // checksum left wrong on purpose, urgent
    t
}

/// Builds one Ethernet frame of `kind`; `n` varies ports and ids.
pub fn frame(kind: Kind, flow: &Flow, n: u16) -> Vec<u8> {
    let sport = 40000 + n % 16;
    let ip = match kind {
        Kind::TruncatedTcp => ipv4(flow, 6, &[], 0, &tcp_syn(sport, flow.dport)[..8], n),
        Kind::IpOptionsSyn => ipv4(flow, 6, &[1, 1, 1, 0], 0, &tcp_syn(sport, flow.dport), n),
        Kind::FirstFragment => {
            let mut udp = Vec::new();
            udp.extend(sport.to_be_bytes());
            udp.extend(flow.dport.to_be_bytes());
            udp.extend(64u16.to_be_bytes());
            udp.extend([0, 0]);
            udp.extend([0xab; 16]);
            ipv4(flow, 17, &[], 0x2000, &udp, n)
        }
        Kind::TailFragment => ipv4(flow, 17, &[], 3, &[0xcd; 24], n),
        Kind::Icmp => {
            let mut icmp = vec![8, 0, 0, 0, 0, 1];
            icmp.extend(n.to_be_bytes());
            let c = checksum(&icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            ipv4(flow, 1, &[], 0, &icmp, n)
        }
        Kind::BadIhl => {
            let mut p = ipv4(flow, 6, &[], 0, &tcp_syn(sport, flow.dport), n);
            p[0] = 0x43;
            p
        }
        Kind::TruncatedIp => ipv4(flow, 6, &[], 0, &[], n)[..10].to_vec(),
    };
    let mut f = Vec::with_capacity(14 + ip.len());
    f.extend(flow.dst_mac);
    f.extend(flow.src_mac);
    f.extend(0x0800u16.to_be_bytes());
    f.extend(ip);
    f
}

/// An `AF_PACKET` socket bound to one interface (of the caller's netns).
#[derive(Debug)]
pub struct RawSender {
    fd: OwnedFd,
    ifindex: i32,
}

impl RawSender {
    /// Opens the socket on `ifname` (call it inside the right netns).
    pub fn open(ifname: &str) -> io::Result<Self> {
        let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
        // SAFETY: plain syscalls with valid arguments; the fd is owned below.
        unsafe {
            let ifindex = libc::if_nametoindex(name.as_ptr());
            if ifindex == 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Self {
                fd: OwnedFd::from_raw_fd(fd),
                ifindex: ifindex as i32,
            })
        }
    }

    /// Sends one complete Ethernet frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = 0x0800u16.to_be();
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: buffer and address are valid for the given lengths.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::addr_of!(addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_advertised_shape() {
        let flow = Flow {
            src_mac: parse_mac("02:00:00:00:03:02").unwrap(),
            dst_mac: [2, 0, 0, 0, 3, 1],
            saddr: Ipv4Addr::new(10, 244, 0, 5),
            daddr: Ipv4Addr::new(10, 96, 0, 10),
            dport: 80,
        };
        let f = frame(Kind::IpOptionsSyn, &flow, 1);
        assert_eq!(f[14], 0x46);
        assert_eq!(checksum(&f[14..38]), 0, "valid IP header checksum");
        assert_eq!(frame(Kind::TruncatedTcp, &flow, 1).len(), 14 + 20 + 8);
        assert_eq!(frame(Kind::TruncatedIp, &flow, 1).len(), 24);
        assert_eq!(frame(Kind::BadIhl, &flow, 1)[14], 0x43);
        assert_eq!(&frame(Kind::FirstFragment, &flow, 1)[20..22], &[0x20, 0]);
        assert_eq!(frame(Kind::Icmp, &flow, 1)[23], 1);
        assert_eq!(parse_mac("02:00"), None);
    }
}
