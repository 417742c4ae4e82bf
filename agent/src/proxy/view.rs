//! Reading the maps back as addresses: what a packet to a frontend would
//! get. Meant for tests and tools.

use std::net::Ipv4Addr;

use skiff_common::{Backend, SCOPE_EXTERNAL, SCOPE_INTERNAL};

use super::diff::CurrentState;
use super::{vip_marker_key, FrontendKey, L4Addr, Proto};

/// One programmed frontend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontendView {
    pub rev_nat_id: u32,
    /// `SVC_F_*` bits.
    pub flags: u32,
    pub affinity_timeout_s: u32,
    /// Slot 1..=count in order: backend id and entry (`None` if missing).
    pub slots: Vec<(u32, Option<Backend>)>,
}

impl FrontendView {
    /// The backends new flows can pick, in slot order (entries that are
    /// missing or have an unknown protocol are left out).
    pub fn backends(&self) -> Vec<L4Addr> {
        self.slots
            .iter()
            .filter_map(|(_, b)| b.as_ref().and_then(L4Addr::from_backend))
            .collect()
    }
}

impl CurrentState {
    /// The ClusterIP frontend `vip:port/proto`, if programmed.
    pub fn cluster_ip(&self, vip: Ipv4Addr, port: u16, proto: Proto) -> Option<FrontendView> {
        self.frontend(&FrontendKey {
            l4: L4Addr::new(vip, port, proto),
            scope: SCOPE_INTERNAL,
        })
    }

    /// The external frontend `addr:port/proto` (a NodePort on a node
    /// address, or an externalIP), if programmed.
    pub fn external(&self, addr: Ipv4Addr, port: u16, proto: Proto) -> Option<FrontendView> {
        self.frontend(&FrontendKey {
            l4: L4Addr::new(addr, port, proto),
            scope: SCOPE_EXTERNAL,
        })
    }

    /// Any frontend, if programmed.
    pub fn frontend(&self, key: &FrontendKey) -> Option<FrontendView> {
        let front = self.services.get(&key.slot_key(0))?;
        let slots = (1..=front.count)
            .map(|slot| {
                let slot = u16::try_from(slot).unwrap_or(u16::MAX);
                let id = self
                    .services
                    .get(&key.slot_key(slot))
                    .map_or(0, |v| v.backend_id);
                (id, self.backends.get(&id).copied())
            })
            .collect();
        Some(FrontendView {
            rev_nat_id: front.rev_nat_id,
            flags: front.flags,
            affinity_timeout_s: front.affinity_timeout_s,
            slots,
        })
    }

    /// Whether `vip` has its VIP marker entry.
    pub fn has_vip_marker(&self, vip: Ipv4Addr) -> bool {
        self.services.contains_key(&vip_marker_key(vip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::tests::fixtures::{desired, service, slice, Ep};
    use crate::proxy::{MemMaps, Proxy};

    #[test]
    fn reads_back_what_was_programmed() {
        let svc = service("default", "web", "10.96.0.10", &[("", 80, "TCP")]);
        let sl = slice(
            "default",
            "web",
            &[("", 8080, "TCP")],
            &[("10.244.0.2", Ep::Ready)],
        );
        let mut maps = MemMaps::default();
        Proxy::default()
            .reconcile(&desired(&[svc], &[sl]), &mut maps)
            .unwrap();
        let cur = CurrentState::read(&mut maps).unwrap();
        let vip = Ipv4Addr::new(10, 96, 0, 10);
        let fe = cur.cluster_ip(vip, 80, Proto::Tcp).unwrap();
        assert_eq!(
            fe.backends(),
            [L4Addr::new(Ipv4Addr::new(10, 244, 0, 2), 8080, Proto::Tcp)]
        );
        assert!(cur.has_vip_marker(vip));
        assert!(cur.cluster_ip(vip, 81, Proto::Tcp).is_none());
    }
}
