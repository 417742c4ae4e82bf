//! Waiting on conditions with a deadline, never a fixed sleep.

use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, for at most `deadline` (a duration from
/// now). Panics with `what` and the time waited when it never does.
pub fn until<T>(deadline: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    match try_until(deadline, f) {
        Ok(v) => v,
        Err(waited) => panic!("timed out after {waited:?} waiting for {what}"),
    }
}

/// Like [`until`], but returns `Err(time waited)` instead of panicking.
pub fn try_until<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, Duration> {
    let start = Instant::now();
    let end = start + deadline;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        let now = Instant::now();
        if now >= end {
            return Err(now - start);
        }
        std::thread::sleep(pause.min(end - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_some() {
        let mut n = 0;
        let v = until(Duration::from_secs(5), "n to reach 3", || {
            n += 1;
            (n >= 3).then_some(n)
        });
        assert_eq!(v, 3);
    }

    #[test]
    #[should_panic(expected = "waiting for the impossible")]
    fn panics_with_what_on_timeout() {
        until(Duration::from_millis(30), "the impossible", || None::<()>);
    }
}
