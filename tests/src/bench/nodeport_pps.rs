//! NodePort packets/s: 60-byte UDP frames from the external client to
//! `nodeIP:nodePort` of the entry node, many source ports, sent from a few
//! threads with AF_PACKET. Offered = frames the sender's kernel took;
//! delivered = frames the backend pod's `eth0` received; the sink's count
//! (what its socket read) is reported beside them. Each window is measured
//! after a warm-up (conntrack and SNAT entries exist, neighbours resolved).

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;
use skiff_tests::lab::{ExternalClient, Node, Pod};

use super::pktio::{self, link_info};
use super::progress;
use super::udp_frame::{frame, FrameSpec, FRAME_LEN};

/// Source ports per run start here.
const SPORT_BASE: u16 = 20_000;
/// Per sender thread: a bound besides the deadline.
const MAX_PER_THREAD: u64 = 200_000_000;

/// Shape of a run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PpsLoad {
    pub threads: usize,
    /// Distinct flows (source ports); one `sendmmsg` sends each once.
    pub flows: u16,
    pub warmup_s: f64,
    pub window_s: f64,
    /// Windows per mode; medians are kept.
    pub reps: usize,
}

/// Where the packets go.
pub struct Target<'a> {
    pub client: &'a ExternalClient,
    /// The node whose address and nodePort the client sends to.
    pub entry: &'a Node,
    pub node_port: u16,
    pub backend: &'a Pod,
    pub sink: &'a UdpSocket,
}

/// Medians over the windows, packets/s.
#[derive(Debug, Clone, Serialize)]
pub struct PpsResult {
    pub offered_pps: f64,
    pub delivered_pps: f64,
    pub sink_pps: f64,
    /// Delivered packets/s of every window.
    pub delivered_runs: Vec<f64>,
    pub send_errors: u64,
}

#[derive(Clone, Copy)]
struct Snap {
    at: Instant,
    sent: u64,
    rx: u64,
    sunk: u64,
}

/// Sets the flag when dropped, so that an early return stops the threads.
struct StopOnDrop<'a>(&'a AtomicBool);
impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The median (the upper one of an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One mode's measurement; `label` names it in progress lines.
pub fn measure(t: &Target, load: &PpsLoad, label: &str) -> Result<PpsResult> {
    let client_if = link_info(t.client.netns().name(), "eth0")?;
    let entry_if = link_info(t.entry.name(), "eth0")?;
    let spec = FrameSpec {
        src_mac: client_if.mac,
        dst_mac: entry_if.mac,
        saddr: t.client.addr(),
        daddr: t.entry.addr(),
        dport: t.node_port,
    };
    let frames: Vec<[u8; FRAME_LEN]> = (0..load.flows)
        .map(|i| frame(&spec, SPORT_BASE + i))
        .collect();
    let sockets = (0..load.threads)
        .map(|_| pktio::packet_socket(t.client.netns(), client_if.ifindex))
        .collect::<Result<Vec<_>>>()?;
    let (warmup, window) = (
        Duration::from_secs_f64(load.warmup_s),
        Duration::from_secs_f64(load.window_s),
    );
    let deadline = Instant::now() + warmup + window * load.reps as u32 + Duration::from_secs(2);
    let stop = AtomicBool::new(false);
    let (sent, sunk) = (AtomicU64::new(0), AtomicU64::new(0));
    let backend_ns = t.backend.netns().name().to_owned();
    let snap = || -> Result<Snap> {
        Ok(Snap {
            at: Instant::now(),
            sent: sent.load(Ordering::Relaxed),
            rx: link_info(&backend_ns, "eth0")?.rx_packets,
            sunk: sunk.load(Ordering::Relaxed),
        })
    };
    progress(format!(
        "{label}: {} threads × {} flows of {FRAME_LEN}-byte UDP frames {} → {}:{}, warm-up {:.1} s, {} × {:.1} s",
        load.threads, load.flows, spec.saddr, spec.daddr, spec.dport, load.warmup_s, load.reps, load.window_s
    ));
    let (windows, errors, sink_res) = std::thread::scope(|s| {
        let sink = s.spawn(|| pktio::sink_loop(t.sink, &stop, &sunk));
        let senders: Vec<_> = sockets
            .iter()
            .map(|fd| {
                let (frames, stop, sent) = (&frames, &stop, &sent);
                s.spawn(move || pktio::send_loop(fd, frames, stop, deadline, MAX_PER_THREAD, sent))
            })
            .collect();
        let windows = {
            let _stop = StopOnDrop(&stop);
            (|| -> Result<Vec<(Snap, Snap)>> {
                std::thread::sleep(warmup);
                let mut v = Vec::new();
                for rep in 0..load.reps {
                    let a = snap()?;
                    std::thread::sleep(window);
                    let b = snap()?;
                    let secs = (b.at - a.at).as_secs_f64();
                    progress(format!(
                        "  {label} {}/{}: offered {:.0} kpps, delivered {:.0} kpps, sink {:.0} kpps",
                        rep + 1,
                        load.reps,
                        (b.sent - a.sent) as f64 / secs / 1e3,
                        (b.rx - a.rx) as f64 / secs / 1e3,
                        (b.sunk - a.sunk) as f64 / secs / 1e3,
                    ));
                    v.push((a, b));
                }
                Ok(v)
            })()
        };
        let errors: u64 = senders
            .into_iter()
            .map(|h| h.join().expect("sender panicked"))
            .sum();
        (windows, errors, sink.join().expect("sink panicked"))
    });
    let windows = windows?;
    sink_res?;
    let rate = |f: fn(&Snap) -> u64| -> Vec<f64> {
        windows
            .iter()
            .map(|(a, b)| (f(b) - f(a)) as f64 / (b.at - a.at).as_secs_f64())
            .collect()
    };
    let delivered = rate(|s| s.rx);
    let res = PpsResult {
        offered_pps: median(&rate(|s| s.sent)),
        delivered_pps: median(&delivered),
        sink_pps: median(&rate(|s| s.sunk)),
        delivered_runs: delivered,
        send_errors: errors,
    };
    if res.delivered_pps < 1.0 {
        bail!(
            "{label}: nothing reached {} (offered {:.0} pps)",
            t.backend.name(),
            res.offered_pps
        );
    }
    Ok(res)
}
