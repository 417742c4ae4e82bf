//! `skiff-pods-bench` (`cargo xtask bench pods`): how fast one kubelet starts pods. A lab
//! node runs a real control plane (one replica, in this process, on a runtime whose threads
//! entered the node's netns) and `skiff agent --no-proxy` (the release binary, its own
//! process); N busybox pods (`sleep 3600`) are created as fast as the API takes them and
//! scheduled by the control plane's scheduler. Per pod: create→Running, from the create
//! response to the first watch event with phase Running. Printed: p50/p99 and the agent's
//! RSS (VmRSS of the agent process only, not the containers or their shims); written:
//! `target/bench/pods.json`. Everything is removed at the end, also on error.

mod agent;
mod cleanup;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
use skiff_controlplane::api::client::{Event, Selectors};
use skiff_controlplane::api::ApiClient;
use skiff_controlplane::server::{Server, ServerConfig};
use skiff_tests::kubelet_lab::{import_busybox, rt, IMAGE};
use skiff_tests::lab::Lab;

use agent::{AgentOpts, AgentProc};
use cleanup::Cleanup;

#[derive(clap::Args)]
pub struct Args {
    /// The `skiff` binary to run the agent from (a release build).
    #[arg(long)]
    pub skiff: PathBuf,
    /// Pods to create.
    #[arg(long, default_value_t = 100)]
    pub pods: usize,
    /// Creates in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Where the JSON result goes.
    #[arg(long, default_value = "target/bench/pods.json")]
    pub out: PathBuf,
    /// Keep a copy of the agent's log here (the scratch directory is removed).
    #[arg(long)]
    pub agent_log: Option<PathBuf>,
}

const READY_DEADLINE: Duration = Duration::from_secs(60);
const RUN_DEADLINE: Duration = Duration::from_secs(300);

fn progress(msg: &str) {
    eprintln!("[pods-bench] {msg}");
}

pub fn run(args: &Args) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the pods benchmark builds a netns lab and runs containers: run as root");
    }
    let lab = Lab::builder()
        .nodes(1)
        .build()
        .context("building the lab")?;
    let node = lab.node(0);
    let cp = node.netns().run(rt).context("entering the lab node")?;
    let scratch = std::env::temp_dir().join(format!("{}-pods-bench", lab.prefix()));
    let state = scratch.join("agent");
    let mut guard = Cleanup::new(scratch.clone(), state.clone());
    progress("starting the control plane (1 replica)");
    let addr = std::net::SocketAddr::new(node.addr().into(), 0);
    let scfg = ServerConfig::new(scratch.join("cp"), addr, "127.0.0.1:0".parse()?);
    let server = cp
        .block_on(cp.spawn(Server::start(scfg)))?
        .context("starting the control plane")?;
    let api = server.api().client();
    let agent_addr = server.agent_addr().to_string();
    guard.server = Some(server);
    import_busybox(&state);
    progress(&format!("starting {} agent", args.skiff.display()));
    let agent = AgentProc::start(
        node,
        AgentOpts {
            bin: &args.skiff,
            server: agent_addr,
            state_dir: &state,
            node_ip: node.addr(),
            log: scratch.join("agent.log"),
        },
    )?;
    let res = cp.block_on(measure(&api, &agent, node.name(), args));
    if let Err(e) = &res {
        progress(&format!(
            "failed: {e:#}; the agent's log ends:\n{}",
            agent.log_tail(20)
        ));
    }
    let res = res.and_then(|r| report(&r, args));
    progress("deleting the pods");
    if let Err(e) = cp.block_on(cleanup::delete_pods(&api, &agent)) {
        progress(&format!("cleanup: {e:#}"));
    }
    agent.stop();
    if let Some(keep) = &args.agent_log {
        if let Err(e) = std::fs::copy(scratch.join("agent.log"), keep) {
            progress(&format!(
                "copying the agent's log to {}: {e}",
                keep.display()
            ));
        }
    }
    guard.finish(&cp);
    drop(lab);
    res
}

pub struct Measured {
    pub latencies_ms: Vec<f64>,
    /// The slowest pods, slowest first: (name, ms).
    pub slowest: Vec<(String, f64)>,
    pub rss_mb: f64,
    pub peak_rss_mb: f64,
    pub wall: Duration,
}

async fn measure(api: &ApiClient, agent: &AgentProc, node: &str, args: &Args) -> Result<Measured> {
    let start = Instant::now();
    loop {
        agent.check_alive()?;
        if let Ok(n) = api.get::<Node>(None, node).await {
            let ready = n
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready {
                break;
            }
        }
        if start.elapsed() > READY_DEADLINE {
            bail!("node {node} not Ready after {READY_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress(&format!(
        "node Ready after {:.1} s, agent RSS {:.1} MiB; creating {} pods",
        start.elapsed().as_secs_f64(),
        agent.rss_mb()?,
        args.pods
    ));
    let running: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut watch = api
        .watch::<Pod>(Some("default"), &Selectors::default(), None)
        .await
        .context("watching pods")?;
    let seen = running.clone();
    let watcher = tokio::spawn(async move {
        while let Some(ev) = watch.next().await {
            let pod = match ev {
                Ok(Event::Added(p) | Event::Modified(p)) => p,
                Ok(_) => continue,
                Err(e) => return Err(anyhow::anyhow!("pod watch ended: {e:?}")),
            };
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if phase == Some("Running") {
                let name = pod.metadata.name.unwrap_or_default();
                seen.lock()
                    .unwrap()
                    .entry(name)
                    .or_insert_with(Instant::now);
            }
        }
        Ok(())
    });

    let t0 = Instant::now();
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.pods {
        let (api, created, sem) = (api.clone(), created.clone(), sem.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire().await;
            let name = format!("bench-{i:03}");
            api.create(Some("default"), &bench_pod(&name))
                .await
                .with_context(|| format!("creating pod {name}"))?;
            created.lock().unwrap().insert(name, Instant::now());
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    progress(&format!(
        "{} pods created in {:.2} s",
        args.pods,
        t0.elapsed().as_secs_f64()
    ));
    let mut last = 0;
    loop {
        agent.check_alive()?;
        if watcher.is_finished() {
            watcher.await??;
            bail!("the pod watch ended early");
        }
        let n = running.lock().unwrap().len();
        if n != last && (n == args.pods || n / 10 != last / 10) {
            progress(&format!(
                "{n}/{} Running after {:.2} s",
                args.pods,
                t0.elapsed().as_secs_f64()
            ));
        }
        last = n;
        if n >= args.pods {
            break;
        }
        if t0.elapsed() > RUN_DEADLINE {
            bail!("only {n}/{} pods Running after {RUN_DEADLINE:?}", args.pods);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = t0.elapsed();
    watcher.abort();
    let (created, running) = (created.lock().unwrap(), running.lock().unwrap());
    let mut by_pod: Vec<(String, f64)> = created
        .iter()
        .map(|(name, c)| {
            let r = running[name];
            (
                name.clone(),
                r.saturating_duration_since(*c).as_secs_f64() * 1000.0,
            )
        })
        .collect();
    by_pod.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut latencies_ms: Vec<f64> = by_pod.iter().map(|(_, ms)| *ms).collect();
    latencies_ms.sort_by(f64::total_cmp);
    by_pod.truncate(3);
    Ok(Measured {
        latencies_ms,
        slowest: by_pod,
        rss_mb: agent.rss_mb()?,
        peak_rss_mb: agent.peak_rss_mb()?,
        wall,
    })
}

fn bench_pod(name: &str) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.labels = Some([("app".to_string(), "pods-bench".to_string())].into());
    p.spec = Some(PodSpec {
        termination_grace_period_seconds: Some(1),
        containers: vec![Container {
            name: "sleep".into(),
            image: Some(IMAGE.into()),
            command: Some(vec!["sleep".into(), "3600".into()]),
            ..Default::default()
        }],
        ..Default::default()
    });
    p
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(m: &Measured, args: &Args) -> Result<()> {
    let (p50, p99) = (
        percentile(&m.latencies_ms, 50.0),
        percentile(&m.latencies_ms, 99.0),
    );
    let max = m.latencies_ms.last().copied().unwrap_or(f64::NAN);
    println!(
        "pods: {} on one node in {:.2} s; create→Running p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms (target p99 ≤ 1000 ms)",
        m.latencies_ms.len(),
        m.wall.as_secs_f64()
    );
    let slowest: Vec<String> = m
        .slowest
        .iter()
        .map(|(n, ms)| format!("{n} {ms:.0} ms"))
        .collect();
    println!("slowest: {}", slowest.join(", "));
    println!(
        "agent RSS (VmRSS of the skiff agent process only): {:.1} MiB, peak {:.1} MiB (target ≤ 50 MB)",
        m.rss_mb, m.peak_rss_mb
    );
    let json = serde_json::json!({
        "pods": m.latencies_ms.len(),
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": max,
        "wall_s": m.wall.as_secs_f64(),
        "agent_rss_mb": m.rss_mb,
        "agent_peak_rss_mb": m.peak_rss_mb,
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
