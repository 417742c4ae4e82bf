//! The bpf filesystem and Skiff's pin directories on it.
//!
//! Layout: `<root>/<node>/` holds the maps pinned by name
//! ([`skiff_common::map_names`]) and `links/<ifname>-ingress` for each
//! attached pod veth.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use super::DataplaneError;

/// `BPF_FS_MAGIC` from `linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Where bpffs is mounted when it is missing.
pub const BPFFS_MOUNT: &str = "/sys/fs/bpf";

/// The default root of Skiff's pins.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/skiff";

/// The pin directories of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinDirs {
    /// `<root>/<node>`: the maps.
    pub node: PathBuf,
    /// `<root>/<node>/links`: the TCX links.
    pub links: PathBuf,
}

impl PinDirs {
    pub fn new(root: &Path, node_name: &str) -> Self {
        let node = root.join(node_name);
        let links = node.join("links");
        Self { node, links }
    }

    /// The pin of a map.
    pub fn map(&self, name: &str) -> PathBuf {
        self.node.join(name)
    }

    /// The pin of the link of `ifname` at hook `hook` (`ingress`, `egress`).
    pub fn link(&self, ifname: &str, hook: &str) -> PathBuf {
        self.links.join(format!("{ifname}-{hook}"))
    }

    /// Mounts bpffs if needed and creates the directories.
    pub fn create(&self) -> Result<(), DataplaneError> {
        ensure_bpffs(&self.node)?;
        std::fs::create_dir_all(&self.links).map_err(|source| DataplaneError::CreateDir {
            path: self.links.clone(),
            source,
        })?;
        if !is_bpffs(&self.node) {
            return Err(DataplaneError::NotBpffs {
                path: self.node.clone(),
            });
        }
        Ok(())
    }
}

/// Whether `path` (which must exist) is on a bpf filesystem.
pub fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is writable.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    let magic = st.f_type as i64;
    rc == 0 && magic == BPF_FS_MAGIC
}

/// Mounts bpffs at [`BPFFS_MOUNT`] when `dir` lies below it and it is not
/// mounted yet.
pub fn ensure_bpffs(dir: &Path) -> Result<(), DataplaneError> {
    let mount = Path::new(BPFFS_MOUNT);
    if !dir.starts_with(mount) || is_bpffs(mount) {
        return Ok(());
    }
    std::fs::create_dir_all(mount).map_err(|source| DataplaneError::CreateDir {
        path: mount.into(),
        source,
    })?;
    log::info!("mounting bpffs at {BPFFS_MOUNT}");
    let target = CString::new(BPFFS_MOUNT).unwrap_or_default();
    let fstype = c"bpf";
    // SAFETY: all pointers are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(DataplaneError::MountBpffs {
            path: mount.into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}
