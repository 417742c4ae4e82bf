//! Commands replicated through Raft and their responses.
//!
//! Every command gets a revision, the `resourceVersion` of every object it writes: the larger
//! of its Raft log index and the previous revision + 1. A log entry usually holds one command,
//! so its revision is its log index; the leader packs concurrent writes into one entry
//! ([`Command::Many`]: one fsync for all), and each of them gets a revision of its own.

use serde::{Deserialize, Serialize};

/// One write on the object store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Create `key`; fails with [`OpError::AlreadyExists`] if it exists.
    Create { key: String, value: String },
    /// Replace `key`. With `expected_revision`, fails with [`OpError::Conflict`] unless the
    /// stored `mod_revision` equals it (optimistic concurrency). Fails with
    /// [`OpError::NotFound`] if the key does not exist.
    Update {
        key: String,
        value: String,
        expected_revision: Option<u64>,
    },
    /// Delete `key`, optionally only if its `mod_revision` equals `expected_revision`.
    Delete {
        key: String,
        expected_revision: Option<u64>,
    },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Create { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. } => key,
        }
    }
}

/// The application data of a Raft log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Single(Op),
    /// Ops applied in order in one log entry (one revision). Not a transaction: each op
    /// succeeds or fails on its own, and its result is reported at the same position.
    Batch(Vec<Op>),
    /// `op`, only if `requires` exists (a create's namespace); otherwise the result is
    /// [`OpError::Missing`] and nothing is written. The check and the write are one step of
    /// the state machine, so a create needs no read round before its write.
    Guarded {
        requires: String,
        op: Op,
    },
    /// All of `ops` or none: each op's condition (and that `requires` exists, if given) is
    /// checked before any is applied; on a failed check nothing is written and every
    /// result is that check's error. The keys must differ. (A write together with the
    /// ResourceQuota charges it makes.)
    Atomic {
        requires: Option<String>,
        ops: Vec<Op>,
    },
    /// Independent commands packed into one log entry by the leader's write batcher. Each gets
    /// its own revision and response ([`CommandResponse::batched`]), as if proposed alone.
    Many(Vec<Command>),
}

impl Command {
    /// The ops of a plain command (empty for [`Command::Guarded`], [`Command::Atomic`] and
    /// [`Command::Many`], which the state machine unpacks itself).
    pub fn ops(&self) -> &[Op] {
        match self {
            Command::Single(op) => std::slice::from_ref(op),
            Command::Batch(ops) => ops,
            Command::Guarded { .. } | Command::Atomic { .. } | Command::Many(_) => &[],
        }
    }
}

/// A log entry's application data: a [`Command`], and on the replica that proposed it the
/// token of the write waiting for it (see `state_machine::answers`). Serialized as the bare
/// command: the token never leaves the proposing replica's memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Proposal {
    pub cmd: Command,
    #[serde(skip)]
    pub waiter: Option<u64>,
}

impl Proposal {
    /// `cmd` to be answered to the waiter with `token`.
    pub fn answered_to(cmd: Command, token: u64) -> Self {
        Self {
            cmd,
            waiter: Some(token),
        }
    }
}

impl From<Command> for Proposal {
    fn from(cmd: Command) -> Self {
        Self { cmd, waiter: None }
    }
}

/// A stored object as seen by readers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    /// Opaque serialized object (JSON for the API server).
    pub value: String,
    /// Revision of the write that created the key.
    pub create_revision: u64,
    /// Revision of the last write to the key (the object's `resourceVersion`).
    pub mod_revision: u64,
}

/// Result of one op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpOutcome {
    /// The value before the op, if the key existed.
    pub prev: Option<KeyValue>,
    /// The value after the op (`None` after a delete).
    pub current: Option<KeyValue>,
}

/// Why an op was rejected. Rejected ops change nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum OpError {
    #[error("{key} already exists")]
    AlreadyExists { key: String },
    #[error("{key} not found")]
    NotFound { key: String },
    /// The key a [`Command::Guarded`] requires does not exist.
    #[error("{key} does not exist")]
    Missing { key: String },
    #[error("{key}: expected revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: u64,
        actual: u64,
    },
}

/// Response of an applied log entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommandResponse {
    /// The revision (log index) of the entry.
    pub revision: u64,
    /// One result per op, in the order of [`Command::ops`]; empty for non-command entries.
    pub results: Vec<Result<OpOutcome, OpError>>,
    /// For [`Command::Many`]: one response per packed command, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batched: Vec<CommandResponse>,
}
