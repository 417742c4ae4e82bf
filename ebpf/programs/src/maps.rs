//! Maps and the load-time configuration global.
//!
//! Every map is pinned by name under the loader's pin directory, so the
//! agent's restarts reuse them (conntrack survives). The names are the ones in
//! [`skiff_common::map_names`]; the sizes are defaults the loader may
//! override with `EbpfLoader::set_max_entries`.

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
    Global,
};
use skiff_common::{
    defaults, ipv4_be, map_names, stats, AffinityKey, AffinityValue, Backend, Config, CtKey,
    CtValue, LocalEndpoint, LocalPrefix, NodePortConfig, RevNat, RevNatId, ServiceKey,
    ServiceValue, SnatValue, SockRevKey, SockRevValue, DEFAULT_HAIRPIN_ADDR,
};

// The service maps allocate entries on demand (`BPF_F_NO_PREALLOC`), so a
// large cap costs nothing until it is used; conntrack is an LRU, which the
// kernel always preallocates.
#[map(name = "SERVICES")]
pub static SERVICES: HashMap<ServiceKey, ServiceValue> =
    HashMap::pinned(defaults::SERVICES_MAX, BPF_F_NO_PREALLOC);

/// Backends by id: an array (Katran's reals are one too), so the lookup
/// every established flow's packet makes is inlined by the verifier into a
/// bounds check and an address computation instead of a hash. An all-zero
/// entry is a free id. Mmapable so the agent reads all of it at once.
#[map(name = "BACKENDS")]
pub static BACKENDS: Array<Backend> = Array::pinned(defaults::BACKENDS_MAX, BPF_F_MMAPABLE);

#[map(name = "REV_NAT")]
pub static REV_NAT: HashMap<RevNatId, RevNat> =
    HashMap::pinned(defaults::REV_NAT_MAX, BPF_F_NO_PREALLOC);

#[map(name = "CONNTRACK")]
pub static CONNTRACK: LruHashMap<CtKey, CtValue> = LruHashMap::pinned(defaults::CONNTRACK_MAX, 0);

#[map(name = "STATS")]
pub static STATS: PerCpuArray<u64> = PerCpuArray::pinned(stats::COUNT, 0);

/// `sessionAffinity: ClientIP`: (client, frontend) → backend.
#[map(name = "AFFINITY")]
pub static AFFINITY: LruHashMap<AffinityKey, AffinityValue> =
    LruHashMap::pinned(defaults::AFFINITY_MAX, 0);

/// NodePort SNAT, both directions (`SNAT_DIR_OUT` / `SNAT_DIR_IN`).
#[map(name = "SNAT")]
pub static SNAT: LruHashMap<CtKey, SnatValue> = LruHashMap::pinned(defaults::SNAT_MAX, 0);

/// Pods of this node by address: where `skiff_from_pod` redirects their
/// packets (written by the agent from the node's routes and links).
#[map(name = "LOCAL_ENDPOINTS")]
pub static LOCAL_ENDPOINTS: HashMap<u32, LocalEndpoint> =
    HashMap::pinned(defaults::LOCAL_ENDPOINTS_MAX, BPF_F_NO_PREALLOC);

/// One entry: a prefix covering every `LOCAL_ENDPOINTS` address (written by
/// the agent before it adds an entry outside it); other destinations skip
/// the hash lookup.
#[map(name = "LOCAL_PREFIX")]
pub static LOCAL_PREFIX: Array<LocalPrefix> = Array::pinned(1, 0);

/// Socket-level load balancing: which frontend a socket of the node's own
/// network namespace asked for, by (socket cookie, backend).
#[map(name = "SOCK_REV")]
pub static SOCK_REV: LruHashMap<SockRevKey, SockRevValue> =
    LruHashMap::pinned(defaults::SOCK_REV_MAX, 0);

/// Set by the loader (`EbpfLoader::set_global("SKIFF_CONFIG", ..)`).
#[unsafe(no_mangle)]
static SKIFF_CONFIG: Global<Config> = Global::new(Config {
    hairpin_addr: ipv4_be(DEFAULT_HAIRPIN_ADDR),
    flags: 0,
});

/// Set by the loader (`SKIFF_NODEPORT_CONFIG`).
#[unsafe(no_mangle)]
static SKIFF_NODEPORT_CONFIG: Global<NodePortConfig> = Global::new(NodePortConfig {
    node_addr: 0,
    snat_port_min: defaults::SNAT_PORT_MIN,
    snat_port_max: defaults::SNAT_PORT_MAX,
});

/// Set by the loader (`SKIFF_HOST_NETNS`): the cookie of the network
/// namespace the agent runs in, the node's own. 0: socket-level load
/// balancing is off.
#[unsafe(no_mangle)]
static SKIFF_HOST_NETNS: Global<u64> = Global::new(0);

/// The node's network namespace cookie (volatile: the loader patches it).
#[inline(always)]
pub fn host_netns() -> u64 {
    SKIFF_HOST_NETNS.load()
}

/// The NodePort configuration (volatile: the loader patches it).
#[inline(always)]
pub fn nodeport_config() -> NodePortConfig {
    SKIFF_NODEPORT_CONFIG.load()
}

/// The configuration, read once per packet (volatile: the loader patches it).
#[inline(always)]
pub fn config() -> Config {
    SKIFF_CONFIG.load()
}

// The `#[map(name = ..)]` attributes take literals: keep them equal to the
// shared names the agent opens.
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
const _: () = assert!(same(map_names::SERVICES, "SERVICES"));
const _: () = assert!(same(map_names::BACKENDS, "BACKENDS"));
const _: () = assert!(same(map_names::REV_NAT, "REV_NAT"));
const _: () = assert!(same(map_names::CONNTRACK, "CONNTRACK"));
const _: () = assert!(same(map_names::STATS, "STATS"));
const _: () = assert!(same(map_names::AFFINITY, "AFFINITY"));
const _: () = assert!(same(map_names::SNAT, "SNAT"));
const _: () = assert!(same(map_names::LOCAL_ENDPOINTS, "LOCAL_ENDPOINTS"));
const _: () = assert!(same(map_names::LOCAL_PREFIX, "LOCAL_PREFIX"));
const _: () = assert!(same(map_names::SOCK_REV, "SOCK_REV"));
