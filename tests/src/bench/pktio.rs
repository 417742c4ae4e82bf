//! Raw packet I/O of the NodePort benchmark: an AF_PACKET sender (prebuilt
//! frames, `sendmmsg`, `PACKET_QDISC_BYPASS`) and a UDP sink draining with
//! `recvmmsg`. Sockets are opened inside a lab netns and used from any thread.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use skiff_tests::lab::Netns;

use super::udp_frame::FRAME_LEN;

fn setsockopt_int(fd: i32, level: i32, name: i32, value: i32) -> std::io::Result<()> {
    // SAFETY: `value` outlives the call; the length is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as u32,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// An AF_PACKET socket bound to `ifindex` in `netns` that only sends
/// (protocol 0: it receives nothing) and bypasses the qdisc, like pktgen.
pub fn packet_socket(netns: &Netns, ifindex: u32) -> Result<OwnedFd> {
    let fd = netns.run(move || -> std::io::Result<OwnedFd> {
        // SAFETY: plain socket(2) call.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a new fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: all-zero sockaddr_ll is valid; family and ifindex set.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(
                raw,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        setsockopt_int(raw, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)?;
        setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_SNDBUF, 4 << 20)?;
        Ok(fd)
    })?;
    fd.with_context(|| format!("AF_PACKET socket on ifindex {ifindex} in {}", netns.name()))
}

/// Sends `frames` round-robin on `fd`, one `sendmmsg` per pass over them,
/// until `stop`, `deadline` or `max` packets; adds what the kernel took to
/// `sent` as it goes. Returns the failed calls (e.g. ENOBUFS).
pub fn send_loop(
    fd: &OwnedFd,
    frames: &[[u8; FRAME_LEN]],
    stop: &AtomicBool,
    deadline: Instant,
    max: u64,
    sent: &AtomicU64,
) -> u64 {
    let mut iov: Vec<libc::iovec> = frames
        .iter()
        .map(|f| libc::iovec {
            iov_base: f.as_ptr() as *mut libc::c_void,
            iov_len: f.len(),
        })
        .collect();
    // SAFETY: all-zero mmsghdr is valid; iov pointers set below.
    let mut msgs: Vec<libc::mmsghdr> = (0..frames.len())
        .map(|_| unsafe { std::mem::zeroed() })
        .collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    let (mut total, mut failed) = (0u64, 0u64);
    let mut calls = 0u32;
    while total < max && !stop.load(Ordering::Relaxed) {
        calls += 1;
        if calls.is_multiple_of(64) && Instant::now() >= deadline {
            break;
        }
        // SAFETY: msgs point into `iov` and `frames`, alive for the call.
        let n = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as u32, 0) };
        if n > 0 {
            total += n as u64;
            sent.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            failed += 1;
            std::thread::yield_now();
        }
    }
    failed
}

/// A UDP socket bound in a backend pod, with a large receive buffer.
pub fn sink_socket(netns: &Netns, port: u16) -> Result<UdpSocket> {
    let sock = netns.run(move || -> std::io::Result<UdpSocket> {
        let s = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?;
        setsockopt_int(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20)?;
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(s)
    })?;
    sock.with_context(|| format!("UDP sink on port {port} in {}", netns.name()))
}

/// Drains `sock` with `recvmmsg` (64 at a time) until `stop`, counting
/// datagrams into `received`.
pub fn sink_loop(sock: &UdpSocket, stop: &AtomicBool, received: &AtomicU64) -> Result<()> {
    const BATCH: usize = 64;
    let mut bufs = vec![[0u8; 128]; BATCH];
    let mut iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: all-zero mmsghdr is valid; iov pointers set below.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: msgs point into `iov` and `bufs`, alive for the call.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n > 0 {
            received.fetch_add(n as u64, Ordering::Relaxed);
            continue;
        }
        let e = std::io::Error::last_os_error();
        if !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ) {
            bail!("recvmmsg on the UDP sink: {e}");
        }
    }
    Ok(())
}

/// A link's MAC, ifindex and received packets (`ip -j -s link`).
#[derive(Debug, Clone)]
pub struct LinkInfo {
    pub mac: [u8; 6],
    pub ifindex: u32,
    pub rx_packets: u64,
}

/// [`LinkInfo`] of `ifname` in netns `ns`.
pub fn link_info(ns: &str, ifname: &str) -> Result<LinkInfo> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-j", "-s", "link", "show", "dev", ifname])
        .output()
        .context("running ip -j -s link")?;
    if !out.status.success() {
        bail!(
            "ip -n {ns} -j -s link show dev {ifname}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("parsing ip -j link of {ifname} in {ns}"))?;
    parse_link(&v[0]).with_context(|| format!("ip -j link of {ifname} in {ns}: {v}"))
}

fn parse_link(v: &serde_json::Value) -> Option<LinkInfo> {
    let mac = skiff_tests::rawpkt::parse_mac(v["address"].as_str()?)?;
    let s = &v["stats64"];
    Some(LinkInfo {
        mac,
        ifindex: u32::try_from(v["ifindex"].as_u64()?).ok()?,
        rx_packets: s["rx"]["packets"].as_u64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"ifindex":7,"ifname":"eth0","address":"02:00:00:01:00:02",
                "stats64":{"rx":{"bytes":10,"packets":3,"dropped":1},
                           "tx":{"bytes":20,"packets":4,"dropped":0}}}"#,
        )
        .unwrap();
        let l = parse_link(&v).unwrap();
        assert_eq!(l.mac, [2, 0, 0, 1, 0, 2]);
        assert_eq!((l.ifindex, l.rx_packets), (7, 3));
        assert!(parse_link(&serde_json::json!({"address": "zz"})).is_none());
    }
}
