//! The Skiff rows: the real agent in the node netns, fed N services through
//! its `--manifests` directory; ready when the SERVICES map holds them.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aya::maps::{HashMap, Map, MapData};
use skiff_common::{map_names, ServiceKey, ServiceValue, PROTO_TCP};
use skiff_tests::bpfmaps::{frontend_key, PinnedMaps};
use skiff_tests::lab::{Node, Proc};
use skiff_tests::manifests::{endpoint_slice, service, EndpointState, PortSpec};

use super::ctx::Ctx;
use super::kube_proxy::ServicePort;
use super::report::Row;
use super::{ns_per_packet, progress, TARGET_VIP};

/// Runs the Skiff rows for `counts` services with one agent.
pub fn rows(
    ctx: &Ctx,
    skiff: &Path,
    obj: &Path,
    counts: &[u32],
    rows: &mut Vec<Row>,
) -> Result<()> {
    let max = counts.iter().copied().max().unwrap_or(1) as usize;
    let manifests = ctx.scratch.join(format!("manifests-{}", ctx.node.name()));
    let log = ctx.scratch.join("agent.log");
    let mut agent = SkiffAgent::start(ctx.node, skiff, &manifests, &log, max + 1, &[])?;
    let result = (|| -> Result<()> {
        for &count in counts {
            if ctx.over_budget() {
                let mut row = Row::new("skiff", count);
                row.error = Some("skipped: time budget spent".into());
                rows.push(row);
                continue;
            }
            let svcs = ctx.services(count);
            progress(format!(
                "skiff: {count} services ({} frontends) → manifests",
                svcs.len()
            ));
            let t0 = Instant::now();
            agent.write_services(&svcs)?;
            agent.wait_programmed(&svcs, Duration::from_secs(240))?;
            let mut row = Row::new("skiff", count);
            row.install_s = Some(t0.elapsed().as_secs_f64());
            progress(format!(
                "skiff: SERVICES holds them after {:.1} s",
                t0.elapsed().as_secs_f64()
            ));
            ctx.measure_vs_direct(&mut row, TARGET_VIP);
            if count == 1 || count as usize == max {
                match ns_per_packet::measure(obj, count) {
                    Ok(cost) => {
                        progress(format!(
                            "  per packet (BPF_PROG_TEST_RUN, {count} services): skiff_from_pod {:.1} ns, skiff_to_pod {:.1} ns, pass-through {:.1} ns",
                            cost.from_pod_ns, cost.to_pod_ns, cost.passthrough_ns
                        ));
                        row.ns_per_packet = Some(cost.from_pod_ns);
                        row.ns_per_packet_to_pod = Some(cost.to_pod_ns);
                        row.ns_per_packet_passthrough = Some(cost.passthrough_ns);
                    }
                    Err(e) => progress(format!("  ns_per_packet failed: {e:#}")),
                }
            }
            rows.push(row);
        }
        Ok(())
    })();
    progress("skiff: stopping the agent, unpinning, detaching");
    let stopped = agent.stop();
    let _ = std::fs::remove_dir_all(&manifests);
    let _ = std::fs::remove_dir_all(manifests.with_extension("stage"));
    result.and(stopped)
}

/// Services per manifest file.
const PER_FILE: usize = 10_000;

/// The agent, running in a node's netns.
pub struct SkiffAgent {
    proc: Proc,
    node: String,
    netns: PathBuf,
    skiff: PathBuf,
    pins: PathBuf,
    manifests: PathBuf,
    files: usize,
}

impl SkiffAgent {
    /// Starts `skiff agent` in `node` with maps sized for `max_services`
    /// and `extra` arguments (e.g. `--node-ip` for NodePorts).
    pub fn start(
        node: &Node,
        skiff: &Path,
        manifests: &Path,
        log: &Path,
        max_services: usize,
        extra: &[String],
    ) -> Result<Self> {
        std::fs::create_dir_all(manifests)?;
        let size = (max_services * 4 + 1024).next_power_of_two().max(1 << 18);
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(skiff);
        cmd.args(["agent", "--node-name", node.name(), "--manifests"])
            .arg(manifests)
            .args(["--pod-veth-prefix", "lxc"])
            .args(["--map-size-services", &size.to_string()])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        let proc = node.netns().spawn(cmd)?;
        progress(format!(
            "skiff agent started in {} (log {})",
            node.name(),
            log.display()
        ));
        Ok(Self {
            proc,
            node: node.name().into(),
            netns: node.netns().path(),
            skiff: skiff.into(),
            pins: node.bpffs_dir(),
            manifests: manifests.into(),
            files: 0,
        })
    }

    /// Writes `svcs` as Services + EndpointSlices (files of [`PER_FILE`]),
    /// atomically, removing files a previous, larger set used.
    pub fn write_services(&mut self, svcs: &[ServicePort]) -> Result<()> {
        // Group ports of one service (the target has two).
        let mut docs = String::new();
        let mut files = 0;
        let mut in_file = 0;
        let mut i = 0;
        while i < svcs.len() {
            let name = &svcs[i].name;
            let group: Vec<&ServicePort> =
                svcs[i..].iter().take_while(|s| &s.name == name).collect();
            i += group.len();
            let ports: Vec<PortSpec> = group
                .iter()
                .map(|s| PortSpec {
                    name: s.port_name.clone(),
                    port: s.port,
                    target_port: s.endpoints[0].1,
                    proto: s.proto,
                })
                .collect();
            let eps: Vec<(Ipv4Addr, EndpointState)> = group[0]
                .endpoints
                .iter()
                .map(|e| (e.0, EndpointState::Ready))
                .collect();
            for doc in [
                service(name, group[0].vip, &ports),
                endpoint_slice(name, &ports, &eps),
            ] {
                docs.push_str("---\n");
                docs.push_str(&serde_json::to_string(&doc)?);
                docs.push('\n');
            }
            in_file += 1;
            if in_file == PER_FILE || i == svcs.len() {
                self.write_file(files, &docs)?;
                files += 1;
                docs.clear();
                in_file = 0;
            }
        }
        for stale in files..self.files {
            let _ = std::fs::remove_file(self.manifests.join(file_name(stale)));
        }
        self.files = files;
        Ok(())
    }

    fn write_file(&self, n: usize, text: &str) -> Result<()> {
        self.write_named(&file_name(n), text)
    }

    /// Atomically writes manifest file `name` (beside the services files).
    pub fn write_named(&self, name: &str, text: &str) -> Result<()> {
        let tmp = self.manifests.with_extension("stage");
        std::fs::create_dir_all(&tmp)?;
        let staged = tmp.join(name);
        std::fs::write(&staged, text).with_context(|| format!("writing {}", staged.display()))?;
        let live = self.manifests.join(name);
        std::fs::rename(&staged, &live).with_context(|| format!("renaming to {}", live.display()))
    }

    /// Waits until SERVICES holds a frontend for every port of `svcs`.
    pub fn wait_programmed(&self, svcs: &[ServicePort], deadline: Duration) -> Result<()> {
        let end = Instant::now() + deadline;
        let probes: Vec<ServiceKey> = [svcs.first(), svcs.get(1), svcs.last()]
            .into_iter()
            .flatten()
            .map(|s| frontend_key(s.vip, s.port, PROTO_TCP))
            .collect();
        loop {
            if let Some(status) = self.proc.try_wait() {
                bail!(
                    "skiff agent exited ({status}) while programming {} services",
                    svcs.len()
                );
            }
            if self.has_keys(&probes) && self.frontends()? >= svcs.len() {
                return Ok(());
            }
            if Instant::now() >= end {
                bail!(
                    "SERVICES did not hold {} frontends within {deadline:?} (has {})",
                    svcs.len(),
                    self.frontends()?
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn has_keys(&self, keys: &[ServiceKey]) -> bool {
        let open = || -> Result<HashMap<MapData, ServiceKey, ServiceValue>> {
            let data = MapData::from_pin(self.pins.join(map_names::SERVICES))?;
            Ok(HashMap::try_from(Map::from_map_data(data)?)?)
        };
        open().is_ok_and(|m| keys.iter().all(|k| m.get(k, 0).is_ok_and(|v| v.count > 0)))
    }

    /// Frontends (slot 0, a real port) in SERVICES.
    fn frontends(&self) -> Result<usize> {
        let all = PinnedMaps::new(&self.pins).services()?;
        Ok(all
            .iter()
            .filter(|(k, _)| k.slot == 0 && k.port != 0)
            .count())
    }

    /// SIGTERM the agent, then `skiff agent --teardown` (unpin, detach).
    pub fn stop(self) -> Result<()> {
        self.proc.stop(Duration::from_secs(10));
        let status = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .arg(&self.skiff)
            .args(["agent", "--node-name", &self.node, "--teardown"])
            .status()?;
        if !status.success() {
            bail!("skiff agent --teardown failed: {status}");
        }
        Ok(())
    }
}

fn file_name(n: usize) -> String {
    format!("services-{n:03}.yaml")
}
