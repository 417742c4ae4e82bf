//! CrashLoopBackOff: how long a container that exited waits before its restart.
//!
//! As the kubelet does: the first restart is immediate, then 10 s, doubling up to 5 min;
//! a container that ran for 10 min before exiting starts the sequence again. Base, cap and
//! reset are configurable (tests use milliseconds). Pure: the caller passes how long the
//! container ran and stores the returned delay.

use std::time::Duration;

/// The back-off's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    pub base: Duration,
    pub max: Duration,
    /// A container that ran at least this long resets its back-off.
    pub reset_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl BackoffConfig {
    /// `base` and `max`; the reset is twice `max`, as Kubernetes' back-off GC uses.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            reset_after: max.max(base) * 2,
        }
    }
}

/// One container's back-off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    /// The delay the next exit will get (`None`: the next restart is immediate).
    next: Option<Duration>,
}

impl Backoff {
    /// The container exited after running `ran_for`: the delay before its restart.
    pub fn on_exit(&mut self, cfg: &BackoffConfig, ran_for: Duration) -> Duration {
        if ran_for >= cfg.reset_after {
            self.next = None;
        }
        let delay = self.next.unwrap_or(Duration::ZERO);
        self.next = Some(match self.next {
            None => cfg.base,
            Some(d) => (d * 2).min(cfg.max),
        });
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_from_ten_seconds_to_five_minutes() {
        let cfg = BackoffConfig::default();
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|_| b.on_exit(&cfg, S).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn a_long_run_resets() {
        let cfg = BackoffConfig::default();
        let mut b = Backoff::default();
        for _ in 0..5 {
            b.on_exit(&cfg, S);
        }
        assert_eq!(b.on_exit(&cfg, Duration::from_secs(600)), Duration::ZERO);
        assert_eq!(b.on_exit(&cfg, S), Duration::from_secs(10));
    }

    #[test]
    fn configurable_for_tests() {
        let ms = Duration::from_millis;
        let cfg = BackoffConfig::new(ms(100), ms(250));
        assert_eq!(cfg.reset_after, ms(500));
        let mut b = Backoff::default();
        let delays: Vec<_> = (0..4).map(|_| b.on_exit(&cfg, ms(1))).collect();
        assert_eq!(delays, [ms(0), ms(100), ms(200), ms(250)]);
    }
}
