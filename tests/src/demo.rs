//! `skiff-lab demo`: the ClusterIP data path on a one-node lab, shown the way
//! a user would see it — a Service in front of three echo pods, a client pod
//! whose requests spread over them while it only ever sees the VIP.

use std::collections::BTreeMap;
use std::path::Path;

use crate::clusterip::{ClusterIpLab, PORT, VIP};

/// Requests sent by the demo (each a new connection, so a new flow).
const REQUESTS: usize = 12;

/// Builds the lab, shows traffic through the VIP and returns the fixture so
/// the caller decides how long it lives.
pub fn run(echo_bin: &Path) -> anyhow::Result<ClusterIpLab> {
    println!("[demo] building a lab node with 3 echo pods, a client pod and the skiff agent ...");
    let fx = ClusterIpLab::start(echo_bin);
    println!(
        "[demo] Service echo: ClusterIP {VIP}:{PORT} (TCP and UDP) → pods {}",
        fx.backends
            .iter()
            .map(|p| format!("{}={}:8080", p.name(), p.ip()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut hits: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..REQUESTS {
        let r = fx.tcp(&fx.client, &format!("hello {i}"))?;
        println!(
            "  tcp request {i:>2}: answered by {:<10} client sees peer {}  backend sees client {}",
            r.name, r.peer, r.client
        );
        *hits.entry(r.name).or_default() += 1;
    }
    let r = fx.udp(&fx.client, "hello over udp")?;
    println!(
        "  udp request   : answered by {:<10} reply source {}",
        r.name, r.peer
    );
    println!("[demo] spread over backends: {hits:?}");
    let stats = fx.maps.stats()?;
    println!("[demo] data path counters: {stats}");
    println!(
        "[demo] try it: nsenter --net={} nc {VIP} {PORT}   (type a line)",
        fx.client.netns().path().display()
    );
    Ok(fx)
}
