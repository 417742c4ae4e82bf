//! A control-plane replica: storage, Raft, the HTTP service, and the API the API server uses.
//!
//! ```text
//! let cp = ControlPlane::start(NodeConfig::new(1, dir, "127.0.0.1:0".parse()?)).await?;
//! cp.bootstrap().await?;                       // first replica only
//! other.join(cp.addr()).await?;                // every later one
//! let r = cp.write(Command::Single(Op::Create { key, value })).await?;   // any replica
//! let page = cp.list(prefix, 500, None, Consistency::Linearizable).await?;
//! let mut w = cp.watch(prefix, page.revision)?; // events after the list
//! ```

mod batcher;
mod read_barrier;
mod shared;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use openraft::SnapshotPolicy;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) use shared::Shared;
pub use shared::{JoinRequest, ReadRequest, ReadResponse};

use crate::command::{Command, CommandResponse, KeyValue, Op, OpOutcome};
use crate::error::Error;
use crate::log_store::LogStore;
use crate::network::client::Network;
use crate::network::http::HttpClient;
use crate::state_machine::watch::Watcher;
use crate::state_machine::{ListPage, StateMachineStore, StoreReader};
use crate::types::{Node, NodeId, Raft};

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Confirmed by the leader with a quorum round (forwarded there from a follower).
    Linearizable,
    /// This replica's applied state; may lag the leader.
    Local,
}

/// Configuration of one replica.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Holds the redb file; reusing it restarts the replica with its state.
    pub data_dir: PathBuf,
    /// Address to bind the HTTP service (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Address peers use; default: the bound address.
    pub advertise: Option<String>,
    /// Events kept for watch resumption.
    pub watch_history: usize,
    /// Take a snapshot (and compact the log) after this many applied entries.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot for slow followers.
    pub keep_logs: u64,
    pub heartbeat: Duration,
    pub election_timeout: (Duration, Duration),
    /// How long a write or read waits for a reachable leader.
    pub request_timeout: Duration,
}

impl NodeConfig {
    pub fn new(id: NodeId, data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        Self {
            id,
            data_dir: data_dir.into(),
            listen,
            advertise: None,
            watch_history: 10_000,
            snapshot_every: 10_000,
            keep_logs: 1_000,
            heartbeat: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(400), Duration::from_millis(800)),
            request_timeout: Duration::from_secs(10),
        }
    }

    fn raft_config(&self) -> Result<openraft::Config, Error> {
        let config = openraft::Config {
            cluster_name: "skiff".to_string(),
            heartbeat_interval: self.heartbeat.as_millis() as u64,
            election_timeout_min: self.election_timeout.0.as_millis() as u64,
            election_timeout_max: self.election_timeout.1.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.keep_logs,
            snapshot_max_chunk_size: 4 << 20,
            ..Default::default()
        };
        config.validate().map_err(|e| Error::Raft(e.to_string()))
    }
}

/// A running replica. Cheap to share behind an `Arc`; stop it with [`ControlPlane::shutdown`].
pub struct ControlPlane {
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    stop_server: oneshot::Sender<()>,
}

impl ControlPlane {
    /// Open the store in `data_dir`, bind the service and start Raft. A fresh replica is
    /// uninitialised: call [`Self::bootstrap`] on the first one and [`Self::join`] on the others.
    /// A restarted one resumes its membership from disk.
    pub async fn start(cfg: NodeConfig) -> Result<Self, Error> {
        let raft_config = Arc::new(cfg.raft_config()?);
        let db = crate::db::open(&cfg.data_dir)?;
        let log_store = LogStore::open(&cfg.data_dir.join(crate::log_store::LOG_DIR), &db)?;
        let durability = log_store.durability();
        let sm = StateMachineStore::new(db, cfg.watch_history)?.with_log(durability.clone());
        let reader = sm.reader();
        let answers = sm.answers();

        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: cfg.listen.to_string(),
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| Error::Bind {
            addr: cfg.listen.to_string(),
            source,
        })?;
        let addr = cfg.advertise.clone().unwrap_or_else(|| bound.to_string());

        let http = HttpClient::default();
        let raft = Raft::new(
            cfg.id,
            raft_config,
            Network::new(durability.clone()),
            log_store,
            sm,
        )
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
        let shared = Arc::new(Shared {
            id: cfg.id,
            addr,
            reader,
            http,
            request_timeout: cfg.request_timeout,
            read_barrier: Default::default(),
            batcher: batcher::WriteBatcher::start(raft.clone(), answers),
            raft,
            durability,
        });
        let (stop_server, stopped) = oneshot::channel::<()>();
        let app = crate::network::server::router(shared.clone());
        let server = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            // Replies go out at once (small Raft messages must not wait on Nagle), as Go's
            // default (etcd's) does.
            let listener = listener.tap_io(|s| {
                let _ = s.set_nodelay(true);
            });
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                log::error!("control-plane HTTP service on {bound} failed: {e}");
            }
        });
        log::info!("control-plane replica {} serving on {}", cfg.id, bound);
        Ok(Self {
            shared,
            server,
            stop_server,
        })
    }

    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// The address peers and followers use for this replica.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    pub fn raft(&self) -> &Raft {
        &self.shared.raft
    }

    /// Local (possibly stale) read access, no Raft round.
    pub fn reader(&self) -> &StoreReader {
        &self.shared.reader
    }

    /// Make this replica a one-member cluster. No-op if it is already initialised.
    pub async fn bootstrap(&self) -> Result<(), Error> {
        let raft = &self.shared.raft;
        if raft
            .is_initialized()
            .await
            .map_err(|e| Error::Raft(e.to_string()))?
        {
            return Ok(());
        }
        let members = BTreeMap::from([(self.shared.id, Node::new(self.shared.addr.clone()))]);
        raft.initialize(members)
            .await
            .map_err(|e| Error::Raft(e.to_string()))
    }

    /// Join the cluster that the replica at `seed` belongs to: the leader adds this replica as
    /// a learner, waits until it has caught up, then promotes it to voter.
    pub async fn join(&self, seed: &str) -> Result<(), Error> {
        self.shared.join(seed).await
    }

    /// The current leader and its address, as this replica knows it.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.shared.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some((id, node.addr))
    }

    /// Replicate `cmd` (from any replica: followers forward to the leader). Returns once the
    /// entry is committed and applied on the leader.
    pub async fn write(&self, cmd: Command) -> Result<CommandResponse, Error> {
        self.shared.write(cmd).await
    }

    /// Replicate one op; its rejection (exists, not found, conflict) becomes [`Error::Op`].
    /// Returns the op's revision and outcome.
    pub async fn apply(&self, op: Op) -> Result<(u64, OpOutcome), Error> {
        self.apply_command(Command::Single(op)).await
    }

    /// Replicate `op` only if `requires` exists, checked atomically with the write by the state
    /// machine (no read round first); [`crate::OpError::Missing`] if it does not exist.
    pub async fn apply_if_exists(
        &self,
        requires: String,
        op: Op,
    ) -> Result<(u64, OpOutcome), Error> {
        self.apply_command(Command::Guarded { requires, op }).await
    }

    /// Replicate all of `ops` or none (see [`Command::Atomic`]), only if `requires` exists
    /// when given. Returns the revision and each op's outcome, or the first failed check.
    pub async fn apply_all(
        &self,
        requires: Option<String>,
        ops: Vec<Op>,
    ) -> Result<(u64, Vec<OpOutcome>), Error> {
        let resp = self.write(Command::Atomic { requires, ops }).await?;
        let outcomes = resp.results.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok((resp.revision, outcomes))
    }

    async fn apply_command(&self, cmd: Command) -> Result<(u64, OpOutcome), Error> {
        let resp = self.write(cmd).await?;
        let result = resp
            .results
            .into_iter()
            .next()
            .ok_or_else(|| Error::Raft("empty response".to_string()))?;
        Ok((resp.revision, result?))
    }

    /// The value of `key` and the revision the read reflects.
    pub async fn get(
        &self,
        key: &str,
        consistency: Consistency,
    ) -> Result<(Option<KeyValue>, u64), Error> {
        let req = ReadRequest::Get {
            key: key.to_string(),
        };
        let resp = match consistency {
            Consistency::Linearizable => self.shared.read_linearizable(req).await?,
            Consistency::Local => self.shared.read_local(req)?,
        };
        match resp {
            ReadResponse::Get { kv, revision } => Ok((kv, revision)),
            ReadResponse::List(_) => Err(Error::Raft("unexpected list response".to_string())),
        }
    }

    /// Keys under `prefix` in key order, `limit` per page (0 = all), after `continue_token`.
    pub async fn list(
        &self,
        prefix: &str,
        limit: usize,
        continue_token: Option<&str>,
        consistency: Consistency,
    ) -> Result<ListPage, Error> {
        let req = ReadRequest::List {
            prefix: prefix.to_string(),
            limit,
            continue_token: continue_token.map(str::to_string),
        };
        let resp = match consistency {
            Consistency::Linearizable => self.shared.read_linearizable(req).await?,
            Consistency::Local => self.shared.read_local(req)?,
        };
        match resp {
            ReadResponse::List(page) => Ok(page),
            ReadResponse::Get { .. } => Err(Error::Raft("unexpected get response".to_string())),
        }
    }

    /// Watch keys under `prefix` for changes after `from_revision`, on this replica.
    /// [`Error::Gone`] if that revision is older than the retained history.
    pub fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watcher, Error> {
        self.shared.reader.watch(prefix, from_revision)
    }

    /// Stop Raft and the HTTP service and close the store (its file can then be reopened).
    pub async fn shutdown(self) -> Result<(), Error> {
        let res = self.shared.raft.shutdown().await;
        self.shared.reader.close_watches();
        let _ = self.stop_server.send(());
        let _ = self.server.await;
        res.map_err(|e| Error::Raft(e.to_string()))
    }
}
