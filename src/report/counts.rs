//! How many children are in each state, counted one way for every output: the summary line,
//! the page and the metrics (the table, JSON and JUnit list the same children one by one).

use crate::run::Run;

/// Children by state. `skipped` leaves out the children that were not needed (`NotNeeded`),
/// which harm nothing and are counted apart; `inherited` are the succeeded ones an earlier run
/// did (`JOBHERD_RETRY`), counted in `succeeded` too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub waiting: usize,
    /// Created (or being created), not running yet.
    pub pending: usize,
    pub queued: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub not_needed: usize,
    pub cancelled: usize,
    pub inherited: usize,
    pub total: usize,
}

impl Counts {
    pub fn of(run: &Run) -> Counts {
        let t = run.tally();
        Counts {
            waiting: t.waiting,
            pending: t.pending(),
            queued: t.queued,
            running: t.running,
            succeeded: t.succeeded,
            failed: t.failed,
            skipped: t.skipped - run.not_needed(),
            not_needed: run.not_needed(),
            cancelled: t.cancelled,
            inherited: run.inherited(),
            total: run.total(),
        }
    }

    /// Every state with its count, in the order a run goes through them; the names are those
    /// of the summary line and of the metric `jobherd_children{state=...}`.
    pub fn by_state(&self) -> [(&'static str, usize); 9] {
        [
            ("waiting", self.waiting),
            ("pending", self.pending),
            ("queued", self.queued),
            ("running", self.running),
            ("succeeded", self.succeeded),
            ("failed", self.failed),
            ("skipped", self.skipped),
            ("not_needed", self.not_needed),
            ("cancelled", self.cancelled),
        ]
    }

    /// The children that are done.
    pub fn done(&self) -> usize {
        self.succeeded + self.failed + self.skipped + self.not_needed + self.cancelled
    }
}

/// What an exit code means (SPEC §5), in a few words.
pub fn exit_meaning(code: i32) -> &'static str {
    match code {
        0 => "every child succeeded (or was not needed)",
        1 => "a step that had to succeed did not: a child failed, was skipped or was cancelled",
        2 => "invalid configuration or plan; nothing was created",
        3 => "JOBHERD_TIMEOUT passed; active children were deleted",
        4 => "the Kubernetes API could not be used",
        5 => "the parent ended without an exit code of jobherd's own",
        130 => "interrupted (SIGINT); active children were deleted",
        143 => "terminated (SIGTERM); active children were deleted",
        _ => "not an exit code of jobherd's",
    }
}
