//! `skiff-programming-bench`: network-programming latency in a 3-node cluster (3
//! control-plane replicas), as every agent's `skiff_network_programming_duration_seconds`
//! measures it: from the change in the store (the endpoints controller's
//! `last-change-trigger-time`) to the maps programmed on the node. Two kinds of change,
//! one at a time, each waited for on every node before the next: Services created (a
//! new frontend with six backends) and a pod joining or leaving a Service's selection (an
//! endpoint added or removed). Target (issue 5): p99 ≤ 100 ms.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use skiff_common::PROTO_TCP;
use skiff_tests::cluster::{echo_box_layout, Cluster, ClusterSpec};
use skiff_tests::metrics::Histogram;
use skiff_tests::wait;

const METRIC: &str = "skiff_network_programming_duration_seconds";
const BACKENDS: u32 = 6;

#[derive(Parser, Debug)]
pub struct Args {
    /// The `skiff` binary (a release build).
    #[arg(long)]
    pub skiff: PathBuf,
    /// The `skiff-echo` binary packed into the backends' image.
    #[arg(long)]
    pub echo: PathBuf,
    /// Services to create.
    #[arg(long, default_value_t = 30)]
    pub services: usize,
    /// Endpoint changes (a pod labelled into, then out of, a Service's selection).
    #[arg(long, default_value_t = 30)]
    pub endpoint_changes: usize,
    #[arg(long, default_value = "target/bench/programming.json")]
    pub out: PathBuf,
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("[programming-bench] {}", msg.as_ref());
}

const WORKLOAD: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 6
  selector:
    matchLabels: {app: echo}
  template:
    metadata:
      labels: {app: echo}
    spec:
      containers:
      - name: echo
        image: skiff.local/echo-box:latest
        imagePullPolicy: Never
        command: [/bin/skiff-echo, --port, '8080', --name, $(POD_NAME)]
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: flip}
spec:
  selector: {flip: 'on'}
  ports: [{port: 80, targetPort: 8080}]
";

pub fn run(args: &Args) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the programming benchmark builds a netns lab and runs pods: run as root");
    }
    std::env::set_var("SKIFF_BIN", &args.skiff);
    let work = std::env::temp_dir().join(format!("skiff-programming-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let image = echo_box_layout(&work, &args.echo);
    let spec = ClusterSpec::new(3, 3, vec![image], work.clone());
    let started = Instant::now();
    let mut c = Cluster::start(spec, &|m| progress(m))?;
    progress(format!(
        "cluster up in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let result = measure(&c, args);
    c.stop();
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn measure(c: &Cluster, args: &Args) -> Result<()> {
    c.apply("workload", WORKLOAD)?;
    progress("waiting for 6 echo pods to be ready");
    wait::try_until(Duration::from_secs(180), || {
        (c.jsonpath(&["deployment", "echo"], "{.status.readyReplicas}")
            .ok()?
            == "6")
            .then_some(())
    })
    .map_err(|w| anyhow::anyhow!("echo not ready after {w:?}"))?;
    let maps = c.node_maps();
    let programmed = |vip, count: u32| -> Result<()> {
        for m in &maps {
            wait::try_until(Duration::from_secs(10), || {
                let fe = m.frontend(vip, 80, PROTO_TCP).ok()??;
                (fe.count == count).then_some(())
            })
            .map_err(|w| {
                anyhow::anyhow!("{vip} not programmed with {count} backends after {w:?}")
            })?;
        }
        Ok(())
    };
    let before = c.histograms(METRIC)?;
    for k in 0..args.services {
        let name = format!("bench-{k}");
        c.apply(
            &name,
            &format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  \
                 selector: {{app: echo}}\n  ports: [{{port: 80, targetPort: 8080}}]\n"
            ),
        )?;
        programmed(c.cluster_ip(&name)?, BACKENDS)?;
        if (k + 1) % 10 == 0 {
            progress(format!("{} Services created and programmed", k + 1));
        }
    }
    let flip = c.cluster_ip("flip")?;
    let pods = c.pods("app=echo")?;
    for k in 0..args.endpoint_changes {
        let pod = &pods[(k / 2) % pods.len()];
        let (label, count) = if k % 2 == 0 {
            ("flip=on", 1)
        } else {
            ("flip-", 0)
        };
        c.kubectl_ok(&["label", "pod", &pod.name, label, "--overwrite"])?;
        if count == 1 {
            programmed(flip, 1)?;
        } else {
            for m in &maps {
                wait::try_until(Duration::from_secs(10), || {
                    let fe = m.frontend(flip, 80, PROTO_TCP).ok()?;
                    fe.is_none_or(|f| f.count == 0).then_some(())
                })
                .map_err(|w| anyhow::anyhow!("{flip} kept its backend for {w:?}"))?;
            }
        }
        if (k + 1) % 10 == 0 {
            progress(format!("{} endpoint changes programmed", k + 1));
        }
    }
    let after = c.histograms(METRIC)?;
    report(args, &before, &after)
}

fn ms(h: &Histogram, q: f64) -> f64 {
    h.quantile_upper_bound(q).map_or(f64::NAN, |v| v * 1e3)
}

fn report(args: &Args, before: &[Histogram], after: &[Histogram]) -> Result<()> {
    let per_node: Vec<Histogram> = after.iter().zip(before).map(|(a, b)| a.since(b)).collect();
    let mut all = per_node[0].clone();
    for h in &per_node[1..] {
        for (acc, b) in all.buckets.iter_mut().zip(&h.buckets) {
            acc.1 += b.1;
        }
        all.sum += h.sum;
        all.count += h.count;
    }
    println!(
        "network programming latency, {} Service creates + {} endpoint changes, 3 nodes",
        args.services, args.endpoint_changes
    );
    println!(
        "{:<8} {:>8} {:>10} {:>10} {:>10}",
        "node", "changes", "mean ms", "p50 ≤ ms", "p99 ≤ ms"
    );
    let row = |name: String, h: &Histogram| {
        println!(
            "{:<8} {:>8} {:>10.1} {:>10.0} {:>10.0}",
            name,
            h.count,
            1e3 * h.sum / h.count.max(1) as f64,
            ms(h, 0.5),
            ms(h, 0.99)
        );
    };
    for (i, h) in per_node.iter().enumerate() {
        row(format!("node {i}"), h);
    }
    row("all".into(), &all);
    let p99 = ms(&all, 0.99);
    let met = p99 <= 100.0;
    println!(
        "p99 ≤ {p99:.0} ms (target ≤ 100 ms: {})",
        if met { "met" } else { "NOT met" }
    );
    let json = serde_json::json!({
        "services": args.services,
        "endpoint_changes": args.endpoint_changes,
        "changes_observed": all.count,
        "mean_ms": 1e3 * all.sum / all.count.max(1) as f64,
        "p50_ms": ms(&all, 0.5),
        "p99_ms": p99,
        "per_node_p99_ms": per_node.iter().map(|h| ms(h, 0.99)).collect::<Vec<_>>(),
        "target_p99_ms": 100,
        "met": met,
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    progress(format!("wrote {}", args.out.display()));
    Ok(())
}
