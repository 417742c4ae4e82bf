//! Loading the embedded BPF object with its maps pinned per node.

use std::borrow::Cow;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use aya::programs::Xdp;
use aya::programs::{SchedClassifier, TcAttachType};
use aya::util::KernelVersion;
use aya::{Ebpf, EbpfLoader};
use skiff_common::{
    defaults, map_names, stats, AffinityKey, AffinityValue, Backend, Config, CtKey, CtValue,
    LocalEndpoint, LocalPrefix, NodePortConfig, RevNat, ServiceKey, ServiceValue, SnatValue,
    CFG_F_DEBUG, CFG_F_LOCAL_REDIRECT,
};

use super::attach::remove_file;
use super::bpffs::PinDirs;
use super::maps::{PinnedArray, PinnedHash};
use super::stats::{pinned_counters, read_stats};
use super::DataplaneError;
use crate::proxy::KvMap;

/// A TC hook on the host side of a pod veth: which program runs where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hook {
    /// The program's name in the object.
    pub program: &'static str,
    pub attach: TcAttachType,
    /// Suffix of the link pin, `links/<ifname>-<name>`.
    pub name: &'static str,
}

/// The hooks of every pod veth: `skiff_from_pod` on ingress (what the pod
/// sends: service DNAT, reverse NAT of local backends' replies, redirect to
/// pods of this node) and
/// `skiff_to_pod` on egress (what the pod receives: reverse NAT of replies
/// from backends on other nodes).
pub const POD_HOOKS: [Hook; 2] = [
    Hook {
        program: "skiff_from_pod",
        attach: TcAttachType::Ingress,
        name: "ingress",
    },
    Hook {
        program: "skiff_to_pod",
        attach: TcAttachType::Egress,
        name: "egress",
    },
];

/// The global the programs read their configuration from.
pub const CONFIG_GLOBAL: &str = "SKIFF_CONFIG";
/// The global the NodePort programs read their configuration from.
pub const NODEPORT_CONFIG_GLOBAL: &str = "SKIFF_NODEPORT_CONFIG";
/// The global the socket-level hooks read the node's netns cookie from.
pub const HOST_NETNS_GLOBAL: &str = "SKIFF_HOST_NETNS";
/// The NodePort program for XDP on the external interface.
pub const XDP_NODEPORT: &str = "skiff_xdp_nodeport";
/// The same logic as a classifier (TC ingress fallback).
pub const TC_NODEPORT: &str = "skiff_tc_nodeport";

/// The BPF object, embedded at build time (empty when it was not built).
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/skiff-ebpf"));

/// Map capacities (used when a map is created; a map that is already
/// pinned keeps its size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSizes {
    pub services: u32,
    pub backends: u32,
    pub rev_nat: u32,
    pub conntrack: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        Self {
            services: defaults::SERVICES_MAX,
            backends: defaults::BACKENDS_MAX,
            rev_nat: defaults::REV_NAT_MAX,
            conntrack: defaults::CONNTRACK_MAX,
        }
    }
}

/// What to load and how.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub dirs: PinDirs,
    pub sizes: MapSizes,
    pub hairpin_addr: Ipv4Addr,
    /// Sets `CFG_F_DEBUG` and forwards aya-log records to the `log` crate.
    pub debug: bool,
    /// Load this object file instead of the embedded one.
    pub object: Option<PathBuf>,
    /// NodePort: SNAT address (the node's) and port range.
    pub nodeport: NodePortConfig,
    /// The node's network namespace cookie for the socket-level hooks
    /// (`dataplane::sock`); 0 turns them into no-ops.
    pub host_netns: u64,
}

/// The loaded object: maps created or reused from their pins, the
/// classifier loaded (not attached).
pub struct Loaded {
    pub ebpf: Ebpf,
    /// Present with `debug` when the object has aya-log records.
    pub logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
}

impl Loaded {
    /// The classifier `name`.
    pub fn program(&mut self, name: &'static str) -> Result<&mut SchedClassifier, DataplaneError> {
        let prog = self
            .ebpf
            .program_mut(name)
            .ok_or(DataplaneError::ProgramMissing { name })?;
        prog.try_into()
            .map_err(|source| DataplaneError::Program { name, source })
    }

    /// The XDP program `name`.
    pub fn xdp_program(&mut self, name: &'static str) -> Result<&mut Xdp, DataplaneError> {
        let prog = self
            .ebpf
            .program_mut(name)
            .ok_or(DataplaneError::ProgramMissing { name })?;
        prog.try_into()
            .map_err(|source| DataplaneError::Program { name, source })
    }
}

/// Raises `RLIMIT_MEMLOCK`; kernels ≥ 5.11 account BPF memory to cgroups and
/// do not need it, so failure is only a warning.
fn raise_memlock() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `lim` is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        let e = std::io::Error::last_os_error();
        log::warn!("setrlimit(RLIMIT_MEMLOCK): {e} (fine on kernels with memcg accounting)");
    }
}

/// Checks that maps pinned by an earlier run have this agent's layout
/// (opening them typed checks the map type and key and value sizes).
/// Missing pins are fine: the loader creates them. A `BACKENDS` hash of an
/// older agent is unpinned; its entries are returned, to be written into the
/// array that replaces it (so established flows keep their backends).
fn check_existing_pins(
    dirs: &PinDirs,
    sizes: &MapSizes,
) -> Result<Vec<(u32, Backend)>, DataplaneError> {
    fn check<K: aya::Pod, V: aya::Pod>(
        dirs: &PinDirs,
        name: &'static str,
        want: u32,
    ) -> Result<(), DataplaneError> {
        let path = dirs.map(name);
        if !path.exists() {
            return Ok(());
        }
        let map = PinnedHash::<K, V>::open(name, &path).map_err(layout_error)?;
        warn_kept_size(name, map.max_entries(), want);
        Ok(())
    }
    check::<ServiceKey, ServiceValue>(dirs, map_names::SERVICES, sizes.services)?;
    let carried = check_backends(dirs, sizes.backends)?;
    check::<u32, RevNat>(dirs, map_names::REV_NAT, sizes.rev_nat)?;
    check::<CtKey, CtValue>(dirs, map_names::CONNTRACK, sizes.conntrack)?;
    check::<AffinityKey, AffinityValue>(dirs, map_names::AFFINITY, defaults::AFFINITY_MAX)?;
    check::<CtKey, SnatValue>(dirs, map_names::SNAT, defaults::SNAT_MAX)?;
    check::<u32, LocalEndpoint>(
        dirs,
        map_names::LOCAL_ENDPOINTS,
        defaults::LOCAL_ENDPOINTS_MAX,
    )?;
    let prefix_pin = dirs.map(map_names::LOCAL_PREFIX);
    if prefix_pin.exists() {
        PinnedArray::<LocalPrefix>::open(map_names::LOCAL_PREFIX, &prefix_pin)
            .map_err(layout_error)?;
    }
    let stats_pin = dirs.map(map_names::STATS);
    if stats_pin.exists() {
        read_stats(dirs).map_err(layout_error)?;
        // The loader would reuse a shorter array, and the new counters
        // would never count: start the counters afresh instead.
        let have = pinned_counters(dirs).map_err(layout_error)?;
        if have < stats::COUNT {
            log::info!(
                "map {}: pinned with {have} counters, this agent has {}: starting them afresh",
                map_names::STATS,
                stats::COUNT
            );
            remove_file(&stats_pin)?;
        }
    }
    Ok(carried)
}

/// Where an older agent's `BACKENDS` hash is set aside until its entries are in the array
/// (so a failed load loses nothing: the next start carries them again). No dot: bpffs
/// refuses names with one.
const OLD_BACKENDS: &str = "BACKENDS_HASH_OLD";

/// A reused pin keeps its size: says so when it is not the one asked for.
fn warn_kept_size(name: &str, have: u32, want: u32) {
    if have != want {
        log::warn!("map {name}: pinned with {have} entries, keeping that (asked for {want})");
    }
}

/// See [`check_existing_pins`].
fn check_backends(dirs: &PinDirs, want: u32) -> Result<Vec<(u32, Backend)>, DataplaneError> {
    let name = map_names::BACKENDS;
    let (path, old_pin) = (dirs.map(name), dirs.map(OLD_BACKENDS));
    if path.exists() {
        match PinnedArray::<Backend>::open(name, &path) {
            Ok(map) => warn_kept_size(name, map.max_entries(), want),
            Err(_) => {
                // Must be the older hash; anything else is a layout error.
                PinnedHash::<u32, Backend>::open(name, &path).map_err(layout_error)?;
                std::fs::rename(&path, &old_pin).map_err(|source| DataplaneError::Remove {
                    path: path.clone(),
                    source,
                })?;
            }
        }
    }
    if !old_pin.exists() {
        return Ok(Vec::new());
    }
    let old = PinnedHash::<u32, Backend>::open(name, &old_pin).map_err(layout_error)?;
    let entries = old.entries()?;
    log::info!(
        "map {name}: an older agent's hash with {} entries, moving them into an array",
        entries.len()
    );
    Ok(entries)
}

/// Writes the entries of an older agent's `BACKENDS` hash into the array, then unpins the
/// hash; ids past the array's end are dropped (their flows pick a backend again).
fn carry_backends(dirs: &PinDirs, carried: Vec<(u32, Backend)>) -> Result<(), DataplaneError> {
    let old_pin = dirs.map(OLD_BACKENDS);
    if !old_pin.exists() {
        return Ok(());
    }
    let name = map_names::BACKENDS;
    let mut map = PinnedArray::<Backend>::open(name, &dirs.map(name))?;
    let len = map.max_entries();
    let fits = |id: u32| id < len;
    let dropped = carried.iter().filter(|(id, _)| !fits(*id)).count();
    if dropped > 0 {
        log::warn!("map {name}: {dropped} backend ids past the array's end dropped");
    }
    for (id, b) in carried.into_iter().filter(|(id, _)| fits(*id)) {
        map.insert(id, b)?;
    }
    remove_file(&old_pin)
}

fn layout_error(e: DataplaneError) -> DataplaneError {
    match e {
        DataplaneError::Map { path, source, .. } => DataplaneError::MapLayout {
            path,
            detail: source.to_string(),
        },
        other => other,
    }
}

/// `bpf_redirect_peer` exists from Linux 5.10 on; without it pods on one
/// node reach each other through the node's stack.
pub fn redirect_peer_supported() -> bool {
    KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(5, 10, 0))
}

/// Loads the object: mounts bpffs if needed, creates the pin directories,
/// creates or reuses the pinned maps, sets `SKIFF_CONFIG`, loads the
/// classifiers.
pub fn load(opts: &LoadOptions) -> Result<Loaded, DataplaneError> {
    let owned;
    let bytes: &[u8] = match &opts.object {
        Some(path) => {
            owned = std::fs::read(path).map_err(|source| DataplaneError::ReadDir {
                path: path.clone(),
                source,
            })?;
            &owned
        }
        None => OBJECT,
    };
    if bytes.is_empty() {
        return Err(DataplaneError::ObjectNotBuilt);
    }
    raise_memlock();
    opts.dirs.create()?;
    let carried = check_existing_pins(&opts.dirs, &opts.sizes)?;
    let mut flags = if opts.debug { CFG_F_DEBUG } else { 0 };
    if redirect_peer_supported() {
        flags |= CFG_F_LOCAL_REDIRECT;
    } else {
        log::warn!("no bpf_redirect_peer (Linux < 5.10): local pod-to-pod goes through the stack");
    }
    let config = Config {
        hairpin_addr: skiff_common::ipv4_be(opts.hairpin_addr.octets()),
        flags,
    };
    let names = [
        (map_names::SERVICES, opts.sizes.services),
        (map_names::BACKENDS, opts.sizes.backends),
        (map_names::REV_NAT, opts.sizes.rev_nat),
        (map_names::CONNTRACK, opts.sizes.conntrack),
        (map_names::AFFINITY, defaults::AFFINITY_MAX),
        (map_names::SNAT, defaults::SNAT_MAX),
        (map_names::LOCAL_ENDPOINTS, defaults::LOCAL_ENDPOINTS_MAX),
        (map_names::SOCK_REV, defaults::SOCK_REV_MAX),
    ];
    let mut loader = EbpfLoader::new();
    for (name, size) in names {
        loader.map_max_entries(name, size);
    }
    let unsized_maps = [map_names::STATS, map_names::LOCAL_PREFIX];
    for name in [names.map(|n| n.0).as_slice(), &unsized_maps].concat() {
        loader.map_pin_path(name, Cow::Owned(opts.dirs.map(name)));
    }
    loader.override_global(CONFIG_GLOBAL, &config, true);
    loader.override_global(NODEPORT_CONFIG_GLOBAL, &opts.nodeport, true);
    loader.override_global(HOST_NETNS_GLOBAL, &opts.host_netns, true);
    let ebpf = loader.load(bytes).map_err(|e| DataplaneError::Load {
        pin_dir: opts.dirs.node.clone(),
        source: Box::new(e),
    })?;
    carry_backends(&opts.dirs, carried)?;
    let mut loaded = Loaded { ebpf, logger: None };
    for hook in POD_HOOKS {
        let prog = loaded.program(hook.program)?;
        prog.load().map_err(|source| DataplaneError::Program {
            name: hook.program,
            source,
        })?;
    }
    let prog = loaded.program(TC_NODEPORT)?;
    prog.load().map_err(|source| DataplaneError::Program {
        name: TC_NODEPORT,
        source,
    })?;
    let prog = loaded.xdp_program(XDP_NODEPORT)?;
    prog.load().map_err(|source| DataplaneError::Program {
        name: XDP_NODEPORT,
        source,
    })?;
    if opts.debug {
        match aya_log::EbpfLogger::init(&mut loaded.ebpf) {
            Ok(logger) => loaded.logger = Some(logger),
            Err(e) => log::warn!("BPF debug log not available: {e}"),
        }
    }
    Ok(loaded)
}
