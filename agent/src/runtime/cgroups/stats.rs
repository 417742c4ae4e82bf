//! Usage counters read from a cgroup's files (the parsing is pure).

use std::collections::HashMap;

/// One cgroup's counters, for `/metrics` and OOM reporting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// CPU time used, nanoseconds.
    pub cpu_usage_ns: u64,
    /// CFS periods in which the group was throttled, and for how long.
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_ns: u64,
    /// Memory usage, and the working set (usage minus inactive file pages,
    /// as cAdvisor and the kubelet count it).
    pub memory_usage: u64,
    pub memory_working_set: u64,
    /// Processes the OOM killer killed in this group.
    pub oom_kills: u64,
    /// Times the memory limit was hit (v1 `memory.failcnt`, v2 `max` events).
    pub memory_limit_hits: u64,
}

/// `key value` lines (cpu.stat, memory.stat, memory.events, oom_control).
pub fn flat_keyed(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?, it.next()?.parse().ok()?))
        })
        .collect()
}

pub fn working_set(usage: u64, memory_stat: &HashMap<&str, u64>, inactive_file_key: &str) -> u64 {
    usage.saturating_sub(memory_stat.get(inactive_file_key).copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flat_keyed_files() {
        let m = flat_keyed("usage_usec 1500\nnr_throttled 3\nbad\nthrottled_usec x\n");
        assert_eq!(m.get("usage_usec"), Some(&1500));
        assert_eq!(m.get("nr_throttled"), Some(&3));
        assert_eq!(m.get("throttled_usec"), None);
        let stat = flat_keyed("inactive_file 100\nactive_file 5\n");
        assert_eq!(working_set(1000, &stat, "inactive_file"), 900);
        assert_eq!(working_set(50, &stat, "inactive_file"), 0);
    }
}
