//! What a replica does for its callers: writes (forwarded to the leader), linearizable or
//! local reads, membership changes. Shared by [`super::ControlPlane`] and the HTTP service.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::batcher::WriteBatcher;
use super::read_barrier::ReadBarrier;
use crate::command::{Command, CommandResponse};
use crate::error::Error;
use crate::log_store::LogDurability;
use crate::network::http::{HttpClient, HttpError};
use crate::network::paths;
use crate::network::server::WireError;
use crate::state_machine::StoreReader;
use crate::types::{Node, NodeId, Raft};
use crate::{KeyValue, ListPage};

/// A read served by the leader for a follower.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReadRequest {
    Get {
        key: String,
    },
    List {
        prefix: String,
        limit: usize,
        continue_token: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReadResponse {
    Get { kv: Option<KeyValue>, revision: u64 },
    List(ListPage),
}

/// Ask a member to add the replica `id` at `addr`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub id: NodeId,
    pub addr: String,
}

pub(crate) struct Shared {
    pub(crate) id: NodeId,
    pub(crate) addr: String,
    pub(crate) raft: Raft,
    pub(crate) reader: StoreReader,
    pub(crate) http: HttpClient,
    /// How long a write or read keeps retrying while there is no reachable leader.
    pub(crate) request_timeout: Duration,
    /// Concurrent linearizable reads share leadership rounds.
    pub(crate) read_barrier: ReadBarrier,
    /// Concurrent writes share log entries.
    pub(crate) batcher: WriteBatcher,
    /// How far this replica's log is on disk (answers to the leader wait for it).
    pub(crate) durability: LogDurability,
}

fn raft_err<E: std::fmt::Display>(e: E) -> Error {
    Error::Raft(e.to_string())
}

/// `Error::NotLeader` from openraft's forward-to-leader hint.
fn not_leader(fwd: &openraft::error::ForwardToLeader<NodeId, Node>) -> Error {
    Error::NotLeader {
        leader_id: fwd.leader_id,
        leader_addr: fwd.leader_node.as_ref().map(|n| n.addr.clone()),
    }
}

impl Shared {
    /// Propose `cmd` on this replica; `NotLeader` if it is not the leader.
    /// Concurrent writes share log entries (see [`WriteBatcher`]).
    pub(crate) async fn write_local(&self, cmd: Command) -> Result<CommandResponse, Error> {
        self.batcher.write(cmd).await
    }

    /// Propose `cmd`, forwarding it to the leader when this replica is a follower. Retries
    /// (until `request_timeout`) only while the command cannot have been delivered: no known
    /// leader, or the leader refused the connection.
    pub(crate) async fn write(&self, cmd: Command) -> Result<CommandResponse, Error> {
        self.with_leader(|leader_addr| {
            let cmd = cmd.clone();
            async move {
                match leader_addr {
                    None => self.write_local(cmd).await,
                    Some(addr) => self.forward(&addr, paths::WRITE, &cmd).await,
                }
            }
        })
        .await
    }

    /// A linearizable read: on the leader after `ensure_linearizable`, else on the leader.
    pub(crate) async fn read_linearizable(&self, req: ReadRequest) -> Result<ReadResponse, Error> {
        self.with_leader(|leader_addr| {
            let req = req.clone();
            async move {
                match leader_addr {
                    None => self.read_local_linearizable(req).await,
                    Some(addr) => self.forward(&addr, paths::READ, &req).await,
                }
            }
        })
        .await
    }

    pub(crate) async fn read_local_linearizable(
        &self,
        req: ReadRequest,
    ) -> Result<ReadResponse, Error> {
        self.read_barrier
            .ensure(|| async {
                self.raft
                    .ensure_linearizable()
                    .await
                    .map(drop)
                    .map_err(|e| match e.forward_to_leader() {
                        Some(fwd) => not_leader(fwd),
                        None => raft_err(e),
                    })
            })
            .await?;
        self.read_local(req)
    }

    pub(crate) fn read_local(&self, req: ReadRequest) -> Result<ReadResponse, Error> {
        Ok(match req {
            ReadRequest::Get { key } => {
                let (kv, revision) = self.reader.get(&key)?;
                ReadResponse::Get { kv, revision }
            }
            ReadRequest::List {
                prefix,
                limit,
                continue_token,
            } => ReadResponse::List(
                self.reader
                    .list(&prefix, limit, continue_token.as_deref())?,
            ),
        })
    }

    /// Run `op` locally (`None`) when this replica leads, else with the leader's address;
    /// retry while the leader is unknown or unreachable.
    async fn with_leader<T, F, Fut>(&self, op: F) -> Result<T, Error>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let deadline = Instant::now() + self.request_timeout;
        let mut metrics = self.raft.server_metrics();
        loop {
            let target = {
                let m = metrics.borrow_and_update();
                if m.state == ServerState::Leader {
                    Some(None)
                } else {
                    m.current_leader.and_then(|l| {
                        m.membership_config
                            .membership()
                            .get_node(&l)
                            .map(|n| Some(n.addr.clone()))
                    })
                }
            };
            let result = match target {
                Some(t) => op(t).await,
                None => Err(Error::NotLeader {
                    leader_id: None,
                    leader_addr: None,
                }),
            };
            let retry = matches!(
                &result,
                Err(Error::NotLeader { .. }) | Err(Error::Network { .. })
            );
            if !retry || Instant::now() >= deadline {
                return result;
            }
            // Wait for a change of leadership (or a short back-off) before trying again.
            let wait = (deadline - Instant::now()).min(Duration::from_millis(200));
            let _ = tokio::time::timeout(wait, metrics.changed()).await;
        }
    }

    async fn forward<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        req: &Req,
    ) -> Result<Resp, Error> {
        let res: Result<Resp, WireError> =
            match self.http.post(addr, path, req, self.request_timeout).await {
                Ok(r) => r,
                // Not delivered: safe to retry.
                Err(e @ HttpError::Connect { .. }) => {
                    return Err(Error::Network {
                        addr: addr.to_string(),
                        message: e.to_string(),
                    })
                }
                // Maybe delivered: report, never retry.
                Err(e) => return Err(Error::Raft(format!("forwarding to the leader: {e}"))),
            };
        res.map_err(|e| e.into_error(addr))
    }

    /// On the leader: add `id` as a learner (waiting until it caught up), then promote it to
    /// voter. Idempotent for an existing voter.
    pub(crate) async fn add_member_local(&self, id: NodeId, addr: String) -> Result<(), Error> {
        let map = |e: RaftError<NodeId, ClientWriteError<NodeId, Node>>| match e.forward_to_leader()
        {
            Some(fwd) => not_leader(fwd),
            None => raft_err(e),
        };
        let metrics = self.raft.metrics().borrow().clone();
        if metrics
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == id)
        {
            return Ok(());
        }
        self.raft
            .add_learner(id, Node::new(addr), true)
            .await
            .map_err(map)?;
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(map)?;
        Ok(())
    }

    /// Ask the member at `seed` to add this replica (forwarded to its leader if needed).
    pub(crate) async fn join(&self, seed: &str) -> Result<(), Error> {
        let req = JoinRequest {
            id: self.id,
            addr: self.addr.clone(),
        };
        let deadline = Instant::now() + self.request_timeout;
        let mut target = seed.to_string();
        loop {
            let res: Result<(), Error> = self.forward(&target, paths::JOIN, &req).await;
            match res {
                Err(Error::NotLeader {
                    leader_addr: Some(leader),
                    ..
                }) if Instant::now() < deadline => target = leader,
                Err(Error::NotLeader {
                    leader_addr: None, ..
                })
                | Err(Error::Network { .. })
                    if Instant::now() < deadline =>
                {
                    target = seed.to_string();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }
}
