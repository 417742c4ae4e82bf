//! `skiff server`: run a control-plane server (store, API server, allocators, controllers,
//! scheduler) until SIGTERM or SIGINT.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use skiff_controlplane::alloc::Ranges;
use skiff_controlplane::nodelifecycle;
use skiff_controlplane::server::{Server, ServerConfig};

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Holds the store; an empty one bootstraps a new cluster (or joins with --join).
    #[arg(long, default_value = "/var/lib/skiff/server")]
    pub data_dir: PathBuf,
    /// Kubernetes API address (use 0.0.0.0:6443 to serve other hosts).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Raft address (replication between servers).
    #[arg(long, default_value = "127.0.0.1:6445")]
    pub raft_listen: SocketAddr,
    /// Agent API address (gRPC: node registration, heartbeats, pod and service watches).
    #[arg(long, default_value = "0.0.0.0:6444")]
    pub agent_listen: SocketAddr,
    /// Raft address other servers use for this one (default: the bound address).
    #[arg(long)]
    pub raft_advertise: Option<String>,
    /// Replica id, unique in the cluster.
    #[arg(long, default_value_t = 1)]
    pub node_id: u64,
    /// Raft address of a member of the cluster to join (first start only).
    #[arg(long)]
    pub join: Option<String>,
    /// Address the `kubernetes` Service's endpoints name.
    #[arg(long)]
    pub advertise_address: Option<Ipv4Addr>,
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: String,
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// Prefix length of each node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask: u8,
    /// NodePort range, `min-max`.
    #[arg(long, default_value = "30000-32767", value_parser = parse_range)]
    pub service_node_port_range: (u16, u16),
    /// Seconds without a node heartbeat before the node is Unknown.
    #[arg(long, default_value_t = 40)]
    pub node_grace_s: u64,
    /// Seconds a node stays unreachable before its pods are evicted.
    #[arg(long, default_value_t = 300)]
    pub pod_eviction_s: u64,
    /// Faster Raft heartbeats and elections (tests).
    #[arg(long, hide = true)]
    pub fast_raft: bool,
    #[arg(long)]
    pub debug: bool,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or("expected min-max")?;
    let a = a.trim().parse().map_err(|_| format!("bad port {a:?}"))?;
    let b = b.trim().parse().map_err(|_| format!("bad port {b:?}"))?;
    Ok((a, b))
}

impl ServerArgs {
    fn config(&self) -> ServerConfig {
        let mut cfg = ServerConfig::new(&self.data_dir, self.listen, self.raft_listen);
        cfg.agent_listen = self.agent_listen;
        cfg.raft_advertise = self.raft_advertise.clone();
        cfg.node_id = self.node_id;
        cfg.join = self.join.clone();
        cfg.advertise_address = self.advertise_address;
        cfg.ranges = Ranges {
            service_cidr: self.service_cidr.clone(),
            node_port_min: self.service_node_port_range.0,
            node_port_max: self.service_node_port_range.1,
            cluster_cidr: self.cluster_cidr.clone(),
            node_cidr_mask: self.node_cidr_mask,
        };
        cfg.lifecycle = nodelifecycle::Config::with(
            Duration::from_secs(self.node_grace_s),
            Duration::from_secs(self.pod_eviction_s),
        );
        cfg.fast_raft = self.fast_raft;
        cfg
    }
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    log::info!("skiff server: data dir {}", args.data_dir.display());
    let server = Server::start(args.config()).await?;
    log::info!(
        "skiff server ready: Kubernetes API on http://{} (run `skiff kubeconfig`), agent API on {}",
        server.api_addr(),
        server.agent_addr()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => log::info!("SIGINT: shutting down"),
    }
    server.shutdown().await;
    log::info!("skiff server stopped");
    Ok(())
}
