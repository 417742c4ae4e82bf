//! Conntrack garbage collection.
//!
//! The data path creates entries and refreshes `last_seen_ns` (from
//! `bpf_ktime_get_ns`, i.e. `CLOCK_MONOTONIC`) at most once per
//! `CT_REFRESH_NS`; the LRU evicts under pressure. The agent's periodic pass
//! deletes entries of frontends that no longer exist (their rev-NAT id is
//! gone) and entries idle for longer than their protocol's timeout.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use skiff_common::{
    AffinityKey, AffinityValue, CtKey, CtValue, SnatValue, CT_F_CLOSING, PROTO_TCP, PROTO_UDP,
    SNAT_DIR_IN, SNAT_DIR_OUT,
};

use super::apply::{KvMap, MapOpError, ServiceMaps};

/// Idle timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtTimeouts {
    /// TCP flows that saw a FIN or RST.
    pub tcp_closing: Duration,
    /// Established TCP flows.
    pub tcp: Duration,
    /// UDP flows.
    pub udp: Duration,
}

impl Default for CtTimeouts {
    fn default() -> Self {
        Self {
            tcp_closing: Duration::from_secs(10),
            tcp: Duration::from_secs(6 * 3600),
            udp: Duration::from_secs(120),
        }
    }
}

impl CtTimeouts {
    /// The idle timeout of an entry of protocol `proto`.
    pub fn for_entry(&self, proto: u8, value: &CtValue) -> Duration {
        match proto {
            PROTO_TCP if value.flags & CT_F_CLOSING != 0 => self.tcp_closing,
            PROTO_TCP => self.tcp,
            PROTO_UDP => self.udp,
            // The data path creates none; expire stray entries like UDP.
            _ => self.udp,
        }
    }
}

/// What a GC pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Entries scanned.
    pub scanned: usize,
    /// Entries whose frontend (rev-NAT id) is gone.
    pub orphaned: usize,
    /// Entries idle past their timeout.
    pub expired: usize,
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock `bpf_ktime_get_ns` reads.
pub fn monotonic_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// One GC pass over the conntrack map at time `now_ns` (`CLOCK_MONOTONIC`).
pub fn gc_conntrack(
    maps: &mut dyn ServiceMaps,
    now_ns: u64,
    timeouts: &CtTimeouts,
) -> Result<GcReport, MapOpError> {
    let live: BTreeSet<u32> = maps
        .rev_nat()
        .entries()?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut report = GcReport::default();
    for (key, value) in maps.conntrack().entries()? {
        report.scanned += 1;
        let idle = Duration::from_nanos(now_ns.saturating_sub(value.last_seen_ns));
        if !live.contains(&value.rev_nat_id) {
            report.orphaned += 1;
        } else if idle > timeouts.for_entry(key.proto, &value) {
            report.expired += 1;
        } else {
            continue;
        }
        maps.conntrack().remove(&key)?;
    }
    Ok(report)
}

/// The largest backend and rev-NAT ids conntrack entries refer to, so the
/// id allocator does not hand them out again while flows may carry them.
pub fn max_ids_in_conntrack(maps: &mut dyn ServiceMaps) -> Result<(u32, u32), MapOpError> {
    let mut max = (0, 0);
    for (_, v) in maps.conntrack().entries()? {
        max.0 = max.0.max(v.backend_id);
        max.1 = max.1.max(v.rev_nat_id);
    }
    Ok(max)
}

/// The other half of a NodePort SNAT entry: `OUT (client, backend, cport,
/// bport)` ↔ `IN (backend, node, bport, snat port)`.
pub fn snat_peer(key: &CtKey, value: &SnatValue) -> Option<CtKey> {
    let (saddr, daddr, sport, dport, dir) = match key.dir {
        SNAT_DIR_OUT => (key.daddr, value.addr, key.dport, value.port, SNAT_DIR_IN),
        SNAT_DIR_IN => (value.addr, key.saddr, value.port, key.sport, SNAT_DIR_OUT),
        _ => return None,
    };
    Some(CtKey {
        saddr,
        daddr,
        sport,
        dport,
        proto: key.proto,
        dir,
        _pad: [0; 2],
    })
}

/// One GC pass over the NodePort SNAT map: removes both halves of a flow
/// whose frontend (rev-NAT id) is gone, or whose two halves have both been
/// idle past the protocol's timeout (a one-way UDP flow keeps its reply
/// half). Returns how many entries were removed.
pub fn gc_snat(
    snat: &mut dyn KvMap<CtKey, SnatValue>,
    live_rev_nat: &BTreeSet<u32>,
    now_ns: u64,
    timeouts: &CtTimeouts,
) -> Result<usize, MapOpError> {
    let entries: HashMap<CtKey, SnatValue> = snat.entries()?.into_iter().collect();
    let mut removed = 0;
    for (key, value) in &entries {
        let peer = snat_peer(key, value).and_then(|k| entries.get(&k));
        let last = peer.map_or(value.last_seen_ns, |p| {
            p.last_seen_ns.max(value.last_seen_ns)
        });
        let idle = Duration::from_nanos(now_ns.saturating_sub(last));
        let as_ct = CtValue {
            flags: value.flags,
            ..CtValue::default()
        };
        // An IN entry names the frontend; an OUT entry's id is the same.
        let orphaned = !live_rev_nat.contains(&value.rev_nat_id);
        if orphaned || idle > timeouts.for_entry(key.proto, &as_ct) {
            snat.remove(key)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes `sessionAffinity` entries of frontends that no longer exist.
pub fn gc_affinity(
    affinity: &mut dyn KvMap<AffinityKey, AffinityValue>,
    live_rev_nat: &BTreeSet<u32>,
) -> Result<usize, MapOpError> {
    let mut removed = 0;
    for (key, _) in affinity.entries()? {
        if !live_rev_nat.contains(&key.rev_nat_id) {
            affinity.remove(&key)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The rev-NAT ids present in the maps (frontends that exist).
pub fn live_rev_nat_ids(maps: &mut dyn ServiceMaps) -> Result<BTreeSet<u32>, MapOpError> {
    Ok(maps
        .rev_nat()
        .entries()?
        .into_iter()
        .map(|(id, _)| id)
        .collect())
}
