//! Packet crafting/checking and the loaded-program fixture for `bpf_prog_run`.

use std::{
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray},
    programs::{ProgramFd, SchedClassifier},
    EbpfLoader,
};
use skiff_common::{
    ipv4_be, port_be, stats, Backend, Config, CtKey, CtValue, LocalEndpoint, RevNat, ServiceKey,
    ServiceValue, CFG_F_DEBUG, CFG_F_LOCAL_REDIRECT, PROTO_TCP, PROTO_UDP, SCOPE_INTERNAL,
    SVC_F_AFFINITY,
};
use skiff_tests::prog_run::test_run;

pub const OK: u32 = 0;
pub const SHOT: u32 = 2;
pub const PROTO_ICMP: u8 = 1;
pub const HAIRPIN: [u8; 4] = [169, 254, 42, 9];
pub const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
pub type Stats = [u64; stats::COUNT as usize];

// ---------------------------------------------------------------- packets --

/// A crafted Ethernet + IPv4 + TCP/UDP (or bare L4 payload) frame.
#[derive(Clone)]
pub struct Pkt {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub ip_opts: Vec<u8>,
    /// Flags + fragment offset, host order.
    pub frag: u16,
    pub tcp_flags: u8,
    pub udp_no_csum: bool,
    pub ttl: u8,
    pub payload: Vec<u8>,
}

impl Pkt {
    pub fn new(proto: u8, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Self {
        Pkt {
            src,
            dst,
            proto,
            sport,
            dport,
            ip_opts: Vec::new(),
            frag: 0x4000, // DF
            tcp_flags: 0x02,
            udp_no_csum: false,
            ttl: 64,
            payload: b"hello".to_vec(),
        }
    }
    pub fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Self {
        Self::new(PROTO_TCP, src, sport, dst, dport)
    }
    pub fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Self {
        Self::new(PROTO_UDP, src, sport, dst, dport)
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut l4 = Vec::new();
        match self.proto {
            PROTO_TCP => {
                l4.extend(self.sport.to_be_bytes());
                l4.extend(self.dport.to_be_bytes());
                l4.extend(1000u32.to_be_bytes());
                l4.extend(0u32.to_be_bytes());
                l4.extend([0x50, self.tcp_flags, 0xff, 0xff, 0, 0, 0, 0]);
            }
            PROTO_UDP => {
                l4.extend(self.sport.to_be_bytes());
                l4.extend(self.dport.to_be_bytes());
                l4.extend((8 + self.payload.len() as u16).to_be_bytes());
                l4.extend([0, 0]);
            }
            _ => {}
        }
        l4.extend(&self.payload);
        let csum_at = match self.proto {
            PROTO_TCP => Some(16),
            PROTO_UDP if !self.udp_no_csum => Some(6),
            _ => None,
        };
        if let Some(at) = csum_at {
            let mut c = !fold(pseudo_sum(self.src, self.dst, self.proto, l4.len()) + sum(&l4));
            if c == 0 && self.proto == PROTO_UDP {
                c = 0xffff;
            }
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        let ihl = 5 + self.ip_opts.len() / 4;
        let mut ip = vec![0x40 | ihl as u8, 0];
        ip.extend(((ihl * 4 + l4.len()) as u16).to_be_bytes());
        ip.extend([0x12, 0x34]);
        ip.extend(self.frag.to_be_bytes());
        ip.extend([self.ttl, self.proto, 0, 0]);
        ip.extend(self.src);
        ip.extend(self.dst);
        ip.extend(&self.ip_opts);
        let c = !fold(sum(&ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend(ip);
        f.extend(l4);
        f
    }
}

pub fn sum(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum()
}

pub fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

pub fn pseudo_sum(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u32 {
    sum(&src) + sum(&dst) + u32::from(proto) + len as u32
}

/// The tuple of a rewritten frame, after checking both checksums.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub src: [u8; 4],
    pub sport: u16,
    pub dst: [u8; 4],
    pub dport: u16,
    pub udp_csum_zero: bool,
}

pub fn check(frame: &[u8]) -> Seen {
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    assert_eq!(
        fold(sum(&ip[..ihl])),
        0xffff,
        "bad IPv4 header checksum: {frame:02x?}"
    );
    let tot = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let (src, dst, proto) = (
        ip[12..16].try_into().unwrap(),
        ip[16..20].try_into().unwrap(),
        ip[9],
    );
    let l4 = &ip[ihl..tot];
    let udp_csum_zero = proto == PROTO_UDP && l4[6..8] == [0, 0];
    if !udp_csum_zero {
        let s = fold(pseudo_sum(src, dst, proto, l4.len()) + sum(l4));
        assert_eq!(s, 0xffff, "bad L4 checksum: {frame:02x?}");
    }
    Seen {
        src,
        sport: u16::from_be_bytes([l4[0], l4[1]]),
        dst,
        dport: u16::from_be_bytes([l4[2], l4[3]]),
        udp_csum_zero,
    }
}

// ---------------------------------------------------------------- fixture --

/// A pin directory that is removed when dropped (also on panic).
pub struct PinDir(pub PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("warning: removing {}: {e}", self.0.display());
        }
    }
}

pub struct Fixture {
    pub prog: ProgramFd,
    pub to_pod: ProgramFd,
    pub services: HashMap<MapData, ServiceKey, ServiceValue>,
    pub backends: Array<MapData, Backend>,
    pub rev_nat: HashMap<MapData, u32, RevNat>,
    pub ct: HashMap<MapData, CtKey, CtValue>,
    pub stats: PerCpuArray<MapData, u64>,
    pub local_endpoints: HashMap<MapData, u32, LocalEndpoint>,
    _bpf: aya::Ebpf,
    _pins: PinDir,
}

pub fn object_path() -> PathBuf {
    std::env::var_os("SKIFF_EBPF_OBJ")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/bpf/bpfel-unknown-none/release/skiff-ebpf")
        })
}

pub fn ensure_bpffs() -> Result<()> {
    // SAFETY: statfs on a NUL-terminated path into a zeroed struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let is_bpffs = unsafe { libc::statfs(c"/sys/fs/bpf".as_ptr(), &mut st) } == 0
        && st.f_type as i64 == BPF_FS_MAGIC;
    if !is_bpffs {
        // SAFETY: constant NUL-terminated strings.
        let rc = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                c"/sys/fs/bpf".as_ptr(),
                c"bpf".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            bail!(
                "mounting bpffs at /sys/fs/bpf: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

impl Fixture {
    /// None (test skipped) when not root. `debug` turns the program's
    /// aya-log events on (nobody reads them here; the code path runs).
    pub fn new(tag: &str, debug: bool) -> Result<Option<Self>> {
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED {tag}: BPF_PROG_TEST_RUN needs root");
            return Ok(None);
        }
        let obj = object_path();
        if !obj.exists() {
            bail!(
                "BPF object {} not built: run `cargo xtask build`",
                obj.display()
            );
        }
        ensure_bpffs()?;
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/skiff/skf-{}-progrun-{tag}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let pins = PinDir(dir);
        let cfg = Config {
            hairpin_addr: ipv4_be(HAIRPIN),
            flags: CFG_F_LOCAL_REDIRECT | if debug { CFG_F_DEBUG } else { 0 },
        };
        let mut bpf = EbpfLoader::new()
            .default_map_pin_directory(&pins.0)
            .map_max_entries("SERVICES", 1024)
            .map_max_entries("BACKENDS", 1024)
            .map_max_entries("REV_NAT", 1024)
            .map_max_entries("CONNTRACK", 4096)
            .override_global("SKIFF_CONFIG", &cfg, true)
            .load_file(&obj)
            .with_context(|| format!("loading {}", obj.display()))?;
        let mut load = |name: &str| -> Result<ProgramFd> {
            let prog: &mut SchedClassifier = bpf
                .program_mut(name)
                .with_context(|| format!("no program {name}"))?
                .try_into()?;
            prog.load()
                .with_context(|| format!("verifier rejected {name}"))?;
            let info = prog.info()?;
            eprintln!(
                "[{tag}] {name} loaded: xlated {:?} B, jited {:?} B, verified insns {:?}",
                info.size_translated(),
                info.size_jitted(),
                info.verified_instruction_count()
            );
            Ok(prog.fd()?.try_clone()?)
        };
        let prog = load("skiff_from_pod")?;
        let to_pod = load("skiff_to_pod")?;
        let mut take = |name: &str| bpf.take_map(name).with_context(|| format!("no map {name}"));
        Ok(Some(Fixture {
            prog,
            to_pod,
            services: HashMap::try_from(take("SERVICES")?)?,
            backends: Array::try_from(take("BACKENDS")?)?,
            rev_nat: HashMap::try_from(take("REV_NAT")?)?,
            ct: HashMap::try_from(take("CONNTRACK")?)?,
            stats: PerCpuArray::try_from(take("STATS")?)?,
            local_endpoints: HashMap::try_from(take("LOCAL_ENDPOINTS")?)?,
            _bpf: bpf,
            _pins: pins,
        }))
    }

    pub fn backend(&mut self, id: u32, addr: [u8; 4], port: u16, proto: u8) -> Result<()> {
        let b = Backend {
            addr: ipv4_be(addr),
            port: port_be(port),
            proto,
            flags: 0,
        };
        Ok(self.backends.set(id, b, 0)?)
    }

    /// Frontend `vip:port/proto` with rev-NAT id `rn`, the VIP marker, and
    /// slots 1..=n for `ids` (slots first, count last, like the agent).
    pub fn service(
        &mut self,
        vip: [u8; 4],
        port: u16,
        proto: u8,
        rn: u32,
        ids: &[u32],
    ) -> Result<()> {
        let key = |port: u16, slot: u16, proto: u8| ServiceKey {
            addr: ipv4_be(vip),
            port: port_be(port),
            slot,
            proto,
            scope: SCOPE_INTERNAL,
            _pad: [0; 2],
        };
        self.rev_nat.insert(
            rn,
            RevNat {
                addr: ipv4_be(vip),
                port: port_be(port),
                _pad: 0,
            },
            0,
        )?;
        for (i, id) in ids.iter().enumerate() {
            let v = ServiceValue {
                backend_id: *id,
                ..Default::default()
            };
            self.services.insert(key(port, i as u16 + 1, proto), v, 0)?;
        }
        self.services
            .insert(key(0, 0, 0), ServiceValue::default(), 0)?;
        let fe = ServiceValue {
            count: ids.len() as u32,
            rev_nat_id: rn,
            ..Default::default()
        };
        Ok(self.services.insert(key(port, 0, proto), fe, 0)?)
    }

    /// Turns on `sessionAffinity: ClientIP` (timeout `secs`) for the frontend
    /// `vip:port/proto` [`Self::service`] wrote.
    #[allow(dead_code, reason = "only bpf_prog_run uses affinity")]
    pub fn set_affinity(&mut self, vip: [u8; 4], port: u16, proto: u8, secs: u32) -> Result<()> {
        let key = ServiceKey {
            addr: ipv4_be(vip),
            port: port_be(port),
            slot: 0,
            proto,
            scope: SCOPE_INTERNAL,
            _pad: [0; 2],
        };
        let mut fe = self.services.get(&key, 0)?;
        fe.flags |= SVC_F_AFFINITY;
        fe.affinity_timeout_s = secs;
        Ok(self.services.insert(key, fe, 0)?)
    }

    /// Flags backend `id` terminating, as the agent does for a terminating
    /// but serving endpoint.
    #[allow(dead_code, reason = "only bpf_prog_run drains backends")]
    pub fn set_terminating(&mut self, id: u32) -> Result<()> {
        let mut b = self.backends.get(&id, 0)?;
        b.flags |= skiff_common::BACKEND_F_TERMINATING;
        Ok(self.backends.set(id, b, 0)?)
    }

    /// Pod `addr` is on this node behind host veth `ep.ifindex`.
    #[allow(dead_code, reason = "only bpf_prog_run_local has local pods")]
    pub fn local_endpoint(&mut self, addr: [u8; 4], ep: LocalEndpoint) -> Result<()> {
        Ok(self.local_endpoints.insert(ipv4_be(addr), ep, 0)?)
    }

    pub fn stats(&self) -> Result<Stats> {
        let mut out = [0; stats::COUNT as usize];
        for (i, v) in out.iter_mut().enumerate() {
            *v = self.stats.get(&(i as u32), 0)?.iter().sum();
        }
        Ok(out)
    }

    /// Runs one frame through `skiff_from_pod`; returns (retval, output
    /// frame, counter deltas).
    pub fn run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>, Stats)> {
        self.run_on(&self.prog, frame)
    }

    /// The same through `skiff_to_pod`.
    pub fn run_to_pod(&self, frame: &[u8]) -> Result<(u32, Vec<u8>, Stats)> {
        self.run_on(&self.to_pod, frame)
    }

    fn run_on(&self, prog: &ProgramFd, frame: &[u8]) -> Result<(u32, Vec<u8>, Stats)> {
        let before = self.stats()?;
        let r = test_run(prog.as_fd(), frame, 1)?;
        let after = self.stats()?;
        let mut d = [0; stats::COUNT as usize];
        for i in 0..d.len() {
            d[i] = after[i] - before[i];
        }
        Ok((r.retval, r.data, d))
    }

    pub fn ct_get(&self, k: CtKey) -> Option<CtValue> {
        self.ct.get(&k, 0).ok()
    }
}

pub fn ct_key(s: [u8; 4], sp: u16, d: [u8; 4], dp: u16, proto: u8, dir: u8) -> CtKey {
    CtKey {
        saddr: ipv4_be(s),
        daddr: ipv4_be(d),
        sport: port_be(sp),
        dport: port_be(dp),
        proto,
        dir,
        _pad: [0; 2],
    }
}

/// Counter deltas: exactly `want` (index, n), every other counter 0 except
/// PACKETS, which must be 1.
#[track_caller]
pub fn assert_counts(d: &Stats, want: &[(u32, u64)]) {
    let mut exp = [0u64; stats::COUNT as usize];
    exp[stats::PACKETS as usize] = 1;
    for (i, n) in want {
        exp[*i as usize] = *n;
    }
    let named = |s: &Stats| -> Vec<String> {
        s.iter()
            .zip(stats::NAMES)
            .filter(|(v, _)| **v != 0)
            .map(|(v, n)| format!("{n}={v}"))
            .collect()
    };
    assert_eq!(named(d), named(&exp), "STATS deltas");
}
