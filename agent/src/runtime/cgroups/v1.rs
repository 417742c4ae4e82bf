//! cgroup v1 (legacy and hybrid hosts): one directory per controller
//! hierarchy (`cpu`, `cpuacct`, `memory`, `pids`), driven through cgroups-rs.

use std::time::{Duration, Instant};

use cgroups_rs::cpu::CpuController;
use cgroups_rs::cpuacct::CpuAcctController;
use cgroups_rs::hierarchies::V1;
use cgroups_rs::memory::MemController;
use cgroups_rs::pid::PidController;
use cgroups_rs::{Cgroup, CgroupPid, Controllers, MaxValue};

use super::stats::{flat_keyed, working_set, CgroupStats};
use super::{CgroupError, CgroupManager, CgroupResources, Layout};

const CONTROLLERS: [&str; 4] = ["cpu", "cpuacct", "memory", "pids"];

#[derive(Debug)]
pub struct V1Manager {
    layout: Layout,
    /// Where the controllers are mounted, read once: `V1::new()` parses
    /// /proc/self/mountinfo, which grows with every container's overlay and
    /// cost more than the cgroup writes themselves once per operation.
    hier: V1,
}

impl V1Manager {
    pub fn new(layout: Layout) -> Result<Self, CgroupError> {
        let hier = V1::new();
        for (c, name) in [
            (Controllers::Cpu, "cpu"),
            (Controllers::CpuAcct, "cpuacct"),
            (Controllers::Mem, "memory"),
        ] {
            if hier.get_mount_point(c).is_none() {
                return Err(CgroupError::Layout(format!(
                    "no cgroup v1 hierarchy has the {name} controller"
                )));
            }
        }
        Ok(Self { layout, hier })
    }

    fn cg(&self, path: &str) -> Cgroup {
        let names = CONTROLLERS.iter().map(|s| s.to_string()).collect();
        Cgroup::load_with_specified_controllers(Box::new(self.hier.clone()), path, names)
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

impl CgroupManager for V1Manager {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn apply(&self, path: &str, res: &CgroupResources) -> Result<(), CgroupError> {
        let cg = self.cg(path);
        cg.create().map_err(err("create", path))?;
        if !cg.exists() {
            return Err(CgroupError::Layout(format!(
                "cgroup {path} was not created in every v1 hierarchy"
            )));
        }
        let cpu: &CpuController = cg
            .controller_of()
            .ok_or_else(|| CgroupError::Layout("no cpu controller".into()))?;
        if let Some(s) = res.cpu_shares {
            cpu.set_shares(s).map_err(err("write cpu.shares", path))?;
        }
        cpu.set_cfs_period(res.cpu_period_us)
            .map_err(err("write cpu.cfs_period_us", path))?;
        cpu.set_cfs_quota(res.cpu_quota_us.unwrap_or(-1))
            .map_err(err("write cpu.cfs_quota_us", path))?;
        let mem: &MemController = cg
            .controller_of()
            .ok_or_else(|| CgroupError::Layout("no memory controller".into()))?;
        mem.set_limit(res.memory_limit.unwrap_or(-1))
            .map_err(err("write memory.limit_in_bytes", path))?;
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
        let cg = self.cg(path);
        if !cg.exists() {
            return Vec::new();
        }
        cg.procs().into_iter().map(|p| p.pid as u32).collect()
    }

    fn stats(&self, path: &str) -> Result<CgroupStats, CgroupError> {
        let cg = self.cg(path);
        if !cg.exists() {
            return Err(CgroupError::Layout(format!("cgroup {path} does not exist")));
        }
        let mut s = CgroupStats::default();
        if let Some(acct) = cg.controller_of::<CpuAcctController>() {
            s.cpu_usage_ns = acct.cpuacct().usage;
        }
        if let Some(cpu) = cg.controller_of::<CpuController>() {
            let stat = cpu.cpu().stat;
            let m = flat_keyed(&stat);
            s.nr_periods = m.get("nr_periods").copied().unwrap_or(0);
            s.nr_throttled = m.get("nr_throttled").copied().unwrap_or(0);
            s.throttled_ns = m.get("throttled_time").copied().unwrap_or(0);
        }
        if let Some(mem) = cg.controller_of::<MemController>() {
            let m = mem.memory_stat();
            s.memory_usage = m.usage_in_bytes;
            let inactive = std::collections::HashMap::from([(
                "total_inactive_file",
                m.stat.total_inactive_file,
            )]);
            s.memory_working_set = working_set(m.usage_in_bytes, &inactive, "total_inactive_file");
            s.oom_kills = m.oom_control.oom_kill;
            s.memory_limit_hits = m.fail_cnt;
        }
        Ok(s)
    }

    fn remove(&self, path: &str) -> Result<(), CgroupError> {
        let cg = self.cg(path);
        if !cg.exists() {
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
            for pid in pids {
                // SAFETY: kill has no memory preconditions.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        cg.delete().map_err(err("remove", path))
    }
}
