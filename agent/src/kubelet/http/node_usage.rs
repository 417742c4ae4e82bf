//! The node's own usage for `/metrics/resource` (`node_cpu_usage_seconds_total`,
//! `node_memory_working_set_bytes`, the names metrics-server reads): busy CPU time from
//! `/proc/stat` and memory in use (`MemTotal - MemAvailable`) from `/proc/meminfo`. These
//! are the machine's: nodes that share one host (a lab) report the same.

/// The node's cumulative CPU and current memory use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeUsage {
    pub cpu_seconds: f64,
    pub memory_working_set_bytes: u64,
}

/// Busy CPU time in clock ticks from `/proc/stat`'s `cpu` line (all but idle and iowait).
pub fn busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some(total.saturating_sub(idle))
}

/// `MemTotal - MemAvailable` in bytes from `/proc/meminfo`.
pub fn memory_in_use(meminfo: &str) -> Option<u64> {
    let kb = |key: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some(kb("MemTotal:")?.saturating_sub(kb("MemAvailable:")?) * 1024)
}

/// Reads the node's usage now (`None` where /proc is not readable).
pub fn read() -> Option<NodeUsage> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Some(NodeUsage {
        cpu_seconds: busy_ticks(&stat)? as f64 / hz,
        memory_working_set_bytes: memory_in_use(&meminfo)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_busy_cpu_and_memory_in_use() {
        let stat = "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        assert_eq!(busy_ticks(stat), Some(160));
        let meminfo = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    600 kB\n";
        assert_eq!(memory_in_use(meminfo), Some(400 * 1024));
        assert_eq!(busy_ticks("intr 1 2"), None);
    }
}
