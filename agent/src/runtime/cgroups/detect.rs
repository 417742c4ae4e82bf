//! Which cgroup layout the host has, from statfs magic numbers.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use super::CgroupError;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const HYBRID_UNIFIED: &str = "/sys/fs/cgroup/unified";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// The host's cgroup layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup2 at /sys/fs/cgroup: every controller in one tree (most hosts).
    Unified { root: PathBuf },
    /// v1 controller hierarchies under a tmpfs at /sys/fs/cgroup, plus a
    /// cgroup2 tree (`unified`) that holds no cpu/memory controller: the
    /// controllers are driven through v1.
    Hybrid { unified: PathBuf },
    /// Only v1 hierarchies.
    Legacy,
}

fn fs_magic(path: &Path) -> Option<i64> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statfs fills the zeroed struct; c is a valid path.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        (libc::statfs(c.as_ptr(), &mut st) == 0).then_some(st.f_type as i64)
    }
}

/// The cgroup v2 hierarchy's root, whatever the layout: `/sys/fs/cgroup` on a unified
/// host, `/sys/fs/cgroup/unified` on a hybrid one (where BPF cgroup hooks attach even
/// though the controllers are driven through v1).
pub fn v2_root() -> Option<PathBuf> {
    [CGROUP_ROOT, HYBRID_UNIFIED]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| fs_magic(p) == Some(CGROUP2_SUPER_MAGIC))
}

impl Layout {
    /// Detects the layout of this host.
    pub fn detect() -> Result<Self, CgroupError> {
        let root = Path::new(CGROUP_ROOT);
        match fs_magic(root) {
            Some(CGROUP2_SUPER_MAGIC) => Ok(Self::Unified { root: root.to_path_buf() }),
            Some(TMPFS_MAGIC) => {
                let unified = Path::new(HYBRID_UNIFIED);
                if fs_magic(unified) == Some(CGROUP2_SUPER_MAGIC) {
                    let controllers = std::fs::read_to_string(unified.join("cgroup.controllers")).unwrap_or_default();
                    if controllers.split_whitespace().any(|c| c == "cpu" || c == "memory") {
                        return Err(CgroupError::Layout(format!(
                            "hybrid host whose cgroup2 tree {HYBRID_UNIFIED} holds cpu/memory ({}); \
                             bind them to v1 or boot with systemd.unified_cgroup_hierarchy=1",
                            controllers.trim()
                        )));
                    }
                    Ok(Self::Hybrid { unified: unified.to_path_buf() })
                } else {
                    Ok(Self::Legacy)
                }
            }
            other => Err(CgroupError::Layout(format!(
                "{CGROUP_ROOT} is neither cgroup2 nor a tmpfs of v1 hierarchies (fs magic {other:?})"
            ))),
        }
    }

    /// Whether controllers are driven through cgroup v2.
    pub fn is_v2(&self) -> bool {
        matches!(self, Self::Unified { .. })
    }
}
