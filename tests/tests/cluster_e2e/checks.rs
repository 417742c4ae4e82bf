//! The checks of `cluster_e2e`, one per behaviour, in the order the test runs them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use skiff_common::PROTO_TCP;
use skiff_tests::bpfmaps::addr_of;
use skiff_tests::cluster::{Cluster, PodRef};
use skiff_tests::echo::{tcp_request, EchoReply, TcpSession};
use skiff_tests::metrics::Histogram;
use skiff_tests::wait;

const TIMEOUT: Duration = Duration::from_secs(2);

fn echo_pods(c: &Cluster) -> Vec<PodRef> {
    c.pods("app=echo").expect("listing the echo pods")
}

/// Pods the EndpointSlices of Service `svc` list as terminating.
fn terminating_endpoints(c: &Cluster, svc: &str) -> BTreeSet<String> {
    let selector = format!("kubernetes.io/service-name={svc}");
    let out = c
        .kubectl_ok(&[
            "get",
            "endpointslices",
            "-l",
            &selector,
            "-o",
            "jsonpath={range .items[*].endpoints[*]}{.targetRef.name}={.conditions.terminating}{\"\\n\"}{end}",
        ])
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.strip_suffix("=true"))
        .map(str::to_owned)
        .collect()
}

fn names(pods: &[PodRef]) -> BTreeSet<String> {
    pods.iter().map(|p| p.name.clone()).collect()
}

/// Up to `max` fresh connections to `addr` (one request each), stopping early once
/// `enough` holds; failed attempts are dropped. Runs wherever the caller is.
fn sample(addr: SocketAddr, max: usize, enough: impl Fn(&[EchoReply]) -> bool) -> Vec<EchoReply> {
    let mut replies = Vec::new();
    for i in 0..max {
        if let Ok(r) = tcp_request(addr, &format!("req-{i}"), TIMEOUT) {
            replies.push(r);
        }
        if enough(&replies) {
            break;
        }
    }
    replies
}

/// [`sample`] from inside `pod`, after waiting (bounded) for the first answer.
fn sample_from_pod(
    c: &Cluster,
    pod: &PodRef,
    addr: SocketAddr,
    max: usize,
    enough: impl Fn(&[EchoReply]) -> bool + Send,
) -> Vec<EchoReply> {
    c.in_pod(pod, || {
        wait::until(
            Duration::from_secs(30),
            &format!("{addr} from {}", pod.name),
            || tcp_request(addr, "first", TIMEOUT).ok(),
        );
        sample(addr, max, enough)
    })
    .expect("entering the client pod")
}

/// [`sample`] from the external client on the underlay.
fn sample_external(
    c: &Cluster,
    addr: SocketAddr,
    max: usize,
    enough: impl Fn(&[EchoReply]) -> bool + Send,
) -> Vec<EchoReply> {
    c.external()
        .netns()
        .run(|| {
            wait::until(
                Duration::from_secs(30),
                &format!("{addr} from outside"),
                || tcp_request(addr, "first", TIMEOUT).ok(),
            );
            sample(addr, max, enough)
        })
        .expect("entering the external client")
}

fn distinct(replies: &[EchoReply]) -> BTreeSet<String> {
    replies.iter().map(|r| r.name.clone()).collect()
}

/// 1. Six replicas over three nodes: every node runs some.
pub fn spread(c: &Cluster) {
    let pods = echo_pods(c);
    assert_eq!(pods.len(), 6, "{pods:?}");
    let mut per_node = vec![0; c.lab().nodes().len()];
    for p in &pods {
        per_node[p.node] += 1;
    }
    eprintln!("[check] echo pods per node: {per_node:?}");
    assert!(per_node.iter().all(|&n| n >= 1), "not spread: {per_node:?}");
}

/// 1b. Every node keeps a kernel-managed neighbour entry for every other node (what the
///     NodePort XDP program's FIB lookups need to forward on the first packet).
pub fn neighbours_managed(c: &Cluster) {
    let n = c.lab().nodes().len();
    for i in 0..n {
        let ns = c.node(i).netns().name().to_string();
        wait::until(Duration::from_secs(30), "managed neighbours", || {
            let out = std::process::Command::new("ip")
                .args(["-n", &ns, "neigh", "show", "nud", "all"])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            (0..n)
                .filter(|&j| j != i)
                .all(|j| {
                    let peer = format!("{} ", c.node_addr(j));
                    text.lines().any(|l| {
                        l.starts_with(&peer) && l.contains("managed") && l.contains("lladdr")
                    })
                })
                .then_some(())
        });
    }
    eprintln!("[check] every node keeps its peers' neighbour entries resolved (managed)");
}

/// 2. The ClusterIP from a pod on every node reaches every backend, source IP intact.
pub fn cluster_ip(c: &Cluster, clients: &[PodRef]) {
    let addr = SocketAddr::from((c.cluster_ip("echo").unwrap(), 80));
    let all = names(&echo_pods(c));
    for client in clients {
        let want = all.len();
        let replies = sample_from_pod(c, client, addr, 400, |r| distinct(r).len() == want);
        assert_eq!(
            distinct(&replies),
            all,
            "backends reached from {}",
            client.name
        );
        for r in &replies {
            assert_eq!(r.client.ip(), client.ip, "the backend saw {r:?}");
        }
        eprintln!(
            "[check] ClusterIP {addr} from {} (node {}): all {want} backends in {} connections",
            client.name,
            client.node,
            replies.len()
        );
    }
}

/// 3. The NodePort on every node's address: local backends see the client, backends on
///    other nodes see the node (SNAT) so that replies come back through it.
pub fn node_port(c: &Cluster) {
    let port = c.node_port("echo-np").unwrap();
    let node_of: BTreeMap<String, usize> =
        echo_pods(c).into_iter().map(|p| (p.name, p.node)).collect();
    let ext = c.external().addr();
    for i in 0..c.lab().nodes().len() {
        let node = c.node_addr(i);
        let addr = SocketAddr::from((node, port));
        let nodes_of =
            |r: &[EchoReply]| -> BTreeSet<usize> { r.iter().map(|r| node_of[&r.name]).collect() };
        let want = node_of.len();
        let replies = sample_external(c, addr, 400, |r| distinct(r).len() == want);
        assert_eq!(distinct(&replies).len(), want, "{addr} missed backends");
        for r in &replies {
            let want = if node_of[&r.name] == i { ext } else { node };
            assert_eq!(r.client.ip(), want, "{addr}: {r:?}");
        }
        eprintln!(
            "[check] NodePort {addr}: all {want} backends on {} nodes in {} connections",
            nodes_of(&replies).len(),
            replies.len()
        );
    }
}

/// 4. `externalTrafficPolicy: Local`: each node's own backends only, client IP kept.
pub fn local_policy(c: &Cluster) {
    let port = c.node_port("echo-local").unwrap();
    let node_of: BTreeMap<String, usize> =
        echo_pods(c).into_iter().map(|p| (p.name, p.node)).collect();
    let ext = c.external().addr();
    for i in 0..c.lab().nodes().len() {
        let addr = SocketAddr::from((c.node_addr(i), port));
        let replies = sample_external(c, addr, 20, |_| false);
        assert_eq!(replies.len(), 20, "{addr}: some connections failed");
        for r in &replies {
            assert_eq!(
                node_of[&r.name], i,
                "{addr} answered from another node: {r:?}"
            );
            assert_eq!(
                r.client.ip(),
                ext,
                "{addr}: the client IP was not kept: {r:?}"
            );
        }
    }
    eprintln!("[check] externalTrafficPolicy Local: local backends, client IP {ext} kept");
}

/// 5. `sessionAffinity: ClientIP`: every connection of one client, one backend.
pub fn affinity(c: &Cluster, clients: &[PodRef]) {
    let addr = SocketAddr::from((c.cluster_ip("echo-sticky").unwrap(), 80));
    for client in clients {
        let replies = sample_from_pod(c, client, addr, 30, |_| false);
        assert_eq!(replies.len(), 30, "{addr} from {}: failures", client.name);
        let got = distinct(&replies);
        assert_eq!(got.len(), 1, "{} was not sticky: {got:?}", client.name);
        eprintln!("[check] affinity: {} sticks to {got:?}", client.name);
    }
}

/// 6. Scale 6 → 3 with a connection open to every backend: those to terminating pods
///    keep working through the pods' preStop, new ones avoid them, the rest never
///    notice; then back to 6.
pub fn scale_down_drains(c: &Cluster, client: &PodRef) {
    let addr = SocketAddr::from((c.cluster_ip("echo").unwrap(), 80));
    let mut sessions: BTreeMap<String, TcpSession> = c
        .in_pod(client, || {
            let mut m = BTreeMap::new();
            for i in 0..400 {
                if m.len() == 6 {
                    break;
                }
                let mut s = TcpSession::connect(addr, TIMEOUT).expect("connecting");
                let r = s.request(&format!("open-{i}")).expect("first request");
                m.entry(r.name).or_insert(s);
            }
            m
        })
        .unwrap();
    assert_eq!(sessions.len(), 6, "a session to every backend");
    c.kubectl_ok(&["scale", "deployment", "echo", "--replicas=3"])
        .unwrap();
    let leaving = wait::until(Duration::from_secs(30), "3 echo pods terminating", || {
        let t: BTreeSet<String> = echo_pods(c)
            .into_iter()
            .filter(|p| p.terminating)
            .map(|p| p.name)
            .collect();
        (t.len() == 3).then_some(t)
    });
    // The pods are marked one at a time, and each mark reaches the nodes'
    // maps through its own EndpointSlice update: first the API must show all
    // three terminating, then enough samples that a backend still taking new
    // flows (one in four) would show up: 0.75^40 < 1e-5.
    wait::until(
        Duration::from_secs(10),
        "the EndpointSlice to mark them terminating",
        || {
            let marked = terminating_endpoints(c, "echo");
            leaving.is_subset(&marked).then_some(())
        },
    );
    wait::until(
        Duration::from_secs(10),
        "new connections to avoid them",
        || {
            let r = sample_from_pod(c, client, addr, 40, |_| false);
            (r.len() == 40 && r.iter().all(|r| !leaving.contains(&r.name))).then_some(())
        },
    );
    for (name, s) in sessions.iter_mut() {
        let r = s
            .request("during the drain")
            .unwrap_or_else(|e| panic!("the established connection to {name} broke: {e}"));
        assert_eq!(&r.name, name);
    }
    let fresh = sample_from_pod(c, client, addr, 30, |_| false);
    assert_eq!(fresh.len(), 30, "new connections failed during the drain");
    assert!(
        fresh.iter().all(|r| !leaving.contains(&r.name)),
        "{fresh:?}"
    );
    eprintln!("[check] drain: 6 established connections kept, new ones avoid {leaving:?}");

    wait::until(
        Duration::from_secs(90),
        "the terminating pods to go",
        || {
            let pods = echo_pods(c);
            (pods.len() == 3 && pods.iter().all(|p| !p.terminating)).then_some(())
        },
    );
    for (name, s) in sessions.iter_mut().filter(|(n, _)| !leaving.contains(*n)) {
        let r = s
            .request("after the drain")
            .unwrap_or_else(|e| panic!("the connection to surviving {name} broke: {e}"));
        assert_eq!(&r.name, name);
    }
    c.kubectl_ok(&["scale", "deployment", "echo", "--replicas=6"])
        .unwrap();
    wait::until(
        Duration::from_secs(120),
        "6 echo replicas ready again",
        || {
            (c.jsonpath(&["deployment", "echo"], "{.status.readyReplicas}")
                .ok()?
                == "6")
                .then_some(())
        },
    );
}

/// 6b. Scale to 0: while every endpoint is terminating and still serving (the
///     pods' preStop), new connections go to them rather than nowhere
///     (KEP-1669); then back to 6.
pub fn all_terminating_still_serve(c: &Cluster, client: &PodRef) {
    let addr = SocketAddr::from((c.cluster_ip("echo").unwrap(), 80));
    c.kubectl_ok(&["scale", "deployment", "echo", "--replicas=0"])
        .unwrap();
    let leaving = wait::until(Duration::from_secs(30), "6 echo pods terminating", || {
        let pods = echo_pods(c);
        (pods.len() == 6 && pods.iter().all(|p| p.terminating)).then(|| names(&pods))
    });
    wait::until(
        Duration::from_secs(10),
        "the EndpointSlice to mark them terminating",
        || (terminating_endpoints(c, "echo") == leaving).then_some(()),
    );
    // The preStop hooks sleep 15 s: the nodes fall back well within that.
    // Until the client's node has the last mark, the one pod not yet marked
    // takes every new flow; after it, all six share them (one pod taking 20
    // in a row: 6·6^-20).
    let replies = wait::until(
        Duration::from_secs(10),
        "20 new connections in a row to succeed, over the terminating pods",
        || {
            let r = sample_from_pod(c, client, addr, 20, |_| false);
            (r.len() == 20 && distinct(&r).len() > 1).then_some(r)
        },
    );
    assert!(
        replies.iter().all(|r| leaving.contains(&r.name)),
        "{replies:?}"
    );
    eprintln!(
        "[check] all terminating: new connections served by {:?}",
        distinct(&replies)
    );
    c.kubectl_ok(&["scale", "deployment", "echo", "--replicas=6"])
        .unwrap();
    wait::until(
        Duration::from_secs(120),
        "6 echo replicas ready and the old ones gone",
        || {
            let pods = echo_pods(c);
            let ready = c
                .jsonpath(&["deployment", "echo"], "{.status.readyReplicas}")
                .ok()?;
            (ready == "6" && pods.len() == 6 && pods.iter().all(|p| !p.terminating)).then_some(())
        },
    );
}

/// 7. Deleting a Service removes its frontend, backends slots and conntrack entries
///    from every node's maps.
pub fn service_delete_cleans_maps(c: &Cluster, client: &PodRef) {
    let vip = c.cluster_ip("echo-sticky").unwrap();
    let addr = SocketAddr::from((vip, 80));
    c.in_pod(client, || tcp_request(addr, "ct", TIMEOUT))
        .unwrap()
        .expect("a flow through echo-sticky");
    let maps = c.node_maps();
    let rev: Vec<u32> = maps
        .iter()
        .map(|m| {
            m.frontend(vip, 80, PROTO_TCP)
                .unwrap()
                .expect("the frontend on every node")
                .rev_nat_id
        })
        .collect();
    let flows = |i: usize| -> usize {
        maps[i]
            .conntrack()
            .unwrap()
            .iter()
            .filter(|(_, v)| v.rev_nat_id == rev[i])
            .count()
    };
    assert!(flows(client.node) > 0, "no conntrack entry for the flow");
    c.kubectl_ok(&["delete", "service", "echo-sticky"]).unwrap();
    for (i, m) in maps.iter().enumerate() {
        wait::until(
            Duration::from_secs(30),
            "echo-sticky gone from the maps",
            || {
                let services = m.services().ok()?;
                let left = services.iter().any(|(k, _)| addr_of(k.addr) == vip);
                let rev_nat = m.rev_nat().ok()?.iter().any(|(id, _)| *id == rev[i]);
                (!left && !rev_nat && flows(i) == 0).then_some(())
            },
        );
    }
    eprintln!("[check] Service delete: frontend, rev-NAT and conntrack gone on every node");
}

fn summary(h: &Histogram) -> String {
    let ms = |q| h.quantile_upper_bound(q).map_or(f64::NAN, |v| v * 1e3);
    format!(
        "{} changes, mean {:.1} ms, p50 ≤ {:.0} ms, p99 ≤ {:.0} ms",
        h.count,
        1e3 * h.sum / h.count.max(1) as f64,
        ms(0.5),
        ms(0.99)
    )
}

/// 8. Network-programming latency (EndpointSlice change in the store → maps programmed
///    on the node) on every agent's /metrics: reported for the whole run above (pod
///    churn on a busy machine), and for a series of Service changes in steady state,
///    each checked programmed on every node before the next: every change measured.
pub fn programming_latency(c: &Cluster) {
    const NAME: &str = "skiff_network_programming_duration_seconds";
    let before = c.histograms(NAME).unwrap();
    for (i, h) in before.iter().enumerate() {
        eprintln!("[check] node {i}, the run so far: {}", summary(h));
        assert!(h.count >= 10, "node {i}: only {} observations", h.count);
    }
    let maps = c.node_maps();
    for k in 0..10 {
        let name = format!("probe-{k}");
        c.apply(
            &name,
            &format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  \
                 selector: {{app: echo}}\n  ports: [{{port: 80, targetPort: 8080}}]\n"
            ),
        )
        .unwrap();
        let vip = c.cluster_ip(&name).unwrap();
        for m in &maps {
            wait::until(
                Duration::from_secs(10),
                "the probe Service programmed",
                || {
                    let fe = m.frontend(vip, 80, PROTO_TCP).ok()??;
                    (fe.count == 6).then_some(())
                },
            );
        }
    }
    let after = c.histograms(NAME).unwrap();
    for (i, (a, b)) in after.iter().zip(&before).enumerate() {
        let h = a.since(b);
        eprintln!("[check] node {i}, 10 Service changes: {}", summary(&h));
        assert!(
            h.count >= 10,
            "node {i}: {} of 10 changes observed",
            h.count
        );
        // Behaviour, not speed (that is the benchmarks' job): each change was measured
        // from its own trigger time — an old or missing one would show as seconds.
        let max = h.quantile_upper_bound(1.0).unwrap();
        assert!(max <= 5.0, "node {i}: a change took {max} s: {h:?}");
    }
    let probes: Vec<String> = (0..10).map(|k| format!("probe-{k}")).collect();
    let mut args = vec!["delete", "service"];
    args.extend(probes.iter().map(String::as_str));
    c.kubectl_ok(&args).unwrap();
}

/// 9. The kubectl end-to-end script, run as a user would, against replica 0.
pub fn kubectl_script(c: &Cluster) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/kubectl-e2e.sh");
    let kubeconfig = c.work_dir().join("kubeconfig.lab");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", c.node(0).netns().name(), "bash", script])
        .arg(&kubeconfig)
        .output()
        .expect("running the kubectl e2e script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubectl-e2e.sh failed:\n{text}");
    let steps = text.lines().filter(|l| l.starts_with("== ")).count();
    eprintln!("[check] kubectl-e2e.sh: {steps} steps passed");
}

/// 10. Node `k` dies (agent and pod processes SIGKILLed): it turns NotReady, its
///     endpoints leave the Service, traffic avoids them, and its pods come back elsewhere.
pub fn node_loss(c: &mut Cluster, k: usize) {
    let dead: BTreeSet<String> = echo_pods(c)
        .into_iter()
        .filter(|p| p.node == k)
        .map(|p| p.name)
        .collect();
    assert!(!dead.is_empty(), "node {k} runs no echo pod");
    let node = c.node(k).name().to_string();
    c.kill_node(k);
    eprintln!("[check] killed node {k} ({node}) with {dead:?}");
    wait::until(Duration::from_secs(60), "the node to turn NotReady", || {
        let ready = c
            .jsonpath(
                &["node", &node],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            )
            .ok()?;
        (ready != "True").then_some(())
    });
    wait::until(Duration::from_secs(60), "its endpoints to leave", || {
        let eps = c
            .jsonpath(
                &["endpointslices", "-l", "kubernetes.io/service-name=echo"],
                "{range .items[*].endpoints[*]}{.nodeName} {.conditions.ready}{\"\\n\"}{end}",
            )
            .ok()?;
        (!eps.lines().any(|l| l == format!("{node} true"))).then_some(())
    });
    let client = c
        .pods("app=client")
        .unwrap()
        .into_iter()
        .find(|p| p.node != k)
        .expect("a client on a live node");
    let addr = SocketAddr::from((c.cluster_ip("echo").unwrap(), 80));
    // The slice is in the API; the client's node applies it moments later.
    wait::until(
        Duration::from_secs(10),
        "30 connections in a row to succeed, none to the dead node",
        || {
            let replies = sample_from_pod(c, &client, addr, 30, |_| false);
            (replies.len() == 30 && replies.iter().all(|r| !dead.contains(&r.name))).then_some(())
        },
    );
    wait::until(
        Duration::from_secs(150),
        "6 echo pods on the live nodes",
        || {
            let pods = echo_pods(c);
            let live = pods
                .iter()
                .filter(|p| !p.terminating && p.node != k)
                .count();
            let ready = c
                .jsonpath(&["deployment", "echo"], "{.status.readyReplicas}")
                .ok()?;
            (live == 6 && ready == "6" && pods.iter().all(|p| !dead.contains(&p.name)))
                .then_some(())
        },
    );
    eprintln!("[check] node loss: endpoints gone, pods replaced on the other nodes");
}
