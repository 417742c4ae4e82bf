//! Service and EndpointSlice manifests for the agent's `--manifests` dir.
//!
//! Documents are written as JSON, which is YAML; files are replaced
//! atomically (write in a staging dir, then rename) so the agent never reads
//! half a file.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// An L4 protocol as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn k8s(self) -> &'static str {
        match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => skiff_common::PROTO_TCP,
            Proto::Udp => skiff_common::PROTO_UDP,
        }
    }
}

/// One service port: `name`, frontend `port`, backend `target_port`.
#[derive(Debug, Clone)]
pub struct PortSpec {
    pub name: String,
    pub port: u16,
    pub target_port: u16,
    pub proto: Proto,
}

/// State of an endpoint in a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointState {
    Ready,
    /// Terminating but still serving: keeps existing flows, gets no new one.
    TerminatingServing,
}

/// A `v1` Service of type ClusterIP in namespace `default`.
pub fn service(name: &str, cluster_ip: Ipv4Addr, ports: &[PortSpec]) -> Value {
    let ports: Vec<Value> = ports
        .iter()
        .map(|p| {
            json!({"name": p.name, "port": p.port, "targetPort": p.target_port,
                   "protocol": p.proto.k8s()})
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip.to_string(),
                 "clusterIPs": [cluster_ip.to_string()], "ports": ports},
    })
}

/// A `discovery.k8s.io/v1` EndpointSlice of service `service`.
pub fn endpoint_slice(
    service: &str,
    ports: &[PortSpec],
    endpoints: &[(Ipv4Addr, EndpointState)],
) -> Value {
    let ports: Vec<Value> = ports
        .iter()
        .map(|p| json!({"name": p.name, "port": p.target_port, "protocol": p.proto.k8s()}))
        .collect();
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(addr, state)| {
            let conditions = match state {
                EndpointState::Ready => {
                    json!({"ready": true, "serving": true, "terminating": false})
                }
                EndpointState::TerminatingServing => {
                    json!({"ready": false, "serving": true, "terminating": true})
                }
            };
            json!({"addresses": [addr.to_string()], "conditions": conditions})
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-1"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    })
}

/// Joins documents into one multi-document YAML text.
pub fn documents(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| format!("---\n{}\n", serde_json::to_string_pretty(d).expect("json")))
        .collect()
}

/// A manifests directory (`<base>/live`), removed on drop.
#[derive(Debug)]
pub struct ManifestDir {
    base: PathBuf,
}

impl ManifestDir {
    /// Creates `<tmp>/<name>/{live,stage}`; `name` should carry the lab
    /// prefix so a stale one is recognised.
    pub fn create(name: &str) -> std::io::Result<Self> {
        let base = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("live"))?;
        std::fs::create_dir_all(base.join("stage"))?;
        Ok(Self { base })
    }

    /// The directory to pass as `--manifests`.
    pub fn path(&self) -> PathBuf {
        self.base.join("live")
    }

    /// Atomically writes (or replaces) `file` with `text`.
    pub fn write(&self, file: &str, text: &str) -> std::io::Result<()> {
        let stage = self.base.join("stage").join(file);
        std::fs::write(&stage, text)?;
        std::fs::rename(&stage, self.path().join(file))
    }

    /// Removes `file`.
    pub fn remove(&self, file: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.path().join(file))
    }

    pub fn base(&self) -> &Path {
        &self.base
    }
}

impl Drop for ManifestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_ports_use_the_target_port_under_the_service_port_name() {
        let ports = [PortSpec {
            name: "web".into(),
            port: 80,
            target_port: 8080,
            proto: Proto::Tcp,
        }];
        let svc = service("s", Ipv4Addr::new(10, 96, 0, 10), &ports);
        assert_eq!(svc["spec"]["ports"][0]["port"], 80);
        let ep = (
            Ipv4Addr::new(10, 244, 0, 2),
            EndpointState::TerminatingServing,
        );
        let slice = endpoint_slice("s", &ports, &[ep]);
        assert_eq!(slice["ports"][0]["name"], "web");
        assert_eq!(slice["ports"][0]["port"], 8080);
        assert_eq!(slice["endpoints"][0]["conditions"]["terminating"], true);
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            "s"
        );
        assert!(documents(&[svc, slice]).matches("---\n").count() == 2);
    }
}
