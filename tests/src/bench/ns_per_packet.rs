//! `ns_per_packet`: the run time of each program per packet, through
//! `BPF_PROG_TEST_RUN`, with `services` frontends in the maps.
//!
//! The kernel runs all `repeat` iterations on one buffer, so a program that
//! rewrites the packet times its own output from the second iteration on.
//! The measurement uses that: two frontends A:80 and B:80 are each other's
//! only backend, so DNAT turns a packet of the flow to A into a packet of
//! the (established) flow to B and back, and reverse NAT of a reply from A
//! yields a reply from B and back. Every iteration takes the full
//! established-flow path — conntrack hit, backend lookup (DNAT), address
//! rewrite with both checksum updates, the local-delivery check — and the
//! timer is read once per million runs (the fastest of five such calls
//! counts). The programs run as the agent loads them (local redirect on) with
//! 100 local pods in `LOCAL_ENDPOINTS` and their `LOCAL_PREFIX`; the measured
//! backends are not local. A and B share port 80, so no port is rewritten: a Service
//! that maps its port to another costs one more checksum helper call. The
//! maps are private to the measurement (their own pin directory, removed
//! afterwards) and hold `services` other frontends so the hash tables have
//! the size under test.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use aya::maps::{Array, HashMap, MapData};
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader};
use skiff_agent::dataplane::endpoints;
use skiff_common::{
    ipv4_be, map_names, port_be, Backend, Config, LocalEndpoint, LocalPrefix, RevNat, ServiceKey,
    ServiceValue, CFG_F_LOCAL_REDIRECT, DEFAULT_HAIRPIN_ADDR, PROTO_TCP, SCOPE_INTERNAL,
};
use skiff_tests::prog_run::test_run;
use skiff_tests::rawpkt::checksum;

/// Iterations per timed call.
const REPEAT: u32 = 1_000_000;
/// Timed calls per program and packet; the fastest counts.
const CALLS: usize = 5;

/// Per-packet cost of the programs, in ns.
#[derive(Debug, Clone, Copy)]
pub struct PacketCost {
    /// `skiff_from_pod`, a packet of an established flow to a frontend.
    pub from_pod_ns: f64,
    /// `skiff_to_pod`, a backend's reply being reverse-NATed.
    pub to_pod_ns: f64,
    /// `skiff_from_pod` on a packet to no frontend.
    pub passthrough_ns: f64,
}

/// The measured frontends, outside the ranges the filler uses; each is the
/// other's backend.
const VIP_A: Ipv4Addr = Ipv4Addr::new(10, 111, 255, 253);
const VIP_B: Ipv4Addr = Ipv4Addr::new(10, 111, 255, 254);
const PORT: u16 = 80;
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 9);

/// Private pins, removed on drop.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads `obj` with private maps, fills `services` frontends plus the
/// measured one, and times both programs.
pub fn measure(obj: &Path, services: u32) -> Result<PacketCost> {
    let bytes = std::fs::read(obj).with_context(|| format!("reading {}", obj.display()))?;
    let pins = PinDir(PathBuf::from(format!(
        "/sys/fs/bpf/skiff/skf-{}-nsperpacket",
        std::process::id()
    )));
    std::fs::create_dir_all(&pins.0).with_context(|| format!("creating {}", pins.0.display()))?;
    // As the agent loads it: local pods are redirected into their veth.
    let redirect = skiff_agent::dataplane::loader::redirect_peer_supported();
    let config = Config {
        hairpin_addr: ipv4_be(DEFAULT_HAIRPIN_ADDR),
        flags: if redirect { CFG_F_LOCAL_REDIRECT } else { 0 },
    };
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(&pins.0)
        .override_global("SKIFF_CONFIG", &config, true)
        .load(&bytes)
        .context("loading the BPF object")?;
    let _maps = fill(&mut ebpf, services)?;
    for name in ["skiff_from_pod", "skiff_to_pod"] {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .with_context(|| format!("no program {name} in the object"))?
            .try_into()?;
        prog.load().with_context(|| format!("loading {name}"))?;
    }
    let to_a = frame(CLIENT, 40000, VIP_A, PORT);
    let to_b = frame(CLIENT, 40000, VIP_B, PORT);
    let reply = frame(VIP_A, PORT, CLIENT, 40000);
    let other = frame(CLIENT, 40000, Ipv4Addr::new(192, 0, 2, 1), PORT);

    let from_pod = fd_of(&ebpf, "skiff_from_pod")?;
    // Single runs create both flows' conntrack entries; each must come out
    // as the other flow's packet.
    for (input, want) in [(&to_a, &to_b), (&to_b, &to_a)] {
        let first = test_run(from_pod.as_fd(), input, 1)?;
        if first.retval != 0 || first.data[26..38] != want[26..38] {
            bail!("skiff_from_pod did not DNAT between the paired frontends");
        }
    }
    let from_pod_ns = fastest(from_pod.as_fd(), &to_a)?;
    let passthrough_ns = fastest(from_pod.as_fd(), &other)?;
    let to_pod = fd_of(&ebpf, "skiff_to_pod")?;
    let to_pod_ns = fastest(to_pod.as_fd(), &reply)?;
    Ok(PacketCost {
        from_pod_ns,
        to_pod_ns,
        passthrough_ns,
    })
}

/// The per-packet cost alone (no lab, no traffic) at 1 and 100,000
/// Services, into `ns_per_packet_standalone` of the report.
pub fn standalone(report: &mut super::report::Report) -> Result<()> {
    let obj = super::env_path("SKIFF_EBPF_OBJ")?;
    let mut out = serde_json::Map::new();
    for services in [1, 100_000] {
        let cost = measure(&obj, services)?;
        super::progress(format!(
            "per packet (BPF_PROG_TEST_RUN, {services} services): skiff_from_pod {:.1} ns, skiff_to_pod {:.1} ns, pass-through {:.1} ns",
            cost.from_pod_ns, cost.to_pod_ns, cost.passthrough_ns
        ));
        out.insert(
            services.to_string(),
            serde_json::json!({
                "from_pod_ns": cost.from_pod_ns,
                "to_pod_ns": cost.to_pod_ns,
                "passthrough_ns": cost.passthrough_ns,
            }),
        );
    }
    report
        .extra
        .insert("ns_per_packet_standalone".into(), out.into());
    Ok(())
}

/// The fastest of `CALLS` timed calls of `REPEAT` runs each, in ns per run:
/// the program's own cost, least disturbed by the other CPU's work and by
/// interrupts on a shared machine.
fn fastest(prog: BorrowedFd<'_>, packet: &[u8]) -> Result<f64> {
    let mut best = u32::MAX;
    for _ in 0..CALLS {
        best = best.min(test_run(prog, packet, REPEAT)?.duration_ns);
    }
    Ok(f64::from(best))
}

fn fd_of(ebpf: &Ebpf, name: &str) -> Result<aya::programs::ProgramFd> {
    let prog: &SchedClassifier = ebpf
        .program(name)
        .with_context(|| format!("no program {name}"))?
        .try_into()?;
    Ok(prog.fd()?.try_clone()?)
}

/// The filled maps; they must outlive the programs' load (the programs
/// refer to them by fd).
type Filled = (
    HashMap<MapData, ServiceKey, ServiceValue>,
    Array<MapData, Backend>,
    HashMap<MapData, u32, RevNat>,
    HashMap<MapData, u32, LocalEndpoint>,
    Array<MapData, LocalPrefix>,
);

/// Pods of the node, as the agent lists them in `LOCAL_ENDPOINTS`; the
/// measured flows' addresses are not among them (their backends are remote).
const LOCAL_PODS: u32 = 100;

fn take<K: aya::Pod, V: aya::Pod>(ebpf: &mut Ebpf, name: &str) -> Result<HashMap<MapData, K, V>> {
    let map = ebpf
        .take_map(name)
        .with_context(|| format!("no map {name}"))?;
    Ok(HashMap::try_from(map)?)
}

/// `services` filler frontends (10.112.0.0 onwards, one backend each) and
/// the measured pair A:PORT → B:PORT, B:PORT → A:PORT.
fn fill(ebpf: &mut Ebpf, services: u32) -> Result<Filled> {
    let mut svc = take::<ServiceKey, ServiceValue>(ebpf, map_names::SERVICES)?;
    let mut backends: Array<MapData, Backend> = Array::try_from(
        ebpf.take_map(map_names::BACKENDS)
            .context("no map BACKENDS")?,
    )?;
    let mut rev_nat = take::<u32, RevNat>(ebpf, map_names::REV_NAT)?;
    let key = |addr: u32, port: u16, slot: u16, proto: u8| ServiceKey {
        addr,
        port: port_be(port),
        slot,
        proto,
        scope: SCOPE_INTERNAL,
        _pad: [0; 2],
    };
    let (a, b) = (ipv4_be(VIP_A.octets()), ipv4_be(VIP_B.octets()));
    // Ids 1 and 2: A and B, each the other's backend; 3..: the filler.
    for i in 0..services + 2 {
        let (addr, id) = match i {
            0 => (a, 1),
            1 => (b, 2),
            _ => (u32::from_ne_bytes((0x0a70_0000 + i).to_be_bytes()), i + 1),
        };
        let backend_addr = match id {
            1 => b,
            2 => a,
            _ => addr,
        };
        let front = ServiceValue {
            count: 1,
            rev_nat_id: id,
            ..Default::default()
        };
        let slot = ServiceValue {
            backend_id: id,
            ..Default::default()
        };
        svc.insert(key(addr, PORT, 0, PROTO_TCP), front, 0)?;
        svc.insert(key(addr, PORT, 1, PROTO_TCP), slot, 0)?;
        svc.insert(key(addr, 0, 0, 0), ServiceValue::default(), 0)?;
        let port = port_be(PORT);
        let backend = Backend {
            addr: backend_addr,
            port,
            proto: PROTO_TCP,
            flags: 0,
        };
        backends.set(id, backend, 0)?;
        rev_nat.insert(
            id,
            RevNat {
                addr,
                port,
                _pad: 0,
            },
            0,
        )?;
    }
    let mut local = take::<u32, LocalEndpoint>(ebpf, map_names::LOCAL_ENDPOINTS)?;
    let pods = (0..LOCAL_PODS).map(|i| Ipv4Addr::new(10, 244, 0, 2 + i as u8));
    let mut prefix: Array<MapData, LocalPrefix> = Array::try_from(
        ebpf.take_map(map_names::LOCAL_PREFIX)
            .context("no map LOCAL_PREFIX")?,
    )?;
    prefix.set(0, endpoints::plan::cover(pods), 0)?;
    for i in 0..LOCAL_PODS {
        let pod = Ipv4Addr::new(10, 244, 0, 2 + i as u8);
        let ep = LocalEndpoint {
            ifindex: 1000 + i,
            pod_mac: [0x02, 0, 0, 0, 1, i as u8],
            host_mac: [0x02, 0, 0, 0, 2, i as u8],
        };
        local.insert(ipv4_be(pod.octets()), ep, 0)?;
    }
    Ok((svc, backends, rev_nat, local, prefix))
}

/// Ethernet + IPv4 + TCP ACK with a payload byte (valid IP checksum).
fn frame(saddr: Ipv4Addr, sport: u16, daddr: Ipv4Addr, dport: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    let mut ip = vec![0x45, 0, 0, 41, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip.extend(saddr.octets());
    ip.extend(daddr.octets());
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend(ip);
    f.extend(sport.to_be_bytes());
    f.extend(dport.to_be_bytes());
    f.extend([
        0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x10, 0xfa, 0xf0, 0, 0, 0, 0, b'x',
    ]);
    f
}
