//! SRV records of Services, as the Kubernetes DNS specification and CoreDNS give them:
//! `_<port>._<proto>.<service>.<ns>.svc.<domain>` (or the Service's own name, for all its
//! ports) answers, for a Service with a cluster IP, one record per matching named port
//! pointing at `<service>.<ns>.svc.<domain>`, and for a headless Service one per ready
//! endpoint and port, pointing at `<hostname or dashed IP>.<service>.<ns>.svc.<domain>` with
//! the endpoint's own port. The targets' addresses go in the additional section.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;

use crate::kubelet::services::ReadyEndpoint;

/// One SRV record and the address of its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub port: u16,
    /// A name in the cluster domain (lower case, no trailing dot).
    pub target: String,
    pub addr: Ipv4Addr,
}

/// Which of a Service's ports a query asks for: by name and protocol (`_http._tcp`), or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports<'a> {
    All,
    Named { name: &'a str, protocol: &'a str },
}

impl<'a> Ports<'a> {
    /// From the two labels under a Service's name (`_http`, `_tcp`): `None` if they are not
    /// both `_`-prefixed.
    pub fn from_labels(port: &'a str, protocol: &'a str) -> Option<Self> {
        let (name, protocol) = (port.strip_prefix('_')?, protocol.strip_prefix('_')?);
        (!name.is_empty() && !protocol.is_empty()).then_some(Ports::Named { name, protocol })
    }

    fn matches(&self, name: Option<&str>, protocol: Option<&str>) -> bool {
        match self {
            Ports::All => true,
            Ports::Named {
                name: n,
                protocol: p,
            } => {
                name.is_some_and(|x| x.eq_ignore_ascii_case(n))
                    && protocol.unwrap_or("TCP").eq_ignore_ascii_case(p)
            }
        }
    }
}

/// Whether `svc` has a port `ports` names.
pub fn declares(svc: &Service, ports: Ports<'_>) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .any(|p| ports.matches(p.name.as_deref(), p.protocol.as_deref()))
}

/// The records of a Service with a cluster IP.
pub fn cluster_ip(svc: &Service, fqdn: &str, ports: Ports<'_>) -> Vec<Srv> {
    let spec = svc.spec.as_ref();
    // The first IPv4 cluster IP (a dual-stack Service may list IPv6 first).
    let ips = spec.and_then(|s| s.cluster_ips.clone()).unwrap_or_default();
    let first = spec.and_then(|s| s.cluster_ip.clone());
    let Some(addr) = ips
        .iter()
        .chain(&first)
        .find_map(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        return Vec::new();
    };
    spec.and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter(|p| ports.matches(p.name.as_deref(), p.protocol.as_deref()))
        .filter_map(|p| {
            Some(Srv {
                port: u16::try_from(p.port).ok()?,
                target: fqdn.to_string(),
                addr,
            })
        })
        .collect()
}

/// The records of a headless Service (`fqdn` its name) from its ready endpoints.
pub fn headless(eps: &[ReadyEndpoint], fqdn: &str, ports: Ports<'_>) -> Vec<Srv> {
    let mut out = Vec::new();
    for e in eps {
        let label = e
            .hostname
            .clone()
            .unwrap_or_else(|| e.ip.to_string().replace('.', "-"))
            .to_ascii_lowercase();
        for p in e
            .ports
            .iter()
            .filter(|p| ports.matches(Some(&p.name), Some(&p.protocol)))
        {
            let srv = Srv {
                port: p.port,
                target: format!("{label}.{fqdn}"),
                addr: e.ip,
            };
            if !out.contains(&srv) {
                out.push(srv);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::services::EndpointPort;
    use serde_json::json;

    fn port(name: &str, protocol: &str, port: u16) -> EndpointPort {
        EndpointPort {
            name: name.into(),
            protocol: protocol.into(),
            port,
        }
    }

    #[test]
    fn a_cluster_ip_service_points_at_itself_per_named_port() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "metrics", "port": 9090}]}}))
        .unwrap();
        let fqdn = "web.default.svc.cluster.local";
        let ip = Ipv4Addr::new(10, 96, 0, 20);
        let http = Ports::from_labels("_http", "_tcp").unwrap();
        assert_eq!(
            cluster_ip(&svc, fqdn, http),
            [Srv {
                port: 80,
                target: fqdn.into(),
                addr: ip
            }]
        );
        let dns = Ports::from_labels("_dns", "_udp").unwrap();
        assert_eq!(cluster_ip(&svc, fqdn, dns).len(), 1);
        let wrong = Ports::from_labels("_dns", "_tcp").unwrap();
        assert!(cluster_ip(&svc, fqdn, wrong).is_empty());
        let ports: Vec<u16> = cluster_ip(&svc, fqdn, Ports::All)
            .iter()
            .map(|s| s.port)
            .collect();
        assert_eq!(ports, [80, 53, 9090]);
        assert_eq!(Ports::from_labels("http", "_tcp"), None);
        assert_eq!(Ports::from_labels("_", "_tcp"), None);
        let mut dual = svc.clone();
        let spec = dual.spec.as_mut().unwrap();
        spec.cluster_ips = Some(vec!["fd00::20".into(), "10.96.0.20".into()]);
        spec.cluster_ip = Some("fd00::20".into());
        assert_eq!(cluster_ip(&dual, fqdn, http)[0].addr, ip, "the IPv4 one");
    }

    #[test]
    fn a_headless_service_points_at_each_endpoint_with_its_port() {
        let eps = [
            ReadyEndpoint {
                ip: Ipv4Addr::new(10, 244, 1, 5),
                hostname: Some("web-0".into()),
                ports: vec![port("http", "TCP", 8080), port("dns", "UDP", 53)],
            },
            ReadyEndpoint {
                ip: Ipv4Addr::new(10, 244, 2, 7),
                hostname: None,
                ports: vec![port("http", "TCP", 8080)],
            },
        ];
        let fqdn = "web.default.svc.cluster.local";
        let http = Ports::from_labels("_http", "_tcp").unwrap();
        let got = headless(&eps, fqdn, http);
        let want = [
            ("web-0.web.default.svc.cluster.local", [10, 244, 1, 5]),
            ("10-244-2-7.web.default.svc.cluster.local", [10, 244, 2, 7]),
        ];
        assert_eq!(got.len(), 2);
        for (g, (target, ip)) in got.iter().zip(want) {
            assert_eq!(
                (g.target.as_str(), g.addr, g.port),
                (target, ip.into(), 8080)
            );
        }
        assert_eq!(headless(&eps, fqdn, Ports::All).len(), 3);
    }
}
