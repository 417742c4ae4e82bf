//! The data path's per-CPU counters ([`skiff_common::stats`]), summed.

use std::fmt;

use aya::maps::{Map, MapData, PerCpuArray};
use skiff_common::{map_names, stats};

use super::bpffs::PinDirs;
use super::DataplaneError;

/// Counter totals over all CPUs, indexed by [`skiff_common::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub counters: [u64; stats::COUNT as usize],
}

impl Stats {
    /// One counter, e.g. `stats.get(skiff_common::stats::NEW_FLOWS)`.
    pub fn get(&self, index: u32) -> u64 {
        self.counters
            .get(usize::try_from(index).unwrap_or(usize::MAX))
            .copied()
            .unwrap_or(0)
    }

    /// `(name, value)` pairs in index order.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        stats::NAMES
            .iter()
            .copied()
            .zip(self.counters.iter().copied())
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, v)) in self.named().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={v}")?;
        }
        Ok(())
    }
}

/// The STATS map pinned in `dirs.node`.
fn open_stats(dirs: &PinDirs) -> Result<PerCpuArray<MapData, u64>, DataplaneError> {
    let path = dirs.map(map_names::STATS);
    let err = |source| DataplaneError::Map {
        name: map_names::STATS,
        path: path.clone(),
        source,
    };
    let data = MapData::from_pin(&path).map_err(err)?;
    PerCpuArray::try_from(Map::from_map_data(data).map_err(err)?).map_err(err)
}

/// How many counters the pinned STATS map has (an older agent's may have
/// fewer than [`stats::COUNT`]).
pub fn pinned_counters(dirs: &PinDirs) -> Result<u32, DataplaneError> {
    Ok(open_stats(dirs)?.len())
}

/// Reads the STATS map pinned in `dirs.node`.
pub fn read_stats(dirs: &PinDirs) -> Result<Stats, DataplaneError> {
    let path = dirs.map(map_names::STATS);
    let err = |source| DataplaneError::Map {
        name: map_names::STATS,
        path: path.clone(),
        source,
    };
    let array = open_stats(dirs)?;
    let mut out = Stats::default();
    for (i, slot) in (0..stats::COUNT.min(array.len())).zip(out.counters.iter_mut()) {
        let per_cpu = array.get(&i, 0).map_err(err)?;
        *slot = per_cpu.iter().copied().fold(0u64, u64::wrapping_add);
    }
    Ok(out)
}
