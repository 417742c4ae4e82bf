//! The kubelet: turns the pods bound to this node into running containers and keeps
//! them as declared, reporting their status to the control plane.
//!
//! - [`nodeloop`]: registers the Node ([`node`]), gets the pod CIDR, heartbeats, and keeps
//!   routes to the other nodes' pod CIDRs;
//! - [`manager`]: watches the node's pods and runs one [`worker`] per pod uid;
//! - [`worker`]: an idempotent reconcile of the pod (spec, deletionTimestamp) against the
//!   node (sandbox, volumes, containers): decisions in [`reconcile`], restarts paced by
//!   [`backoff`], status from [`status`], env from [`env`], volumes from [`volumes`];
//! - [`lookup`]: what the HTTP side (logs, metrics) asks of the pod manager;
//! - [`probe`], [`logs`], [`http`]: probes (run by the pod workers), container logs and
//!   the agent's HTTP server (`/containerLogs`, `/metrics`, `/healthz`), which
//!   [`Kubelet::start`] serves on [`KubeletConfig::http_listen`];
//! - [`layout`]: where a pod's files and logs live.
//!
//! Everything on the node survives an agent restart (netns bind mounts, shims, state on
//! disk): a new kubelet re-adopts running pods and restarts nothing that is healthy.

pub mod backoff;
pub mod dns;
pub mod env;
pub mod events;
pub mod http;
pub mod layout;
pub mod logs;
pub mod lookup;
mod manager;
pub mod node;
pub mod nodeloop;
pub mod probe;
pub mod reconcile;
pub mod services;
pub mod status;
pub mod volumes;
mod worker;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cpclient::{CpClient, CpError};
use crate::image::{ImageError, ImageStore};
use crate::runtime::cgroups::{self, CgroupError, CgroupManager, CgroupTree};
use crate::runtime::{Runtime, RuntimeError};
use crate::sandbox::{self, DnsParams, NetworkConfig, PodNetwork, ResolvConf, SandboxError};

pub use backoff::BackoffConfig;
pub use lookup::{PodLookup, PodRegistry, RegistryStats};

/// A kubelet error that stops it.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("kubelet: {0}")]
    Config(String),
    #[error("kubelet: registering node {node}: {source}")]
    Register {
        node: String,
        #[source]
        source: CpError,
    },
    #[error("kubelet: pod network: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("kubelet: image store: {0}")]
    Image(#[from] ImageError),
    #[error("kubelet: container runtime: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("kubelet: cgroups: {0}")]
    Cgroup(#[from] CgroupError),
    #[error("kubelet: watching pods: {0}")]
    Watch(CpError),
    #[error("kubelet: listening on {addr} (--kubelet-listen): {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// How the kubelet runs.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub node_name: String,
    /// The node's InternalIP; `None`: the address of the default-route interface.
    pub node_ip: Option<Ipv4Addr>,
    /// Where the kubelet's HTTP server (logs, metrics) listens; port 0: a free one.
    /// `None`: no server.
    pub http_listen: Option<SocketAddr>,
    /// The port published in Node.status.daemonEndpoints when there is no server (with
    /// one, its bound port is published).
    pub kubelet_port: u16,
    pub state_dir: PathBuf,
    pub netns_dir: PathBuf,
    /// Host-side veth prefix (the dataplane's `--pod-veth-prefix`).
    pub veth_prefix: String,
    /// The node's cgroup parent.
    pub cgroup_parent: String,
    pub backoff: BackoffConfig,
    pub heartbeat_interval: Duration,
    /// How often other nodes are listed for routes.
    pub node_sync_interval: Duration,
    /// How often a pod worker looks at its containers when nothing else wakes it.
    pub sync_period: Duration,
    /// Cluster DNS for pods' resolv.conf (empty: the node's own, see `node_dns`).
    pub cluster_dns: Vec<Ipv4Addr>,
    /// Without `cluster_dns`: answer pods' DNS on port 53 of the node address
    /// ([`dns`]) and name it in their resolv.conf; otherwise pods get the host's.
    pub node_dns: bool,
    pub cluster_domain: String,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
}

impl KubeletConfig {
    pub fn new(node_name: &str) -> Self {
        Self {
            node_name: node_name.to_owned(),
            node_ip: None,
            http_listen: None,
            kubelet_port: 10250,
            state_dir: PathBuf::from(sandbox::DEFAULT_STATE_DIR),
            netns_dir: PathBuf::from(sandbox::DEFAULT_NETNS_DIR),
            veth_prefix: "lxc".into(),
            cgroup_parent: "skiff".into(),
            backoff: BackoffConfig::default(),
            heartbeat_interval: Duration::from_secs(10),
            node_sync_interval: Duration::from_secs(10),
            sync_period: Duration::from_secs(1),
            cluster_dns: Vec::new(),
            node_dns: true,
            cluster_domain: "cluster.local".into(),
            log_max_bytes: 10 << 20,
            log_max_files: 5,
        }
    }
}

/// What every pod worker shares.
pub(crate) struct Ctx {
    pub cfg: KubeletConfig,
    pub node_ip: Ipv4Addr,
    pub client: CpClient,
    pub net: PodNetwork,
    pub images: ImageStore,
    pub runtime: Runtime,
    pub cgroups: &'static dyn CgroupManager,
    pub tree: CgroupTree,
    pub dns: DnsParams,
    pub services: services::ServiceCache,
    pub registry: PodRegistry,
    pub events: events::Recorder,
    pub prober: Arc<probe::Prober>,
}

/// A running kubelet.
pub struct Kubelet {
    registry: PodRegistry,
    metrics: Arc<http::Registry>,
    http_addr: Option<SocketAddr>,
    http: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), KubeletError>>,
}

impl Kubelet {
    /// Binds the HTTP server, registers the node (publishing the server's port), sets up
    /// the pod network, image store, runtime and cgroups, then runs the pod manager,
    /// heartbeats, route sync and the HTTP server in the background.
    pub async fn start(mut cfg: KubeletConfig, client: CpClient) -> Result<Self, KubeletError> {
        let (stop, stop_rx) = watch::channel(false);
        let listener = match cfg.http_listen {
            Some(addr) => {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|source| KubeletError::Listen { addr, source })?;
                let bound = l
                    .local_addr()
                    .map_err(|source| KubeletError::Listen { addr, source })?;
                cfg.kubelet_port = bound.port();
                log::info!("kubelet: serving logs and metrics on {bound}");
                Some((l, bound))
            }
            None => None,
        };
        let node_ip = match cfg.node_ip {
            Some(ip) => ip,
            None => node::default_node_ip().ok_or_else(|| {
                KubeletError::Config(
                    "no --node-ip and no default-route interface with an IPv4 address".into(),
                )
            })?,
        };
        let pod_cidr = nodeloop::register(&client, &cfg, node_ip).await?;
        log::info!(
            "kubelet: node {} ({node_ip}) has pod CIDR {pod_cidr}",
            cfg.node_name
        );
        let mut ncfg = NetworkConfig::new(pod_cidr, node_ip);
        ncfg.state_dir = cfg.state_dir.clone();
        ncfg.netns_dir = cfg.netns_dir.clone();
        ncfg.veth_prefix = cfg.veth_prefix.clone();
        let net = tokio::task::spawn_blocking(move || PodNetwork::new(ncfg))
            .await
            .map_err(|e| KubeletError::Config(format!("pod network setup panicked: {e}")))??;
        let images = ImageStore::open(&cfg.state_dir)?;
        let cgroups = cgroups::host_manager()?;
        let tree = CgroupTree::new(cfg.cgroup_parent.clone());
        tree.ensure_node(cgroups)?;
        let runtime = Runtime::new(&layout::containers_dir(&cfg.state_dir), Some(cgroups))?;
        let host_resolv = std::fs::read_to_string("/run/systemd/resolve/resolv.conf")
            .or_else(|_| std::fs::read_to_string("/etc/resolv.conf"))
            .unwrap_or_default();
        let services = services::ServiceCache::spawn(&client, stop_rx.clone());
        let mut dns = DnsParams {
            cluster_dns: cfg.cluster_dns.iter().map(|ip| (*ip).into()).collect(),
            cluster_domain: cfg.cluster_domain.clone(),
            host: ResolvConf::parse(&host_resolv),
        };
        if dns.cluster_dns.is_empty() && cfg.node_dns {
            match dns::bind(node_ip).await {
                Ok(sock) => {
                    let serve = dns::Serve {
                        services: services.clone(),
                        domain: cfg.cluster_domain.to_ascii_lowercase(),
                        upstream: dns::upstreams(&dns.host.nameservers),
                        clients: pod_cidr,
                        node_ip,
                    };
                    dns::spawn(sock, serve, stop_rx.clone());
                    dns.cluster_dns = vec![node_ip.into()];
                    log::info!("kubelet: answering pods' DNS on {node_ip}:53");
                }
                Err(e) => log::warn!(
                    "kubelet: no DNS on {node_ip}:53 ({e}): pods get the host's resolvers"
                ),
            }
        }
        let registry = PodRegistry::new();
        let metrics = Arc::new(http::Registry::new());
        let http_addr = listener.as_ref().map(|(_, a)| *a);
        let http = listener.map(|(l, _)| {
            let server = http::KubeletHttp {
                state_dir: cfg.state_dir.clone(),
                pods: Arc::new(registry.clone()),
                stats: Arc::new(RegistryStats {
                    registry: registry.clone(),
                    cgroups,
                }),
                metrics: metrics.clone(),
                cgroups: Some(cgroups),
            };
            tokio::spawn(async move {
                if let Err(e) = http::serve(l, server).await {
                    log::error!("kubelet: HTTP server: {e}");
                }
            })
        });
        let ctx = Arc::new(Ctx {
            node_ip,
            services,
            events: events::Recorder::new(client.clone(), cfg.node_name.clone()),
            registry: registry.clone(),
            prober: Arc::new(probe::Prober::new()),
            client,
            net,
            images,
            runtime,
            cgroups,
            tree,
            dns,
            cfg,
        });
        tokio::spawn(nodeloop::heartbeats(ctx.clone(), stop_rx.clone()));
        tokio::spawn(nodeloop::routes(ctx.clone(), stop_rx.clone()));
        let task = tokio::spawn(manager::run(ctx, stop_rx));
        Ok(Self {
            registry,
            metrics,
            http_addr,
            http,
            stop,
            task,
        })
    }

    /// The address the HTTP server is bound to (`None` without `http_listen`).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The agent's metrics registry, served on `/metrics` after the container usage.
    pub fn metrics(&self) -> Arc<http::Registry> {
        self.metrics.clone()
    }

    /// The pods this kubelet runs, for the HTTP side.
    pub fn lookup(&self) -> Arc<dyn PodLookup> {
        Arc::new(self.registry.clone())
    }

    /// Runs until the pod manager ends (an unrecoverable watch error).
    pub async fn wait(&mut self) -> Result<(), KubeletError> {
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(KubeletError::Config(format!("pod manager task: {e}"))),
        }
    }

    /// Stops the kubelet; pods keep running (a next kubelet re-adopts them).
    pub async fn stop(self) {
        if let Some(h) = &self.http {
            h.abort();
        }
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
