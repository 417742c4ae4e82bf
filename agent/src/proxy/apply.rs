//! Running [`Op`]s against the maps, through a small trait so that the same
//! code drives the pinned BPF maps and the in-memory [`MemMaps`] of the unit
//! tests.

use std::collections::BTreeMap;

use skiff_common::{map_names, Backend, CtKey, CtValue, RevNat, ServiceKey, ServiceValue};

use super::diff::Op;

/// A map operation failed.
#[derive(Debug, thiserror::Error)]
#[error("map {map}: {op} failed: {source}")]
pub struct MapOpError {
    /// The map's name ([`map_names`]).
    pub map: &'static str,
    /// `get`, `insert`, `remove` or `iterate`.
    pub op: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl MapOpError {
    pub fn new(
        map: &'static str,
        op: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            map,
            op,
            source: source.into(),
        }
    }
}

/// One key-value map.
pub trait KvMap<K, V> {
    fn get(&self, key: &K) -> Result<Option<V>, MapOpError>;
    fn insert(&mut self, key: K, value: V) -> Result<(), MapOpError>;
    /// Removing a missing key is not an error.
    fn remove(&mut self, key: &K) -> Result<(), MapOpError>;
    /// A snapshot of every entry (entries changing meanwhile may be missed).
    fn entries(&self) -> Result<Vec<(K, V)>, MapOpError>;
}

/// The maps the proxy programs.
pub trait ServiceMaps {
    fn services(&mut self) -> &mut dyn KvMap<ServiceKey, ServiceValue>;
    fn backends(&mut self) -> &mut dyn KvMap<u32, Backend>;
    /// Backend ids are below this (the `BACKENDS` array's length).
    fn backend_id_limit(&self) -> u32 {
        u32::MAX
    }
    fn rev_nat(&mut self) -> &mut dyn KvMap<u32, RevNat>;
    fn conntrack(&mut self) -> &mut dyn KvMap<CtKey, CtValue>;
}

/// Applies `ops` in order, stopping at the first failure (the next
/// reconcile pass starts again from what the maps then hold).
pub fn apply(ops: &[Op], maps: &mut dyn ServiceMaps) -> Result<(), MapOpError> {
    for op in ops {
        apply_one(op, maps)?;
    }
    Ok(())
}

/// Applies a single operation.
pub fn apply_one(op: &Op, maps: &mut dyn ServiceMaps) -> Result<(), MapOpError> {
    match *op {
        Op::UpsertBackend(id, b) => maps.backends().insert(id, b),
        Op::UpsertRevNat(id, rn) => maps.rev_nat().insert(id, rn),
        Op::UpsertService(k, v) => maps.services().insert(k, v),
        Op::DeleteService(k) => maps.services().remove(&k),
        Op::DeleteBackend(id) => maps.backends().remove(&id),
        Op::DeleteRevNat(id) => maps.rev_nat().remove(&id),
    }
}

/// An in-memory map with an optional capacity (inserting a new key into a
/// full map fails like `E2BIG` from the kernel).
#[derive(Clone, Debug)]
pub struct MemMap<K, V> {
    name: &'static str,
    pub entries: BTreeMap<K, V>,
    pub capacity: usize,
}

impl<K, V> MemMap<K, V> {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            entries: BTreeMap::new(),
            capacity: usize::MAX,
        }
    }
}

impl<K: Ord + Copy, V: Copy> KvMap<K, V> for MemMap<K, V> {
    fn get(&self, key: &K) -> Result<Option<V>, MapOpError> {
        Ok(self.entries.get(key).copied())
    }

    fn insert(&mut self, key: K, value: V) -> Result<(), MapOpError> {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            let err = std::io::Error::from_raw_os_error(libc::E2BIG);
            return Err(MapOpError::new(self.name, "insert", err));
        }
        self.entries.insert(key, value);
        Ok(())
    }

    fn remove(&mut self, key: &K) -> Result<(), MapOpError> {
        self.entries.remove(key);
        Ok(())
    }

    fn entries(&self) -> Result<Vec<(K, V)>, MapOpError> {
        Ok(self.entries.iter().map(|(k, v)| (*k, *v)).collect())
    }
}

/// Ordered conntrack keys for the in-memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct CtOrd([u8; 16]);

/// In-memory [`ServiceMaps`], for tests and dry runs.
#[derive(Clone, Debug)]
pub struct MemMaps {
    pub services: MemMap<ServiceKey, ServiceValue>,
    pub backends: MemMap<u32, Backend>,
    pub rev_nat: MemMap<u32, RevNat>,
    pub conntrack: MemCt,
    /// Backend ids are below this (as the `BACKENDS` array's length).
    pub backend_id_limit: u32,
}

impl Default for MemMaps {
    fn default() -> Self {
        Self {
            services: MemMap::new(map_names::SERVICES),
            backends: MemMap::new(map_names::BACKENDS),
            rev_nat: MemMap::new(map_names::REV_NAT),
            conntrack: MemCt::default(),
            backend_id_limit: u32::MAX,
        }
    }
}

/// In-memory conntrack map (`CtKey` has no `Ord`, so it is keyed by bytes).
#[derive(Clone, Debug, Default)]
pub struct MemCt {
    entries: BTreeMap<CtOrd, (CtKey, CtValue)>,
}

impl MemCt {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn ord(k: &CtKey) -> CtOrd {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&k.saddr.to_ne_bytes());
        b[4..8].copy_from_slice(&k.daddr.to_ne_bytes());
        b[8..10].copy_from_slice(&k.sport.to_ne_bytes());
        b[10..12].copy_from_slice(&k.dport.to_ne_bytes());
        b[12] = k.proto;
        b[13] = k.dir;
        CtOrd(b)
    }
}

impl KvMap<CtKey, CtValue> for MemCt {
    fn get(&self, key: &CtKey) -> Result<Option<CtValue>, MapOpError> {
        Ok(self.entries.get(&Self::ord(key)).map(|e| e.1))
    }

    fn insert(&mut self, key: CtKey, value: CtValue) -> Result<(), MapOpError> {
        self.entries.insert(Self::ord(&key), (key, value));
        Ok(())
    }

    fn remove(&mut self, key: &CtKey) -> Result<(), MapOpError> {
        self.entries.remove(&Self::ord(key));
        Ok(())
    }

    fn entries(&self) -> Result<Vec<(CtKey, CtValue)>, MapOpError> {
        Ok(self.entries.values().copied().collect())
    }
}

impl ServiceMaps for MemMaps {
    fn services(&mut self) -> &mut dyn KvMap<ServiceKey, ServiceValue> {
        &mut self.services
    }

    fn backends(&mut self) -> &mut dyn KvMap<u32, Backend> {
        &mut self.backends
    }

    fn backend_id_limit(&self) -> u32 {
        self.backend_id_limit
    }

    fn rev_nat(&mut self) -> &mut dyn KvMap<u32, RevNat> {
        &mut self.rev_nat
    }

    fn conntrack(&mut self) -> &mut dyn KvMap<CtKey, CtValue> {
        &mut self.conntrack
    }
}
