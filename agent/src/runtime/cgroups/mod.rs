//! cgroups through cgroups-rs: one [`CgroupManager`] trait, a v1 and a v2
//! implementation, the host's layout detected once ([`Layout::detect`]).
//!
//! Tree (paths relative to each hierarchy's root), as Kubernetes' cgroupfs
//! driver lays out `kubepods`:
//! ```text
//! skiff/                      node parent
//!   pod<uid>/<container>      Guaranteed pods sit directly under it
//!   burstable/pod<uid>/<container>
//!   besteffort/pod<uid>/<container>   (besteffort: cpu.shares 2 / weight 1)
//! ```

pub mod convert;
mod detect;
pub mod qos;
mod stats;
mod v1;
mod v2;

use std::fmt::Debug;
use std::path::PathBuf;

pub use detect::{v2_root, Layout};
pub use qos::{container_resources, pod_resources, qos_class, CgroupResources, QosClass};
pub use stats::CgroupStats;

/// A cgroup error.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {op}: {source}")]
    Cgroups {
        op: &'static str,
        path: String,
        #[source]
        source: Box<cgroups_rs::error::Error>,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup layout: {0}")]
    Layout(String),
    #[error("cgroup {path}: processes still present after {waited_ms} ms: {pids:?}")]
    Busy {
        path: String,
        pids: Vec<u32>,
        waited_ms: u128,
    },
}

/// What Skiff needs from a cgroup hierarchy. Paths are relative to the
/// hierarchy root (`skiff/burstable/pod<uid>/<container>`).
pub trait CgroupManager: Debug + Send + Sync {
    /// The host layout this manager serves.
    fn layout(&self) -> &Layout;
    /// Creates `path` (and its parents) if needed and writes `res`.
    fn apply(&self, path: &str, res: &CgroupResources) -> Result<(), CgroupError>;
    /// Moves process `pid` (all its threads) into `path`.
    fn add_process(&self, path: &str, pid: u32) -> Result<(), CgroupError>;
    /// The processes in `path` (not its children).
    fn procs(&self, path: &str) -> Vec<u32>;
    /// CPU, memory, throttling and OOM counters of `path`.
    fn stats(&self, path: &str) -> Result<CgroupStats, CgroupError>;
    /// Kills what is left in `path` and removes it (children first is the
    /// caller's job). A missing cgroup is not an error.
    fn remove(&self, path: &str) -> Result<(), CgroupError>;
}

/// The manager for this host: detected once per process.
pub fn host_manager() -> Result<&'static dyn CgroupManager, CgroupError> {
    use std::sync::OnceLock;
    static MANAGER: OnceLock<Result<Box<dyn CgroupManager>, String>> = OnceLock::new();
    let m = MANAGER.get_or_init(|| {
        let layout = Layout::detect().map_err(|e| e.to_string())?;
        let m: Box<dyn CgroupManager> = match layout {
            Layout::Unified { .. } => Box::new(v2::V2Manager::new(layout)),
            Layout::Hybrid { .. } | Layout::Legacy => {
                Box::new(v1::V1Manager::new(layout).map_err(|e| e.to_string())?)
            }
        };
        Ok(m)
    });
    m.as_ref()
        .map(|b| b.as_ref())
        .map_err(|e| CgroupError::Layout(e.clone()))
}

/// The node's cgroup tree under one parent (`skiff` by default).
#[derive(Debug, Clone)]
pub struct CgroupTree {
    parent: String,
}

impl CgroupTree {
    pub fn new(parent: impl Into<String>) -> Self {
        Self {
            parent: parent.into(),
        }
    }

    /// The parent cgroup of pods of class `qos`.
    pub fn qos_path(&self, qos: QosClass) -> String {
        match qos {
            QosClass::Guaranteed => self.parent.clone(),
            QosClass::Burstable => format!("{}/burstable", self.parent),
            QosClass::BestEffort => format!("{}/besteffort", self.parent),
        }
    }

    /// `…/pod<uid>`.
    pub fn pod_path(&self, qos: QosClass, pod_uid: &str) -> String {
        format!("{}/pod{pod_uid}", self.qos_path(qos))
    }

    /// `…/pod<uid>/<container id>`.
    pub fn container_path(&self, qos: QosClass, pod_uid: &str, container_id: &str) -> String {
        format!("{}/{container_id}", self.pod_path(qos, pod_uid))
    }

    /// Creates the node parent and the QoS parents.
    pub fn ensure_node(&self, m: &dyn CgroupManager) -> Result<(), CgroupError> {
        let base = CgroupResources::default();
        m.apply(&self.parent, &base)?;
        m.apply(&self.qos_path(QosClass::Burstable), &base)?;
        let besteffort = CgroupResources {
            cpu_shares: Some(convert::MIN_SHARES),
            ..base
        };
        m.apply(&self.qos_path(QosClass::BestEffort), &besteffort)
    }
}
