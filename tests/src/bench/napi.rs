//! Threaded NAPI: a veth's receive work in a kernel thread of its own, so
//! that it can be given a CPU and its CPU time read.

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Pids of the kernel's threads named `<prefix>*`.
fn napi_threads(prefix: &str) -> BTreeSet<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with(prefix))
        })
        .collect()
}

/// Turns on GRO (which gives a veth its NAPI instance without an XDP
/// program) and threaded NAPI for `ifname` in netns `ns`; returns the
/// thread's pid. Run one at a time: the thread is found as the one named
/// for `ifname` that appeared.
pub fn threaded(ns: &str, ifname: &str) -> Result<i32> {
    // `napi/<ifname>-<id>`, cut at 15 characters.
    let prefix: String = format!("napi/{ifname}-").chars().take(15).collect();
    let before = napi_threads(&prefix);
    sh_in(
        ns,
        &format!("ethtool -K {ifname} gro on && echo 1 > /sys/class/net/{ifname}/threaded"),
    )
    .with_context(|| format!("threaded NAPI on {ifname}"))?;
    let new: Vec<i32> = napi_threads(&prefix).difference(&before).copied().collect();
    match new.as_slice() {
        [pid] => Ok(*pid),
        other => bail!("{ns}/{ifname}: expected one new napi thread, found {other:?}"),
    }
}

/// Interrupt coalescing, as a NIC does it: after a poll that found work,
/// `ifname`'s NAPI instance polls again from a `timeout_ns` timer instead
/// of being woken by the next frame (up to `defer` times in a row). A veth
/// otherwise wakes the receiving thread for every frame a sender queues
/// while that thread sleeps: one cross-CPU wake-up per packet of a
/// sender that transmits skbs one by one.
pub fn coalesce(ns: &str, ifname: &str, timeout_ns: u64, defer: u32) -> Result<()> {
    sh_in(
        ns,
        &format!(
            "echo {timeout_ns} > /sys/class/net/{ifname}/gro_flush_timeout && \
             echo {defer} > /sys/class/net/{ifname}/napi_defer_hard_irqs"
        ),
    )
    .with_context(|| format!("coalescing on {ifname}"))
}

/// `sh -c <script>` inside netns `ns` (`ip netns exec` mounts that netns's
/// /sys, which the scripts write).
fn sh_in(ns: &str, script: &str) -> Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-c", script])
        .output()
        .context("running ip netns exec")?;
    if !out.status.success() {
        bail!(
            "{ns}: {script}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Restricts thread `pid` (0: the caller) to `cpus`.
pub fn pin(pid: i32, cpus: &[usize]) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays in it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: `c` is below CPU_SETSIZE for any machine this runs on.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(pid, std::mem::size_of_val(&set), &set) };
    if rc != 0 {
        bail!(
            "sched_setaffinity({pid}, {cpus:?}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Nanoseconds thread `pid` has run (`/proc/<pid>/schedstat`).
pub fn cpu_ns(pid: i32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .with_context(|| format!("reading /proc/{pid}/schedstat"))?;
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("/proc/{pid}/schedstat: {s:?}"))
}

/// Online CPUs of this process.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Gives thread `pid` the real-time policy `SCHED_FIFO` at `priority`:
/// it runs as soon as it is woken, ahead of every normal thread of its CPU.
pub fn fifo(pid: i32, priority: i32) -> Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: a valid sched_param for SCHED_FIFO.
    let rc = unsafe { libc::sched_setscheduler(pid, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        bail!(
            "sched_setscheduler({pid}, SCHED_FIFO, {priority}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}
