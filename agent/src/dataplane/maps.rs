//! The pinned BPF maps as a [`ServiceMaps`] implementation.
//!
//! Opened from their pins, so the agent, the tests and tools all read the
//! same kernel maps: `PinnedMaps::open(&PinDirs::new(root, node))`.

use std::io;
use std::path::Path;

use aya::maps::{HashMap, Map, MapData, MapError};
use aya::Pod;
use skiff_common::{
    map_names, AffinityKey, AffinityValue, Backend, CtKey, CtValue, LocalEndpoint, LocalPrefix,
    RevNat, ServiceKey, ServiceValue, SnatValue,
};

pub use super::array::PinnedArray;

use super::bpffs::PinDirs;
use super::stats::{read_stats, Stats};
use super::DataplaneError;
use crate::proxy::{KvMap, MapOpError, ServiceMaps};

/// One pinned hash map (plain or LRU).
pub struct PinnedHash<K: Pod, V: Pod> {
    name: &'static str,
    map: HashMap<MapData, K, V>,
    /// Upper bound on entries an iteration yields (the kernel restarts a
    /// key walk when the current key is deleted concurrently).
    max_iter: usize,
    max_entries: u32,
}

impl<K: Pod, V: Pod> PinnedHash<K, V> {
    /// Opens the map pinned at `path`, checking its type and key/value sizes.
    pub fn open(name: &'static str, path: &Path) -> Result<Self, DataplaneError> {
        let err = map_error(name, path);
        let data = MapData::from_pin(path).map_err(err)?;
        let max_entries = data.info().map_err(err)?.max_entries();
        let map = HashMap::try_from(Map::from_map_data(data).map_err(err)?).map_err(err)?;
        let max_iter = usize::try_from(max_entries)
            .unwrap_or(usize::MAX)
            .saturating_mul(2);
        Ok(Self {
            name,
            map,
            max_iter,
            max_entries,
        })
    }

    /// The map's capacity.
    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }
}

/// Wraps an error of map `name` pinned at `path`.
pub(super) fn map_error<'a>(
    name: &'static str,
    path: &'a Path,
) -> impl Fn(MapError) -> DataplaneError + Copy + 'a {
    move |source| DataplaneError::Map {
        name,
        path: path.into(),
        source,
    }
}

fn is_not_found(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound | MapError::ElementNotFound => true,
        MapError::SyscallError(s) => s.io_error.kind() == io::ErrorKind::NotFound,
        _ => false,
    }
}

impl<K: Pod, V: Pod> KvMap<K, V> for PinnedHash<K, V> {
    fn get(&self, key: &K) -> Result<Option<V>, MapOpError> {
        match self.map.get(key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(MapOpError::new(self.name, "get", e)),
        }
    }

    fn insert(&mut self, key: K, value: V) -> Result<(), MapOpError> {
        self.map
            .insert(key, value, 0)
            .map_err(|e| MapOpError::new(self.name, "insert", e))
    }

    fn remove(&mut self, key: &K) -> Result<(), MapOpError> {
        match self.map.remove(key) {
            Err(e) if !is_not_found(&e) => Err(MapOpError::new(self.name, "remove", e)),
            _ => Ok(()),
        }
    }

    fn entries(&self) -> Result<Vec<(K, V)>, MapOpError> {
        let mut out = Vec::new();
        for item in self.map.iter().take(self.max_iter) {
            match item {
                Ok(kv) => out.push(kv),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(MapOpError::new(self.name, "iterate", e)),
            }
        }
        Ok(out)
    }
}

/// Every Skiff map of one node, opened from its pins.
pub struct PinnedMaps {
    pub services: PinnedHash<ServiceKey, ServiceValue>,
    pub backends: PinnedArray<Backend>,
    pub rev_nat: PinnedHash<u32, RevNat>,
    pub conntrack: PinnedHash<CtKey, CtValue>,
    /// NodePort SNAT entries (both directions).
    pub snat: PinnedHash<CtKey, SnatValue>,
    pub affinity: PinnedHash<AffinityKey, AffinityValue>,
    /// Pods of this node by address (`bpf_redirect_peer` targets).
    pub local_endpoints: PinnedHash<u32, LocalEndpoint>,
    /// The prefix covering `local_endpoints` (one entry).
    pub local_prefix: PinnedArray<LocalPrefix>,
    dirs: PinDirs,
}

impl PinnedMaps {
    /// Opens the maps pinned in `dirs.node`.
    pub fn open(dirs: &PinDirs) -> Result<Self, DataplaneError> {
        Ok(Self {
            services: PinnedHash::open(map_names::SERVICES, &dirs.map(map_names::SERVICES))?,
            backends: PinnedArray::open(map_names::BACKENDS, &dirs.map(map_names::BACKENDS))?,
            rev_nat: PinnedHash::open(map_names::REV_NAT, &dirs.map(map_names::REV_NAT))?,
            conntrack: PinnedHash::open(map_names::CONNTRACK, &dirs.map(map_names::CONNTRACK))?,
            snat: PinnedHash::open(map_names::SNAT, &dirs.map(map_names::SNAT))?,
            affinity: PinnedHash::open(map_names::AFFINITY, &dirs.map(map_names::AFFINITY))?,
            local_endpoints: PinnedHash::open(
                map_names::LOCAL_ENDPOINTS,
                &dirs.map(map_names::LOCAL_ENDPOINTS),
            )?,
            local_prefix: PinnedArray::open(
                map_names::LOCAL_PREFIX,
                &dirs.map(map_names::LOCAL_PREFIX),
            )?,
            dirs: dirs.clone(),
        })
    }

    /// The per-CPU counters, summed.
    pub fn stats(&self) -> Result<Stats, DataplaneError> {
        read_stats(&self.dirs)
    }
}

impl ServiceMaps for PinnedMaps {
    fn services(&mut self) -> &mut dyn KvMap<ServiceKey, ServiceValue> {
        &mut self.services
    }

    fn backends(&mut self) -> &mut dyn KvMap<u32, Backend> {
        &mut self.backends
    }

    fn backend_id_limit(&self) -> u32 {
        self.backends.max_entries()
    }

    fn rev_nat(&mut self) -> &mut dyn KvMap<u32, RevNat> {
        &mut self.rev_nat
    }

    fn conntrack(&mut self) -> &mut dyn KvMap<CtKey, CtValue> {
        &mut self.conntrack
    }
}
