//! Reading the agent's pinned maps (`/sys/fs/bpf/skiff/<node>/<MAP>`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use aya::maps::{HashMap, Map, MapData, PerCpuArray};
use aya::Pod;
use skiff_common::{
    ipv4_be, map_names, port_be, stats, Backend, CtKey, CtValue, RevNat, ServiceKey, ServiceValue,
    SCOPE_INTERNAL,
};

/// Failure to open or read a pinned map.
#[derive(Debug, thiserror::Error)]
pub enum MapsError {
    #[error("opening pinned map {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("reading map {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("reading map {}: {source}", path.display())]
    Agent {
        path: PathBuf,
        #[source]
        source: Box<skiff_agent::dataplane::DataplaneError>,
    },
}

/// The pinned maps of one node.
#[derive(Debug, Clone)]
pub struct PinnedMaps {
    dir: PathBuf,
}

impl PinnedMaps {
    /// Maps pinned in `dir` (e.g. `Node::bpffs_dir()`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn open(&self, name: &str) -> Result<(Map, PathBuf), MapsError> {
        let path = self.dir.join(name);
        let open = |source| MapsError::Open {
            path: path.clone(),
            source,
        };
        let data = MapData::from_pin(&path).map_err(open)?;
        Ok((Map::from_map_data(data).map_err(open)?, path))
    }

    fn entries<K: Pod, V: Pod>(&self, name: &str) -> Result<Vec<(K, V)>, MapsError> {
        let (map, path) = self.open(name)?;
        let read = |source| MapsError::Read {
            path: path.clone(),
            source,
        };
        let map = HashMap::<MapData, K, V>::try_from(map).map_err(read)?;
        map.iter().collect::<Result<Vec<_>, _>>().map_err(read)
    }

    /// Every SERVICES entry.
    pub fn services(&self) -> Result<Vec<(ServiceKey, ServiceValue)>, MapsError> {
        self.entries(map_names::SERVICES)
    }

    /// The frontend (slot 0, internal scope) of `vip:port/proto`, if present.
    pub fn frontend(
        &self,
        vip: Ipv4Addr,
        port: u16,
        proto: u8,
    ) -> Result<Option<ServiceValue>, MapsError> {
        let key = frontend_key(vip, port, proto);
        Ok(self
            .services()?
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v))
    }

    /// The external-scope frontend (NodePort on a node address, or an
    /// externalIP) `addr:port/proto`, if present.
    pub fn external_frontend(
        &self,
        addr: Ipv4Addr,
        port: u16,
        proto: u8,
    ) -> Result<Option<ServiceValue>, MapsError> {
        let key = ServiceKey {
            scope: skiff_common::SCOPE_EXTERNAL,
            ..frontend_key(addr, port, proto)
        };
        Ok(self
            .services()?
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v))
    }

    /// Every SNAT entry (NodePort to remote backends), both directions.
    pub fn snat(&self) -> Result<Vec<(CtKey, skiff_common::SnatValue)>, MapsError> {
        self.entries(map_names::SNAT)
    }

    /// Every BACKENDS entry (the array's used slots, read as the agent
    /// reads them).
    pub fn backends(&self) -> Result<Vec<(u32, Backend)>, MapsError> {
        use skiff_agent::dataplane::maps::PinnedArray;
        use skiff_agent::proxy::KvMap;
        let path = self.dir.join(map_names::BACKENDS);
        let err = |e: skiff_agent::dataplane::DataplaneError| MapsError::Agent {
            path: path.clone(),
            source: Box::new(e),
        };
        let map = PinnedArray::<Backend>::open(map_names::BACKENDS, &path).map_err(err)?;
        map.entries().map_err(|e| err(e.into()))
    }

    /// Every REV_NAT entry.
    pub fn rev_nat(&self) -> Result<Vec<(u32, RevNat)>, MapsError> {
        self.entries(map_names::REV_NAT)
    }

    /// Every CONNTRACK entry.
    pub fn conntrack(&self) -> Result<Vec<(CtKey, CtValue)>, MapsError> {
        self.entries(map_names::CONNTRACK)
    }

    /// STATS summed over CPUs, indexed by `skiff_common::stats::*`.
    pub fn stats(&self) -> Result<Stats, MapsError> {
        let (map, path) = self.open(map_names::STATS)?;
        let read = |source| MapsError::Read {
            path: path.clone(),
            source,
        };
        let array = PerCpuArray::<MapData, u64>::try_from(map).map_err(read)?;
        let mut out = [0u64; stats::COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let values = array.get(&(i as u32), 0).map_err(read)?;
            *slot = values.iter().sum();
        }
        Ok(Stats(out))
    }
}

/// The SERVICES key of a frontend.
pub fn frontend_key(vip: Ipv4Addr, port: u16, proto: u8) -> ServiceKey {
    ServiceKey {
        addr: ipv4_be(vip.octets()),
        port: port_be(port),
        slot: 0,
        proto,
        scope: SCOPE_INTERNAL,
        _pad: [0; 2],
    }
}

/// A map-order address back to an `Ipv4Addr`.
pub fn addr_of(be: u32) -> Ipv4Addr {
    Ipv4Addr::from(be.to_ne_bytes())
}

/// The STATS counters, summed over CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats(pub [u64; stats::COUNT as usize]);

impl Stats {
    /// Counter `index` (a `skiff_common::stats::*` constant).
    pub fn get(&self, index: u32) -> u64 {
        self.0[index as usize]
    }

    /// `self - before`, per counter.
    pub fn since(&self, before: &Stats) -> Stats {
        let mut out = self.0;
        for (o, b) in out.iter_mut().zip(before.0) {
            *o = o.saturating_sub(b);
        }
        Stats(out)
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, v) in stats::NAMES.iter().zip(self.0) {
            write!(f, "{name}={v} ")?;
        }
        Ok(())
    }
}
