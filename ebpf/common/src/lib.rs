//! Map keys and values shared by Skiff's BPF programs and the agent.
//!
//! Every type is `#[repr(C)]` with its padding written out as named fields, so
//! that no byte of a key is left uninitialised (a hash map compares keys byte
//! for byte) and the types are `aya::Pod` with the `user` feature. A size
//! assertion next to each type catches layout drift between the two sides.
//!
//! Byte order: addresses and ports are stored exactly as they appear on the
//! wire (network byte order), read as native integers. In userspace that is
//! `u32::from_ne_bytes(ip.octets())` and `port.to_be()`; see [`ipv4_be`] and
//! [`port_be`]. The data path then compares and copies them without swapping.
#![no_std]

use core::mem::size_of;

pub mod bench;

/// IP protocol numbers the data path load-balances.
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// Names of the maps, also their file names under the pin directory
/// `/sys/fs/bpf/skiff/<node>/`.
pub mod map_names {
    pub const SERVICES: &str = "SERVICES";
    pub const BACKENDS: &str = "BACKENDS";
    pub const REV_NAT: &str = "REV_NAT";
    pub const CONNTRACK: &str = "CONNTRACK";
    pub const STATS: &str = "STATS";
    pub const AFFINITY: &str = "AFFINITY";
    pub const SNAT: &str = "SNAT";
    pub const LOCAL_ENDPOINTS: &str = "LOCAL_ENDPOINTS";
    pub const LOCAL_PREFIX: &str = "LOCAL_PREFIX";
    pub const SOCK_REV: &str = "SOCK_REV";
}

/// Default capacities; the agent may override each one at load time. The
/// service maps allocate on demand, so their caps are generous: a Service
/// port takes a frontend, one slot per backend and a VIP marker per ClusterIP
/// (100,000 single-port Services with one backend each: 300,000 entries).
pub mod defaults {
    pub const SERVICES_MAX: u32 = 1 << 20;
    pub const BACKENDS_MAX: u32 = 1 << 20;
    pub const REV_NAT_MAX: u32 = 1 << 19;
    pub const CONNTRACK_MAX: u32 = 524_288;
    /// `sessionAffinity: ClientIP` entries (client, frontend); LRU.
    pub const AFFINITY_MAX: u32 = 65_536;
    /// NodePort SNAT entries (two per flow to a backend on another node); LRU.
    pub const SNAT_MAX: u32 = 262_144;
    /// Socket-level load balancing: (socket, backend) → frontend, for the
    /// addresses recvmsg and getpeername report; LRU.
    pub const SOCK_REV_MAX: u32 = 65_536;
    /// Source ports NodePort SNAT allocates from (host order), above
    /// Linux's default ephemeral range (32768–60999) and the NodePort range.
    pub const SNAT_PORT_MIN: u16 = 61_000;
    pub const SNAT_PORT_MAX: u16 = 65_535;
    /// Pods on this node the pod program delivers to directly.
    pub const LOCAL_ENDPOINTS_MAX: u32 = 65_536;
}

/// Key of the services map: a frontend (VIP, port, protocol) and a slot.
///
/// Slot 0 is the frontend itself ([`ServiceValue::count`] backends,
/// [`ServiceValue::rev_nat_id`]); slots `1..=count` each name one backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// Virtual IP, network byte order.
    pub addr: u32,
    /// Service port, network byte order.
    pub port: u16,
    /// 0 for the frontend, 1..=count for backends.
    pub slot: u16,
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
    /// [`SCOPE_EXTERNAL`] or [`SCOPE_INTERNAL`] (for `externalTrafficPolicy: Local`).
    pub scope: u8,
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<ServiceKey>() == 12);

pub const SCOPE_EXTERNAL: u8 = 0;
pub const SCOPE_INTERNAL: u8 = 1;

/// Value of the services map. For slot 0 `count`, `rev_nat_id`, `flags` and
/// `affinity_timeout_s` are meaningful; for slots ≥ 1 only `backend_id`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceValue {
    pub backend_id: u32,
    pub count: u32,
    pub rev_nat_id: u32,
    /// `SVC_F_*` bits.
    pub flags: u32,
    /// `sessionAffinity: ClientIP` timeout in seconds, 0 when off.
    pub affinity_timeout_s: u32,
}
const _: () = assert!(size_of::<ServiceValue>() == 20);

/// The frontend is a NodePort (matched on node addresses).
pub const SVC_F_NODEPORT: u32 = 1 << 0;
/// `externalTrafficPolicy: Local`.
pub const SVC_F_LOCAL_ONLY: u32 = 1 << 1;
/// `sessionAffinity: ClientIP`.
pub const SVC_F_AFFINITY: u32 = 1 << 2;
/// An external IP (`spec.externalIPs`).
pub const SVC_F_EXTERNAL_IP: u32 = 1 << 3;

/// Key of the backends map.
pub type BackendId = u32;

/// A backend address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Backend {
    /// Network byte order.
    pub addr: u32,
    /// Network byte order.
    pub port: u16,
    pub proto: u8,
    /// `BACKEND_F_*` bits.
    pub flags: u8,
}
const _: () = assert!(size_of::<Backend>() == 8);

/// The endpoint is terminating: existing flows keep it, new flows skip it.
pub const BACKEND_F_TERMINATING: u8 = 1 << 0;
/// The endpoint runs on this node (EndpointSlice `nodeName`): NodePort
/// traffic to it is DNATed and passed to the stack, never SNATed.
pub const BACKEND_F_LOCAL: u8 = 1 << 1;

/// Key of the reverse-NAT map.
pub type RevNatId = u32;

/// What a reply's source is rewritten to: the frontend the client asked for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RevNat {
    /// Network byte order.
    pub addr: u32,
    /// Network byte order.
    pub port: u16,
    pub _pad: u16,
}
const _: () = assert!(size_of::<RevNat>() == 8);

/// Conntrack direction: the client's packets towards a frontend.
pub const CT_DIR_SERVICE: u8 = 0;
/// Conntrack direction: a backend's replies towards the client.
pub const CT_DIR_REPLY: u8 = 1;

/// Key of the conntrack map: the full 5-tuple as the packet carries it when
/// it is looked up, plus the direction.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtKey {
    /// Network byte order.
    pub saddr: u32,
    /// Network byte order.
    pub daddr: u32,
    /// Network byte order.
    pub sport: u16,
    /// Network byte order.
    pub dport: u16,
    pub proto: u8,
    /// [`CT_DIR_SERVICE`] or [`CT_DIR_REPLY`].
    pub dir: u8,
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<CtKey>() == 16);

/// Value of the conntrack map.
///
/// For a [`CT_DIR_SERVICE`] entry, `backend_id` is the backend the flow is
/// pinned to, `addr:port` that backend's address (what the destination is
/// rewritten to) and `nat_addr` the source address the packets are rewritten
/// to (0 unless hairpin SNAT applies). For a [`CT_DIR_REPLY`] entry,
/// `addr:port` is the frontend the client asked for (what the source is
/// rewritten back to) and `nat_addr` the client's own address, written back
/// as destination (it differs from the packet's destination only under
/// hairpin SNAT).
///
/// Every entry carries what its packets are rewritten to, so a packet of an
/// established flow needs no service or reverse-NAT lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtValue {
    pub backend_id: u32,
    pub rev_nat_id: u32,
    /// Network byte order.
    pub nat_addr: u32,
    /// `CT_F_*` bits.
    pub flags: u32,
    /// `CLOCK_MONOTONIC` (`bpf_ktime_get_ns()`'s clock) when the entry was
    /// last refreshed. Coarse: the data path reads the clock once per jiffy
    /// and CPU, and rewrites the field at most once per [`CT_REFRESH_NS`].
    pub last_seen_ns: u64,
    /// Service entry: the backend's address; reply entry: the frontend's.
    /// Network byte order.
    pub addr: u32,
    /// The port that goes with `addr`, network byte order.
    pub port: u16,
    pub _pad: u16,
}
const _: () = assert!(size_of::<CtValue>() == 32);

/// The flow was source-NATed to the hairpin address.
pub const CT_F_HAIRPIN: u32 = 1 << 0;
/// A TCP FIN or RST was seen.
pub const CT_F_CLOSING: u32 = 1 << 1;
/// A NodePort / externalIP flow to a backend on this node: the reply,
/// reverse-NATed to the node address, is sent straight out of the external
/// interface (FIB lookup + redirect); the stack would drop a packet that
/// arrives from a pod with one of the node's own addresses as source.
pub const CT_F_NODEPORT: u32 = 1 << 2;

/// Key of the affinity map: one client of one frontend.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AffinityKey {
    /// Client address, network byte order.
    pub client: u32,
    pub rev_nat_id: u32,
}
const _: () = assert!(size_of::<AffinityKey>() == 8);

/// Value of the affinity map: the backend the client sticks to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AffinityValue {
    pub backend_id: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_ns()` of the client's last new flow.
    pub last_used_ns: u64,
}
const _: () = assert!(size_of::<AffinityValue>() == 16);

/// SNAT direction: a NodePort flow towards a backend on another node,
/// keyed after DNAT and before SNAT `(client, backend, cport, bport)`.
pub const SNAT_DIR_OUT: u8 = 0;
/// SNAT direction: the backend's reply as it arrives,
/// `(backend, node, bport, snat port)`.
pub const SNAT_DIR_IN: u8 = 1;

/// Value of the SNAT map (key: [`CtKey`] with `dir` = `SNAT_DIR_*`).
///
/// For [`SNAT_DIR_OUT`]: the node address and port the source becomes.
/// For [`SNAT_DIR_IN`]: the client address and port the destination goes
/// back to, and `rev_nat_id` names the frontend the source goes back to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnatValue {
    /// Network byte order.
    pub addr: u32,
    /// Network byte order.
    pub port: u16,
    pub _pad: u16,
    pub rev_nat_id: u32,
    /// `CT_F_*` bits (closing).
    pub flags: u32,
    pub last_seen_ns: u64,
}
const _: () = assert!(size_of::<SnatValue>() == 24);

/// Key of the socket-level reverse map: a socket of the node's own network
/// namespace (its cookie) that the connect/sendmsg hooks sent to a backend.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SockRevKey {
    pub cookie: u64,
    /// The backend's address, network byte order.
    pub addr: u32,
    /// The backend's port, network byte order.
    pub port: u16,
    pub _pad: u16,
}
const _: () = assert!(size_of::<SockRevKey>() == 16);

/// Value of the socket-level reverse map: the frontend the socket asked for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SockRevValue {
    /// Network byte order.
    pub addr: u32,
    /// Network byte order.
    pub port: u16,
    pub _pad: u16,
}
const _: () = assert!(size_of::<SockRevValue>() == 8);

/// Value of the local-endpoints map, keyed by a pod's IPv4 address on this
/// node (network byte order): where `skiff_from_pod` delivers a packet for
/// that pod with `bpf_redirect_peer`, past the node's stack.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LocalEndpoint {
    /// Index of the host side of the pod's veth (the peer is the pod's
    /// interface, which the packet enters).
    pub ifindex: u32,
    /// The pod interface's MAC: the frame's new destination.
    pub pod_mac: [u8; 6],
    /// The host side's MAC: the frame's new source (the pod's gateway).
    pub host_mac: [u8; 6],
}
const _: () = assert!(size_of::<LocalEndpoint>() == 16);

/// The one entry of `LOCAL_PREFIX`: a prefix holding every address of
/// `LOCAL_ENDPOINTS`, so that a packet to any other address skips that
/// lookup. Both in network byte order; all zero (the initial value) matches
/// every address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalPrefix {
    pub addr: u32,
    pub mask: u32,
}
const _: () = assert!(size_of::<LocalPrefix>() == 8);

impl LocalPrefix {
    /// Whether `addr` (network byte order) is inside the prefix.
    #[inline(always)]
    pub fn contains(&self, addr: u32) -> bool {
        addr & self.mask == self.addr
    }
}

/// How stale `last_seen_ns` may get before the data path refreshes it.
pub const CT_REFRESH_NS: u64 = 1_000_000_000;

/// Indices of the per-CPU stats array.
pub mod stats {
    /// Every packet a Skiff program ran on.
    pub const PACKETS: u32 = 0;
    /// Packets addressed to a known frontend.
    pub const SERVICE_PACKETS: u32 = 1;
    /// Flows that picked a backend (conntrack entries created).
    pub const NEW_FLOWS: u32 = 2;
    /// Replies rewritten back to the frontend address.
    pub const REV_NAT: u32 = 3;
    /// Established flows whose backend was gone and that picked a new one.
    pub const RESELECTED: u32 = 4;
    /// Dropped: the frontend has no backend.
    pub const DROP_NO_BACKEND: u32 = 5;
    /// Dropped: a conntrack entry could not be created (map full).
    pub const DROP_CT_FULL: u32 = 6;
    /// Dropped: an IP fragment addressed to a frontend.
    pub const DROP_FRAGMENT: u32 = 7;
    /// Dropped: a protocol other than TCP/UDP addressed to a frontend.
    pub const DROP_UNSUPPORTED_PROTO: u32 = 8;
    /// Passed untouched: truncated or malformed headers.
    pub const PASS_MALFORMED: u32 = 9;
    /// Dropped: a checksum or header rewrite failed.
    pub const DROP_REWRITE: u32 = 10;
    /// NodePort: no free SNAT port for a flow to a remote backend (dropped).
    pub const DROP_SNAT_EXHAUSTED: u32 = 11;
    /// NodePort: the FIB lookup for a packet sent back out failed (no
    /// route or unresolved neighbour; dropped).
    pub const DROP_FIB: u32 = 12;
    /// NodePort: replies of remote backends reverse-SNATed and sent back.
    pub const NODEPORT_REV_SNAT: u32 = 13;
    /// NodePort: packets sent back out of the external interface (XDP_TX or
    /// redirect), both directions.
    pub const NODEPORT_TX: u32 = 14;
    /// Packets to a pod on this node handed straight to it
    /// (`bpf_redirect_peer`), past the node's stack.
    pub const LOCAL_REDIRECT: u32 = 15;
    /// Number of counters.
    pub const COUNT: u32 = 16;

    /// Human-readable names, by index.
    pub const NAMES: [&str; COUNT as usize] = [
        "packets",
        "service_packets",
        "new_flows",
        "rev_nat",
        "reselected",
        "drop_no_backend",
        "drop_ct_full",
        "drop_fragment",
        "drop_unsupported_proto",
        "pass_malformed",
        "drop_rewrite",
        "drop_snat_exhausted",
        "drop_fib",
        "nodeport_rev_snat",
        "nodeport_tx",
        "local_redirect",
    ];
}

/// Read-only configuration the agent sets when it loads the programs, as the
/// global `SKIFF_CONFIG`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Source address used when a pod reaches itself through a Service
    /// (hairpin), network byte order. Link-local by default.
    pub hairpin_addr: u32,
    /// `CFG_F_*` bits.
    pub flags: u32,
}
const _: () = assert!(size_of::<Config>() == 8);

/// Read-only configuration of the NodePort program, the global
/// `SKIFF_NODEPORT_CONFIG` (separate from [`Config`] so that the pod
/// programs' configuration keeps its layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodePortConfig {
    /// The node's address NodePort traffic to remote backends is SNATed
    /// to, network byte order (0: no SNAT, such flows are dropped).
    pub node_addr: u32,
    /// SNAT port range, host order, inclusive.
    pub snat_port_min: u16,
    pub snat_port_max: u16,
}
const _: () = assert!(size_of::<NodePortConfig>() == 8);

/// Emit aya-log debug events on the packet path.
pub const CFG_F_DEBUG: u32 = 1 << 0;
/// Deliver packets to pods on this node with `bpf_redirect_peer` (set by the
/// loader when the kernel has the helper, Linux ≥ 5.10; the verifier then
/// prunes the call where it is off).
pub const CFG_F_LOCAL_REDIRECT: u32 = 1 << 1;

/// Default hairpin source address, 169.254.42.1.
pub const DEFAULT_HAIRPIN_ADDR: [u8; 4] = [169, 254, 42, 1];

/// An IPv4 address as the maps store it.
#[inline(always)]
pub const fn ipv4_be(octets: [u8; 4]) -> u32 {
    u32::from_ne_bytes(octets)
}

/// A port as the maps store it.
#[inline(always)]
pub const fn port_be(port: u16) -> u16 {
    port.to_be()
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY (all): `#[repr(C)]`, fixed-size integer fields only, padding
    // written out as fields, so every bit pattern is valid and none is hidden.
    unsafe impl aya::Pod for ServiceKey {}
    unsafe impl aya::Pod for ServiceValue {}
    unsafe impl aya::Pod for Backend {}
    unsafe impl aya::Pod for LocalPrefix {}
    unsafe impl aya::Pod for RevNat {}
    unsafe impl aya::Pod for CtKey {}
    unsafe impl aya::Pod for CtValue {}
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for NodePortConfig {}
    unsafe impl aya::Pod for AffinityKey {}
    unsafe impl aya::Pod for AffinityValue {}
    unsafe impl aya::Pod for SnatValue {}
    unsafe impl aya::Pod for LocalEndpoint {}
    unsafe impl aya::Pod for SockRevKey {}
    unsafe impl aya::Pod for SockRevValue {}
}
