//! Errors of the control-plane library.

use std::path::PathBuf;

use crate::command::OpError;
use crate::types::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {path}: {source}")]
    Db { path: PathBuf, source: redb::Error },
    #[error("reading the store: {0}")]
    Read(#[source] redb::Error),
    #[error("decoding stored data: {0}")]
    Decode(#[source] serde_json::Error),
    /// The write was rejected by the state machine (exists, not found, conflict).
    #[error(transparent)]
    Op(#[from] OpError),
    /// This replica is not the leader; retry on `leader_addr` (if known).
    #[error("not the leader (leader: {leader_id:?} at {leader_addr:?})")]
    NotLeader {
        leader_id: Option<NodeId>,
        leader_addr: Option<String>,
    },
    /// The requested revision is older than the retained event history (HTTP 410).
    #[error("revision {requested} is compacted; oldest watchable revision is {oldest}")]
    Gone { requested: u64, oldest: u64 },
    #[error("raft: {0}")]
    Raft(String),
    #[error("request to {addr}: {message}")]
    Network { addr: String, message: String },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("the replica is stopped")]
    Stopped,
    #[error("timed out: {0}")]
    Timeout(String),
}
