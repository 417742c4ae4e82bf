//! The service proxy: what the BPF maps should hold, and how to get there.
//!
//! Pure code, no root: [`translate`] turns Kubernetes objects into a
//! [`DesiredState`], [`diff`] compares it with what the maps hold and emits
//! ordered operations, [`apply`] runs them against any [`ServiceMaps`]
//! implementation (the pinned BPF maps, or an in-memory fake in tests), and
//! [`conntrack`] expires connection-tracking entries. [`latency`] measures how long a
//! change in the store takes to reach the maps.

pub mod apply;
pub mod conntrack;
pub mod diff;
pub mod external;
pub mod ids;
pub mod latency;
pub mod reconcile;
pub mod translate;
pub mod view;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use skiff_common::{ipv4_be, port_be, Backend, ServiceKey, PROTO_TCP, PROTO_UDP};

pub use apply::{apply, KvMap, MapOpError, MemMaps, ServiceMaps};
pub use diff::{diff, CurrentState, Op};
pub use ids::IdAllocator;
pub use reconcile::{Proxy, SyncReport};
pub use translate::{translate, TranslateInput};
pub use view::FrontendView;

/// A transport protocol the data path load-balances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// The IP protocol number, as the maps store it.
    pub const fn number(self) -> u8 {
        match self {
            Self::Tcp => PROTO_TCP,
            Self::Udp => PROTO_UDP,
        }
    }

    /// The protocol for an IP protocol number, if the data path handles it.
    pub const fn from_number(n: u8) -> Option<Self> {
        match n {
            PROTO_TCP => Some(Self::Tcp),
            PROTO_UDP => Some(Self::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
        })
    }
}

/// An (address, port, protocol) triple in host order, used for frontends
/// and backends alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct L4Addr {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub proto: Proto,
}

impl L4Addr {
    pub const fn new(addr: Ipv4Addr, port: u16, proto: Proto) -> Self {
        Self { addr, port, proto }
    }

    /// The backend-map value for this address.
    pub const fn to_backend(self, flags: u8) -> Backend {
        Backend {
            addr: ipv4_be(self.addr.octets()),
            port: port_be(self.port),
            proto: self.proto.number(),
            flags,
        }
    }

    /// The address a backend-map value names, if its protocol is handled.
    pub fn from_backend(b: &Backend) -> Option<Self> {
        Some(Self {
            addr: Ipv4Addr::from(b.addr.to_ne_bytes()),
            port: u16::from_be(b.port),
            proto: Proto::from_number(b.proto)?,
        })
    }
}

impl fmt::Display for L4Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.addr, self.port, self.proto)
    }
}

/// A frontend: the address clients connect to, plus the scope of its
/// services-map entries (`SCOPE_INTERNAL` for ClusterIPs; NodePorts with
/// `externalTrafficPolicy: Local` will add an external-scope twin).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrontendKey {
    pub l4: L4Addr,
    pub scope: u8,
}

impl FrontendKey {
    /// The services-map key of slot `slot` of this frontend.
    pub const fn slot_key(&self, slot: u16) -> ServiceKey {
        ServiceKey {
            addr: ipv4_be(self.l4.addr.octets()),
            port: port_be(self.l4.port),
            slot,
            proto: self.l4.proto.number(),
            scope: self.scope,
            _pad: [0; 2],
        }
    }

    /// The frontend a services-map key belongs to; `None` for VIP markers
    /// (protocol 0) and unknown protocols.
    pub fn from_service_key(k: &ServiceKey) -> Option<Self> {
        Some(Self {
            l4: L4Addr {
                addr: Ipv4Addr::from(k.addr.to_ne_bytes()),
                port: u16::from_be(k.port),
                proto: Proto::from_number(k.proto)?,
            },
            scope: k.scope,
        })
    }
}

/// One frontend as it should be programmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredFrontend {
    /// `namespace/name:port` of the Service, for logs.
    pub service: String,
    /// Backends that take new flows, in slot order (slot 1 first).
    pub backends: Vec<L4Addr>,
    /// `SVC_F_*` bits.
    pub flags: u32,
    /// `sessionAffinity: ClientIP` timeout, 0 when off.
    pub affinity_timeout_s: u32,
}

/// Everything the maps should hold, keyed by addresses (ids are assigned
/// later by the [`IdAllocator`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub frontends: BTreeMap<FrontendKey, DesiredFrontend>,
    /// Every backend that needs an entry, with its `BACKEND_F_*` flags:
    /// the ones in slots plus terminating-but-serving ones.
    pub backends: BTreeMap<L4Addr, u8>,
    /// ClusterIPs that get a VIP marker entry.
    pub vips: BTreeSet<Ipv4Addr>,
    /// How many Services contributed at least one VIP.
    pub services: usize,
}

/// The services-map key of the VIP marker of `vip`.
pub const fn vip_marker_key(vip: Ipv4Addr) -> ServiceKey {
    ServiceKey {
        addr: ipv4_be(vip.octets()),
        port: 0,
        slot: 0,
        proto: 0,
        scope: skiff_common::SCOPE_INTERNAL,
        _pad: [0; 2],
    }
}
