//! Removing everything the agent pinned and attached for a node.
//!
//! Run it with the agent stopped: a running agent holds its own references
//! to the links and would keep them attached until it exits.

use std::io;

use aya::programs::tc;

use super::attach::{link_pins, remove_file};
use super::bpffs::PinDirs;
use super::loader::POD_HOOKS;
use super::{netif, DataplaneError};

/// What a teardown removed.
#[derive(Debug, Default)]
pub struct TeardownReport {
    pub link_pins: usize,
    pub netlink_filters: usize,
    pub other_pins: usize,
}

/// Detaches the classifiers from the matching interfaces of the current
/// network namespace and removes the node's pins and directories.
pub fn teardown(dirs: &PinDirs, prefix: &str) -> Result<TeardownReport, DataplaneError> {
    let mut report = TeardownReport::default();
    // TCX links: the pin is the last reference once the agent is gone.
    for (_, path) in link_pins(dirs)? {
        remove_file(&path)?;
        report.link_pins += 1;
    }
    // Netlink filters (fallback mode) live on the interfaces themselves.
    for iface in netif::with_prefix(prefix)? {
        for hook in POD_HOOKS {
            match tc::qdisc_detach_program(&iface.name, hook.attach, hook.program) {
                Ok(()) => report.netlink_filters += 1,
                Err(tc::TcError::IoError(e)) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    // No clsact qdisc at all is the usual case under TCX.
                    log::debug!("{}: no netlink filter removed: {source}", iface.name);
                }
            }
        }
    }
    for dir in [&dirs.links, &dirs.node] {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(DataplaneError::ReadDir {
                    path: dir.clone(),
                    source,
                })
            }
        };
        for entry in rd.flatten() {
            if entry.path().is_file() || entry.file_type().is_ok_and(|t| !t.is_dir()) {
                remove_file(&entry.path())?;
                report.other_pins += 1;
            }
        }
        match std::fs::remove_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(DataplaneError::Remove {
                    path: dir.clone(),
                    source: e,
                })
            }
            _ => {}
        }
    }
    Ok(report)
}
