//! The probe worker's pure state: Kubernetes' defaults, thresholds and
//! initial values (pkg/kubelet/prober/worker.go).

use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;

/// Which probe of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    /// `Liveness`, `Readiness`, `Startup` (as in Unhealthy events).
    pub fn name(self) -> &'static str {
        match self {
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
            Self::Startup => "Startup",
        }
    }
}

/// The probe's health as the pod manager reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No verdict yet (startup before its first result).
    Unknown,
    Success,
    Failure,
}

/// A probe's timing and thresholds with Kubernetes' defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeParams {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeParams {
    /// Defaults: period 10 s, timeout 1 s, success 1, failure 3, no delay;
    /// values below the minimum (1) take it. Liveness and startup probes
    /// must have successThreshold 1 (API validation); it is forced here.
    pub fn of(kind: ProbeKind, p: &Probe) -> Self {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        let count = |v: Option<i32>, default: i32| v.unwrap_or(default).max(1) as u32;
        let success = match kind {
            ProbeKind::Readiness => count(p.success_threshold, 1),
            _ => 1,
        };
        Self {
            initial_delay: secs(p.initial_delay_seconds, 0, 0),
            period: secs(p.period_seconds, 10, 1),
            timeout: secs(p.timeout_seconds, 1, 1),
            success_threshold: success,
            failure_threshold: count(p.failure_threshold, 3),
        }
    }
}

/// Counts consecutive results and flips the health at the thresholds.
#[derive(Debug, Clone)]
pub struct ProbeState {
    kind: ProbeKind,
    params: ProbeParams,
    health: Health,
    last: Option<bool>,
    run: u32,
    on_hold: bool,
}

impl ProbeState {
    /// Initial health as Kubernetes: readiness Failure (not ready until a
    /// success), liveness Success (alive until proven otherwise), startup
    /// Unknown.
    pub fn new(kind: ProbeKind, params: ProbeParams) -> Self {
        let health = match kind {
            ProbeKind::Readiness => Health::Failure,
            ProbeKind::Liveness => Health::Success,
            ProbeKind::Startup => Health::Unknown,
        };
        Self {
            kind,
            params,
            health,
            last: None,
            run: 0,
            on_hold: false,
        }
    }

    pub fn health(&self) -> Health {
        self.health
    }

    pub fn params(&self) -> &ProbeParams {
        &self.params
    }

    /// Whether probing should stop: a startup probe that succeeded, or a
    /// liveness/startup probe that failed (the container is restarted and
    /// gets a new worker).
    pub fn done(&self) -> bool {
        self.on_hold || (self.kind == ProbeKind::Startup && self.health == Health::Success)
    }

    /// Records one probe result; returns the new health when it changed.
    pub fn record(&mut self, success: bool) -> Option<Health> {
        if self.done() {
            return None;
        }
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            self.params.success_threshold
        } else {
            self.params.failure_threshold
        };
        if self.run < threshold {
            return None;
        }
        let new = if success {
            Health::Success
        } else {
            Health::Failure
        };
        if !success && self.kind != ProbeKind::Readiness {
            self.on_hold = true;
        }
        (new != self.health).then(|| {
            self.health = new;
            new
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(success: Option<i32>, failure: Option<i32>) -> Probe {
        Probe {
            success_threshold: success,
            failure_threshold: failure,
            ..Probe::default()
        }
    }

    #[test]
    fn defaults_follow_kubernetes() {
        let p = ProbeParams::of(ProbeKind::Readiness, &Probe::default());
        assert_eq!(p.period, Duration::from_secs(10));
        assert_eq!(p.timeout, Duration::from_secs(1));
        assert_eq!(p.initial_delay, Duration::ZERO);
        assert_eq!((p.success_threshold, p.failure_threshold), (1, 3));
        let odd = Probe {
            period_seconds: Some(0),
            timeout_seconds: Some(-1),
            initial_delay_seconds: Some(5),
            success_threshold: Some(4),
            ..Probe::default()
        };
        let p = ProbeParams::of(ProbeKind::Liveness, &odd);
        assert_eq!(p.period, Duration::from_secs(1));
        assert_eq!(p.timeout, Duration::from_secs(1));
        assert_eq!(p.initial_delay, Duration::from_secs(5));
        assert_eq!(p.success_threshold, 1, "liveness success threshold is 1");
        assert_eq!(
            ProbeParams::of(ProbeKind::Readiness, &odd).success_threshold,
            4
        );
    }

    #[test]
    fn readiness_flips_at_each_threshold_and_keeps_probing() {
        let k = ProbeKind::Readiness;
        let mut s = ProbeState::new(k, ProbeParams::of(k, &probe(Some(2), Some(3))));
        assert_eq!(s.health(), Health::Failure, "not ready until proven");
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(true), Some(Health::Success));
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(true), None, "the failure run was broken");
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), Some(Health::Failure));
        assert!(!s.done());
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(true), Some(Health::Success));
    }

    #[test]
    fn liveness_starts_alive_and_holds_after_failing() {
        let k = ProbeKind::Liveness;
        let mut s = ProbeState::new(k, ProbeParams::of(k, &probe(None, Some(2))));
        assert_eq!(s.health(), Health::Success);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), Some(Health::Failure));
        assert!(s.done(), "no more probing until the container restarts");
        assert_eq!(s.record(true), None);
        assert_eq!(s.health(), Health::Failure);
    }

    #[test]
    fn startup_is_unknown_until_a_result_and_stops_on_success() {
        let k = ProbeKind::Startup;
        let mut s = ProbeState::new(k, ProbeParams::of(k, &probe(None, Some(3))));
        assert_eq!(s.health(), Health::Unknown);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(true), Some(Health::Success));
        assert!(s.done());
        let mut f = ProbeState::new(k, ProbeParams::of(k, &probe(None, Some(1))));
        assert_eq!(f.record(false), Some(Health::Failure));
        assert!(f.done());
    }
}
