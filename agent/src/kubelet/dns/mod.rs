//! The node's cluster DNS: the agent answers its pods' queries for
//! `<service>.<namespace>.svc.<cluster domain>` from the Services it watches, and
//! forwards every other name to the host's resolvers. It listens on UDP port 53 of the
//! node's address, which every pod reaches through its gateway, so each node serves its
//! own pods (the shape of NodeLocal DNSCache, without a central CoreDNS behind it); the
//! kubelet puts that address in the pods' resolv.conf with the cluster search domains.
//!
//! Only the node's pods are answered (sources in its pod CIDR, the node's own address —
//! pods on the node's network — and loopback; others get REFUSED): the
//! node address may face a network, and an open resolver there would relay anyone's
//! queries. Until the first list of Services is in, cluster names answer SERVFAIL (the
//! client retries) rather than an authoritative NXDOMAIN. Other names go to the host's
//! resolvers in turn.
//!
//! A ClusterIP Service answers with its cluster IPs (IPv4). A headless Service answers
//! with the addresses of its ready endpoints, and `<hostname>.<service>.<ns>.svc` (a
//! StatefulSet pod's name through its governing Service, or the endpoint's dashed IP)
//! with that endpoint's address, as CoreDNS does. An answer holds what fits a 512-byte
//! UDP message, rotated per query so clients spread over the endpoints. An ExternalName
//! Service answers with a CNAME to its `externalName` followed by that name's A records,
//! found here for a cluster name or asked of the host's resolvers for another, as CoreDNS
//! does (stub resolvers do not chase a lone CNAME). SRV records of a Service's ports
//! (`_<port>._<proto>.<service>...`) are in [`srv`]; a pod's record
//! `<dashed ip>.<ns>.pod.<domain>` answers that address (CoreDNS's `pods insecure`, the
//! default). Queries come over UDP only: a relayed answer the upstream truncated (TC) sends
//! the client to a TCP retry that finds nothing listening.

pub mod srv;
pub mod wire;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use tokio::net::UdpSocket;
use tokio::sync::{watch, Semaphore};

use super::services::{ReadyEndpoint, ServiceCache};
use crate::sandbox::Ipv4Cidr;
use wire::{Query, NOERROR, NXDOMAIN, REFUSED, SERVFAIL};

/// TTL of cluster answers: short, as CoreDNS's kubernetes plugin (5 s).
const TTL: u32 = 5;
/// Forwarded queries in flight at once; more are answered SERVFAIL.
const MAX_FORWARDS: usize = 256;
/// Per upstream resolver, tried in turn.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest UDP payload.
const MAX_MESSAGE: usize = 65_535;

/// What a name resolves to here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Answer(Vec<Ipv4Addr>),
    /// An ExternalName Service: a CNAME to this name (lower case, no trailing dot).
    Alias(String),
    /// SRV records of a Service's ports.
    Srv(Vec<srv::Srv>),
    /// The name exists (or may), with no record of the asked type.
    NoData,
    NxDomain,
    /// Not a cluster name: ask the host's resolvers.
    Forward,
}

/// What the cluster DNS reads: Services and the ready endpoints of headless ones.
pub trait Catalog {
    fn service(&self, ns: &str, name: &str) -> Option<Service>;
    fn endpoints(&self, ns: &str, name: &str) -> Vec<ReadyEndpoint>;
}

impl Catalog for ServiceCache {
    fn service(&self, ns: &str, name: &str) -> Option<Service> {
        self.get(ns, name)
    }

    fn endpoints(&self, ns: &str, name: &str) -> Vec<ReadyEndpoint> {
        ServiceCache::endpoints(self, ns, name)
    }
}

/// A headless Service's answer: every ready endpoint, or (`label`) the one of that
/// hostname or dashed address.
fn headless(eps: &[ReadyEndpoint], label: Option<&str>, qtype: u16) -> Lookup {
    // A label may name an endpoint by its address, dashed (`10-244-1-5` for 10.244.1.5,
    // the name CoreDNS gives an endpoint without a hostname).
    let dashed_ip: Option<Ipv4Addr> = label.and_then(|l| l.replace('-', ".").parse().ok());
    let mut ips: Vec<Ipv4Addr> = Vec::new();
    let named = eps.iter().filter(|e| {
        label.is_none_or(|l| e.hostname.as_deref() == Some(l) || dashed_ip == Some(e.ip))
    });
    for e in named {
        if !ips.contains(&e.ip) {
            ips.push(e.ip);
        }
    }
    match label {
        Some(_) if ips.is_empty() => Lookup::NxDomain,
        _ if ips.is_empty() || (qtype != wire::TYPE_A && qtype != wire::TYPE_ANY) => Lookup::NoData,
        _ => Lookup::Answer(ips),
    }
}

/// Resolves `q` in cluster domain `domain` (lower case) from `catalog`.
pub fn lookup(q: &Query, domain: &str, catalog: &impl Catalog) -> Lookup {
    let domain = domain.trim_end_matches('.');
    let inner = match q.name.strip_suffix(domain) {
        Some("") => "",
        Some(r) => match r.strip_suffix('.') {
            Some(r) => r,
            None => return Lookup::Forward,
        },
        None => return Lookup::Forward,
    };
    let svc_ns = match inner.strip_suffix("svc") {
        Some("") => "",
        Some(r) if r.ends_with('.') => &r[..r.len() - 1],
        _ => match inner.strip_suffix(".pod") {
            Some(pod) => return pod_record(pod, q.qtype),
            // `<domain>` itself, or `pod.<domain>`.
            None if inner.is_empty() || inner == "pod" => return Lookup::NoData,
            None => return Lookup::NxDomain,
        },
    };
    // From the right: namespace, service, then (headless records) an endpoint.
    let mut parts = svc_ns.rsplit('.');
    let (Some(ns), Some(svc)) = (parts.next(), parts.next()) else {
        // `<namespace>.svc` or `svc` alone.
        return Lookup::NoData;
    };
    let below = parts.next();
    let Some(s) = catalog.service(ns, svc) else {
        return Lookup::NxDomain;
    };
    let fqdn = || format!("{svc}.{ns}.svc.{domain}");
    // SRV names: `_<port>._<proto>.<service>`.
    if let Some(proto) = below.filter(|l| l.starts_with('_')) {
        let (Some(port), None) = (parts.next(), parts.next()) else {
            return Lookup::NxDomain;
        };
        let Some(ports) = srv::Ports::from_labels(port, proto) else {
            return Lookup::NxDomain;
        };
        return srv_answer(&s, &fqdn(), ports, q.qtype, || catalog.endpoints(ns, svc));
    }
    let spec = s.spec.as_ref();
    if spec.and_then(|sp| sp.type_.as_deref()) == Some("ExternalName") {
        let target = spec
            .and_then(|sp| sp.external_name.as_deref())
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        return match below {
            Some(_) => Lookup::NxDomain,
            None if target.is_empty() => Lookup::NoData,
            None => Lookup::Alias(target),
        };
    }
    let is_headless = spec
        .and_then(|sp| sp.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None");
    match (is_headless, below) {
        // Only one label goes below a Service: `<hostname>.<service>`.
        (true, _) if parts.next().is_some() => return Lookup::NxDomain,
        (_, None) if q.qtype == wire::TYPE_SRV => {
            let eps = || catalog.endpoints(ns, svc);
            return srv_answer(&s, &fqdn(), srv::Ports::All, q.qtype, eps);
        }
        (true, label) => return headless(&catalog.endpoints(ns, svc), label, q.qtype),
        (false, Some(_)) => return Lookup::NxDomain,
        (false, None) => {}
    }
    if q.qtype != wire::TYPE_A && q.qtype != wire::TYPE_ANY {
        return Lookup::NoData;
    }
    let ips: Vec<Ipv4Addr> = spec
        .and_then(|sp| sp.cluster_ips.clone())
        .or_else(|| spec.and_then(|sp| sp.cluster_ip.clone()).map(|ip| vec![ip]))
        .unwrap_or_default()
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if ips.is_empty() {
        Lookup::NoData
    } else {
        Lookup::Answer(ips)
    }
}

/// The SRV answer of `svc` (named `fqdn`) for `ports`: its records for an SRV (or ANY)
/// query, no data for another type, NXDOMAIN if the Service has no such port.
fn srv_answer(
    svc: &Service,
    fqdn: &str,
    ports: srv::Ports<'_>,
    qtype: u16,
    endpoints: impl FnOnce() -> Vec<ReadyEndpoint>,
) -> Lookup {
    let spec = svc.spec.as_ref();
    if spec.and_then(|sp| sp.type_.as_deref()) == Some("ExternalName") {
        return Lookup::NoData;
    }
    let headless = spec.and_then(|sp| sp.cluster_ip.as_deref()) == Some("None");
    let records = if headless {
        srv::headless(&endpoints(), fqdn, ports)
    } else {
        srv::cluster_ip(svc, fqdn, ports)
    };
    // The Service's own name exists whatever its ports; a headless Service's port exists
    // while no endpoint is ready.
    let exists =
        ports == srv::Ports::All || !records.is_empty() || (headless && srv::declares(svc, ports));
    match () {
        _ if !exists => Lookup::NxDomain,
        _ if qtype == wire::TYPE_SRV || qtype == wire::TYPE_ANY => Lookup::Srv(records),
        _ => Lookup::NoData,
    }
}

/// A pod's record, `<dashed ip>.<ns>.pod.<domain>` (`pod` here is `<dashed ip>.<ns>`): its
/// address, for any namespace, as CoreDNS's `pods insecure` (the default setup) answers.
fn pod_record(pod: &str, qtype: u16) -> Lookup {
    let Some((dashed, _ns)) = pod.rsplit_once('.') else {
        // `<ns>.pod.<domain>`.
        return Lookup::NoData;
    };
    // One label: `10.244.1.5.<ns>.pod` is not a pod's name.
    if dashed.contains('.') {
        return Lookup::NxDomain;
    }
    match dashed.replace('-', ".").parse::<Ipv4Addr>() {
        Ok(ip) if qtype == wire::TYPE_A || qtype == wire::TYPE_ANY => Lookup::Answer(vec![ip]),
        Ok(_) => Lookup::NoData,
        Err(_) => Lookup::NxDomain,
    }
}

/// A message without EDNS carries at most 512 bytes over UDP (RFC 1035).
const MAX_UDP_ANSWER: usize = 512;

/// The addresses of an answer to `q`: rotated by the query id (so clients that take the
/// first spread over all), then as many as fit [`MAX_UDP_ANSWER`] (header, question and
/// 16 bytes per A record). The rest is left off without TC: no TCP listener would serve it.
pub fn fit_answer(q: &Query, ips: Vec<Ipv4Addr>) -> Vec<Ipv4Addr> {
    rotate_and_keep(q, ips, wire::a_records_within(q, MAX_UDP_ANSWER))
}

/// [`fit_answer`] for an alias to `target`: the CNAME takes its room first.
pub fn fit_alias(q: &Query, target: &str, ips: Vec<Ipv4Addr>) -> Vec<Ipv4Addr> {
    rotate_and_keep(
        q,
        ips,
        wire::alias_records_within(q, target, MAX_UDP_ANSWER),
    )
}

/// `records` rotated by the query id (clients that take the first spread over all), then
/// the first `keep`.
fn rotate_and_keep<T>(q: &Query, mut records: Vec<T>, keep: usize) -> Vec<T> {
    if records.is_empty() {
        return records;
    }
    let start = usize::from(q.id) % records.len();
    records.rotate_left(start);
    records.truncate(keep);
    records
}

/// Binds the node's DNS port (done before the pods' resolv.conf names it).
pub async fn bind(node_ip: Ipv4Addr) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(SocketAddr::new(node_ip.into(), 53)).await
}

/// What the server answers from and for whom.
pub struct Serve {
    pub services: ServiceCache,
    pub domain: String,
    /// The host's resolvers, tried in order.
    pub upstream: Vec<SocketAddr>,
    /// Clients answered: the node's pods.
    pub clients: Ipv4Cidr,
    /// The node's own address: pods on the node's network (`hostNetwork`) ask from it.
    pub node_ip: Ipv4Addr,
}

/// Serves queries on `sock` until `stop`.
pub fn spawn(sock: UdpSocket, serve: Serve, mut stop: watch::Receiver<bool>) {
    let sock = Arc::new(sock);
    let upstream = Arc::new(serve.upstream.clone());
    let forwards = Arc::new(Semaphore::new(MAX_FORWARDS));
    tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let received = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                r = sock.recv_from(&mut buf) => r,
            };
            let (n, from) = match received {
                Ok(got) => got,
                Err(e) => {
                    log::warn!("kubelet: cluster DNS: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let msg = &buf[..n];
            let from_pod = match from.ip() {
                IpAddr::V4(ip) => {
                    serve.clients.contains(ip) || ip == serve.node_ip || ip.is_loopback()
                }
                IpAddr::V6(_) => false,
            };
            let q = match wire::parse(msg) {
                Ok(q) if from_pod => q,
                Ok(_) => {
                    if let Some(reply) = wire::error_reply(msg, REFUSED) {
                        let _ = sock.send_to(&reply, from).await;
                    }
                    continue;
                }
                Err(r) => {
                    if let Some(reply) = wire::error_reply(msg, r.rcode) {
                        let _ = sock.send_to(&reply, from).await;
                    }
                    continue;
                }
            };
            let reply = match lookup(&q, &serve.domain, &serve.services) {
                Lookup::Forward => match forwards.clone().try_acquire_owned() {
                    Ok(permit) if !upstream.is_empty() => {
                        let (sock, query, upstream) =
                            (sock.clone(), msg.to_vec(), upstream.clone());
                        tokio::spawn(async move {
                            let mut answer = None;
                            for &to in upstream.iter() {
                                answer = forward(&query, to).await;
                                if answer.is_some() {
                                    break;
                                }
                            }
                            let reply = answer.unwrap_or_else(|| wire::reply(&q, SERVFAIL, &[], 0));
                            let _ = sock.send_to(&reply, from).await;
                            drop(permit);
                        });
                        continue;
                    }
                    _ => wire::reply(&q, SERVFAIL, &[], 0),
                },
                // Before the first list, a missing Service may only be not yet seen.
                _ if !serve.services.is_synced() => wire::reply(&q, SERVFAIL, &[], 0),
                Lookup::Alias(target) => {
                    let wants_a = q.qtype == wire::TYPE_A || q.qtype == wire::TYPE_ANY;
                    match alias_target(&target, &serve.domain, &serve.services) {
                        // Its addresses are elsewhere: ask the host's resolvers, off the loop.
                        Lookup::Forward if wants_a && !upstream.is_empty() => {
                            let Ok(permit) = forwards.clone().try_acquire_owned() else {
                                let _ =
                                    sock.send_to(&wire::reply(&q, SERVFAIL, &[], 0), from).await;
                                continue;
                            };
                            let (sock, upstream) = (sock.clone(), upstream.clone());
                            tokio::spawn(async move {
                                let ask = wire::query(q.id, &target, wire::TYPE_A);
                                let mut answer = None;
                                for &to in upstream.iter() {
                                    answer = forward(&ask, to).await;
                                    if answer.is_some() {
                                        break;
                                    }
                                }
                                // No resolver answered: fail as a relayed query does.
                                let reply = match answer {
                                    Some(a) => {
                                        let addrs = fit_alias(&q, &target, wire::answer_addrs(&a));
                                        wire::reply_alias(&q, &target, &addrs, TTL)
                                    }
                                    None => wire::reply(&q, SERVFAIL, &[], 0),
                                };
                                let _ = sock.send_to(&reply, from).await;
                                drop(permit);
                            });
                            continue;
                        }
                        Lookup::Answer(ips) if wants_a => {
                            wire::reply_alias(&q, &target, &fit_alias(&q, &target, ips), TTL)
                        }
                        _ => wire::reply_alias(&q, &target, &[], TTL),
                    }
                }
                Lookup::Answer(ips) => wire::reply(&q, NOERROR, &fit_answer(&q, ips), TTL),
                Lookup::Srv(records) => {
                    // Rotated per query, as addresses are; `reply_srv` keeps what fits.
                    let records = rotate_and_keep(&q, records, usize::MAX);
                    let records: Vec<(u16, &str, Ipv4Addr)> = records
                        .iter()
                        .map(|r| (r.port, r.target.as_str(), r.addr))
                        .collect();
                    wire::reply_srv(&q, &records, TTL, MAX_UDP_ANSWER)
                }
                Lookup::NoData => wire::reply(&q, NOERROR, &[], TTL),
                Lookup::NxDomain => wire::reply(&q, NXDOMAIN, &[], TTL),
            };
            let _ = sock.send_to(&reply, from).await;
        }
    });
}

/// What an ExternalName's `target` resolves to here: a cluster name's addresses (one
/// alias deep: an alias to an alias answers with the CNAME alone), or `Forward`.
fn alias_target(target: &str, domain: &str, catalog: &impl Catalog) -> Lookup {
    match wire::parse(&wire::query(0, target, wire::TYPE_A)) {
        Ok(tq) => match lookup(&tq, domain, catalog) {
            Lookup::Alias(_) => Lookup::NoData,
            other => other,
        },
        Err(_) => Lookup::NoData,
    }
}

/// Relays `query` to `to` and returns its reply (same id), if one comes in time.
async fn forward(query: &[u8], to: SocketAddr) -> Option<Vec<u8>> {
    let local: SocketAddr = match to.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).await.ok()?;
    sock.connect(to).await.ok()?;
    sock.send(query).await.ok()?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = tokio::time::timeout(FORWARD_TIMEOUT, async {
        loop {
            let n = sock.recv(&mut buf).await.ok()?;
            if n >= 2 && buf[..2] == query[..2] {
                return Some(n);
            }
        }
    })
    .await
    .ok()??;
    buf.truncate(n);
    Some(buf)
}

/// The host resolvers to forward to, from resolv.conf's `nameserver` lines.
pub fn upstreams(nameservers: &[String]) -> Vec<SocketAddr> {
    nameservers
        .iter()
        .filter_map(|n| n.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::wire::{parse, query, TYPE_A, TYPE_SRV};
    use super::*;
    use crate::kubelet::services::EndpointPort;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn svc(ns: &str, name: &str, ip: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                cluster_ips: Some(vec![ip.into()]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// `svc` with a port `http` (80/TCP).
    fn with_http(mut s: Service) -> Service {
        s.spec.as_mut().unwrap().ports = Some(vec![ServicePort {
            name: Some("http".into()),
            port: 80,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]);
        s
    }

    fn alias(ns: &str, name: &str, target: &str) -> Service {
        let mut s = svc(ns, name, "");
        let spec = s.spec.as_mut().unwrap();
        spec.type_ = Some("ExternalName".into());
        spec.external_name = Some(target.into());
        (spec.cluster_ip, spec.cluster_ips) = (None, None);
        s
    }

    struct Fixture;

    impl Catalog for Fixture {
        fn service(&self, ns: &str, name: &str) -> Option<Service> {
            [
                with_http(svc("default", "web", "10.96.0.20")),
                svc("shop", "db", "10.96.0.30"),
                with_http(svc("default", "headless", "None")),
                svc("default", "empty", "None"),
                alias("default", "docs", "Docs.Example.org."),
                alias("default", "local", "web.default.svc.cluster.local"),
            ]
            .into_iter()
            .find(|s| {
                s.metadata.name.as_deref() == Some(name)
                    && s.metadata.namespace.as_deref() == Some(ns)
            })
        }

        fn endpoints(&self, ns: &str, name: &str) -> Vec<ReadyEndpoint> {
            if (ns, name) != ("default", "headless") {
                return Vec::new();
            }
            let http = EndpointPort {
                name: "http".into(),
                protocol: "TCP".into(),
                port: 8080,
            };
            vec![
                ReadyEndpoint {
                    ip: Ipv4Addr::new(10, 244, 1, 5),
                    hostname: Some("pod-0".into()),
                    ports: vec![http.clone()],
                },
                ReadyEndpoint {
                    ip: Ipv4Addr::new(10, 244, 2, 7),
                    hostname: None,
                    ports: vec![http],
                },
            ]
        }
    }

    fn ask(name: &str, qtype: u16) -> Lookup {
        lookup(
            &parse(&query(1, name, qtype)).unwrap(),
            "cluster.local",
            &Fixture,
        )
    }

    #[test]
    fn external_names_alias_their_target_whatever_the_type() {
        let docs = Lookup::Alias("docs.example.org".into());
        assert_eq!(ask("docs.default.svc.cluster.local", TYPE_A), docs);
        assert_eq!(ask("docs.default.svc.cluster.local", 28), docs, "AAAA too");
        assert_eq!(
            ask("x.docs.default.svc.cluster.local", TYPE_A),
            Lookup::NxDomain
        );
        assert_eq!(
            alias_target("docs.example.org", "cluster.local", &Fixture),
            Lookup::Forward
        );
        assert_eq!(
            alias_target("web.default.svc.cluster.local", "cluster.local", &Fixture),
            Lookup::Answer(vec![Ipv4Addr::new(10, 96, 0, 20)]),
            "a cluster target answers from here"
        );
        assert_eq!(
            alias_target("local.default.svc.cluster.local", "cluster.local", &Fixture),
            Lookup::NoData,
            "one alias deep"
        );
    }

    #[test]
    fn services_resolve_to_their_cluster_ips() {
        let web = Lookup::Answer(vec![Ipv4Addr::new(10, 96, 0, 20)]);
        assert_eq!(ask("web.default.svc.cluster.local", TYPE_A), web);
        assert_eq!(ask("WEB.default.svc.cluster.local.", TYPE_A), web);
        assert_eq!(
            ask("db.shop.svc.cluster.local", TYPE_A),
            Lookup::Answer(vec![Ipv4Addr::new(10, 96, 0, 30)])
        );
        assert_eq!(
            ask("web.default.svc.cluster.local", 28),
            Lookup::NoData,
            "AAAA"
        );
    }

    #[test]
    fn headless_services_resolve_to_their_ready_endpoints() {
        let (a, b) = (Ipv4Addr::new(10, 244, 1, 5), Ipv4Addr::new(10, 244, 2, 7));
        assert_eq!(
            ask("headless.default.svc.cluster.local", TYPE_A),
            Lookup::Answer(vec![a, b])
        );
        assert_eq!(
            ask("pod-0.headless.default.svc.cluster.local", TYPE_A),
            Lookup::Answer(vec![a])
        );
        assert_eq!(
            ask("10-244-2-7.headless.default.svc.cluster.local", TYPE_A),
            Lookup::Answer(vec![b])
        );
        assert_eq!(
            ask("pod-9.headless.default.svc.cluster.local", TYPE_A),
            Lookup::NxDomain
        );
        assert_eq!(
            ask("x.pod-0.headless.default.svc.cluster.local", TYPE_A),
            Lookup::NxDomain
        );
        assert_eq!(
            ask("pod-0.headless.default.svc.cluster.local", 28),
            Lookup::NoData,
            "AAAA"
        );
        assert_eq!(
            ask("empty.default.svc.cluster.local", TYPE_A),
            Lookup::NoData
        );
    }

    #[test]
    fn other_cluster_names_do_not_exist_and_the_rest_is_forwarded() {
        assert_eq!(
            ask("nope.default.svc.cluster.local", TYPE_A),
            Lookup::NxDomain
        );
        assert_eq!(
            ask("db.default.svc.cluster.local", TYPE_A),
            Lookup::NxDomain
        );
        // What the search path tries first for `web.default`: service `default`.
        assert_eq!(
            ask("web.default.default.svc.cluster.local", TYPE_A),
            Lookup::NxDomain
        );
        assert_eq!(ask("web.cluster.local", TYPE_A), Lookup::NxDomain);
        // SRV names exist for the Service's ports only (no A record of their own).
        for name in [
            "_http._tcp.web.default.svc.cluster.local",
            "_http._tcp.headless.default.svc.cluster.local",
        ] {
            assert_eq!(ask(name, TYPE_A), Lookup::NoData, "{name}");
        }
        for name in [
            "_http._tcp.nope.default.svc.cluster.local",
            "_http._udp.web.default.svc.cluster.local",
            "_grpc._tcp.web.default.svc.cluster.local",
            "_http.web.default.svc.cluster.local",
            "x._http._tcp.web.default.svc.cluster.local",
        ] {
            assert_eq!(ask(name, TYPE_SRV), Lookup::NxDomain, "{name}");
        }
        assert_eq!(ask("example.com", TYPE_A), Lookup::Forward);
        assert_eq!(ask("notcluster.local", TYPE_A), Lookup::Forward);
    }

    #[test]
    fn srv_records_name_the_service_or_each_endpoint() {
        let web = "web.default.svc.cluster.local";
        let want = Lookup::Srv(vec![srv::Srv {
            port: 80,
            target: web.into(),
            addr: Ipv4Addr::new(10, 96, 0, 20),
        }]);
        assert_eq!(ask(&format!("_http._tcp.{web}"), TYPE_SRV), want);
        assert_eq!(ask(web, TYPE_SRV), want, "all ports of the Service");
        let Lookup::Srv(eps) = ask("_http._tcp.headless.default.svc.cluster.local", TYPE_SRV)
        else {
            panic!("no SRV records");
        };
        let targets: Vec<(&str, u16)> = eps.iter().map(|r| (r.target.as_str(), r.port)).collect();
        assert_eq!(
            targets,
            [
                ("pod-0.headless.default.svc.cluster.local", 8080),
                ("10-244-2-7.headless.default.svc.cluster.local", 8080)
            ]
        );
        assert_eq!(
            ask("_http._tcp.empty.default.svc.cluster.local", TYPE_SRV),
            Lookup::NxDomain,
            "no such port"
        );
        assert_eq!(
            ask("empty.default.svc.cluster.local", TYPE_SRV),
            Lookup::Srv(vec![]),
            "the name exists without ports"
        );
    }

    #[test]
    fn pod_records_answer_their_dashed_address() {
        let ip = Lookup::Answer(vec![Ipv4Addr::new(10, 244, 1, 5)]);
        assert_eq!(ask("10-244-1-5.default.pod.cluster.local", TYPE_A), ip);
        assert_eq!(ask("10-244-1-5.shop.pod.cluster.local", TYPE_A), ip);
        assert_eq!(
            ask("10-244-1-5.default.pod.cluster.local", 28),
            Lookup::NoData
        );
        assert_eq!(ask("default.pod.cluster.local", TYPE_A), Lookup::NoData);
        assert_eq!(
            ask("10.244.1.5.default.pod.cluster.local", TYPE_A),
            Lookup::NxDomain
        );
        assert_eq!(
            ask("not-an-ip.default.pod.cluster.local", TYPE_A),
            Lookup::NxDomain
        );
    }

    #[test]
    fn srv_replies_carry_targets_and_fit_a_udp_message() {
        let q = parse(&query(
            7,
            "_http._tcp.big.default.svc.cluster.local",
            TYPE_SRV,
        ))
        .unwrap();
        let targets: Vec<String> = (0..40)
            .map(|i| format!("10-244-0-{i}.big.default.svc.cluster.local"))
            .collect();
        let records: Vec<(u16, &str, Ipv4Addr)> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| (8080, t.as_str(), Ipv4Addr::new(10, 244, 0, i as u8)))
            .collect();
        let reply = wire::reply_srv(&q, &records, TTL, MAX_UDP_ANSWER);
        assert!(reply.len() <= MAX_UDP_ANSWER, "{}", reply.len());
        let answers = u16::from_be_bytes([reply[6], reply[7]]);
        let additional = u16::from_be_bytes([reply[10], reply[11]]);
        assert!(answers > 0 && answers < 40, "{answers}");
        assert_eq!(answers, additional, "one address per target");
        // The additional section holds the targets' A records, as a resolver reads them.
        assert_eq!(
            wire::answer_addrs(&reply).len(),
            0,
            "the answer section has no A records"
        );
        let one = wire::reply_srv(&q, &records[..1], TTL, MAX_UDP_ANSWER);
        let n = one.len();
        assert_eq!(
            &one[n - 4..],
            &[10, 244, 0, 0],
            "the target's address ends it"
        );
        assert_eq!(&one[n - 16 + 2..n - 16 + 4], &wire::TYPE_A.to_be_bytes());
    }

    #[test]
    fn answers_rotate_and_fit_a_udp_message() {
        let ips: Vec<Ipv4Addr> = (0..100u8).map(|i| Ipv4Addr::new(10, 244, 0, i)).collect();
        let name = "big.default.svc.cluster.local";
        let q0 = parse(&query(0, name, TYPE_A)).unwrap();
        let q1 = parse(&query(1, name, TYPE_A)).unwrap();
        let a0 = fit_answer(&q0, ips.clone());
        let a1 = fit_answer(&q1, ips.clone());
        assert_eq!(a0[0], ips[0]);
        assert_eq!(a1[0], ips[1]);
        let reply = wire::reply(&q0, NOERROR, &a0, TTL);
        assert!(reply.len() <= MAX_UDP_ANSWER, "{}", reply.len());
        assert!(reply.len() + 16 > MAX_UDP_ANSWER, "as many as fit");
        let few = vec![ips[0], ips[1]];
        assert_eq!(fit_answer(&q1, few.clone()), vec![ips[1], ips[0]]);
    }
}
