//! The seed demo on a lab cluster: the notes' MySQL + web example ([`MANIFESTS`]) applied
//! with the real kubectl, waited on until both ReplicationControllers are ready, then the
//! page fetched through NodePort 30001 from outside the nodes.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::cluster::{procs_get, Cluster, ClusterSpec, Forward};
use crate::wait;

pub const MANIFESTS: &str = include_str!("manifests.yaml");
pub const NODE_PORT: u16 = 30001;

/// `(name, ready, desired)` of each ReplicationController.
fn rc_readiness(c: &Cluster) -> Result<Vec<(String, u32, u32)>> {
    let out = c.kubectl_ok(&[
        "get",
        "rc",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.readyReplicas} {.spec.replicas}{\"\\n\"}{end}",
    ])?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?.to_string();
            let (a, b) = (f.next(), f.next());
            // readyReplicas is omitted while it is 0.
            let (ready, desired) = match (a, b) {
                (Some(r), Some(d)) => (r.parse().ok()?, d.parse().ok()?),
                (Some(d), None) => (0, d.parse().ok()?),
                _ => return None,
            };
            Some((name, ready, desired))
        })
        .collect())
}

/// Apply the example and wait until every replica is ready; `note` gets progress lines.
pub fn deploy(c: &Cluster, note: &dyn Fn(String)) -> Result<()> {
    let path = c.work_dir().join("seed-demo.yaml");
    std::fs::write(&path, MANIFESTS)?;
    note(
        c.kubectl_ok(&["apply", "-f", &path.to_string_lossy()])?
            .trim()
            .to_string(),
    );
    let mut last = String::new();
    let done = wait::try_until(Duration::from_secs(240), || {
        let rcs = rc_readiness(c).ok()?;
        let line = rcs
            .iter()
            .map(|(n, r, d)| format!("{n} {r}/{d}"))
            .collect::<Vec<_>>()
            .join(", ");
        if line != last {
            note(format!("ready: {line}"));
            last = line;
        }
        (rcs.len() == 2 && rcs.iter().all(|(_, r, d)| r == d)).then_some(())
    });
    if done.is_err() {
        let pods = c
            .kubectl_ok(&["get", "pods", "-o", "wide"])
            .unwrap_or_default();
        bail!("the demo's pods did not all become ready:\n{pods}");
    }
    Ok(())
}

/// The page served on NodePort 30001 of node `i`, fetched by the lab's external client.
pub fn fetch_page(c: &Cluster, i: usize) -> Result<String> {
    let addr = std::net::SocketAddr::from((c.node_addr(i), NODE_PORT));
    let (code, body) = c.external().netns().run(|| procs_get(addr, "/"))??;
    if code != 200 {
        bail!("GET http://{addr}/ answered {code}: {body}");
    }
    Ok(body)
}

/// The whole demo, in the foreground: cluster, example, page, forwards from the host's
/// loopback, then wait for Ctrl-C / SIGTERM (unless `once`). Progress lines start with
/// `[demo]`; `[demo] READY` marks the end of the set-up.
pub fn run(spec: ClusterSpec, api_port: u16, web_port: u16, once: bool) -> Result<()> {
    let note = |s: String| println!("[demo] {s}");
    // Installed before the lab's own handler (which would only remove the namespaces):
    // Ctrl-C / SIGTERM drains the pods first.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })?;
    let cluster = Cluster::start(spec, &note)?;
    deploy(&cluster, &note)?;
    let page = wait::try_until(Duration::from_secs(60), || fetch_page(&cluster, 0).ok());
    let page = page.map_err(|_| anyhow::anyhow!("NodePort {NODE_PORT} did not serve the page"))?;
    note(format!(
        "NodePort {NODE_PORT} on {} answers:\n{}",
        cluster.node_addr(0),
        page.lines()
            .filter(|l| l.starts_with("<tr>") || l.starts_with("<p>"))
            .collect::<Vec<_>>()
            .join("\n")
    ));
    let mut forwards = Vec::new();
    if api_port != 0 {
        let local = std::net::SocketAddr::from(([127, 0, 0, 1], api_port));
        forwards.push(Forward::start(
            local,
            cluster.node(0).netns(),
            cluster.api(0),
        )?);
        let kc = cluster.work_dir().join("kubeconfig");
        cluster.write_kubeconfig(&kc, &format!("http://{local}"))?;
        note(format!(
            "kubectl: kubectl --kubeconfig {} get pods -o wide",
            kc.display()
        ));
    }
    if web_port != 0 {
        let local = std::net::SocketAddr::from(([127, 0, 0, 1], web_port));
        let target = std::net::SocketAddr::from((cluster.node_addr(0), NODE_PORT));
        forwards.push(Forward::start(local, cluster.external().netns(), target)?);
        note(format!(
            "web page: curl http://{local}/  (NodePort {NODE_PORT} of {})",
            cluster.node_addr(0)
        ));
    }
    note("READY".into());
    if !once {
        let _ = stop_rx.recv();
    }
    note("tearing down".into());
    drop(forwards);
    drop(cluster);
    Ok(())
}
