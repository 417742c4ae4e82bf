//! Raft network client: openraft's `RaftNetworkFactory`/`RaftNetwork` over [`HttpClient`].

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

use super::http::{HttpClient, HttpError};
use super::paths;
use crate::log_store::LogDurability;
use crate::types::{LogId, Node, NodeId, TypeConfig};

/// Creates one [`Connection`] per target replica.
#[derive(Clone)]
pub struct Network {
    http: HttpClient,
    /// This replica's log: a commit index goes out only once the log has it on disk.
    log: LogDurability,
}

impl Network {
    pub fn new(http: HttpClient, log: LogDurability) -> Self {
        Self { http, log }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        Connection {
            http: self.http.clone(),
            log: self.log.clone(),
            sent_commit: None,
            target,
            addr: node.addr.clone(),
        }
    }
}

/// Raft RPCs to one replica.
pub struct Connection {
    http: HttpClient,
    log: LogDurability,
    /// The last commit index sent, known to be on this replica's disk.
    sent_commit: Option<LogId>,
    target: NodeId,
    addr: String,
}

impl Connection {
    async fn call<Req, Resp, E>(
        &self,
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
            .http
            .post(&self.addr, path, req, option.hard_ttl())
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
        self.call(paths::APPEND, &rpc, &option).await
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
