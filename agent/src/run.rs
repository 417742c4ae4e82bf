//! The `skiff agent` main loop.
//!
//! Every 200 ms: poll the service source (a manifest directory, or the
//! control plane's WatchServices stream with `--server`); every `--link-scan-interval-ms`:
//! attach to new pod veths; on a source change: reconcile the maps against
//! the agent's mirror of them (a failed pass is retried every
//! `--resync-interval-ms`, and every `--audit-interval-ms` the maps
//! themselves are read back and repaired); every `--ct-gc-interval-ms`:
//! conntrack GC. SIGTERM/SIGINT end the loop and
//! leave maps and links pinned, so the data path keeps running.
//! The control-plane source also wakes the loop as soon as a change arrives, and with the
//! kubelet (`--server`) each pass is measured into the `/metrics` histograms of
//! [`skiff_agent::proxy::latency`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use skiff_agent::dataplane::{
    read_stats, teardown, AttachReport, Dataplane, LoadOptions, MapSizes, PinDirs,
};
use skiff_agent::dataplane::{sock, POD_HOOKS};
use skiff_agent::proxy::conntrack::{gc_conntrack, monotonic_now_ns, CtTimeouts};
use skiff_agent::proxy::latency::{ProgrammingTracker, ProxyMetrics};
use skiff_agent::proxy::{translate, DesiredState, Proxy, TranslateInput};
use skiff_agent::source::{ControlPlaneSource, ManifestDir, ServiceSource};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

use skiff_agent::cpclient::{ConnectOptions, CpClient};
use skiff_agent::kubelet::{BackoffConfig, Kubelet, KubeletConfig};

use crate::cli::AgentArgs;
use crate::nodeport;

const TICK: Duration = Duration::from_millis(200);

/// The kubelet (with `--server`) alongside the service proxy (unless `--no-proxy`).
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let Some(addr) = args
        .server
        .clone()
        .filter(|_| !args.teardown && !args.stats)
    else {
        return run_proxy(args, None).await;
    };
    let mut kubelet = start_kubelet(&args, &addr).await?;
    let result = if args.no_proxy {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            r = kubelet.wait() => r.map_err(anyhow::Error::from),
            _ = term.recv() => Ok(()),
            _ = int.recv() => Ok(()),
        }
    } else {
        let metrics = ProxyMetrics::register(&kubelet.metrics());
        tokio::select! {
            r = run_proxy(args, Some(metrics)) => r,
            r = kubelet.wait() => r.map_err(anyhow::Error::from),
        }
    };
    log::info!("kubelet: stopping; pods keep running");
    kubelet.stop().await;
    result
}

async fn start_kubelet(args: &AgentArgs, addr: &str) -> anyhow::Result<Kubelet> {
    let mut cfg = KubeletConfig::new(&args.node_name);
    cfg.node_ip = args.node_ip;
    cfg.http_listen = Some(args.kubelet_listen);
    cfg.state_dir = args.state_dir.clone();
    if let Some(dir) = &args.netns_dir {
        cfg.netns_dir = dir.clone();
    }
    if let Some(parent) = &args.cgroup_parent {
        cfg.cgroup_parent = parent.clone();
    }
    cfg.veth_prefix = args.pod_veth_prefix.clone();
    cfg.backoff = BackoffConfig::new(
        Duration::from_millis(args.backoff_base_ms),
        Duration::from_millis(args.backoff_max_ms),
    );
    cfg.heartbeat_interval = Duration::from_millis(args.heartbeat_interval_ms.max(100));
    cfg.cluster_dns = args.cluster_dns.clone();
    cfg.node_dns = !args.no_node_dns;
    let client = CpClient::connect(addr, ConnectOptions::default())
        .await
        .with_context(|| format!("kubelet: connecting to the control plane at {addr}"))?;
    Ok(Kubelet::start(cfg, client).await?)
}

/// The service proxy; `metrics`: where to measure its passes (the kubelet's registry).
async fn run_proxy(args: AgentArgs, metrics: Option<ProxyMetrics>) -> anyhow::Result<()> {
    let dirs = PinDirs::new(&args.bpffs, &args.node_name);
    if args.teardown {
        let r = teardown(&dirs, &args.pod_veth_prefix)?;
        log::info!(
            "teardown of {}: {} link pins, {} netlink filters, {} other pins removed",
            dirs.node.display(),
            r.link_pins,
            r.netlink_filters,
            r.other_pins
        );
        return Ok(());
    }
    if args.stats {
        for (name, value) in read_stats(&dirs)?.named() {
            println!("{name}={value}");
        }
        return Ok(());
    }
    let mut wake: Option<Arc<Notify>> = None;
    let (source, source_name): (Box<dyn ServiceSource>, String) =
        match (&args.server, &args.manifests) {
            (Some(addr), _) => {
                log::info!("services from the control plane at {addr}");
                let source = ControlPlaneSource::start(addr);
                wake = Some(source.changed());
                (Box::new(source), format!("control plane {addr}"))
            }
            (None, Some(dir)) => {
                if !dir.is_dir() {
                    bail!("--manifests {}: not a directory", dir.display());
                }
                (
                    Box::new(ManifestDir::new(dir.clone())),
                    "manifests".to_string(),
                )
            }
            (None, None) => bail!("--manifests or --server is required"),
        };
    let external = nodeport::resolve(&args);
    let opts = LoadOptions {
        dirs: dirs.clone(),
        sizes: MapSizes {
            services: args.map_size_services,
            backends: args.map_size_backends,
            rev_nat: args.map_size_rev_nat,
            conntrack: args.map_size_conntrack,
        },
        hairpin_addr: args.hairpin_addr,
        debug: args.debug,
        object: args.bpf_object.clone(),
        nodeport: nodeport::config(&external),
        host_netns: socket_lb_netns(&args),
    };
    let mut dp = Dataplane::start(&opts, &args.pod_veth_prefix, args.tc_mode)?;
    log::info!(
        "loaded {} (program id {}), maps pinned in {}, attach mode {:?}",
        POD_HOOKS[0].program,
        dp.program_id(POD_HOOKS[0].program).unwrap_or(0),
        dirs.node.display(),
        dp.attacher.mode()
    );
    nodeport::attach(&args, &external, &mut dp, &dirs);
    if opts.host_netns == 0 {
        // Off (or not possible): hooks a previous agent pinned go too.
        match sock::detach(&dirs) {
            Ok(0) => {}
            Ok(n) => log::info!("socket-level load balancing: {n} pinned hooks removed"),
            Err(e) => log::warn!("socket-level load balancing: removing pinned hooks: {e}"),
        }
    } else {
        match sock::attach(&mut dp.loaded, &dirs) {
            Ok(root) => log::info!(
                "socket-level load balancing for this node's sockets: cgroup hooks on {}",
                root.display()
            ),
            // `attach` removed every hook's pin, a previous agent's too.
            Err(e) => log::warn!(
                "socket-level load balancing off ({:#}): the node's own processes and \
                 hostNetwork pods cannot reach ClusterIPs",
                anyhow::Error::from(e)
            ),
        }
    }
    if let Some(logger) = dp.loaded.logger.take() {
        spawn_bpf_logger(logger)?;
    }
    let mut proxy = Proxy::recover(&mut dp.maps).context("reading the pinned maps")?;
    let mut lp = Loop {
        args: &args,
        source,
        source_name,
        desired: None,
        generation: 0,
        pending: false,
        synced: false,
        last_error: None,
        node_ips: external.map(|(_, ips)| ips).unwrap_or_default(),
        tracker: ProgrammingTracker::new(SystemTime::now()),
        metrics,
        translate_time: Duration::ZERO,
    };
    lp.sync_links(&mut dp);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ms = Duration::from_millis;
    let (mut last_sync, mut last_links, mut last_gc, mut last_audit) = (
        Instant::now(),
        Instant::now(),
        Instant::now(),
        Instant::now(),
    );
    loop {
        tokio::select! {
            _ = term.recv() => { log::info!("SIGTERM: exiting; maps and links stay pinned"); break; }
            _ = int.recv() => { log::info!("SIGINT: exiting; maps and links stay pinned"); break; }
            _ = tick.tick() => {}
            _ = woken(wake.as_deref()) => {}
        }
        lp.poll_source();
        if last_links.elapsed() >= ms(args.link_scan_interval_ms) {
            lp.sync_links(&mut dp);
            last_links = Instant::now();
        }
        // Program on a change, retry after a failure, and audit the maps
        // themselves now and then; an idle agent does no work per service.
        let audit = last_audit.elapsed() >= ms(args.audit_interval_ms);
        if audit {
            proxy.audit();
            last_audit = Instant::now();
        }
        let retry = !lp.synced && last_sync.elapsed() >= ms(args.resync_interval_ms);
        if lp.pending || retry || audit {
            lp.synced = lp.reconcile(&mut proxy, &mut dp);
            last_sync = Instant::now();
        }
        if last_gc.elapsed() >= ms(args.ct_gc_interval_ms) {
            lp.gc(&mut dp);
            last_gc = Instant::now();
        }
    }
    Ok(())
}

/// Waits for the source's wake-up; never, for a source without one.
async fn woken(wake: Option<&Notify>) {
    match wake {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

struct Loop<'a> {
    args: &'a AgentArgs,
    source: Box<dyn ServiceSource>,
    /// For logs: "manifests" or "control plane <addr>".
    source_name: String,
    /// The last good translation; `None` until the source first succeeds
    /// (so a broken source at startup never wipes the pinned state).
    desired: Option<DesiredState>,
    generation: u64,
    /// A new snapshot waits to be programmed.
    pending: bool,
    /// The last pass left the maps matching the desired state.
    synced: bool,
    last_error: Option<String>,
    /// Addresses NodePorts answer on.
    node_ips: Vec<std::net::Ipv4Addr>,
    /// Trigger times of the snapshots taken, observed once programmed.
    tracker: ProgrammingTracker,
    /// `None` without the kubelet's registry: nothing is measured.
    metrics: Option<ProxyMetrics>,
    /// How long the translation of the pending snapshot took (part of the next pass).
    translate_time: Duration,
}

impl Loop<'_> {
    /// Logs an error once until a different one (or success) comes.
    fn error(&mut self, msg: String) {
        if self.last_error.as_deref() != Some(msg.as_str()) {
            log::error!("{msg}");
            self.last_error = Some(msg);
        }
    }

    fn poll_source(&mut self) {
        match self.source.poll() {
            Ok(Some(snap)) => {
                let started = Instant::now();
                if self.metrics.is_some() {
                    self.tracker.snapshot(&snap.slices);
                }
                let input = TranslateInput {
                    services: &snap.services,
                    slices: &snap.slices,
                    node_name: &self.args.node_name,
                    node_ips: &self.node_ips,
                };
                self.desired = Some(translate(input));
                self.translate_time = started.elapsed();
                self.pending = true;
                log::debug!(
                    "{}: {} services, {} endpointslices",
                    self.source_name,
                    snap.services.len(),
                    snap.slices.len()
                );
            }
            Ok(None) => {}
            Err(e) => {
                let msg = format!("{}: {e}; keeping the last good state", self.source_name);
                self.error(msg)
            }
        }
    }

    /// Returns whether the maps now match the desired state.
    fn reconcile(&mut self, proxy: &mut Proxy, dp: &mut Dataplane) -> bool {
        let Some(desired) = &self.desired else {
            return false;
        };
        let started = Instant::now();
        let result = proxy.reconcile(desired, &mut dp.maps);
        if let Some(m) = &self.metrics {
            let pass = started.elapsed() + std::mem::take(&mut self.translate_time);
            m.sync.observe(pass.as_secs_f64());
            if result.is_ok() {
                for d in self.tracker.programmed(SystemTime::now()) {
                    m.programming.observe(d.as_secs_f64());
                }
            }
        }
        match result {
            Ok(r) => {
                if self.pending || r.ops > 0 {
                    self.generation += 1;
                    log::info!(
                        "synced generation={} services={} backends={} frontends={} ops={}",
                        self.generation,
                        r.services,
                        r.backends,
                        r.frontends,
                        r.ops
                    );
                }
                self.pending = false;
                self.last_error = None;
                true
            }
            Err(e) => {
                self.error(format!("programming the maps: {e}; will retry"));
                false
            }
        }
    }

    fn sync_links(&mut self, dp: &mut Dataplane) {
        match dp.sync_links() {
            Ok(AttachReport {
                attached,
                removed_pins,
                errors,
            }) => {
                for (iface, hook, replaced) in attached {
                    let how = if replaced {
                        "replaced program on existing link"
                    } else {
                        "new link"
                    };
                    log::info!("attached {} to {iface} {} ({how})", hook.program, hook.name);
                }
                for iface in removed_pins {
                    log::info!("removed link pin of vanished interface {iface}");
                }
                for e in errors {
                    self.error(e.to_string());
                }
            }
            Err(e) => self.error(format!(
                "scanning pod veths ({}*): {e}",
                self.args.pod_veth_prefix
            )),
        }
        match dp.sync_endpoints() {
            Ok(r) => {
                if !(r.added.is_empty() && r.updated.is_empty() && r.removed.is_empty()) {
                    log::info!(
                        "local endpoints: {} added {:?}, {} updated, {} removed {:?}; {} in all",
                        r.added.len(),
                        r.added,
                        r.updated.len(),
                        r.removed.len(),
                        r.removed,
                        r.total
                    );
                }
                if !r.unresolved.is_empty() {
                    log::debug!("local endpoints without MACs yet: {:?}", r.unresolved);
                }
            }
            Err(e) => self.error(format!("syncing the local endpoints: {e}")),
        }
    }

    fn gc(&mut self, dp: &mut Dataplane) {
        match gc_conntrack(&mut dp.maps, monotonic_now_ns(), &CtTimeouts::default()) {
            Ok(r) if r.orphaned + r.expired > 0 => log::info!(
                "conntrack gc: scanned {}, removed {} of deleted services, {} idle",
                r.scanned,
                r.orphaned,
                r.expired
            ),
            Ok(r) => log::debug!("conntrack gc: scanned {}, nothing to remove", r.scanned),
            Err(e) => self.error(format!("conntrack gc: {e}")),
        }
        if let Err(e) = nodeport::gc(dp) {
            self.error(format!("NodePort SNAT/affinity gc: {e}"));
        }
    }
}

/// The namespace cookie the socket-level hooks act on: this agent's (the
/// node's), or 0 (off) with `--no-socket-lb` or on a kernel without
/// `SO_NETNS_COOKIE`.
fn socket_lb_netns(args: &AgentArgs) -> u64 {
    if args.no_socket_lb {
        return 0;
    }
    sock::netns_cookie().unwrap_or_else(|e| {
        log::warn!("socket-level load balancing off: reading this netns's cookie: {e}");
        0
    })
}

fn spawn_bpf_logger(logger: aya_log::EbpfLogger<&'static dyn log::Log>) -> anyhow::Result<()> {
    use tokio::io::{unix::AsyncFd, Interest};
    // SAFETY: the logger owns its ring buffer fd, which stays open and
    // unchanged until the logger (owned by the AsyncFd) is dropped.
    let registered = unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) };
    let mut fd = registered
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("BPF log ring")?;
    tokio::spawn(async move {
        while let Ok(mut guard) = fd.readable_mut().await {
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
    Ok(())
}
