//! One reconcile pass: diff against what the maps hold, apply.

use std::collections::BTreeSet;

use super::apply::{apply, MapOpError, ServiceMaps};
use super::conntrack::max_ids_in_conntrack;
use super::diff::{diff, CurrentState};
use super::{DesiredState, IdAllocator, L4Addr};

/// The proxy's state between passes: the id allocator and a mirror of what
/// the maps hold after the last successful pass. Passes diff against the
/// mirror (no syscall per map entry); the maps themselves are read back
/// after a failed pass, after a restart, and on [`Proxy::audit`], so a pass
/// that failed half-way or a map changed behind the agent's back is
/// repaired by the next pass.
#[derive(Debug, Default)]
pub struct Proxy {
    ids: IdAllocator,
    mirror: Option<CurrentState>,
}

/// What a successful pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Map operations applied (0 when the maps already matched).
    pub ops: usize,
    /// Services with a ClusterIP.
    pub services: usize,
    /// Frontends (ClusterIP, port, protocol).
    pub frontends: usize,
    /// Backend entries (including terminating ones).
    pub backends: usize,
}

impl Proxy {
    /// A proxy whose ids continue those found in the maps (after a restart):
    /// every id present in the services, backends, rev-NAT and conntrack maps
    /// keeps its meaning or stays retired.
    pub fn recover(maps: &mut dyn ServiceMaps) -> Result<Self, MapOpError> {
        let current = CurrentState::read(maps)?;
        let mut ids = IdAllocator::seeded(&current, maps.backend_id_limit());
        let (max_backend, max_rev_nat) = max_ids_in_conntrack(maps)?;
        ids.reserve_up_to(max_backend, max_rev_nat);
        // The first pass reads the maps again: they may change between now
        // and then.
        Ok(Self { ids, mirror: None })
    }

    /// Makes the next pass compare with the maps themselves rather than the
    /// mirror.
    pub fn audit(&mut self) {
        self.mirror = None;
    }

    /// The id allocator (for inspection).
    pub fn ids(&self) -> &IdAllocator {
        &self.ids
    }

    /// Makes the maps hold `desired`.
    pub fn reconcile(
        &mut self,
        desired: &DesiredState,
        maps: &mut dyn ServiceMaps,
    ) -> Result<SyncReport, MapOpError> {
        let mut current = match self.mirror.take() {
            Some(mirror) => mirror,
            None => CurrentState::read(maps)?,
        };
        self.ids.observe(&current);
        let ops = diff(desired, &mut self.ids, &current);
        for op in &ops {
            log::debug!("{op}");
        }
        // On failure the mirror stays unset: the next pass reads the maps.
        apply(&ops, maps)?;
        current.apply(&ops);
        self.mirror = Some(current);
        let backends = wanted_backends(desired);
        let frontends: BTreeSet<L4Addr> = desired.frontends.keys().map(|k| k.l4).collect();
        self.ids
            .retain(|a| backends.contains(a), |a| frontends.contains(a));
        Ok(SyncReport {
            ops: ops.len(),
            services: desired.services,
            frontends: desired.frontends.len(),
            backends: backends.len(),
        })
    }
}

fn wanted_backends(desired: &DesiredState) -> BTreeSet<L4Addr> {
    let mut set: BTreeSet<L4Addr> = desired.backends.keys().copied().collect();
    for fe in desired.frontends.values() {
        set.extend(fe.backends.iter().copied());
    }
    set
}
