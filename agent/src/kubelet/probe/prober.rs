//! One probe, once: exec in the container, TCP connect, or HTTP GET.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::TcpStream;

use super::http_get;
use crate::runtime::exec::{exec, ExecError, ExecRequest, ExecTarget};

/// Output kept from an exec probe (Kubernetes' maxReadLength, 10 KiB).
const MAX_OUTPUT: usize = 10 * 1024;

/// What a probe reaches: the pod's IP, the container's named ports, and the
/// running container for exec probes.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub pod_ip: Ipv4Addr,
    pub ports: Vec<ContainerPort>,
    pub exec: Option<ExecTarget>,
}

impl ProbeTarget {
    pub fn new(pod_ip: Ipv4Addr, container: &Container, exec: Option<ExecTarget>) -> Self {
        Self {
            pod_ip,
            ports: container.ports.clone().unwrap_or_default(),
            exec,
        }
    }
}

/// One probe's verdict, with the reason for a failure (the text of the
/// Unhealthy event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    Failure(String),
}

impl ProbeResult {
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success)
    }
}

/// Runs probes. Stateless; share one per agent.
#[derive(Debug, Clone, Default)]
pub struct Prober {}

/// A probe port as Kubernetes resolves it: a number, or the name of one of
/// the container's ports (falling back to a numeric string).
pub fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    let n = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .or_else(|| name.parse().ok())
            .ok_or_else(|| format!("couldn't find port {name:?} in the container's ports"))?,
    };
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port number: {n}"))
}

/// `host` (empty: the pod IP) and `port` to a socket address.
async fn address(host: Option<&str>, pod_ip: Ipv4Addr, port: u16) -> Result<SocketAddr, String> {
    match host.filter(|h| !h.is_empty()) {
        None => Ok(SocketAddr::new(IpAddr::V4(pod_ip), port)),
        Some(h) => match h.parse::<IpAddr>() {
            Ok(ip) => Ok(SocketAddr::new(ip, port)),
            Err(_) => tokio::net::lookup_host((h, port))
                .await
                .map_err(|e| format!("resolve {h}: {e}"))?
                .next()
                .ok_or_else(|| format!("resolve {h}: no address")),
        },
    }
}

impl Prober {
    pub fn new() -> Self {
        Self {}
    }

    /// Runs `probe` once against `target` within its `timeoutSeconds`.
    pub async fn check(&self, probe: &Probe, target: &ProbeTarget) -> ProbeResult {
        let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
        match self.run(probe, target, timeout).await {
            Ok(()) => ProbeResult::Success,
            Err(reason) => ProbeResult::Failure(reason),
        }
    }

    async fn run(&self, probe: &Probe, t: &ProbeTarget, timeout: Duration) -> Result<(), String> {
        if let Some(e) = &probe.exec {
            let argv = e.command.clone().unwrap_or_default();
            let target = t
                .exec
                .clone()
                .ok_or("exec probe: the container is not running")?;
            let req = ExecRequest {
                argv: argv.clone(),
                timeout,
                max_output: MAX_OUTPUT,
            };
            return match exec(target, req).await {
                Ok(out) if out.status.exit_code() == 0 => Ok(()),
                Ok(out) => {
                    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                    text.push_str(&String::from_utf8_lossy(&out.stderr));
                    Err(format!(
                        "command {argv:?} exited with {}: {}",
                        out.status.exit_code(),
                        text.trim_end()
                    ))
                }
                Err(ExecError::Timeout { timeout, .. }) => {
                    Err(format!("command {argv:?} timed out after {timeout:?}"))
                }
                Err(e) => Err(e.to_string()),
            };
        }
        if let Some(tcp) = &probe.tcp_socket {
            let port = resolve_port(&tcp.port, &t.ports)?;
            let addr = address(tcp.host.as_deref(), t.pod_ip, port).await?;
            return match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
                Err(_) => Err(format!("dial tcp {addr}: i/o timeout after {timeout:?}")),
            };
        }
        if let Some(h) = &probe.http_get {
            let port = resolve_port(&h.port, &t.ports)?;
            let scheme = h.scheme.as_deref().unwrap_or("HTTP");
            if !scheme.eq_ignore_ascii_case("http") {
                return Err(format!(
                    "httpGet scheme {scheme} is not supported (only HTTP)"
                ));
            }
            let addr = address(h.host.as_deref(), t.pod_ip, port).await?;
            let host = h.host.clone().filter(|s| !s.is_empty());
            let req = http_get::Request {
                addr,
                host: host.unwrap_or_else(|| t.pod_ip.to_string()),
                path: h.path.clone().unwrap_or_default(),
                headers: h
                    .http_headers
                    .iter()
                    .flatten()
                    .map(|x| (x.name.clone(), x.value.clone()))
                    .collect(),
            };
            return match tokio::time::timeout(timeout, http_get::get(&req)).await {
                Ok(Ok(code)) if (200..400).contains(&code) => Ok(()),
                Ok(Ok(code)) => Err(format!("HTTP probe failed with statuscode: {code}")),
                Ok(Err(e)) => Err(format!("Get \"http://{addr}{}\": {e}", req.path)),
                Err(_) => Err(format!(
                    "Get \"http://{addr}{}\": context deadline exceeded ({timeout:?})",
                    req.path
                )),
            };
        }
        if probe.grpc.is_some() {
            return Err("gRPC probes are not supported yet".into());
        }
        Err("the probe has no handler (exec, tcpSocket or httpGet)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_resolve_by_number_or_container_port_name() {
        let ports = vec![ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            ..ContainerPort::default()
        }];
        assert_eq!(resolve_port(&IntOrString::Int(81), &ports), Ok(81));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &ports),
            Ok(8080)
        );
        assert_eq!(
            resolve_port(&IntOrString::String("82".into()), &ports),
            Ok(82)
        );
        assert!(resolve_port(&IntOrString::String("grpc".into()), &ports)
            .unwrap_err()
            .contains("grpc"));
        assert!(resolve_port(&IntOrString::Int(70000), &ports).is_err());
        assert!(resolve_port(&IntOrString::Int(0), &ports).is_err());
    }
}
