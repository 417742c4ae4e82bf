//! An etcd 3.4 cluster of 1 or 3 members on 127.0.0.1 (free ports, temp data dirs), with
//! etcd's default durability: the WAL is fsync'd before a write is acknowledged.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tonic::transport::{Channel, Endpoint};

use super::etcd_rpc::EtcdRpc;
use super::procs::{free_port, Proc, ScratchDir};

const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct EtcdCluster {
    /// Client URL of each member, in member order.
    pub client_urls: Vec<String>,
    // Drop order: processes before their data dirs.
    procs: Vec<Proc>,
    _dir: ScratchDir,
}

impl EtcdCluster {
    pub async fn start(bin: &Path, members: usize) -> Result<Self> {
        let dir = ScratchDir::new(&format!("etcd{members}"))?;
        let mut ports = Vec::new();
        for _ in 0..members {
            ports.push((free_port()?, free_port()?));
        }
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let token = format!("skiff-store-bench-{}", std::process::id());
        let mut procs = Vec::new();
        let mut client_urls = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let mut cmd = Command::new(bin);
            cmd.arg("--name")
                .arg(format!("m{i}"))
                .arg("--data-dir")
                .arg(dir.path().join(format!("m{i}")))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &token])
                .args(["--logger", "zap", "--log-level", "error"]);
            procs.push(Proc::spawn(&format!("etcd member m{i}"), cmd)?);
            client_urls.push(client_url);
        }
        let cluster = Self {
            client_urls,
            procs,
            _dir: dir,
        };
        cluster.wait_leader().await?;
        Ok(cluster)
    }

    /// Every member answers `Status` and names the same leader.
    async fn wait_leader(&self) -> Result<u64> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.leader_once().await {
                Ok(Some(leader)) => return Ok(leader),
                Ok(None) | Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(None) => bail!("etcd cluster elected no leader in {START_TIMEOUT:?}"),
                Err(e) => return Err(e.context("etcd cluster not ready")),
            }
        }
    }

    async fn leader_once(&self) -> Result<Option<u64>> {
        let mut leaders = Vec::new();
        for url in &self.client_urls {
            let mut rpc = EtcdRpc::new(connect(url).await?);
            let st = rpc
                .status()
                .await
                .with_context(|| format!("Status on {url}"))?;
            leaders.push(st.leader);
        }
        let first = leaders[0];
        Ok((first != 0 && leaders.iter().all(|l| *l == first)).then_some(first))
    }

    /// The client URL of the current leader (clients write there, as they do on Skiff).
    pub async fn leader_url(&mut self) -> Result<String> {
        for p in &mut self.procs {
            p.check_alive()?;
        }
        let leader = self.wait_leader().await?;
        for url in &self.client_urls {
            let mut rpc = EtcdRpc::new(connect(url).await?);
            let st = rpc
                .status()
                .await
                .with_context(|| format!("Status on {url}"))?;
            if st.header.map(|h| h.member_id) == Some(leader) {
                return Ok(url.clone());
            }
        }
        bail!("etcd leader {leader:x} is none of the members")
    }
}

/// One HTTP/2 connection to `url`.
pub async fn connect(url: &str) -> Result<Channel> {
    Endpoint::from_shared(url.to_string())
        .with_context(|| format!("bad etcd URL {url}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to etcd at {url}"))
}
