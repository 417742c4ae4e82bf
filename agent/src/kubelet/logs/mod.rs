//! Serving container logs as the kubelet does (`kubectl logs`): the CRI
//! files the runtime's shim writes, read back with Kubernetes' options.
//!
//! - Layout: `<state>/pods/<uid>/logs/<container>/<restartCount>.log`
//!   ([`path`]); the runtime rotates a live file to `.1`, `.2`, … (`.1` the
//!   newest), so an instance's log is `.N … .1`, then the live file
//!   ([`files`]).
//! - [`cri`]: parse records, join partial (`P`) lines, timestamps.
//! - [`read`]: tail, since, limit, timestamps; follow (a bounded poll on the
//!   live file that survives rotation, until the container ends or the
//!   reader goes away).

pub mod cri;
pub mod read;

use std::path::{Path, PathBuf};

pub use cri::{Line, Timestamp};
pub use read::{files, stream, LogOptions};

/// `<state>/pods/<uid>/logs/<container>/<restart>.log`.
pub fn path(state_dir: &Path, uid: &str, container: &str, restart: u32) -> PathBuf {
    state_dir
        .join("pods")
        .join(uid)
        .join("logs")
        .join(container)
        .join(format!("{restart}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_design() {
        assert_eq!(
            path(Path::new("/var/lib/skiff/agent"), "u1", "app", 3),
            Path::new("/var/lib/skiff/agent/pods/u1/logs/app/3.log")
        );
    }
}
