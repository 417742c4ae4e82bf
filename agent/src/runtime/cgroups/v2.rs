//! cgroup v2 (unified hosts): one tree at /sys/fs/cgroup, controllers
//! enabled down the path through `cgroup.subtree_control` (cgroups-rs does
//! that on create). cgroups-rs 0.3 reads no `memory.events`, so the
//! counters are read from the files directly.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cgroups_rs::cpu::CpuController;
use cgroups_rs::hierarchies::V2;
use cgroups_rs::memory::{MemController, SetMemory};
use cgroups_rs::pid::PidController;
use cgroups_rs::{Cgroup, CgroupPid, MaxValue};

use super::convert::shares_to_weight;
use super::stats::{flat_keyed, working_set, CgroupStats};
use super::{CgroupError, CgroupManager, CgroupResources, Layout};

const WANTED: [&str; 3] = ["cpu", "memory", "pids"];

#[derive(Debug)]
pub struct V2Manager {
    layout: Layout,
    root: PathBuf,
    controllers: Vec<String>,
}

impl V2Manager {
    pub fn new(layout: Layout) -> Self {
        let root = match &layout {
            Layout::Unified { root } => root.clone(),
            _ => PathBuf::from("/sys/fs/cgroup"),
        };
        let available = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        let controllers = WANTED
            .iter()
            .filter(|w| available.split_whitespace().any(|a| a == **w))
            .map(|s| s.to_string())
            .collect();
        Self {
            layout,
            root,
            controllers,
        }
    }

    fn cg(&self, path: &str) -> Cgroup {
        Cgroup::load_with_specified_controllers(Box::new(V2::new()), path, self.controllers.clone())
    }

    fn read(&self, path: &str, file: &str) -> String {
        fs::read_to_string(self.root.join(path).join(file)).unwrap_or_default()
    }
}

fn err(op: &'static str, path: &str) -> impl FnOnce(cgroups_rs::error::Error) -> CgroupError {
    let path = path.to_owned();
    move |source| CgroupError::Cgroups {
        op,
        path,
        source: Box::new(source),
    }
}

/// Counters from a v2 cgroup's files.
pub fn parse_stats(
    cpu_stat: &str,
    memory_current: &str,
    memory_stat: &str,
    memory_events: &str,
) -> CgroupStats {
    let cpu = flat_keyed(cpu_stat);
    let events = flat_keyed(memory_events);
    let usage = memory_current.trim().parse().unwrap_or(0);
    CgroupStats {
        cpu_usage_ns: cpu.get("usage_usec").copied().unwrap_or(0) * 1000,
        nr_periods: cpu.get("nr_periods").copied().unwrap_or(0),
        nr_throttled: cpu.get("nr_throttled").copied().unwrap_or(0),
        throttled_ns: cpu.get("throttled_usec").copied().unwrap_or(0) * 1000,
        memory_usage: usage,
        memory_working_set: working_set(usage, &flat_keyed(memory_stat), "inactive_file"),
        oom_kills: events.get("oom_kill").copied().unwrap_or(0),
        memory_limit_hits: events.get("max").copied().unwrap_or(0),
    }
}

impl CgroupManager for V2Manager {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn apply(&self, path: &str, res: &CgroupResources) -> Result<(), CgroupError> {
        let cg = self.cg(path);
        cg.create().map_err(err("create", path))?;
        if let Some(cpu) = cg.controller_of::<CpuController>() {
            if let Some(s) = res.cpu_shares {
                cpu.set_shares(shares_to_weight(s))
                    .map_err(err("write cpu.weight", path))?;
            }
            cpu.set_cfs_quota_and_period(
                Some(res.cpu_quota_us.unwrap_or(-1)),
                Some(res.cpu_period_us),
            )
            .map_err(err("write cpu.max", path))?;
        }
        if let Some(mem) = cg.controller_of::<MemController>() {
            let max = res.memory_limit.map_or(MaxValue::Max, MaxValue::Value);
            let set = SetMemory {
                max: Some(max),
                ..SetMemory::default()
            };
            mem.set_mem(set).map_err(err("write memory.max", path))?;
        }
        if let (Some(p), Some(pids)) = (res.pids_limit, cg.controller_of::<PidController>()) {
            pids.set_pid_max(MaxValue::Value(p))
                .map_err(err("write pids.max", path))?;
        }
        Ok(())
    }

    fn add_process(&self, path: &str, pid: u32) -> Result<(), CgroupError> {
        self.cg(path)
            .add_task_by_tgid(CgroupPid::from(u64::from(pid)))
            .map_err(err("add process", path))
    }

    fn procs(&self, path: &str) -> Vec<u32> {
        self.read(path, "cgroup.procs")
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn stats(&self, path: &str) -> Result<CgroupStats, CgroupError> {
        let dir = self.root.join(path);
        if !dir.is_dir() {
            return Err(CgroupError::Layout(format!(
                "cgroup {} does not exist",
                dir.display()
            )));
        }
        Ok(parse_stats(
            &self.read(path, "cpu.stat"),
            &self.read(path, "memory.current"),
            &self.read(path, "memory.stat"),
            &self.read(path, "memory.events"),
        ))
    }

    fn remove(&self, path: &str) -> Result<(), CgroupError> {
        let cg = self.cg(path);
        if !self.root.join(path).is_dir() {
            return Ok(());
        }
        let start = Instant::now();
        loop {
            let pids = self.procs(path);
            if pids.is_empty() {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(CgroupError::Busy {
                    path: path.to_owned(),
                    pids,
                    waited_ms: start.elapsed().as_millis(),
                });
            }
            if cg.kill().is_err() {
                for pid in pids {
                    // SAFETY: kill has no memory preconditions.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        cg.delete().map_err(err("remove", path))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_stats;

    #[test]
    fn reads_usage_throttling_and_oom_kills() {
        let s = parse_stats(
            "usage_usec 2500\nuser_usec 2000\nnr_periods 10\nnr_throttled 4\nthrottled_usec 700\n",
            "33554432\n",
            "anon 30000000\ninactive_file 554432\n",
            "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n",
        );
        assert_eq!(s.cpu_usage_ns, 2_500_000);
        assert_eq!(
            (s.nr_periods, s.nr_throttled, s.throttled_ns),
            (10, 4, 700_000)
        );
        assert_eq!(s.memory_working_set, 33_000_000);
        assert_eq!((s.oom_kills, s.memory_limit_hits), (1, 12));
    }
}
