//! What can go wrong running a container, with what failed and on what.

use std::path::PathBuf;

use super::cgroups::CgroupError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id}: {op}: {source}")]
    Sys {
        id: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id}: setting up the container process failed: {message}")]
    Setup { id: String, message: String },
    #[error("container {id}: invalid spec: {reason}")]
    Spec { id: String, reason: String },
    #[error("container {id}: {source}")]
    Cgroup {
        id: String,
        #[source]
        source: CgroupError,
    },
    #[error("container {id}: state {path}: {reason}")]
    State {
        id: String,
        path: PathBuf,
        reason: String,
    },
    #[error("container {id}: its shim (pid {shim_pid}) is gone without recording an exit status")]
    Lost { id: String, shim_pid: u32 },
}

impl RuntimeError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }

    pub(crate) fn sys(id: &str, op: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        let id = id.to_owned();
        move |source| Self::Sys { id, op, source }
    }
}
