//! One control-plane server process: the replicated store (bootstrap, join or restart), the
//! API server, the allocators, the endpoints controller, node lifecycle, the workload
//! controllers and the scheduler (every controller and the scheduler run on the Raft leader
//! only, see [`leader`]).
//! `skiff server` is a thin CLI over [`Server::start`].

mod leader;
pub mod status;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::agentapi::{self, AgentApiServer};
use crate::alloc::{self, RangeError, Ranges};
use crate::api::{self, ApiError, ApiServer, ServeError};
use crate::nodelifecycle;
use crate::{ControlPlane, NodeConfig};

/// What a server is started with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    /// The Kubernetes API (port 0: a free one).
    pub listen: SocketAddr,
    /// The Raft service (port 0: a free one).
    pub raft_listen: SocketAddr,
    /// The agent API, gRPC (port 0: a free one; default: a free port on the API's address).
    pub agent_listen: SocketAddr,
    /// Raft address peers use (default: the bound one).
    pub raft_advertise: Option<String>,
    pub node_id: u64,
    /// Raft address of a member to join (first start only).
    pub join: Option<String>,
    /// Address the `kubernetes` Service's endpoints name (default: the API listen address,
    /// or 127.0.0.1 when that is unspecified).
    pub advertise_address: Option<Ipv4Addr>,
    pub ranges: Ranges,
    pub lifecycle: nodelifecycle::Config,
    /// Faster Raft timings (tests).
    pub fast_raft: bool,
    /// Store events kept for watches to resume from (`None`: the store's default).
    pub watch_history: Option<usize>,
}

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr, raft_listen: SocketAddr) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen,
            raft_listen,
            agent_listen: SocketAddr::new(listen.ip(), 0),
            raft_advertise: None,
            node_id: 1,
            join: None,
            advertise_address: None,
            ranges: Ranges::default(),
            lifecycle: nodelifecycle::Config::default(),
            fast_raft: false,
            watch_history: None,
        }
    }
}

/// Failure to start a server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("starting the store in {dir}: {source}")]
    Store { dir: PathBuf, source: crate::Error },
    #[error("joining the cluster through {seed}: {source}")]
    Join { seed: String, source: crate::Error },
    #[error("bootstrapping the store: {0}")]
    Bootstrap(#[source] crate::Error),
    #[error("allocation ranges: {0}")]
    Ranges(#[from] RangeError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    AgentApi(#[from] agentapi::serve::BindError),
    #[error("creating the kubernetes Service: {0}")]
    KubernetesService(#[source] ApiError),
}

/// Wait until the store has a leader. A replica restarted alone (a whole cluster coming
/// back one server at a time) waits here for a quorum of its peers instead of failing: it
/// already serves Raft, so its votes count.
async fn wait_for_leader(cp: &ControlPlane) {
    let mut metrics = cp.raft().server_metrics();
    let started = std::time::Instant::now();
    let mut next_note = Duration::from_secs(2);
    loop {
        if let Some(leader) = metrics.borrow().current_leader {
            if started.elapsed() >= Duration::from_secs(2) {
                log::info!("store: leader is replica {leader}");
            }
            return;
        }
        // Woken by a change of role, leader or membership; the timeout only paces the notes.
        let changed = tokio::time::timeout(Duration::from_secs(1), metrics.changed()).await;
        if let Ok(Err(_)) = changed {
            return; // Raft stopped: the next store call reports why.
        }
        if started.elapsed() >= next_note {
            log::info!(
                "store: waiting for a leader ({}s): a quorum of replicas must be up",
                started.elapsed().as_secs()
            );
            next_note += Duration::from_secs(5);
        }
    }
}

/// A running server; stop it with [`Server::shutdown`].
pub struct Server {
    cp: Arc<ControlPlane>,
    api: ApiServer,
    agent_api: AgentApiServer,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Start everything; progress goes to the log.
    pub async fn start(cfg: ServerConfig) -> Result<Server, ServerError> {
        let mut node = NodeConfig::new(cfg.node_id, cfg.data_dir.join("store"), cfg.raft_listen);
        node.advertise = cfg.raft_advertise.clone();
        if let Some(n) = cfg.watch_history {
            node.watch_history = n;
        }
        if cfg.fast_raft {
            node.heartbeat = Duration::from_millis(50);
            node.election_timeout = (Duration::from_millis(150), Duration::from_millis(300));
        }
        let store_err = |source| ServerError::Store {
            dir: cfg.data_dir.clone(),
            source,
        };
        let cp = ControlPlane::start(node).await.map_err(store_err)?;
        let initialized = cp
            .raft()
            .is_initialized()
            .await
            .map_err(|e| store_err(crate::Error::Raft(e.to_string())))?;
        match (&cfg.join, initialized) {
            (_, true) => log::info!("store: restarted replica {} from disk", cfg.node_id),
            (Some(seed), false) => {
                log::info!("store: joining the cluster through {seed}");
                cp.join(seed).await.map_err(|source| ServerError::Join {
                    seed: seed.clone(),
                    source,
                })?;
            }
            (None, false) => {
                log::info!(
                    "store: bootstrapping a new cluster (replica {})",
                    cfg.node_id
                );
                cp.bootstrap().await.map_err(ServerError::Bootstrap)?;
            }
        }
        wait_for_leader(&cp).await;
        let cp = Arc::new(cp);
        let api = api::serve(cp.clone(), cfg.listen).await?;
        let client = api.client();
        let agent_api = agentapi::serve(client.clone(), cfg.agent_listen).await?;
        cfg.ranges.store(&cp).await?;
        log::info!(
            "allocation: services {}, node ports {}-{}, pods {} (/{} per node)",
            cfg.ranges.service_cidr,
            cfg.ranges.node_port_min,
            cfg.ranges.node_port_max,
            cfg.ranges.cluster_cidr,
            cfg.ranges.node_cidr_mask
        );
        let addr = api.local_addr();
        let advertise = cfg.advertise_address.unwrap_or(match addr.ip() {
            IpAddr::V4(ip) if !ip.is_unspecified() => ip,
            _ => Ipv4Addr::LOCALHOST,
        });
        // The leader's API server backs the `kubernetes` Service (each new leader takes it
        // over); a first server creates it before it reports ready.
        let api_endpoint = (advertise, addr.port());
        if cp.leader().is_some_and(|(id, _)| id == cp.id()) {
            alloc::kubernetes::ensure(&cp, &client, advertise, addr.port())
                .await
                .map_err(ServerError::KubernetesService)?;
        }
        let tasks = vec![tokio::spawn(leader::supervise(
            cp.clone(),
            client.clone(),
            cfg.lifecycle,
            api_endpoint,
        ))];
        Ok(Server {
            cp,
            api,
            agent_api,
            tasks,
        })
    }

    /// The Kubernetes API address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api.local_addr()
    }

    /// The agent API (gRPC) address.
    pub fn agent_addr(&self) -> SocketAddr {
        self.agent_api.local_addr()
    }

    pub fn api(&self) -> &ApiServer {
        &self.api
    }

    pub fn control_plane(&self) -> &Arc<ControlPlane> {
        &self.cp
    }

    /// Stop the controllers, the agent API, the API server and the store (its files can be reopened).
    pub async fn shutdown(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.agent_api.shutdown().await;
        self.api.shutdown().await;
        // Ending the store's watches ends the streams that hold it; aborted tasks drop
        // their clients as the runtime reaps them.
        self.cp.reader().close_watches();
        for _ in 0..50 {
            if Arc::strong_count(&self.cp) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let res = match Arc::try_unwrap(self.cp) {
            Ok(cp) => cp.shutdown().await,
            Err(cp) => {
                log::debug!("store still shared at shutdown: stopping Raft only");
                cp.raft()
                    .shutdown()
                    .await
                    .map_err(|e| crate::Error::Raft(e.to_string()))
            }
        };
        if let Err(e) = res {
            log::warn!("store shutdown: {e}");
        }
    }
}
