//! Root: an agent that finds the `BACKENDS` hash an older agent pinned loads
//! with its entries carried into the array that replaces it (ids inside the
//! array kept, so established flows keep their backends), and unpins the hash.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use skiff_agent::dataplane::loader::{self, LoadOptions, MapSizes};
use skiff_agent::dataplane::maps::PinnedArray;
use skiff_agent::dataplane::PinDirs;
use skiff_agent::proxy::KvMap;
use skiff_common::{defaults, map_names, Backend, NodePortConfig};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_F_NO_PREALLOC: u32 = 1;

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-padded `union bpf_attr` of 128 bytes.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), 128usize) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

/// A `BACKENDS` hash as agents before the array pinned it, with `entries`.
fn pin_old_hash(pin: &Path, entries: &[(u32, Backend)]) -> OwnedFd {
    let mut attr = [0u64; 16];
    // map_type, key_size, value_size, max_entries, map_flags (u32s).
    attr[0] = u64::from(BPF_MAP_TYPE_HASH) | (4u64 << 32);
    attr[1] = 8 | (u64::from(defaults::BACKENDS_MAX) << 32);
    attr[2] = u64::from(BPF_F_NO_PREALLOC);
    let fd = bpf(BPF_MAP_CREATE, &mut attr).expect("creating a hash map") as RawFd;
    // SAFETY: a fresh descriptor from BPF_MAP_CREATE.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    for (id, b) in entries {
        let mut attr = [0u64; 16];
        attr[0] = std::os::fd::AsRawFd::as_raw_fd(&fd) as u64;
        attr[1] = id as *const u32 as u64;
        attr[2] = b as *const Backend as u64;
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).expect("inserting into the hash");
    }
    let path = std::ffi::CString::new(pin.as_os_str().as_encoded_bytes()).unwrap();
    let mut attr = [0u64; 16];
    attr[0] = path.as_ptr() as u64;
    attr[1] = std::os::fd::AsRawFd::as_raw_fd(&fd) as u64;
    bpf(BPF_OBJ_PIN, &mut attr).expect("pinning the hash");
    fd
}

struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_pinned_backends_hash_is_carried_into_the_array() {
    let Some(obj) = std::env::var_os("SKIFF_EBPF_OBJ") else {
        panic!("SKIFF_EBPF_OBJ is not set (run through `cargo xtask test`)");
    };
    let node = format!("skf-{}-upgrade", std::process::id());
    let root = Path::new("/sys/fs/bpf/skiff");
    let dirs = PinDirs::new(root, &node);
    let _cleanup = Cleanup(root.join(&node));
    std::fs::create_dir_all(dirs.map("")).unwrap();
    let b = |last: u8, port: u16| Backend {
        addr: u32::from_ne_bytes([10, 244, 1, last]),
        port: port.to_be(),
        proto: 6,
        flags: 0,
    };
    let past_the_end = defaults::BACKENDS_MAX + 5;
    let old = [(1, b(2, 80)), (7, b(3, 8080)), (past_the_end, b(4, 80))];
    drop(pin_old_hash(&dirs.map(map_names::BACKENDS), &old));

    let opts = LoadOptions {
        dirs: dirs.clone(),
        sizes: MapSizes::default(),
        hairpin_addr: std::net::Ipv4Addr::new(169, 254, 42, 1),
        debug: false,
        object: Some(obj.into()),
        nodeport: NodePortConfig {
            node_addr: 0,
            snat_port_min: defaults::SNAT_PORT_MIN,
            snat_port_max: defaults::SNAT_PORT_MAX,
        },
        host_netns: 0,
    };
    let loaded = loader::load(&opts).expect("loading over the old pin");
    let array = PinnedArray::<Backend>::open(map_names::BACKENDS, &dirs.map(map_names::BACKENDS))
        .expect("BACKENDS is an array now");
    let mut got = array.entries().unwrap();
    got.sort_by_key(|(id, _)| *id);
    assert_eq!(
        got,
        [(1, b(2, 80)), (7, b(3, 8080))],
        "ids kept, the one past the end dropped"
    );
    let leftovers: Vec<String> = std::fs::read_dir(dirs.map(""))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains("OLD"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the old hash is unpinned: {leftovers:?}"
    );
    drop(loaded);
    // Loading again finds the array and changes nothing.
    let again = loader::load(&opts).expect("loading over the array");
    let array =
        PinnedArray::<Backend>::open(map_names::BACKENDS, &dirs.map(map_names::BACKENDS)).unwrap();
    assert_eq!(array.entries().unwrap().len(), 2);
    drop(again);
}
