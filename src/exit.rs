//! jobherd's exit codes (SPEC §5), each with what it means, once: the run, the errors, the
//! trigger and the reference (`jobherd --help-all`, `docs/reference.md`) all take them from here.

/// How jobherd ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Succeeded,
    Failed,
    Invalid,
    Timeout,
    Api,
    NoCode,
    Interrupted,
    Terminated,
}

impl Exit {
    /// Every exit code, in the reference's order.
    pub const ALL: [Exit; 8] = [
        Exit::Succeeded,
        Exit::Failed,
        Exit::Invalid,
        Exit::Timeout,
        Exit::Api,
        Exit::NoCode,
        Exit::Interrupted,
        Exit::Terminated,
    ];

    pub const fn code(self) -> i32 {
        match self {
            Exit::Succeeded => 0,
            Exit::Failed => 1,
            Exit::Invalid => 2,
            Exit::Timeout => 3,
            Exit::Api => 4,
            Exit::NoCode => 5,
            // 128 + the signal's number, as shells report a process a signal ended.
            Exit::Interrupted => 130,
            Exit::Terminated => 143,
        }
    }

    /// The exit that has this code, if jobherd ever exits with it.
    pub fn from_code(code: i32) -> Option<Exit> {
        Exit::ALL.into_iter().find(|e| e.code() == code)
    }

    /// The code in a few words, for `jobherd --help`.
    pub fn brief(self) -> &'static str {
        match self {
            Exit::Succeeded => "every child succeeded",
            Exit::Failed => "a child failed",
            Exit::Invalid => "invalid configuration (nothing created)",
            Exit::Timeout => "JOBHERD_TIMEOUT passed",
            Exit::Api => "the Kubernetes API could not be used",
            Exit::NoCode => "trigger mode: the parent ended without a code",
            Exit::Interrupted => "SIGINT",
            Exit::Terminated => "SIGTERM",
        }
    }

    /// What the code means when jobherd runs a herd (Markdown).
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Succeeded => {
                "Every child succeeded, or was not needed (`NotNeeded`: a `when: failed` step after success, and what waits for it)."
            }
            Exit::Failed => {
                "A step that had to succeed did not: at least one child failed (also `BadResult`), was skipped for another reason than `NotNeeded`, or was cancelled (fail-fast); also when a `when: failed` step then ran and succeeded."
            }
            Exit::Invalid => {
                "Invalid configuration, plan or argument, or an earlier run `JOBHERD_RETRY` cannot use; the message says what. Nothing was created."
            }
            Exit::Timeout => {
                "`JOBHERD_TIMEOUT` passed: the active children were deleted, the pending ones never created."
            }
            Exit::Api => {
                "The Kubernetes API could not be used: unreachable (the first request is tried for about 15 s; during a run jobherd keeps re-watching for 5 minutes), or forbidden (the message names the verb and resource). Running children are left alone: a retried parent adopts them."
            }
            Exit::NoCode => "Only in trigger mode (next column).",
            Exit::Interrupted => {
                "Interrupted by SIGINT (Ctrl-C): the active children were deleted first."
            }
            Exit::Terminated => {
                "Stopped by SIGTERM (the parent Job deleted or past its `activeDeadlineSeconds`, a Jenkins abort): the active children were deleted first. Except when only jobherd's pod is disrupted (a drain, a preemption, a taint eviction) while its Job goes on: then they are left for the next attempt, which adopts them."
            }
        }
    }

    /// What the code means in trigger mode (`JOBHERD_TRIGGER`), where the parent's own code is
    /// passed on (Markdown).
    pub fn in_trigger_mode(self) -> &'static str {
        match self {
            Exit::Succeeded | Exit::Failed => "The parent's own exit code, from its last attempt.",
            Exit::Invalid => {
                "The parent's, or the trigger's own: its settings, a CronJob that does not exist or whose pod has several containers none named `jobherd`, a bad override, `JOBHERD_RETRY=last-failed` without a failed run. Nothing was created."
            }
            Exit::Timeout => {
                "The parent's, or `JOBHERD_TRIGGER_TIMEOUT` passed: the parent was deleted, with its children."
            }
            Exit::Api => {
                "The parent's, or the trigger could not use the API; a parent it created but cannot follow is deleted."
            }
            Exit::NoCode => {
                "The parent ended without an exit code of jobherd's own: its pod was deleted, evicted or lost before jobherd exited, or jobherd was killed (`OOMKilled`); the last line says which."
            }
            Exit::Interrupted | Exit::Terminated => {
                "The parent's, or the trigger was interrupted (a Jenkins abort sends SIGTERM): it deleted the parent, whose pod then deletes the active children."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_told_apart_and_found_again() {
        for e in Exit::ALL {
            assert_eq!(Exit::from_code(e.code()), Some(e));
            assert!(!e.meaning().is_empty() && !e.in_trigger_mode().is_empty());
            assert!(!e.brief().is_empty());
        }
        assert_eq!(Exit::from_code(137), None);
    }
}
