//! Per-CPU packet counters, indexed by `skiff_common::stats::*`, and the
//! TC verdicts they go with.

use aya_ebpf::bindings::{TC_ACT_OK, TC_ACT_SHOT};

use crate::maps::STATS;

/// Let the packet continue (rewritten or not).
pub const OK: i32 = TC_ACT_OK as i32;
/// Drop the packet.
pub const SHOT: i32 = TC_ACT_SHOT as i32;

/// Adds one to counter `idx` on this CPU (no atomics needed: per-CPU slot,
/// and a BPF program is not preempted by itself on the same CPU).
#[inline(always)]
pub fn inc(idx: u32) {
    if let Some(p) = STATS.get_ptr_mut(idx) {
        // SAFETY: the pointer comes from a successful lookup of this CPU's
        // slot and stays valid for the program's run.
        unsafe { *p += 1 };
    }
}

/// Counts a drop under `counter` and returns the drop verdict.
#[inline(always)]
pub fn drop_with(counter: u32) -> i32 {
    inc(counter);
    SHOT
}
