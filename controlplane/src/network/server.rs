//! The HTTP service of a replica: Raft RPCs from peers, plus forwarded writes, reads and
//! joins from followers (served only by the leader; no second hop).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use axum::{Json, Router};
use openraft::error::{Fatal, InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::paths;
use crate::command::{Command, CommandResponse};
use crate::error::Error;
use crate::node::{JoinRequest, ReadRequest, ReadResponse, Shared};
use crate::types::{NodeId, TypeConfig};

/// Largest request body accepted (log batches, snapshot chunks).
const BODY_LIMIT: usize = 64 << 20;

/// An [`Error`] as it crosses the wire between replicas.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireError {
    NotLeader {
        leader_id: Option<NodeId>,
        leader_addr: Option<String>,
    },
    Op(crate::command::OpError),
    Gone {
        requested: u64,
        oldest: u64,
    },
    Other(String),
}

impl From<Error> for WireError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotLeader {
                leader_id,
                leader_addr,
            } => WireError::NotLeader {
                leader_id,
                leader_addr,
            },
            Error::Op(op) => WireError::Op(op),
            Error::Gone { requested, oldest } => WireError::Gone { requested, oldest },
            other => WireError::Other(other.to_string()),
        }
    }
}

impl WireError {
    pub(crate) fn into_error(self, addr: &str) -> Error {
        match self {
            WireError::NotLeader {
                leader_id,
                leader_addr,
            } => Error::NotLeader {
                leader_id,
                leader_addr,
            },
            WireError::Op(op) => Error::Op(op),
            WireError::Gone { requested, oldest } => Error::Gone { requested, oldest },
            WireError::Other(message) => Error::Raft(format!("{addr}: {message}")),
        }
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(paths::APPEND, post(append))
        .route(paths::VOTE, post(vote))
        .route(paths::SNAPSHOT, post(snapshot))
        .route(paths::WRITE, post(write))
        .route(paths::READ, post(read))
        .route(paths::JOIN, post(join))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

type AppState = State<Arc<Shared>>;

/// The log acknowledges appends to openraft before their sync (see `log_store`), so the
/// answer waits here until everything queued before it is on disk: the leader counts this
/// replica's entries towards a commit only once they are. A failed log answers with its
/// storage error.
async fn append(
    State(s): AppState,
    Json(req): Json<AppendEntriesRequest<TypeConfig>>,
) -> Json<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>> {
    let res = s.raft.append_entries(req).await;
    if res.is_ok() {
        if let Err(e) = s.durability.barrier().await {
            return Json(Err(RaftError::Fatal(Fatal::StorageError(e))));
        }
    }
    Json(res)
}

async fn vote(
    State(s): AppState,
    Json(req): Json<VoteRequest<NodeId>>,
) -> Json<Result<VoteResponse<NodeId>, RaftError<NodeId>>> {
    Json(s.raft.vote(req).await)
}

async fn snapshot(
    State(s): AppState,
    Json(req): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Json<Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>> {
    Json(s.raft.install_snapshot(req).await)
}

async fn write(
    State(s): AppState,
    Json(cmd): Json<Command>,
) -> Json<Result<CommandResponse, WireError>> {
    Json(s.write_local(cmd).await.map_err(WireError::from))
}

async fn read(
    State(s): AppState,
    Json(req): Json<ReadRequest>,
) -> Json<Result<ReadResponse, WireError>> {
    Json(
        s.read_local_linearizable(req)
            .await
            .map_err(WireError::from),
    )
}

async fn join(State(s): AppState, Json(req): Json<JoinRequest>) -> Json<Result<(), WireError>> {
    Json(
        s.add_member_local(req.id, req.addr)
            .await
            .map_err(WireError::from),
    )
}
