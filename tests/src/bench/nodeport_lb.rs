//! The NodePort row: how many packets/s one node forwards to a NodePort's
//! remote backend, Skiff's XDP program against kube-proxy's iptables rules.
//! Measured the way Cilium measured its XDP load balancer: the generator
//! and the backend are other machines, the load balancer's CPU is the
//! limit. One machine plays all three parts:
//!
//! - Node 0 is the load balancer. An external client is cabled straight to
//!   it (`d0`, the NodePort's interface) and a cable (`c0to1`) goes to
//!   node 1, behind which the backend's pod CIDR lies. The lab's bridge is
//!   not on the path: a switch costs a real node nothing, a bridge here
//!   would cost the same CPUs.
//! - The client sends 60-byte UDP frames from the kernel
//!   (`skiff_bench_gen` run through `BPF_PROG_TEST_RUN` in live-frames
//!   mode, `XDP_TX` out of its `eth0`): no socket and no skb on its side.
//! - Node 1's end of the cable counts the frames that arrive for the
//!   backend and drops them (`skiff_bench_sink`); a frame that was not
//!   forwarded right (source NAT, TTL, MAC, checksums) fails the run.
//! - Node 0's receive work on `d0` (everything either data path does with a
//!   frame until it is queued to the cable) runs in its own kernel thread
//!   (threaded NAPI) on the last CPU; generator, sink, this process and
//!   the agent are kept on the others (kernel threads bound to that CPU
//!   still run there). That thread's CPU time is reported beside the rate,
//!   and so are packets/s per second of it.
//! - The traffic is one-way UDP, as from a packet generator: for kube-proxy
//!   every frame of such a flow is conntrack state NEW (no reply seen), so
//!   it walks the NEW-gated filter rules of its chains (a handful with one
//!   Service); NAT rules are walked once per flow.
//!
//! Both modes get the same frames, links, routes and CPU split; only the
//! data path on node 0 changes.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aya::maps::{MapData, PerCpuArray};
use aya::programs::{xdp::XdpMode, ProgramFd, Xdp};
use aya::{Ebpf, EbpfLoader};
use serde::Serialize;
use serde_json::{json, Map, Value};
use skiff_common::bench::{sink_slot, GenConfig, SinkConfig, GEN_GLOBAL, SINK_COUNTS, SINK_GLOBAL};
use skiff_common::ipv4_be;
use skiff_tests::lab::{ExternalClient, Lab, LinkEnd, Node};
use skiff_tests::prog_run::live_frames;

use super::kube_mode::clear_netfilter_in;
use super::kube_proxy::{self, Cluster};
use super::nodeport_pps::median;
use super::skiff_mode::SkiffAgent;
use super::two_node::{NODE_PORT, SINK_PORT};
use super::udp_frame::{frame, FrameSpec, FRAME_LEN};
use super::{env_path, napi, np_manifest, pktio, progress, Args};

// The sink checks frames of exactly the generator's length.
const _: () = assert!(FRAME_LEN == skiff_common::bench::SINK_FRAME_LEN);

/// The client's cable to node 0, and node 0's cable to node 1.
const CLIENT_NET: [u8; 4] = [192, 0, 2, 0];
const CABLE_NET: [u8; 4] = [198, 51, 100, 0];
/// The backend: an address of node 1's pod CIDR (the sink takes its
/// frames at node 1's end of the cable).
const BACKEND: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 200);
const SPORT_BASE: u16 = 20_000;
/// Frames of the first `BPF_PROG_TEST_RUN` call; later calls are sized to
/// last about [`CALL_TIME`]: each call ends with a wait for an RCU grace
/// period (the frames' memory model is unregistered), a gap in which
/// nothing is sent.
const FIRST_CALL: u32 = 1 << 16;
const CALL_TIME: Duration = Duration::from_millis(250);
/// Interrupt coalescing of node 1's end of the cable (see
/// `napi::coalesce`): 50 µs; node 0 forwards at most ~2.5 Mpps here, which
/// fills half of the 256-frame ring in that time.
const COALESCE_NS: u64 = 50_000;
const COALESCE_POLLS: u32 = 1000;
/// A bound besides the deadline.
const MAX_FRAMES: u64 = 4_000_000_000;
/// The target for the ratio.
const TARGET_RATIO: f64 = 5.0;

/// Shape of a run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LbLoad {
    pub flows: u16,
    pub warmup_s: f64,
    pub window_s: f64,
    pub reps: usize,
}

/// Medians over the windows.
#[derive(Debug, Clone, Serialize)]
pub struct LbResult {
    pub offered_pps: f64,
    pub delivered_pps: f64,
    /// Share of its CPU node 0's receive thread was busy.
    pub lb_cpu: f64,
    pub delivered_runs: Vec<f64>,
}

/// The rig: lab, cables, the bench programs, and node 0's receive thread.
struct Rig {
    lab: Lab,
    client: ExternalClient,
    /// Node 0's end of the client's cable.
    entry: LinkEnd,
    /// Node 0's end of the cable to node 1.
    near: LinkEnd,
    ebpf: Ebpf,
    gen: ProgramFd,
    frame: [u8; FRAME_LEN],
    /// The client's `eth0`, in its netns.
    client_ifindex: u32,
    lb_thread: i32,
    /// CPUs of the generator and the sink (all but the last).
    others: Vec<usize>,
    scratch: PathBuf,
    load: LbLoad,
}

/// The keys of `dataplane.json` this row writes (see `Report::owns`).
pub fn owns_key(k: &str) -> bool {
    (k.starts_with("nodeport_") && !k.starts_with("nodeport_e2e_"))
        || k.starts_with("ratio_xdp_vs_iptables")
}

/// Runs both modes; adds the `nodeport_*` keys to `x`; returns the table.
pub fn run(args: &Args, scratch: &Path, x: &mut Map<String, Value>) -> Result<String> {
    let cpus = napi::cpus();
    if cpus < 2 {
        bail!("the NodePort row needs 2 CPUs (one for the load balancer), found {cpus}");
    }
    let load = LbLoad {
        flows: args.np_flows.clamp(1, 1024),
        warmup_s: if args.quick { 0.3 } else { 1.0 },
        window_s: args.np_secs.unwrap_or(if args.quick { 1.0 } else { 3.0 }),
        reps: if args.quick { 1 } else { 3 },
    };
    // This thread and what it starts (the agent, the generator) stay off
    // the load balancer's CPU.
    let all: Vec<usize> = (0..cpus).collect();
    napi::pin(0, &all[..cpus - 1])?;
    let result = measure_both(scratch, load, cpus, x);
    napi::pin(0, &all)?;
    result
}

fn measure_both(
    scratch: &Path,
    load: LbLoad,
    cpus: usize,
    x: &mut Map<String, Value>,
) -> Result<String> {
    let rig = Rig::build(scratch, load, cpus)?;
    let mut results: Vec<(&str, Result<LbResult>)> = Vec::new();
    let attach = match rig.skiff() {
        Ok((r, attach)) => {
            results.push(("xdp", Ok(r)));
            attach
        }
        Err(e) => {
            results.push(("xdp", Err(e)));
            String::new()
        }
    };
    results.push(("iptables", rig.iptables()));
    Ok(report(x, &rig.load, &attach, &results))
}

impl Rig {
    fn build(scratch: &Path, load: LbLoad, cpus: usize) -> Result<Self> {
        progress("NodePort: a two-node lab, the client cabled to node 0, node 0 cabled to node 1");
        let lab = Lab::builder().nodes(2).peer_routes(false).build()?;
        let (client, entry) = lab.add_direct_client(0, 0, CLIENT_NET)?;
        let (near, far) = lab.link_nodes(0, 1, CABLE_NET)?;
        let (n0, n1) = (lab.node(0), lab.node(1));
        lab.route_over(0, &format!("{}/24", n1.pod_cidr()), &near, &far)?;
        let client_if = pktio::link_info(client.netns().name(), "eth0")?;
        let spec = FrameSpec {
            src_mac: client_if.mac,
            dst_mac: pktio::link_info(n0.name(), &entry.ifname)?.mac,
            saddr: client.addr(),
            daddr: entry.addr,
            dport: NODE_PORT,
        };
        let frame = frame(&spec, SPORT_BASE);
        let sink = SinkConfig {
            daddr: ipv4_be(BACKEND.octets()),
            // Skiff SNATs to --node-ip, kube-proxy masquerades to the
            // address of the interface the frame leaves by.
            sources: [ipv4_be(entry.addr.octets()), ipv4_be(near.addr.octets())],
            dport: SINK_PORT.to_be(),
            mac: skiff_tests::rawpkt::parse_mac(&far.mac)
                .with_context(|| format!("MAC {}", far.mac))?,
            // One router hop from the generator's 64.
            ttl: 63,
            _pad: [0; 3],
        };
        let obj = env_path("SKIFF_BENCH_EBPF_OBJ")?;
        let mut ebpf = EbpfLoader::new()
            .override_global(
                GEN_GLOBAL,
                &GenConfig::new(&frame, SPORT_BASE, load.flows),
                true,
            )
            .override_global(SINK_GLOBAL, &sink, true)
            .load_file(&obj)
            .with_context(|| format!("loading {}", obj.display()))?;
        let gen = load_xdp(&mut ebpf, "skiff_bench_gen")?.fd()?.try_clone()?;
        let sink_prog = load_xdp(&mut ebpf, "skiff_bench_sink")?;
        let ifname = far.ifname.clone();
        n1.netns()
            .run(move || sink_prog.attach(&ifname, XdpMode::Driver))?
            .with_context(|| format!("attaching the sink to {}", far.ifname))?;
        // Node 0's receive work on the client's cable: its own thread on
        // the last CPU. The sink's NAPI thread joins the generator.
        let lb_thread = napi::threaded(n0.name(), &entry.ifname)?;
        let sink_thread = napi::threaded(n1.name(), &far.ifname)?;
        // Node 1's end coalesces like a NIC: node 0 does not wake it per
        // frame it transmits.
        napi::coalesce(n1.name(), &far.ifname, COALESCE_NS, COALESCE_POLLS)?;
        let others: Vec<usize> = (0..cpus - 1).collect();
        napi::pin(lb_thread, &[cpus - 1])?;
        napi::pin(sink_thread, &others)?;
        napi::fifo(sink_thread, 50)?;
        progress(format!(
            "NodePort: node 0's receive thread (pid {lb_thread}) on CPU {}, generator and sink on CPUs {others:?}",
            cpus - 1
        ));
        Ok(Self {
            lab,
            client,
            entry,
            near,
            ebpf,
            gen,
            frame,
            client_ifindex: client_if.ifindex,
            lb_thread,
            others,
            scratch: scratch.to_path_buf(),
            load,
        })
    }

    fn node0(&self) -> &Node {
        self.lab.node(0)
    }

    /// Skiff's agent on node 0 with the client's cable as its external
    /// interface; returns the result and how the program attached.
    fn skiff(&self) -> Result<(LbResult, String)> {
        let skiff = env_path("SKIFF_BIN")?;
        let manifests = self.scratch.join("manifests-nodeport");
        let _ = std::fs::remove_dir_all(&manifests);
        let log = self.scratch.join("agent-nodeport.log");
        let extra = [
            "--node-ip".to_string(),
            self.entry.addr.to_string(),
            // Both cables, as on a real node: backends' replies (none in
            // this one-way test) would come back over the second.
            "--external-iface".to_string(),
            format!("{},{}", self.entry.ifname, self.near.ifname),
        ];
        let agent = SkiffAgent::start(self.node0(), &skiff, &manifests, &log, 64, &extra)?;
        let result = (|| -> Result<(LbResult, String)> {
            let docs = np_manifest::documents(self.lab.node(1).name(), BACKEND);
            agent.write_named("nodeport.yaml", &docs)?;
            let attach = np_manifest::wait_nodeport(
                self.node0(),
                self.entry.addr,
                &self.entry.ifname,
                &log,
                NODE_PORT,
            )?;
            let r = self.measure(&format!("nodeport skiff {attach}"))?;
            Ok((r, attach))
        })();
        let stopped = agent.stop();
        let _ = std::fs::remove_dir_all(&manifests);
        let _ = std::fs::remove_dir_all(manifests.with_extension("stage"));
        let r = result?;
        stopped.context("stopping the NodePort agent")?;
        Ok(r)
    }

    /// kube-proxy's rules for the same Service on node 0.
    fn iptables(&self) -> Result<LbResult> {
        let svcs = [np_manifest::service_port(BACKEND)];
        let cluster = Cluster {
            pod_cidr: "10.244.0.0/16".into(),
            service_cidr: "10.96.0.0/12".into(),
            node_ip: self.entry.addr,
        };
        let netns = self.node0().netns().path();
        if self.node0().netns().xdp_attached(&self.entry.ifname)? {
            bail!(
                "{} still has an XDP program after the agent's teardown",
                self.entry.ifname
            );
        }
        progress("NodePort: kube-proxy's iptables rules → node 0");
        clear_netfilter_in(&netns, &self.scratch, false)?;
        kube_proxy::apply(
            &netns,
            "iptables-restore",
            &[],
            &kube_proxy::iptables_rules(&cluster, &svcs),
            &self.scratch.join("iptables-nodeport.rules"),
        )?;
        let r = self.measure("nodeport iptables");
        clear_netfilter_in(&netns, &self.scratch, false)?;
        r
    }

    fn sink_count(&self, slot: u32) -> Result<u64> {
        let map = self
            .ebpf
            .map(SINK_COUNTS)
            .context("no SINK_COUNTS map in the bench object")?;
        let counts: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map)?;
        Ok(counts.get(&slot, 0)?.iter().sum())
    }

    fn snap(&self, sent: &AtomicU64) -> Result<Snap> {
        Ok(Snap {
            at: Instant::now(),
            sent: sent.load(Ordering::Relaxed),
            delivered: self.sink_count(sink_slot::DELIVERED)?,
            lb_ns: napi::cpu_ns(self.lb_thread)?,
        })
    }

    /// One mode: warm-up, then `reps` windows; medians.
    fn measure(&self, label: &str) -> Result<LbResult> {
        let load = self.load;
        let (warmup, window) = (
            Duration::from_secs_f64(load.warmup_s),
            Duration::from_secs_f64(load.window_s),
        );
        let deadline = Instant::now() + warmup + window * load.reps as u32 + Duration::from_secs(5);
        let bad = self.sink_count(sink_slot::BAD)?;
        let stop = AtomicBool::new(false);
        let sent = AtomicU64::new(0);
        progress(format!(
            "{label}: {FRAME_LEN}-byte UDP frames over {} flows {} → {}:{NODE_PORT}, warm-up {:.1} s, {} × {:.1} s",
            load.flows, self.client.addr(), self.entry.addr, load.warmup_s, load.reps, load.window_s
        ));
        let (windows, generated) = std::thread::scope(|s| {
            let gen = s.spawn(|| self.generate(self.gen.as_fd(), &stop, deadline, &sent));
            let windows = (|| -> Result<Vec<(Snap, Snap)>> {
                std::thread::sleep(warmup);
                let mut v = Vec::new();
                for rep in 0..load.reps {
                    let a = self.snap(&sent)?;
                    std::thread::sleep(window);
                    let b = self.snap(&sent)?;
                    let secs = (b.at - a.at).as_secs_f64();
                    progress(format!(
                        "  {label} {}/{}: offered {:.0} kpps, delivered {:.0} kpps, node 0 CPU {:.0} %",
                        rep + 1,
                        load.reps,
                        (b.sent - a.sent) as f64 / secs / 1e3,
                        (b.delivered - a.delivered) as f64 / secs / 1e3,
                        (b.lb_ns - a.lb_ns) as f64 / secs / 1e7,
                    ));
                    v.push((a, b));
                }
                Ok(v)
            })();
            stop.store(true, Ordering::Relaxed);
            (windows, gen.join().expect("generator panicked"))
        });
        generated.context("the generator")?;
        let windows = windows?;
        let bad = self.sink_count(sink_slot::BAD)? - bad;
        if bad > 0 {
            bail!("{label}: {bad} frames reached the backend wrongly forwarded (checksum, MAC, TTL or source)");
        }
        let rate = |f: fn(&Snap) -> u64| -> Vec<f64> {
            windows
                .iter()
                .map(|(a, b)| (f(b) - f(a)) as f64 / (b.at - a.at).as_secs_f64())
                .collect()
        };
        let delivered = rate(|s| s.delivered);
        let res = LbResult {
            offered_pps: median(&rate(|s| s.sent)),
            delivered_pps: median(&delivered),
            lb_cpu: median(&rate(|s| s.lb_ns)) / 1e9,
            delivered_runs: delivered,
        };
        if res.delivered_pps < 1.0 {
            bail!(
                "{label}: nothing reached the backend (offered {:.0} pps)",
                res.offered_pps
            );
        }
        Ok(res)
    }

    /// Sends frames from the client until `stop` or `deadline`.
    fn generate(
        &self,
        prog: BorrowedFd<'_>,
        stop: &AtomicBool,
        deadline: Instant,
        sent: &AtomicU64,
    ) -> Result<()> {
        let others = self.others.clone();
        let (frame, ifindex) = (self.frame, self.client_ifindex);
        self.client.netns().run(move || -> Result<()> {
            napi::pin(0, &others)?;
            let (mut n, mut chunk) = (0u64, FIRST_CALL);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && n < MAX_FRAMES {
                let t = Instant::now();
                live_frames(prog, &frame, ifindex, chunk)?;
                n += u64::from(chunk);
                sent.fetch_add(u64::from(chunk), Ordering::Relaxed);
                let scale = CALL_TIME.as_secs_f64() / t.elapsed().as_secs_f64().max(1e-6);
                chunk = (f64::from(chunk) * scale)
                    .clamp(f64::from(FIRST_CALL), f64::from(1u32 << 26))
                    as u32;
            }
            Ok(())
        })?
    }
}

#[derive(Clone, Copy)]
struct Snap {
    at: Instant,
    sent: u64,
    delivered: u64,
    lb_ns: u64,
}

fn load_xdp<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .with_context(|| format!("no program {name} in the bench object"))?
        .try_into()?;
    prog.load().with_context(|| format!("loading {name}"))?;
    Ok(prog)
}

/// Where the packets go, in words (the JSON says it too).
const PATH: &str = "external client ─cable→ node 0 (nodePort; receive work alone on one CPU) ─cable→ \
                    node 1, backend address behind it (Skiff: XDP DNAT + SNAT + redirect; \
                    iptables: kube-proxy's DNAT + MASQUERADE in the stack); in-kernel generator and sink";

/// Adds `nodeport_<mode>_pps`, `_offered_pps`, `_lb_cpu`, `_runs` (or
/// `_error`) and `ratio_xdp_vs_iptables`; returns the table.
fn report(
    x: &mut Map<String, Value>,
    load: &LbLoad,
    attach: &str,
    results: &[(&str, Result<LbResult>)],
) -> String {
    x.insert("nodeport_path".into(), PATH.into());
    x.insert("nodeport_frame_bytes".into(), json!(FRAME_LEN));
    x.insert("nodeport_load".into(), json!(load));
    x.insert("nodeport_skiff_attach".into(), attach.into());
    let mut t = format!(
        "\nNodePort forwarding of one node, {FRAME_LEN}-byte UDP frames, {} flows, {} × {:.1} s windows (medians)\n{PATH}\n{:<10} {:>13} {:>15} {:>13}\n",
        load.flows, load.reps, load.window_s, "mode", "offered kpps", "delivered kpps", "node 0 CPU"
    );
    // Delivered packets/s and packets/s per second of node 0's CPU.
    let mut rates = |mode: &str| -> Option<(f64, f64)> {
        let (_, r) = results.iter().find(|(m, _)| *m == mode)?;
        match r {
            Ok(r) => {
                x.insert(format!("nodeport_{mode}_pps"), json!(r.delivered_pps));
                x.insert(format!("nodeport_{mode}_offered_pps"), json!(r.offered_pps));
                x.insert(format!("nodeport_{mode}_lb_cpu"), json!(r.lb_cpu));
                x.insert(
                    format!("nodeport_{mode}_pps_per_lb_cpu"),
                    json!(r.delivered_pps / r.lb_cpu),
                );
                x.insert(format!("nodeport_{mode}_runs"), json!(r.delivered_runs));
                Some((r.delivered_pps, r.delivered_pps / r.lb_cpu))
            }
            Err(e) => {
                x.insert(format!("nodeport_{mode}_error"), format!("{e:#}").into());
                None
            }
        }
    };
    let both = rates("xdp").zip(rates("iptables"));
    let ratio = both.map(|(a, b)| a.0 / b.0);
    let ratio_per_cpu = both.map(|(a, b)| a.1 / b.1);
    x.insert("ratio_xdp_vs_iptables".into(), json!(ratio));
    x.insert(
        "ratio_xdp_vs_iptables_per_lb_cpu".into(),
        json!(ratio_per_cpu),
    );
    for (mode, r) in results {
        match r {
            Ok(r) => t.push_str(&format!(
                "{mode:<10} {:>13.0} {:>15.0} {:>12.0}%\n",
                r.offered_pps / 1e3,
                r.delivered_pps / 1e3,
                r.lb_cpu * 100.0
            )),
            Err(e) => t.push_str(&format!("{mode:<10}  ERROR: {e:#}\n")),
        }
    }
    match ratio {
        Some(r) => t.push_str(&format!(
            "ratio xdp / iptables (delivered): {r:.2} (target ≥ {TARGET_RATIO}: {})\n",
            if r >= TARGET_RATIO { "met" } else { "NOT met" }
        )),
        None => t.push_str("ratio xdp / iptables: - (a mode failed)\n"),
    }
    if let Some(r) = ratio_per_cpu {
        t.push_str(&format!(
            "ratio xdp / iptables per second of node 0's CPU: {r:.2}\n"
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use skiff_common::bench::{udp_csum_add, GenConfig, GEN_HDR_LEN};

    use super::super::udp_frame::test_spec;
    use super::*;

    #[test]
    fn generator_header_is_the_frame_in_words() {
        let f = frame(&test_spec(), SPORT_BASE);
        let cfg = GenConfig::new(&f, SPORT_BASE, 64);
        let bytes: Vec<u8> = cfg.hdr.iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert_eq!(&bytes[..GEN_HDR_LEN], &f[..GEN_HDR_LEN]);
        assert_eq!(cfg.flows, 64);
        assert_eq!(GenConfig::new(&f, SPORT_BASE, 0).flows, 1);
    }

    #[test]
    fn generator_checksum_matches_a_full_computation() {
        let base = frame(&test_spec(), SPORT_BASE);
        let c0 = u16::from_be_bytes([base[40], base[41]]);
        for i in 0..1024u16 {
            // `frame` puts the port in the IP id too; UDP's checksum does
            // not cover the IP header beyond the pseudo header.
            let full = frame(&test_spec(), SPORT_BASE + i);
            let want = u16::from_be_bytes([full[40], full[41]]);
            assert_eq!(udp_csum_add(c0, i), want, "source port {}", SPORT_BASE + i);
        }
        assert_eq!(udp_csum_add(0, 7), 0, "no checksum stays none");
    }
}
