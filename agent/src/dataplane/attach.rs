//! Attaching the classifiers to every pod veth, one per [`Hook`].
//!
//! TCX (kernel ≥ 6.6): each link is pinned at `links/<ifname>-<hook>`. On
//! restart the pinned link is reopened and its program replaced atomically
//! (`bpf_link_update`), so the data path never stops while the agent is
//! down or restarting. Where TCX is unavailable, a clsact qdisc and a
//! `cls_bpf` filter at a fixed priority and handle are used instead; a
//! restart replaces the filter in place.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use aya::programs::links::{FdLink, LinkError, PinnedLink};
use aya::programs::tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle};
use aya::programs::{LinkOrder, SchedClassifier};
use aya::util::KernelVersion;

use super::bpffs::PinDirs;
use super::loader::{Hook, Loaded, POD_HOOKS};
use super::netif::{self, Interface};
use super::DataplaneError;

/// Priority of the netlink fallback filter.
pub const NL_PRIORITY: u16 = 1;
/// Handle of the netlink fallback filter.
pub const NL_HANDLE: TcHandle = TcHandle::new(0, 0x5c1f);

/// How to attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TcMode {
    /// TCX when the kernel has it (≥ 6.6), else netlink.
    Auto,
    /// TCX links, pinned.
    Tcx,
    /// clsact qdisc + cls_bpf filter.
    Netlink,
}

/// TCX links exist from Linux 6.6 on.
fn tcx_supported() -> bool {
    KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0))
}

/// What a pass changed.
#[derive(Debug, Default)]
pub struct AttachReport {
    /// Interfaces and hooks newly attached (`replaced` = an existing link
    /// or filter got the new program).
    pub attached: Vec<(String, Hook, bool)>,
    /// Link pins removed because their interface is gone.
    pub removed_pins: Vec<String>,
    /// Per-interface failures (the other interfaces are still handled).
    pub errors: Vec<DataplaneError>,
}

/// Keeps the classifier attached to the matching interfaces.
#[derive(Debug)]
pub struct Attacher {
    dirs: PinDirs,
    prefix: String,
    mode: TcMode,
    /// Interfaces done, by name, with the index they had.
    attached: BTreeMap<String, u32>,
}

impl Attacher {
    pub fn new(dirs: PinDirs, prefix: &str, mode: TcMode) -> Self {
        let mode = match mode {
            TcMode::Auto if tcx_supported() => TcMode::Tcx,
            TcMode::Auto => TcMode::Netlink,
            m => m,
        };
        Self {
            dirs,
            prefix: prefix.to_owned(),
            mode,
            attached: BTreeMap::new(),
        }
    }

    /// The mode in use.
    pub fn mode(&self) -> TcMode {
        self.mode
    }

    /// The name prefix of the pod veths.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Attaches every hook to new matching interfaces and drops pins of
    /// vanished ones. An interface counts as done once all its hooks are.
    pub fn sync(&mut self, loaded: &mut Loaded) -> Result<AttachReport, DataplaneError> {
        let ifaces = netif::with_prefix(&self.prefix)?;
        let mut report = AttachReport::default();
        self.attached
            .retain(|name, idx| ifaces.iter().any(|i| &i.name == name && i.index == *idx));
        for iface in &ifaces {
            if self.attached.contains_key(&iface.name) {
                continue;
            }
            let mut complete = true;
            for hook in POD_HOOKS {
                let prog = loaded.program(hook.program)?;
                let res = match self.mode {
                    TcMode::Netlink => attach_netlink(prog, iface, hook),
                    _ => attach_tcx(prog, iface, hook, &self.dirs.link(&iface.name, hook.name)),
                };
                match res {
                    Ok(replaced) => report.attached.push((iface.name.clone(), hook, replaced)),
                    Err(e) => {
                        complete = false;
                        report.errors.push(e);
                    }
                }
            }
            if complete {
                self.attached.insert(iface.name.clone(), iface.index);
            }
        }
        report.removed_pins = remove_stale_pins(&self.dirs, &ifaces)?;
        Ok(report)
    }
}

/// TCX: reuse the pinned link if it is alive, else create and pin one.
/// Returns whether an existing link was updated.
pub(crate) fn attach_tcx(
    prog: &mut SchedClassifier,
    iface: &Interface,
    hook: Hook,
    pin: &Path,
) -> Result<bool, DataplaneError> {
    let name = &iface.name;
    match PinnedLink::from_pin(pin) {
        Ok(old) => {
            let replaced = SchedClassifierLink::try_from(FdLink::from(old))
                .map_err(|e| chain(&e))
                .and_then(|link| prog.attach_to_link(link).map_err(|e| chain(&e)));
            match replaced {
                Ok(_) => return Ok(true),
                Err(e) => log::info!("{name}: pinned link unusable ({e}), attaching anew"),
            }
            remove_file(pin)?;
        }
        Err(LinkError::SyscallError(e)) if e.io_error.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            log::info!(
                "{name}: cannot open pinned link ({}), attaching anew",
                chain(&e)
            );
            remove_file(pin)?;
        }
    }
    let attach_err = |source| DataplaneError::Attach {
        iface: name.clone(),
        source,
    };
    let opts = TcAttachOptions::TcxOrder(LinkOrder::default());
    let id = prog
        .attach_with_options(name, hook.attach, opts)
        .map_err(attach_err)?;
    let link = prog.take_link(id).map_err(attach_err)?;
    let fd = FdLink::try_from(link).map_err(|source| DataplaneError::Link {
        iface: name.clone(),
        source,
    })?;
    fd.pin(pin).map_err(|source| DataplaneError::PinLink {
        iface: name.clone(),
        path: pin.into(),
        source,
    })?;
    Ok(false)
}

/// Netlink: replace our filter if present, else add clsact and create it.
/// The link is forgotten on purpose: dropping it would detach the filter.
fn attach_netlink(
    prog: &mut SchedClassifier,
    iface: &Interface,
    hook: Hook,
) -> Result<bool, DataplaneError> {
    let name = &iface.name;
    let attach_err = |source| DataplaneError::Attach {
        iface: name.clone(),
        source,
    };
    let existing = SchedClassifierLink::attached(name, hook.attach, NL_PRIORITY, NL_HANDLE, None);
    let (id, replaced) = match existing.map(|l| prog.attach_to_link(l)) {
        Ok(Ok(id)) => (id, true),
        _ => {
            if let Err(e) = tc::qdisc_add_clsact(name) {
                log::debug!("{name}: clsact: {e} (already present?)");
            }
            let opts = TcAttachOptions::Netlink(NlOptions {
                priority: NL_PRIORITY,
                handle: NL_HANDLE,
                classid: None,
            });
            let id = prog
                .attach_with_options(name, hook.attach, opts)
                .map_err(attach_err)?;
            (id, false)
        }
    };
    let link = prog.take_link(id).map_err(attach_err)?;
    std::mem::forget(link);
    Ok(replaced)
}

/// Removes link pins whose interface no longer exists (the kernel already
/// detached those links; the pin only keeps a defunct link alive).
fn remove_stale_pins(dirs: &PinDirs, ifaces: &[Interface]) -> Result<Vec<String>, DataplaneError> {
    let mut removed = Vec::new();
    for (ifname, path) in link_pins(dirs)? {
        if !ifaces.iter().any(|i| i.name == ifname) {
            remove_file(&path)?;
            removed.push(ifname);
        }
    }
    Ok(removed)
}

/// `(ifname, path)` of every link pin.
pub fn link_pins(dirs: &PinDirs) -> Result<Vec<(String, std::path::PathBuf)>, DataplaneError> {
    let rd = match std::fs::read_dir(&dirs.links) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(DataplaneError::ReadDir {
                path: dirs.links.clone(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in rd.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let ifname = POD_HOOKS
            .iter()
            .find_map(|h| file.strip_suffix(h.name)?.strip_suffix('-'));
        if let Some(ifname) = ifname {
            out.push((ifname.to_owned(), entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// An error with its sources, `a: b: c`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

pub(crate) fn remove_file(path: &Path) -> Result<(), DataplaneError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(DataplaneError::Remove {
            path: path.into(),
            source: e,
        }),
        _ => Ok(()),
    }
}
