//! The NodePort Service of the two-node rows, as manifests for the agents,
//! and the wait until node 0 serves it.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::json;
use skiff_common::PROTO_UDP;
use skiff_tests::bpfmaps::PinnedMaps;
use skiff_tests::lab::Node;
use skiff_tests::manifests::{self, Proto};

use super::kube_proxy::ServicePort;

use super::two_node::{NODE_PORT, NP_PORT, NP_VIP, SINK_PORT};

/// The Service's name (kube-proxy's chains hash it too).
pub const NAME: &str = "np-bench";

/// Service (type NodePort, UDP, externalTrafficPolicy Cluster) and its
/// EndpointSlice: the sink at `backend` on node `backend_node`.
pub fn documents(backend_node: &str, backend: Ipv4Addr) -> String {
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": "default"},
        "spec": {"type": "NodePort", "clusterIP": NP_VIP.to_string(),
                 "clusterIPs": [NP_VIP.to_string()],
                 "ports": [{"name": "udp", "port": NP_PORT, "targetPort": SINK_PORT,
                            "nodePort": NODE_PORT, "protocol": "UDP"}]},
    });
    let eps = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{NAME}-1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": NAME}},
        "addressType": "IPv4",
        "ports": [{"name": "udp", "port": SINK_PORT, "protocol": "UDP"}],
        "endpoints": [{"addresses": [backend.to_string()], "nodeName": backend_node,
                       "conditions": {"ready": true, "serving": true, "terminating": false}}],
    });
    manifests::documents(&[svc, eps])
}

/// The same Service for kube-proxy's rule builder.
pub fn service_port(backend: Ipv4Addr) -> ServicePort {
    ServicePort {
        namespace: "default".into(),
        name: NAME.into(),
        port_name: "udp".into(),
        vip: NP_VIP,
        port: NP_PORT,
        proto: Proto::Udp,
        node_port: Some(NODE_PORT),
        endpoints: vec![(backend, SINK_PORT)],
    }
}

/// Waits until `node` has the external frontend `addr:port/UDP` with one
/// backend and its agent (log at `log`) said how it attached the NodePort
/// program to `iface`; returns `XDP (native)` or `TC ingress`.
pub fn wait_nodeport(
    node: &Node,
    addr: Ipv4Addr,
    iface: &str,
    log: &Path,
    port: u16,
) -> Result<String> {
    let maps = PinnedMaps::new(node.bpffs_dir());
    let flavours = ["XDP (native)", "TC ingress"];
    let found = skiff_tests::wait::try_until(Duration::from_secs(30), || {
        let fe = maps.external_frontend(addr, port, PROTO_UDP).ok()??;
        let text = std::fs::read_to_string(log).ok()?;
        let flavour = flavours
            .iter()
            .find(|f| text.contains(&format!("NodePort: {f} on {iface}")))?;
        (fe.count == 1).then(|| flavour.to_string())
    });
    match found {
        Ok(f) => Ok(f),
        Err(waited) => bail!(
            "{}: no NodePort frontend {addr}:{port}/UDP with 1 backend and an attach line for {iface} in {} within {waited:?}",
            node.name(),
            log.display()
        ),
    }
}
