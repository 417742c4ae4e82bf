//! Desired vs actual, decided purely: which container to start next. The pod worker
//! observes each container ([`Observed`]), asks [`plan`], and acts; since the plan is a
//! function of the current observation only, a missed event or an agent restart changes
//! nothing.

/// Whether a container that exited with `exit_code` is started again.
pub fn should_restart(policy: &str, init: bool, exit_code: i32) -> bool {
    match (init, policy) {
        (true, _) if exit_code == 0 => false,
        (true, "Never") => false,
        (true, _) => true,
        (false, "Always") => true,
        (false, "OnFailure") => exit_code != 0,
        (false, _) => false,
    }
}

/// One container, as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Never started (or waiting for its image): start it when its turn comes.
    NotStarted,
    Running,
    /// Exited and will be restarted: `due` once its back-off has passed.
    Restarting {
        due: bool,
    },
    /// Exited, not to be restarted; `ok` for exit code 0.
    Done {
        ok: bool,
    },
}

/// What the worker does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Start init container `i` (the earlier ones succeeded).
    StartInit(usize),
    /// An init container runs or waits for its back-off.
    WaitInit,
    /// An init container failed for good (restartPolicy Never): the pod failed.
    InitFailed(usize),
    /// Init is done: start these app containers (maybe none).
    StartApps(Vec<usize>),
}

pub fn plan(init: &[Observed], apps: &[Observed]) -> Plan {
    for (i, o) in init.iter().enumerate() {
        match o {
            Observed::Done { ok: true } => {}
            Observed::Done { ok: false } => return Plan::InitFailed(i),
            Observed::NotStarted | Observed::Restarting { due: true } => return Plan::StartInit(i),
            Observed::Running | Observed::Restarting { due: false } => return Plan::WaitInit,
        }
    }
    Plan::StartApps(
        apps.iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, Observed::NotStarted | Observed::Restarting { due: true }))
            .map(|(i, _)| i)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::Observed::*;
    use super::*;

    #[test]
    fn restart_policies() {
        assert!(should_restart("Always", false, 0));
        assert!(should_restart("OnFailure", false, 1));
        assert!(!should_restart("OnFailure", false, 0));
        assert!(!should_restart("Never", false, 1));
        assert!(
            should_restart("Always", true, 1),
            "init containers restart unless Never"
        );
        assert!(!should_restart("Always", true, 0));
        assert!(!should_restart("Never", true, 2));
    }

    #[test]
    fn init_containers_run_one_at_a_time_in_order() {
        assert_eq!(
            plan(&[NotStarted, NotStarted], &[NotStarted]),
            Plan::StartInit(0)
        );
        assert_eq!(
            plan(&[Done { ok: true }, NotStarted], &[NotStarted]),
            Plan::StartInit(1)
        );
        assert_eq!(plan(&[Running, NotStarted], &[NotStarted]), Plan::WaitInit);
        assert_eq!(
            plan(&[Restarting { due: false }], &[NotStarted]),
            Plan::WaitInit
        );
        assert_eq!(
            plan(&[Restarting { due: true }], &[NotStarted]),
            Plan::StartInit(0)
        );
        assert_eq!(
            plan(&[Done { ok: false }], &[NotStarted]),
            Plan::InitFailed(0)
        );
    }

    #[test]
    fn apps_start_together_once_init_is_done() {
        let init = [Done { ok: true }];
        assert_eq!(
            plan(&init, &[NotStarted, NotStarted]),
            Plan::StartApps(vec![0, 1])
        );
        let apps = [
            Running,
            Restarting { due: true },
            Restarting { due: false },
            Done { ok: false },
        ];
        assert_eq!(plan(&init, &apps), Plan::StartApps(vec![1]));
        assert_eq!(
            plan(&[], &[Running]),
            Plan::StartApps(vec![]),
            "in sync: nothing to do"
        );
    }
}
