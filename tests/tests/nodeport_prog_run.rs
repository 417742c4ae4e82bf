//! Root test: `skiff_xdp_nodeport` on crafted packets through
//! BPF_PROG_TEST_RUN (no interface): DNAT to a local backend with both
//! checksums right, SNAT to a remote backend (port claimed in the SNAT map),
//! reverse SNAT of that backend's reply, and untouched passes.
//!
//! PROG_TEST_RUN runs XDP on the loopback device of the test's netns, where
//! no route leads to the crafted addresses: the FIB step of the two
//! forwarding paths fails and the frame is dropped and counted `drop_fib`
//! after the rewrite, which the output frame still shows.

#[path = "bpf_prog_run/support.rs"]
#[allow(dead_code, reason = "shared with bpf_prog_run, which uses the rest")]
mod support;

use std::path::PathBuf;

use anyhow::{Context, Result};
use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use aya::programs::{ProgramFd, Xdp};
use aya::EbpfLoader;
use skiff_common::{
    ipv4_be, port_be, stats, Backend, CtKey, NodePortConfig, RevNat, ServiceKey, ServiceValue,
    SnatValue, BACKEND_F_LOCAL, BACKEND_F_TERMINATING, CT_DIR_REPLY, CT_DIR_SERVICE, CT_F_NODEPORT,
    PROTO_TCP, PROTO_UDP, SCOPE_EXTERNAL, SNAT_DIR_IN, SNAT_DIR_OUT, SVC_F_NODEPORT,
};
use skiff_tests::prog_run::test_run;
use support::{assert_counts, check, ct_key, ensure_bpffs, object_path, PinDir, Pkt, Stats};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const CLIENT: [u8; 4] = [192, 168, 200, 250];
const NODE: [u8; 4] = [192, 168, 200, 10];
const LOCAL_BE: [u8; 4] = [10, 244, 0, 2];
const REMOTE_BE: [u8; 4] = [10, 244, 1, 2];
const NODE_PORT: u16 = 30080;

struct Fx {
    prog: ProgramFd,
    services: HashMap<MapData, ServiceKey, ServiceValue>,
    backends: Array<MapData, Backend>,
    rev_nat: HashMap<MapData, u32, RevNat>,
    ct: HashMap<MapData, CtKey, skiff_common::CtValue>,
    snat: HashMap<MapData, CtKey, SnatValue>,
    stats: PerCpuArray<MapData, u64>,
    _bpf: aya::Ebpf,
    _pins: PinDir,
}

impl Fx {
    fn new(tag: &str) -> Result<Option<Self>> {
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED {tag}: BPF_PROG_TEST_RUN needs root");
            return Ok(None);
        }
        ensure_bpffs()?;
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/skiff/skf-{}-nprun-{tag}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let pins = PinDir(dir);
        let cfg = NodePortConfig {
            node_addr: ipv4_be(NODE),
            snat_port_min: 61000,
            snat_port_max: 61003,
        };
        let obj = object_path();
        let mut bpf = EbpfLoader::new()
            .default_map_pin_directory(&pins.0)
            .map_max_entries("SERVICES", 1024)
            .map_max_entries("BACKENDS", 1024)
            .map_max_entries("REV_NAT", 1024)
            .map_max_entries("CONNTRACK", 4096)
            .map_max_entries("SNAT", 4096)
            .map_max_entries("AFFINITY", 1024)
            .override_global("SKIFF_NODEPORT_CONFIG", &cfg, true)
            .load_file(&obj)
            .with_context(|| format!("loading {}", obj.display()))?;
        let prog: &mut Xdp = bpf
            .program_mut("skiff_xdp_nodeport")
            .context("no skiff_xdp_nodeport")?
            .try_into()?;
        prog.load()
            .context("verifier rejected skiff_xdp_nodeport")?;
        let info = prog.info()?;
        eprintln!(
            "[{tag}] skiff_xdp_nodeport: xlated {:?} B, jited {:?} B, verified insns {:?}",
            info.size_translated(),
            info.size_jitted(),
            info.verified_instruction_count()
        );
        let prog = prog.fd()?.try_clone()?;
        let mut take = |name: &str| bpf.take_map(name).with_context(|| format!("no map {name}"));
        Ok(Some(Fx {
            prog,
            services: HashMap::try_from(take("SERVICES")?)?,
            backends: Array::try_from(take("BACKENDS")?)?,
            rev_nat: HashMap::try_from(take("REV_NAT")?)?,
            ct: HashMap::try_from(take("CONNTRACK")?)?,
            snat: HashMap::try_from(take("SNAT")?)?,
            stats: PerCpuArray::try_from(take("STATS")?)?,
            _bpf: bpf,
            _pins: pins,
        }))
    }

    /// NODE:30080/`proto` → one backend (id 1), rev-NAT 1.
    fn nodeport(&mut self, proto: u8, backend: [u8; 4], flags: u8) -> Result<()> {
        let b = Backend {
            addr: ipv4_be(backend),
            port: port_be(8080),
            proto,
            flags,
        };
        self.backends.set(1, b, 0)?;
        let rn = RevNat {
            addr: ipv4_be(NODE),
            port: port_be(NODE_PORT),
            _pad: 0,
        };
        self.rev_nat.insert(1, rn, 0)?;
        let key = |slot| ServiceKey {
            addr: ipv4_be(NODE),
            port: port_be(NODE_PORT),
            slot,
            proto,
            scope: SCOPE_EXTERNAL,
            _pad: [0; 2],
        };
        let slot = ServiceValue {
            backend_id: 1,
            ..Default::default()
        };
        self.services.insert(key(1), slot, 0)?;
        let fe = ServiceValue {
            count: 1,
            rev_nat_id: 1,
            flags: SVC_F_NODEPORT,
            ..Default::default()
        };
        Ok(self.services.insert(key(0), fe, 0)?)
    }

    fn stats(&self) -> Result<Stats> {
        let mut out = [0; stats::COUNT as usize];
        for (i, v) in out.iter_mut().enumerate() {
            *v = self.stats.get(&(i as u32), 0)?.iter().sum();
        }
        Ok(out)
    }

    fn run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>, Stats)> {
        use std::os::fd::AsFd;
        let before = self.stats()?;
        let r = test_run(self.prog.as_fd(), frame, 1)?;
        let after = self.stats()?;
        let mut d = [0; stats::COUNT as usize];
        for i in 0..d.len() {
            d[i] = after[i] - before[i];
        }
        Ok((r.retval, r.data, d))
    }
}

macro_rules! fixture {
    ($tag:expr) => {
        match Fx::new($tag)? {
            Some(fx) => fx,
            None => return Ok(()),
        }
    };
}

#[test]
fn local_backend_dnat_with_checksums_and_conntrack() -> Result<()> {
    let mut fx = fixture!("local");
    for proto in [PROTO_TCP, PROTO_UDP] {
        fx.nodeport(proto, LOCAL_BE, BACKEND_F_LOCAL)?;
        let pkt = Pkt::new(proto, CLIENT, 40000, NODE, NODE_PORT);
        let (rc, out, d) = fx.run(&pkt.bytes())?;
        assert_eq!(rc, XDP_PASS);
        assert_counts(&d, &[(stats::SERVICE_PACKETS, 1), (stats::NEW_FLOWS, 1)]);
        let seen = check(&out);
        assert_eq!(
            (seen.src, seen.sport, seen.dst, seen.dport),
            (CLIENT, 40000, LOCAL_BE, 8080),
            "client kept, DNAT to the local backend"
        );
        let svc = fx.ct.get(
            &ct_key(CLIENT, 40000, NODE, NODE_PORT, proto, CT_DIR_SERVICE),
            0,
        )?;
        assert_eq!(svc.backend_id, 1);
        // The reply entry skiff_from_pod will use, flagged NodePort.
        let reply = fx.ct.get(
            &ct_key(LOCAL_BE, 8080, CLIENT, 40000, proto, CT_DIR_REPLY),
            0,
        )?;
        assert_eq!(reply.flags & CT_F_NODEPORT, CT_F_NODEPORT);
    }
    Ok(())
}

#[test]
fn remote_backend_snat_then_reverse_snat() -> Result<()> {
    let mut fx = fixture!("remote");
    fx.nodeport(PROTO_TCP, REMOTE_BE, 0)?;
    let syn = Pkt::tcp(CLIENT, 40000, NODE, NODE_PORT);
    let (rc, out, d) = fx.run(&syn.bytes())?;
    // No route in this netns: rewritten, then dropped at the FIB step.
    assert_eq!(rc, XDP_DROP);
    assert_counts(
        &d,
        &[
            (stats::SERVICE_PACKETS, 1),
            (stats::NEW_FLOWS, 1),
            (stats::DROP_FIB, 1),
        ],
    );
    let seen = check(&out);
    assert_eq!((seen.src, seen.dst, seen.dport), (NODE, REMOTE_BE, 8080));
    let nat_port = seen.sport;
    assert!((61000..=61003).contains(&nat_port), "SNAT port {nat_port}");
    let out_key = ct_key(CLIENT, 40000, REMOTE_BE, 8080, PROTO_TCP, SNAT_DIR_OUT);
    let o = fx.snat.get(&out_key, 0)?;
    assert_eq!((o.addr, u16::from_be(o.port)), (ipv4_be(NODE), nat_port));
    let in_key = ct_key(REMOTE_BE, 8080, NODE, nat_port, PROTO_TCP, SNAT_DIR_IN);
    let i = fx.snat.get(&in_key, 0)?;
    assert_eq!(
        (i.addr, u16::from_be(i.port), i.rev_nat_id),
        (ipv4_be(CLIENT), 40000, 1)
    );

    // The same flow again: same port, no new entry.
    let (_, out, _) = fx.run(&syn.bytes())?;
    assert_eq!(check(&out).sport, nat_port);

    // The backend's reply to NODE:nat_port goes back as NODE:30080 → client.
    let mut synack = Pkt::tcp(REMOTE_BE, 8080, NODE, nat_port);
    synack.tcp_flags = 0x12;
    let (rc, out, d) = fx.run(&synack.bytes())?;
    assert_eq!(rc, XDP_DROP);
    assert_counts(&d, &[(stats::NODEPORT_REV_SNAT, 1), (stats::DROP_FIB, 1)]);
    let seen = check(&out);
    assert_eq!(
        (seen.src, seen.sport, seen.dst, seen.dport),
        (NODE, NODE_PORT, CLIENT, 40000)
    );
    Ok(())
}

#[test]
fn a_terminating_backend_keeps_its_flows_and_a_new_syn_picks_again() -> Result<()> {
    let mut fx = fixture!("terminating");
    fx.nodeport(PROTO_TCP, LOCAL_BE, BACKEND_F_LOCAL)?;
    let syn = Pkt::tcp(CLIENT, 40000, NODE, NODE_PORT);
    fx.run(&syn.bytes())?;
    // The endpoint starts terminating; the only one, so it keeps its slot
    // (KEP-1669), flagged.
    fx.nodeport(PROTO_TCP, LOCAL_BE, BACKEND_F_LOCAL | BACKEND_F_TERMINATING)?;
    let mut ack = syn.clone();
    ack.tcp_flags = 0x10;
    let mut fin = syn.clone();
    fin.tcp_flags = 0x11;
    for p in [&ack, &syn, &fin] {
        let (rc, out, d) = fx.run(&p.bytes())?;
        assert_eq!(rc, XDP_PASS);
        assert_counts(&d, &[(stats::SERVICE_PACKETS, 1)]);
        assert_eq!(check(&out).dst, LOCAL_BE, "flags {:#x}", p.tcp_flags);
    }
    // A SYN on the closed flow's tuple is a new connection: selected again,
    // not kept (here onto the same, only backend).
    let (rc, out, d) = fx.run(&syn.bytes())?;
    assert_eq!(rc, XDP_PASS);
    assert_counts(
        &d,
        &[
            (stats::SERVICE_PACKETS, 1),
            (stats::RESELECTED, 1),
            (stats::NEW_FLOWS, 1),
        ],
    );
    assert_eq!(check(&out).dst, LOCAL_BE);
    Ok(())
}

#[test]
fn a_last_hop_packet_goes_to_the_stack_untouched() -> Result<()> {
    let mut fx = fixture!("ttl");
    fx.nodeport(PROTO_UDP, REMOTE_BE, 0)?;
    // TTL 1 cannot be forwarded: the stack answers it (ICMP), unrewritten.
    let mut last_hop = Pkt::udp(CLIENT, 40000, NODE, NODE_PORT);
    last_hop.ttl = 1;
    let bytes = last_hop.bytes();
    let (rc, out, d) = fx.run(&bytes)?;
    assert_eq!(rc, XDP_PASS);
    assert_eq!(out, bytes, "untouched");
    assert_counts(&d, &[(stats::SERVICE_PACKETS, 1), (stats::NEW_FLOWS, 1)]);
    // TTL 2 is forwarded (here: rewritten, then no route).
    let mut two = last_hop.clone();
    two.ttl = 2;
    let (rc, out, _) = fx.run(&two.bytes())?;
    assert_eq!(rc, XDP_DROP);
    assert_eq!(check(&out).dst, REMOTE_BE);
    Ok(())
}

#[test]
fn snat_ports_run_out_and_fail_closed() -> Result<()> {
    let mut fx = fixture!("exhaust");
    fx.nodeport(PROTO_UDP, REMOTE_BE, 0)?;
    // Four ports in the range: four flows get one each, distinct.
    let mut ports = Vec::new();
    for sport in 0..4u16 {
        let (_, out, _) = fx.run(&Pkt::udp(CLIENT, 50000 + sport, NODE, NODE_PORT).bytes())?;
        ports.push(check(&out).sport);
    }
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 4, "distinct SNAT ports: {ports:?}");
    let (rc, _, d) = fx.run(&Pkt::udp(CLIENT, 50009, NODE, NODE_PORT).bytes())?;
    assert_eq!(rc, XDP_DROP);
    assert_counts(
        &d,
        &[
            (stats::SERVICE_PACKETS, 1),
            (stats::NEW_FLOWS, 1),
            (stats::DROP_SNAT_EXHAUSTED, 1),
        ],
    );
    Ok(())
}

#[test]
fn other_traffic_passes_untouched() -> Result<()> {
    let mut fx = fixture!("pass");
    fx.nodeport(PROTO_TCP, LOCAL_BE, BACKEND_F_LOCAL)?;
    let cases = [
        Pkt::tcp(CLIENT, 40000, NODE, 22), // another port of the node
        Pkt::udp(CLIENT, 40000, NODE, NODE_PORT), // UDP: no such frontend
        Pkt::tcp(CLIENT, 40000, [10, 0, 0, 1], NODE_PORT), // another address
        Pkt::tcp(REMOTE_BE, 8080, NODE, 61001), // SNAT range, no entry
    ];
    for pkt in cases {
        let bytes = pkt.bytes();
        let (rc, out, d) = fx.run(&bytes)?;
        assert_eq!(rc, XDP_PASS);
        assert_eq!(out, bytes, "untouched");
        assert_counts(&d, &[]);
    }
    // Not IPv4 at all (an ARP frame), and a truncated IPv4 header.
    let mut arp = Pkt::tcp(CLIENT, 1, NODE, 2).bytes();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let (rc, _, d) = fx.run(&arp)?;
    assert_eq!((rc, d), (XDP_PASS, counts(&[])));
    let short = &Pkt::tcp(CLIENT, 1, NODE, 2).bytes()[..20];
    let (rc, _, d) = fx.run(short)?;
    assert_eq!((rc, d), (XDP_PASS, counts(&[(stats::PASS_MALFORMED, 1)])));

    // Cost of a packet that is not for us (PROG_TEST_RUN, mean of many
    // runs; repetitions reuse the buffer, so only an unmodified packet
    // measures one path).
    use std::os::fd::AsFd;
    let miss = test_run(
        fx.prog.as_fd(),
        &Pkt::tcp(CLIENT, 40000, NODE, 22).bytes(),
        100_000,
    )?;
    eprintln!(
        "skiff_xdp_nodeport: {} ns/packet for traffic that is not NodePort",
        miss.duration_ns
    );
    Ok(())
}

fn counts(want: &[(u32, u64)]) -> Stats {
    let mut exp = [0u64; stats::COUNT as usize];
    exp[stats::PACKETS as usize] = 1;
    for (i, n) in want {
        exp[*i as usize] = *n;
    }
    exp
}
