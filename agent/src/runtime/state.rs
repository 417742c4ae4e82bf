//! What survives an agent restart: `<state>/<id>/state.json` (pids with
//! their start times) and `<state>/<id>/exit.json` (written by the shim).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sys::proc_start_time;
use super::RuntimeError;

/// A started container, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    /// Host pid of the container's main process (pid 1 inside).
    pub pid: u32,
    /// Its `/proc/<pid>/stat` starttime: guards against pid reuse.
    pub pid_start: u64,
    pub shim_pid: u32,
    pub shim_start: u64,
    pub cgroup: Option<String>,
    pub log_path: PathBuf,
    /// Seconds since the epoch.
    pub started_at: i64,
}

/// How a container's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// The exit code Kubernetes reports: the code, or 128 + signal.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Code(c) => c,
            Self::Signal(s) => 128 + s,
        }
    }
}

impl ContainerState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    pub fn save(&self, dir: &Path) -> Result<(), RuntimeError> {
        let tmp = dir.join("state.json.tmp");
        let json = serde_json::to_vec_pretty(self).expect("state serializes");
        fs::write(&tmp, json).map_err(RuntimeError::io("write", &tmp))?;
        fs::rename(&tmp, Self::path(dir))
            .map_err(RuntimeError::io("rename into place", Self::path(dir)))
    }

    pub fn load(dir: &Path, id: &str) -> Result<Self, RuntimeError> {
        let p = Self::path(dir);
        let bytes = fs::read(&p).map_err(RuntimeError::io("read", &p))?;
        serde_json::from_slice(&bytes).map_err(|e| RuntimeError::State {
            id: id.to_owned(),
            path: p,
            reason: e.to_string(),
        })
    }

    /// Whether the main process is still the one we started.
    pub fn pid_alive(&self) -> bool {
        proc_start_time(self.pid) == Some(self.pid_start)
    }

    pub fn shim_alive(&self) -> bool {
        proc_start_time(self.shim_pid) == Some(self.shim_start)
    }
}

/// The status the shim recorded, if it did.
pub fn read_exit(dir: &Path) -> Option<ExitStatus> {
    let bytes = fs::read(dir.join("exit.json")).ok()?;
    #[derive(Deserialize)]
    struct Raw {
        code: Option<i32>,
        signal: Option<i32>,
    }
    let raw: Raw = serde_json::from_slice(&bytes).ok()?;
    match (raw.code, raw.signal) {
        (_, Some(s)) => Some(ExitStatus::Signal(s)),
        (Some(c), None) => Some(ExitStatus::Code(c)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(start_delta: u64) -> ContainerState {
        let pid = std::process::id();
        ContainerState {
            id: "c".into(),
            pid,
            pid_start: proc_start_time(pid).unwrap() + start_delta,
            shim_pid: pid,
            shim_start: 0,
            cgroup: None,
            log_path: "/x".into(),
            started_at: 0,
        }
    }

    #[test]
    fn a_reused_pid_is_not_our_process() {
        assert!(me(0).pid_alive());
        assert!(!me(1).pid_alive(), "same pid, other start time");
        assert!(!me(0).shim_alive());
    }

    #[test]
    fn state_and_exit_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = me(0);
        s.save(dir.path()).unwrap();
        assert_eq!(ContainerState::load(dir.path(), "c").unwrap(), s);
        assert_eq!(read_exit(dir.path()), None);
        fs::write(dir.path().join("exit.json"), r#"{"signal":9}"#).unwrap();
        assert_eq!(read_exit(dir.path()), Some(ExitStatus::Signal(9)));
        assert_eq!(ExitStatus::Signal(9).exit_code(), 137);
    }
}
