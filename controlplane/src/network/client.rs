//! Raft network client: openraft's `RaftNetworkFactory`/`RaftNetwork`, each target over a
//! [`PeerConnection`] of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::http::HttpError;
use super::notices::CommitNotices;
use super::paths;
use super::peer::PeerConnection;
use crate::log_store::LogDurability;
use crate::types::{LogId, Node, NodeId, TypeConfig, Vote};

/// Creates one [`Connection`] per target replica.
#[derive(Clone)]
pub struct Network {
    /// This replica's log: a commit index goes out only once the log has it on disk.
    log: LogDurability,
    idle: Idle,
}

impl Network {
    pub fn new(log: LogDurability) -> Self {
        Self {
            log,
            idle: Idle::default(),
        }
    }
}

/// Open connections not in use, by address. openraft makes a client for every read round
/// and vote: they take a connection from here and put it back when dropped, rather than
/// each opening (and leaving in TIME_WAIT) a connection of its own.
#[derive(Clone, Default)]
struct Idle(Arc<Mutex<HashMap<String, Vec<PeerConnection>>>>);

/// Idle connections kept per replica.
const IDLE_PER_PEER: usize = 4;

impl Idle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<PeerConnection>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, addr: &str) -> PeerConnection {
        self.lock()
            .get_mut(addr)
            .and_then(Vec::pop)
            .unwrap_or_else(|| PeerConnection::new(addr))
    }

    fn put(&self, peer: PeerConnection) {
        if !peer.is_open() {
            return;
        }
        let mut idle = self.lock();
        let kept = idle.entry(peer.addr().to_string()).or_default();
        if kept.len() < IDLE_PER_PEER {
            kept.push(peer);
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        Connection {
            peer: self.idle.take(&node.addr),
            idle: self.idle.clone(),
            notices: None,
            confirmed: None,
            log: self.log.clone(),
            sent_commit: None,
            target,
        }
    }
}

/// Raft RPCs to one replica.
pub struct Connection {
    peer: PeerConnection,
    /// Where `peer` goes back when this is dropped.
    idle: Idle,
    /// Started with the first commit notice (see [`CommitNotices`]).
    notices: Option<CommitNotices>,
    /// The vote and last log id of the last append the follower accepted on this stream.
    confirmed: Option<(Vote, Option<LogId>)>,
    log: LogDurability,
    /// The last commit index sent, known to be on this replica's disk.
    sent_commit: Option<LogId>,
    target: NodeId,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let peer = std::mem::replace(&mut self.peer, PeerConnection::new(""));
        self.idle.put(peer);
    }
}

impl Connection {
    async fn call<Req, Resp, E>(
        &mut self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let res: Result<Resp, RaftError<NodeId, E>> = self
            .peer
            .post(path, req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                HttpError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            })?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let notified = self.sent_commit;
        // openraft counts the leader's own entries before they are on disk (the log
        // acknowledges appends early, see `log_store`): followers apply up to this index, so
        // it must be on this (the leader's) disk as well as on a quorum of theirs.
        if let Some(committed) = rpc.leader_commit {
            let wait = self.log.wait_index(committed.index);
            match tokio::time::timeout(option.hard_ttl() / 2, wait).await {
                Ok(Ok(())) => self.sent_commit = Some(committed),
                Ok(Err(e)) => return Err(RPCError::Network(NetworkError::new(&e))),
                // A slow disk: rather than let a heartbeat time out, tell the follower the
                // last commit index known on disk here (followers ignore an older one).
                Err(_) => rpc.leader_commit = self.sent_commit.filter(|c| *c <= committed),
            }
        }
        // Nothing but a newer commit index, for a follower that accepted exactly this
        // position last time: a notice, sent beside the stream (see `notices`).
        let notice = rpc.entries.is_empty()
            && rpc.leader_commit > notified
            && self.confirmed == Some((rpc.vote, rpc.prev_log_id));
        if notice {
            let peer = &self.peer;
            let notices = self
                .notices
                .get_or_insert_with(|| CommitNotices::start(peer.addr().to_string()));
            notices.send(rpc, option.hard_ttl());
            return Ok(AppendEntriesResponse::Success);
        }
        let accepted = (
            rpc.vote,
            rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id),
        );
        // Unknown until answered (openraft may drop this call at its own time limit).
        self.confirmed = None;
        let res = self.call(paths::APPEND, &rpc, &option).await;
        self.confirmed = match res {
            Ok(AppendEntriesResponse::Success) => Some(accepted),
            _ => None,
        };
        res
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(paths::SNAPSHOT, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call(paths::VOTE, &rpc, &option).await
    }
}
