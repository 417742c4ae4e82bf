//! A coarse `CLOCK_MONOTONIC` for the packet path.
//!
//! `bpf_ktime_get_ns` is a helper call that reads the clock source (about
//! 30 ns per packet under a hypervisor); `bpf_jiffies64` is inlined by the
//! verifier into a plain load. Each CPU keeps the last clock reading with the
//! jiffy it was taken in and reads the clock again only when the jiffy
//! changes, so the time is at most one tick old. The conntrack and affinity
//! timestamps it feeds are refreshed once per second and expire after
//! seconds or hours.

use aya_ebpf::{
    helpers::{bpf_jiffies64, bpf_ktime_get_ns},
    macros::map,
    maps::PerCpuArray,
};

/// The last clock reading of one CPU.
#[repr(C)]
pub struct CoarseClock {
    jiffies: u64,
    ns: u64,
}

/// Internal to the programs (not pinned: a fresh one per load is fine).
#[map(name = "SKIFF_CLOCK")]
static CLOCK: PerCpuArray<CoarseClock> = PerCpuArray::with_max_entries(1, 0);

/// `CLOCK_MONOTONIC` in ns, at most one tick old.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: helpers without arguments or preconditions.
    let jiffies = unsafe { bpf_jiffies64() };
    let Some(c) = CLOCK.get_ptr_mut(0) else {
        // SAFETY: as above.
        return unsafe { bpf_ktime_get_ns() };
    };
    // SAFETY: this CPU's slot, valid for the program's run; a BPF program
    // is not preempted by itself on one CPU.
    unsafe {
        if (*c).jiffies != jiffies {
            (*c).jiffies = jiffies;
            (*c).ns = bpf_ktime_get_ns();
        }
        (*c).ns
    }
}
