//! The openraft type configuration and the aliases the rest of the crate uses.

use std::io::Cursor;

use crate::command::{CommandResponse, Proposal};

openraft::declare_raft_types!(
    /// Raft types of the Skiff control plane: commands are object-store writes,
    /// nodes are addressed by their HTTP `host:port`, snapshots are in-memory byte buffers.
    pub TypeConfig:
        D = Proposal,
        R = CommandResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// Identifier of a replica; unique and stable for the life of the cluster.
pub type NodeId = u64;
/// What the cluster knows about a replica: its Raft/HTTP address (`host:port`).
pub type Node = openraft::BasicNode;
/// The Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
