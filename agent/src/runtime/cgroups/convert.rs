//! Kubernetes' CPU and memory conversions (pkg/kubelet/cm), pure.

/// cpu.shares bounds and scale (cgroup v1).
pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
pub const SHARES_PER_CPU: u64 = 1024;
/// CFS period Kubernetes uses (µs), and the smallest quota it writes.
pub const QUOTA_PERIOD_US: u64 = 100_000;
pub const MIN_QUOTA_PERIOD_US: i64 = 1000;

/// `MilliCPUToShares`: a CPU request in millicores → cpu.shares.
pub fn milli_cpu_to_shares(milli: i64) -> u64 {
    if milli <= 0 {
        return MIN_SHARES;
    }
    let shares = (milli as u64).saturating_mul(SHARES_PER_CPU) / 1000;
    shares.clamp(MIN_SHARES, MAX_SHARES)
}

/// `MilliCPUToQuota`: a CPU limit in millicores → CFS quota (µs) per
/// `period_us`; `None` (no limit) for 0.
pub fn milli_cpu_to_quota(milli: i64, period_us: u64) -> Option<i64> {
    if milli <= 0 {
        return None;
    }
    let quota = milli.saturating_mul(period_us as i64) / 1000;
    Some(quota.max(MIN_QUOTA_PERIOD_US))
}

/// `CpuSharesToCpuWeight`: cgroup v1 shares [2, 262144] → v2 cpu.weight
/// [1, 10000], Kubernetes' linear mapping.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + ((shares - 2) * 9999) / 262_142
}

/// A cgroup v2 `cpu.max` line for a quota and period.
pub fn cpu_max(quota_us: Option<i64>, period_us: u64) -> String {
    match quota_us {
        Some(q) if q > 0 => format!("{q} {period_us}"),
        _ => format!("max {period_us}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_kubernetes() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(500_000), MAX_SHARES);
    }

    #[test]
    fn quota_follows_kubernetes() {
        assert_eq!(milli_cpu_to_quota(0, QUOTA_PERIOD_US), None);
        assert_eq!(milli_cpu_to_quota(100, QUOTA_PERIOD_US), Some(10_000));
        assert_eq!(milli_cpu_to_quota(2500, QUOTA_PERIOD_US), Some(250_000));
        assert_eq!(
            milli_cpu_to_quota(1, QUOTA_PERIOD_US),
            Some(MIN_QUOTA_PERIOD_US)
        );
        assert_eq!(cpu_max(Some(10_000), 100_000), "10000 100000");
        assert_eq!(cpu_max(None, 100_000), "max 100000");
    }

    #[test]
    fn weight_follows_kubernetes() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(102), 4);
        assert_eq!(shares_to_weight(MAX_SHARES), 10_000);
        assert_eq!(shares_to_weight(0), 1);
    }
}
