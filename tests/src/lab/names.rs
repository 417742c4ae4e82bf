//! Lab names: `skf-<pid>-<counter>-<role>`.
//!
//! Every lab of a process gets its own counter value, so labs built by tests
//! running in parallel never share a name, and the owner's pid in the name
//! lets a later run tell a leftover of a dead process from a live lab.

use std::sync::atomic::{AtomicU32, Ordering};

/// What every lab name starts with.
pub const PREFIX: &str = "skf-";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh lab prefix of this process, `skf-<pid>-<counter>`.
pub fn next_lab_prefix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}-{n}", std::process::id())
}

/// The netns name of the underlay (bridge) of a lab.
pub fn underlay(lab: &str) -> String {
    format!("{lab}-ul")
}

/// The netns name of node `i` (also the agent's `--node-name`).
pub fn node(lab: &str, i: usize) -> String {
    format!("{lab}-n{i}")
}

/// The netns name of pod `k` of node `i`.
pub fn pod(lab: &str, i: usize, k: usize) -> String {
    format!("{lab}-n{i}-p{k}")
}

/// A parsed lab name: the owner pid and the lab prefix it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabName {
    /// Pid of the process that created the lab.
    pub pid: u32,
    /// `skf-<pid>-<counter>`, without the role.
    pub lab: String,
}

/// Parses `skf-<pid>-<counter>[-<role>]`; `None` for anything else.
pub fn parse(name: &str) -> Option<LabName> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut parts = rest.splitn(3, '-');
    let pid_s = parts.next()?;
    let counter_s = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid_s) || !digits(counter_s) {
        return None;
    }
    let pid = pid_s.parse().ok()?;
    Some(LabName {
        pid,
        lab: format!("{PREFIX}{pid_s}-{counter_s}"),
    })
}

/// Whether `name` belongs to the lab with prefix `lab` (the prefix itself or
/// `<lab>-<role>`; `skf-1-1` does not own `skf-1-10-n0`).
pub fn belongs_to(name: &str, lab: &str) -> bool {
    name == lab
        || name
            .strip_prefix(lab)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// Whether process `pid` is alive (a zombie counts as alive until reaped).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether `name` is a lab name whose owner process is dead.
pub fn is_stale(name: &str) -> bool {
    parse(name).is_some_and(|n| !pid_alive(n.pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_pid_and_counter() {
        let a = next_lab_prefix();
        let b = next_lab_prefix();
        assert_ne!(a, b);
        let pid = std::process::id();
        assert!(a.starts_with(&format!("skf-{pid}-")), "{a}");
        assert_eq!(node(&a, 1), format!("{a}-n1"));
        assert_eq!(pod(&a, 1, 3), format!("{a}-n1-p3"));
        assert_eq!(underlay(&a), format!("{a}-ul"));
        let parsed = parse(&pod(&b, 0, 2)).unwrap();
        assert_eq!(parsed.pid, pid);
        assert_eq!(parsed.lab, b);
    }

    #[test]
    fn parse_rejects_foreign_names() {
        for bad in [
            "",
            "skf-",
            "skf-12",
            "skf-x-1-n0",
            "skf-1-y",
            "lab-1-2-n0",
            "skf--1-n0",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse("skf-42-7"),
            Some(LabName {
                pid: 42,
                lab: "skf-42-7".into()
            })
        );
        assert_eq!(parse("skf-42-7-n0-p1").unwrap().lab, "skf-42-7");
    }

    #[test]
    fn membership_is_exact_on_the_counter() {
        assert!(belongs_to("skf-1-1-n0", "skf-1-1"));
        assert!(belongs_to("skf-1-1", "skf-1-1"));
        assert!(!belongs_to("skf-1-10-n0", "skf-1-1"));
        assert!(!belongs_to("skf-1-2-n0", "skf-1-1"));
    }

    #[test]
    fn stale_means_owner_dead() {
        let me = std::process::id();
        assert!(pid_alive(me));
        assert!(!is_stale(&format!("skf-{me}-0-n0")));
        // A child that has exited and been reaped is a dead pid.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        if !pid_alive(dead) {
            assert!(is_stale(&format!("skf-{dead}-0-ul")));
        }
        assert!(!is_stale("not-a-lab"));
        assert!(!pid_alive(0));
    }
}
