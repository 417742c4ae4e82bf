//! A pinned BPF array whose all-zero entries are free slots (`BACKENDS`), as
//! a [`KvMap`] keyed by index.
//!
//! Writes go through the `bpf(2)` map calls. A full read (recovery after a
//! restart, the periodic audit) would take one call per slot, a million for
//! the default backend capacity, so an array created `BPF_F_MMAPABLE` is read
//! through a read-only mapping of its values instead.

use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::path::Path;
use std::ptr::NonNull;

use aya::maps::{Array, Map, MapData};
use aya::Pod;

use super::DataplaneError;
use crate::proxy::{KvMap, MapOpError};

/// `BPF_F_MMAPABLE` (include/uapi/linux/bpf.h).
const BPF_F_MMAPABLE: u32 = 1 << 10;

pub struct PinnedArray<V: Pod> {
    name: &'static str,
    map: Array<MapData, V>,
    max_entries: u32,
    /// The values, read-only, when the map is mmapable.
    view: Option<Mapping>,
}

/// A read-only shared mapping of an array map's values.
struct Mapping {
    ptr: NonNull<u8>,
    len: NonZeroUsize,
}

// SAFETY: the mapping is only read, through `&self`; the kernel and the BPF
// programs write it concurrently, which readers treat as a snapshot.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what `mmap` returned.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len.get()) };
    }
}

impl<V: Pod> PinnedArray<V> {
    /// Opens the array pinned at `path`, checking its type and value size.
    pub fn open(name: &'static str, path: &Path) -> Result<Self, DataplaneError> {
        let err = super::maps::map_error(name, path);
        let data = MapData::from_pin(path).map_err(err)?;
        let info = data.info().map_err(err)?;
        let (max_entries, flags) = (info.max_entries(), info.map_flags());
        let view = if flags & BPF_F_MMAPABLE != 0 {
            map_values(&data, max_entries, size_of::<V>()).map_err(|io_error| {
                err(aya::maps::MapError::SyscallError(aya::sys::SyscallError {
                    call: "mmap",
                    io_error,
                }))
            })?
        } else {
            None
        };
        let map = Array::try_from(Map::from_map_data(data).map_err(err)?).map_err(err)?;
        Ok(Self {
            name,
            map,
            max_entries,
            view,
        })
    }

    /// The array's length: valid indices are `0..max_entries`.
    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }
}

/// Maps the values of an array of `entries` values of `value_size` bytes
/// (the kernel lays them out every `round_up(value_size, 8)` bytes).
fn map_values(data: &MapData, entries: u32, value_size: usize) -> std::io::Result<Option<Mapping>> {
    use std::os::fd::AsRawFd;
    let stride = value_size.next_multiple_of(8);
    let Some(len) = NonZeroUsize::new(stride * entries as usize) else {
        return Ok(None);
    };
    // SAFETY: a fresh shared read-only mapping of the map's fd; the kernel
    // checks the length against the map and we never write through it.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len.get(),
            libc::PROT_READ,
            libc::MAP_SHARED,
            data.fd().as_fd().as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(NonNull::new(ptr.cast()).map(|ptr| Mapping { ptr, len }))
}

fn is_zero<V: Pod>(v: &V) -> bool {
    // SAFETY: `V: Pod` is plain old data without padding-sensitive
    // invariants; its bytes may be read.
    let bytes = unsafe { std::slice::from_raw_parts((v as *const V).cast::<u8>(), size_of::<V>()) };
    bytes.iter().all(|&b| b == 0)
}

impl<V: Pod> KvMap<u32, V> for PinnedArray<V> {
    fn get(&self, key: &u32) -> Result<Option<V>, MapOpError> {
        if *key >= self.max_entries {
            return Ok(None);
        }
        let v = self
            .map
            .get(key, 0)
            .map_err(|e| MapOpError::new(self.name, "get", e))?;
        Ok((!is_zero(&v)).then_some(v))
    }

    fn insert(&mut self, key: u32, value: V) -> Result<(), MapOpError> {
        self.map
            .set(key, value, 0)
            .map_err(|e| MapOpError::new(self.name, "insert", e))
    }

    fn remove(&mut self, key: &u32) -> Result<(), MapOpError> {
        if *key >= self.max_entries {
            return Ok(());
        }
        // SAFETY: an all-zero `V: Pod` is a valid value (a free slot).
        let zero: V = unsafe { std::mem::zeroed() };
        self.map
            .set(*key, zero, 0)
            .map_err(|e| MapOpError::new(self.name, "remove", e))
    }

    fn entries(&self) -> Result<Vec<(u32, V)>, MapOpError> {
        let mut out = Vec::new();
        match &self.view {
            Some(m) => {
                let stride = size_of::<V>().next_multiple_of(8);
                for i in 0..self.max_entries {
                    // SAFETY: `i * stride + size_of::<V>()` is inside the
                    // mapping (`max_entries * stride` bytes); unaligned read
                    // of plain data.
                    let v: V = unsafe {
                        m.ptr
                            .as_ptr()
                            .add(i as usize * stride)
                            .cast::<V>()
                            .read_unaligned()
                    };
                    if !is_zero(&v) {
                        out.push((i, v));
                    }
                }
            }
            None => {
                for i in 0..self.max_entries {
                    if let Some(v) = self.get(&i)? {
                        out.push((i, v));
                    }
                }
            }
        }
        Ok(out)
    }
}
