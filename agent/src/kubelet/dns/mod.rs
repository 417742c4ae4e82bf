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
//! does (stub resolvers do not chase a lone CNAME). SRV records (`_port._proto.<service>`)
//! and pod records (`<ip>.<ns>.pod`) are not served yet: their names answer with no
//! records rather than NXDOMAIN, so a client does not conclude they do not exist. Queries come over UDP only: a relayed answer the
//! upstream truncated (TC) sends the client to a TCP retry that finds nothing listening.

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
        // `<domain>` itself, or pod records (`<dashed ip>.<ns>.pod`), not served yet.
        _ if inner.is_empty() || inner == "pod" || inner.ends_with(".pod") => {
            return Lookup::NoData
        }
        _ => return Lookup::NxDomain,
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
    // SRV names (`_http._tcp.<service>`): not served yet, but they may exist.
    if below.is_some_and(|l| l.starts_with('_')) {
        return Lookup::NoData;
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

fn rotate_and_keep(q: &Query, mut ips: Vec<Ipv4Addr>, keep: usize) -> Vec<Ipv4Addr> {
    if ips.is_empty() {
        return ips;
    }
    let start = usize::from(q.id) % ips.len();
    ips.rotate_left(start);
    ips.truncate(keep);
    ips
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
    use super::wire::{parse, query, TYPE_A};
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
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
                svc("default", "web", "10.96.0.20"),
                svc("shop", "db", "10.96.0.30"),
                svc("default", "headless", "None"),
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
            vec![
                ReadyEndpoint {
                    ip: Ipv4Addr::new(10, 244, 1, 5),
                    hostname: Some("pod-0".into()),
                },
                ReadyEndpoint {
                    ip: Ipv4Addr::new(10, 244, 2, 7),
                    hostname: None,
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
        // SRV and pod names are not served, but may exist: no records, not NXDOMAIN.
        for name in [
            "_http._tcp.web.default.svc.cluster.local",
            "_http._tcp.headless.default.svc.cluster.local",
            "10-244-1-5.default.pod.cluster.local",
        ] {
            assert_eq!(ask(name, TYPE_A), Lookup::NoData, "{name}");
        }
        assert_eq!(
            ask("_http._tcp.nope.default.svc.cluster.local", TYPE_A),
            Lookup::NxDomain
        );
        assert_eq!(ask("example.com", TYPE_A), Lookup::Forward);
        assert_eq!(ask("notcluster.local", TYPE_A), Lookup::Forward);
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
