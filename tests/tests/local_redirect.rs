//! Root: pods on one node reach each other without a trip through the
//! node's stack. The lab node of the ClusterIP fixture (three `skiff-echo`
//! backends, a client, the real agent): the agent fills `LOCAL_ENDPOINTS`
//! from the node's routes and veths, and `skiff_from_pod` redirects every
//! packet between the pods into its destination (`bpf_redirect_peer`).
//! Proof of the bypass: the `local_redirect` counter grows by every packet
//! while the node's own IPv4 forwarding counter (`Ip: ForwDatagrams` of its
//! netns) does not move. Sources are preserved, directly and through the
//! ClusterIP.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use aya::maps::{Array, HashMap, Map, MapData};
use skiff_common::{map_names, stats, LocalEndpoint, LocalPrefix};
use skiff_tests::clusterip::{in_pod, ClusterIpLab, REQ, SYNC, TARGET_PORT};
use skiff_tests::echo;
use skiff_tests::lab::Pod;
use skiff_tests::rawpkt::parse_mac;
use skiff_tests::wait;

const REQS: usize = 10;

/// The fixture, with every pod of the node in `LOCAL_ENDPOINTS` with the
/// MACs the lab gave its veths.
fn fixture() -> ClusterIpLab {
    let fx = ClusterIpLab::start(Path::new(env!("CARGO_BIN_EXE_skiff-echo")));
    let pods: Vec<&Pod> = fx.backends.iter().chain([&fx.client]).collect();
    wait::until(SYNC, "every pod in LOCAL_ENDPOINTS", || {
        fx.agent().assert_running();
        let eps = local_endpoints(&fx);
        pods.iter()
            .all(|p| {
                eps.iter().any(|(ip, e)| {
                    *ip == p.ip()
                        && Some(e.pod_mac) == parse_mac(&p.mac())
                        && Some(e.host_mac) == parse_mac(&p.host_mac())
                })
            })
            .then_some(())
    });
    fx
}

fn local_endpoints(fx: &ClusterIpLab) -> Vec<(Ipv4Addr, LocalEndpoint)> {
    let path = fx.pin_dir().join(map_names::LOCAL_ENDPOINTS);
    let data = MapData::from_pin(&path).expect("opening LOCAL_ENDPOINTS");
    let map: HashMap<MapData, u32, LocalEndpoint> =
        HashMap::try_from(Map::HashMap(data)).expect("LOCAL_ENDPOINTS is a hash map");
    map.iter()
        .map(|kv| kv.map(|(k, v)| (Ipv4Addr::from(k.to_ne_bytes()), v)))
        .collect::<Result<_, _>>()
        .expect("reading LOCAL_ENDPOINTS")
}

fn local_prefix(fx: &ClusterIpLab) -> LocalPrefix {
    let path = fx.pin_dir().join(map_names::LOCAL_PREFIX);
    let data = MapData::from_pin(&path).expect("opening LOCAL_PREFIX");
    let map: Array<MapData, LocalPrefix> =
        Array::try_from(Map::Array(data)).expect("LOCAL_PREFIX is an array");
    map.get(&0, 0).expect("reading LOCAL_PREFIX")
}

/// The agent narrows the local-delivery lookup to a prefix holding every
/// local pod and nothing of the service range.
#[test]
fn the_local_prefix_covers_the_pods_and_not_the_services() {
    let fx = fixture();
    let p = local_prefix(&fx);
    assert_ne!(p, LocalPrefix::default(), "LOCAL_PREFIX was never written");
    for pod in fx.backends.iter().chain([&fx.client]) {
        assert!(
            p.contains(u32::from_ne_bytes(pod.ip().octets())),
            "{}",
            pod.ip()
        );
    }
    let vip = Ipv4Addr::new(10, 96, 0, 10);
    assert!(!p.contains(u32::from_ne_bytes(vip.octets())), "{p:?}");
}

/// `Ip: ForwDatagrams` of the node's netns: packets its stack forwarded.
fn forwarded(fx: &ClusterIpLab) -> u64 {
    let snmp = fx
        .lab
        .node(0)
        .netns()
        .run(|| std::fs::read_to_string("/proc/thread-self/net/snmp"))
        .expect("entering the node")
        .expect("reading net/snmp");
    let mut ip = snmp.lines().filter(|l| l.starts_with("Ip: "));
    let (names, values) = (ip.next().unwrap(), ip.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "ForwDatagrams")
        .expect("ForwDatagrams in net/snmp");
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

/// Runs `f`, returning (its result, redirected packets, node-forwarded
/// packets) over the call.
fn measured<T>(fx: &ClusterIpLab, f: impl FnOnce() -> T) -> (T, u64, u64) {
    let (s0, f0) = (fx.maps.stats().unwrap(), forwarded(fx));
    let out = f();
    let (s1, f1) = (fx.maps.stats().unwrap(), forwarded(fx));
    let redirected = s1.since(&s0).get(stats::LOCAL_REDIRECT);
    (out, redirected, f1 - f0)
}

#[test]
fn pod_to_pod_on_one_node_bypasses_the_stack_and_keeps_the_source() {
    let fx = fixture();
    let client_ip = IpAddr::V4(fx.client.ip());
    for backend in &fx.backends {
        let to = SocketAddr::from((backend.ip(), TARGET_PORT));
        let ((), redirected, forwarded) = measured(&fx, || {
            for i in 0..REQS {
                let line = format!("tcp {i}");
                let r = in_pod(&fx.client, || echo::tcp_request(to, &line, REQ)).unwrap();
                assert_eq!((r.name.as_str(), r.peer), (backend.name(), to));
                assert_eq!(r.client.ip(), client_ip, "source seen by {}", r.name);
                assert_eq!(r.line, line);
                let line = format!("udp {i}");
                let r = in_pod(&fx.client, || echo::udp_request(to, &line, REQ)).unwrap();
                assert_eq!((r.peer, r.client.ip()), (to, client_ip));
            }
        });
        // A TCP request is at least SYN, SYN-ACK, request and reply (the
        // FINs may come after), a UDP one two datagrams.
        let least = (REQS * (4 + 2)) as u64;
        assert!(
            redirected >= least,
            "{}: {redirected} packets redirected, want ≥ {least}",
            backend.name()
        );
        eprintln!(
            "{}: {redirected} packets redirected, {forwarded} forwarded by the node",
            backend.name()
        );
        assert_eq!(
            forwarded,
            0,
            "{}: the node's stack forwarded packets",
            backend.name()
        );
    }
}

#[test]
fn a_clusterip_with_local_backends_is_redirected_after_dnat() {
    let fx = fixture();
    let client_ip = IpAddr::V4(fx.client.ip());
    let (names, redirected, forwarded) = measured(&fx, || {
        let mut names = std::collections::BTreeSet::new();
        for i in 0..3 * REQS {
            let r = fx.tcp(&fx.client, &format!("svc {i}")).unwrap();
            assert_eq!((r.peer, r.client.ip()), (fx.vip(), client_ip));
            let u = fx.udp(&fx.client, &format!("svc {i}")).unwrap();
            assert_eq!((u.peer, u.client.ip()), (fx.vip(), client_ip));
            names.insert(r.name);
        }
        names
    });
    assert_eq!(
        names.len(),
        fx.backends.len(),
        "backends reached: {names:?}"
    );
    eprintln!("ClusterIP: {redirected} packets redirected, {forwarded} forwarded by the node");
    let least = (3 * REQS * (4 + 2)) as u64;
    assert!(
        redirected >= least,
        "{redirected} redirected, want ≥ {least}"
    );
    assert_eq!(forwarded, 0, "the node's stack forwarded packets");
}

/// Without its entry a pod is reached through the node's stack (which the
/// forwarding counter sees: the check above means something), and the
/// agent's next link scan puts the entry back.
#[test]
fn a_removed_entry_falls_back_to_the_stack_and_is_restored() {
    let fx = fixture();
    let backend = &fx.backends[0];
    let path = fx.pin_dir().join(map_names::LOCAL_ENDPOINTS);
    let data = MapData::from_pin(&path).unwrap();
    let mut map: HashMap<MapData, u32, LocalEndpoint> =
        HashMap::try_from(Map::HashMap(data)).unwrap();
    let key = u32::from_ne_bytes(backend.ip().octets());
    let to = SocketAddr::from((backend.ip(), TARGET_PORT));
    let client_ip = IpAddr::V4(fx.client.ip());
    // The agent may restore the entry between the removal and the request:
    // then try again.
    let forwarded = wait::until(SYNC, "a request through the node's stack", || {
        let _ = map.remove(&key);
        let (r, _, forwarded) = measured(&fx, || {
            in_pod(&fx.client, || echo::tcp_request(to, "stack", REQ)).unwrap()
        });
        assert_eq!(r.client.ip(), client_ip);
        (forwarded > 0).then_some(forwarded)
    });
    eprintln!("entry removed: the node forwarded {forwarded} packets");
    wait::until(SYNC, "the agent to restore the entry", || {
        local_endpoints(&fx)
            .iter()
            .any(|(ip, _)| *ip == backend.ip())
            .then_some(())
    });
    let (_, redirected, forwarded) = measured(&fx, || {
        in_pod(&fx.client, || echo::tcp_request(to, "again", REQ)).unwrap()
    });
    eprintln!("entry restored: {redirected} redirected, {forwarded} forwarded");
    assert!(redirected >= 4, "{redirected} redirected");
    assert_eq!(forwarded, 0);
}

/// A megabyte each way (TSO/GSO-sized segments from the pods' sockets)
/// arrives intact through the redirect.
#[test]
fn a_large_tcp_transfer_arrives_intact() {
    let fx = fixture();
    let to = SocketAddr::from((fx.backends[1].ip(), TARGET_PORT));
    let line: String = (0..1 << 20)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let (r, redirected, forwarded) = measured(&fx, || {
        in_pod(&fx.client, || echo::tcp_request(to, &line, REQ)).unwrap()
    });
    eprintln!("1 MiB each way: {redirected} packets redirected, {forwarded} forwarded");
    assert!(r.line == line, "the echoed megabyte differs");
    assert!(redirected > 0);
    assert_eq!(forwarded, 0);
}
