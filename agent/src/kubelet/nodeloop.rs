//! The node's side of the control plane: registration (with the pod CIDR the control
//! plane assigns), heartbeats, and routes to the other nodes' pod CIDRs.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use tokio::sync::watch;

use super::{node, Ctx, KubeletConfig, KubeletError};
use crate::cpclient::CpClient;
use crate::sandbox::{Ipv4Cidr, Routes};

/// Lease duration reported with each heartbeat.
const LEASE_SECONDS: i32 = 40;

/// Registers the node until it has a pod CIDR; returns the CIDR.
pub async fn register(
    client: &CpClient,
    cfg: &KubeletConfig,
    ip: Ipv4Addr,
) -> Result<Ipv4Cidr, KubeletError> {
    let node = node::build(
        &cfg.node_name,
        ip,
        cfg.kubelet_port,
        &node::HostFacts::read(),
    );
    let mut pause = Duration::from_millis(200);
    loop {
        let stored = client
            .register_node(&node)
            .await
            .map_err(|source| KubeletError::Register {
                node: cfg.node_name.clone(),
                source,
            });
        let cidr = match stored {
            Ok(n) => n.spec.and_then(|s| s.pod_cidr),
            Err(e) => match &e {
                KubeletError::Register { source, .. } if source.is_transient() => {
                    log::warn!("{e}; retrying");
                    None
                }
                _ => return Err(e),
            },
        };
        if let Some(c) = cidr {
            return c
                .parse()
                .map_err(|e| KubeletError::Config(format!("pod CIDR {c:?}: {e}")));
        }
        log::info!(
            "kubelet: node {} has no pod CIDR yet; registering again in {pause:?}",
            cfg.node_name
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

pub(crate) async fn heartbeats(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(ctx.cfg.heartbeat_interval);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = ctx
            .client
            .heartbeat(&ctx.cfg.node_name, LEASE_SECONDS)
            .await
        {
            log::warn!("kubelet: heartbeat of node {}: {e}", ctx.cfg.node_name);
        }
    }
}

/// (pod CIDR, InternalIP) of every node but `me` that has both.
pub fn peer_routes(nodes: &[Node], me: &str) -> Vec<(Ipv4Cidr, Ipv4Addr)> {
    nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(me))
        .filter_map(|n| {
            let cidr = n.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok()?;
            Some((cidr, node::internal_ip(n)?))
        })
        .collect()
}

pub(crate) async fn routes(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(ctx.cfg.node_sync_interval);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let nodes = match ctx.client.list_nodes().await {
            Ok(n) => n,
            Err(e) => {
                log::warn!("kubelet: listing nodes for routes: {e}");
                continue;
            }
        };
        let want = peer_routes(&nodes, &ctx.cfg.node_name);
        match tokio::task::spawn_blocking(move || Routes::default().sync(&want)).await {
            Ok(Ok(r)) => {
                for e in &r.errors {
                    log::warn!("kubelet: routes to other nodes: {e}");
                }
                if !r.upserted.is_empty() || !r.removed.is_empty() {
                    log::info!(
                        "kubelet: routes to pod CIDRs: +{:?} -{:?}",
                        r.upserted,
                        r.removed
                    );
                }
                if !r.resolving.is_empty() {
                    log::info!("kubelet: kernel-managed neighbours for {:?}", r.resolving);
                }
            }
            Ok(Err(e)) => log::warn!("kubelet: routes to other nodes: {e}"),
            Err(e) => log::warn!("kubelet: route sync panicked: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_go_to_other_nodes_with_a_cidr_and_an_address() {
        let n = |name: &str, cidr: Option<&str>, ip: &str| {
            let mut node = node::build(name, ip.parse().unwrap(), 10250, &node::HostFacts::read());
            node.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
                pod_cidr: cidr.map(str::to_owned),
                ..Default::default()
            });
            node
        };
        let nodes = [
            n("a", Some("10.244.0.0/24"), "192.168.0.10"),
            n("b", Some("10.244.1.0/24"), "192.168.0.11"),
            n("c", None, "192.168.0.12"),
        ];
        let r = peer_routes(&nodes, "a");
        assert_eq!(
            r,
            vec![(
                "10.244.1.0/24".parse().unwrap(),
                "192.168.0.11".parse().unwrap()
            )]
        );
    }
}
