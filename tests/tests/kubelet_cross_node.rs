//! Root: pod-to-pod traffic across two nodes through two kubelets (fixtures:
//! `skiff_tests::kubelet_lab`): the control plane in a third lab node, `skiff-echo` in a
//! pod on node 0, a busybox `nc` client in a pod on node 1. The kubelets route each
//! other's pod CIDRs over the underlay (no NAT), so the echo server sees the client pod's
//! own IP as the peer address.

use k8s_openapi::api::core::v1::Pod;
use skiff_agent::kubelet::BackoffConfig;
use skiff_tests::kubelet_lab::{app_status, eventually, import_binary, phase, pod, World, IMAGE};

const ECHO: &str = "skiff.local/skiff-echo:latest";

fn pod_ip(p: &Pod) -> Option<String> {
    p.status.as_ref()?.pod_ip.clone()
}

#[test]
fn pod_to_pod_across_nodes_keeps_the_source_ip() {
    let w = World::with_kubelets(2, BackoffConfig::default());
    import_binary(
        &w.hosts[0].cfg.state_dir,
        ECHO,
        std::path::Path::new(env!("CARGO_BIN_EXE_skiff-echo")),
        "skiff-echo",
    );
    let mut rx = pod("rx", ECHO, "", "Always");
    let c = &mut rx.spec.as_mut().unwrap().containers[0];
    c.command = Some(
        ["/bin/skiff-echo", "--port", "8080", "--name", "rx"]
            .map(String::from)
            .to_vec(),
    );
    rx.spec.as_mut().unwrap().node_name = Some(w.hosts[0].cfg.node_name.clone());
    w.create(&rx);
    let rx_ip = eventually("rx Running with an IP", || {
        let p = w.pod("rx")?;
        (phase(&p)? == "Running").then(|| pod_ip(&p)).flatten()
    });

    let script = format!(
        "until echo hello | nc -w 2 {rx_ip} 8080 | grep -q hello; do sleep 0.2; done; \
         echo hello | nc -w 2 {rx_ip} 8080; sleep 3600"
    );
    let mut tx = pod("tx", IMAGE, &script, "Always");
    tx.spec.as_mut().unwrap().node_name = Some(w.hosts[1].cfg.node_name.clone());
    let uid = w.create(&tx).metadata.uid.unwrap();
    let tx_pod = eventually("tx Running with an IP", || {
        let p = w.pod("tx")?;
        (phase(&p)? == "Running" && pod_ip(&p).is_some()).then_some(p)
    });
    let tx_ip = pod_ip(&tx_pod).unwrap();
    assert_ne!(
        rx_ip.rsplit_once('.').unwrap().0,
        tx_ip.rsplit_once('.').unwrap().0,
        "the pods are in different nodes' pod CIDRs"
    );
    assert_eq!(
        tx_pod.status.as_ref().unwrap().host_ip.as_deref(),
        Some(w.lab.node(1).addr().to_string().as_str())
    );
    let reply = eventually("the echo's answer in tx's log", || {
        let log = w.log_on(1, &uid, "app", 0);
        log.lines()
            .filter_map(|l| l.splitn(4, ' ').nth(3))
            .find(|l| l.starts_with("rx "))
            .map(str::to_string)
    });
    // `<name> <peer_ip>:<peer_port> <line>`
    let peer = reply.split(' ').nth(1).unwrap();
    let (peer_ip, _) = peer.rsplit_once(':').unwrap();
    assert_eq!(peer_ip, tx_ip, "the source IP is preserved: {reply}");
    assert!(app_status(&tx_pod).unwrap().ready);
    w.delete_all(&["rx", "tx"]);
}
