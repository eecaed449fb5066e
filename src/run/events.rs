//! The run's vocabulary: the [`Event`]s it takes, and what it answers with: the
//! [`Transition`]s the user sees and the [`Effect`]s `herd` performs.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;

use super::ChildResult;
use super::logs::LogSource;
use crate::cluster::ClusterError;

/// Something the user should see about one child.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Created,
    /// Found already existing from an earlier attempt of this run (restarted parent).
    Adopted,
    Running,
    /// An active child's attempts grew past the first, to `number` (a new pod, or its
    /// container restarted). The console prints nothing for it; the page's timeline draws
    /// each attempt from it.
    Attempt {
        number: u32,
    },
    /// Its Job is suspended: it waits for admission by a queue (Kueue's `queue-name` label).
    Queued {
        queue: Option<String>,
    },
    /// Suspended again after it was admitted: its pods were deleted, not failed.
    Preempted,
    /// A pod is pending for a reason worth telling (image pull, scheduling, config).
    Pending {
        reason: String,
        message: String,
    },
    Done(ChildResult),
    /// The last lines of a failed child's log.
    Logs(String),
    /// A failed child left no log to show.
    NoLogs,
    /// One line of a followed child's log (`JOBHERD_LOGS=all`).
    LogLine(String),
}

/// What the reporter is told, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Child {
        index: usize,
        change: Change,
    },
    /// The run stops early: nothing more is created, active children are deleted.
    Stopping(Stop),
    /// Only jobherd's pod goes (a drain, a preemption): every child is left for the next
    /// attempt. `active` children exist, `waiting` ones are not created yet.
    Moving {
        reason: String,
        active: usize,
        waiting: usize,
    },
}

/// Why a run stopped before every child finished by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    FailFast,
    Timeout,
    Interrupt,
    Terminate,
}

impl Stop {
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::FailFast => "a child failed and JOBHERD_FAIL_FAST is set",
            Stop::Timeout => "JOBHERD_TIMEOUT passed",
            Stop::Interrupt => "interrupted (SIGINT)",
            Stop::Terminate => "terminated (SIGTERM)",
        }
    }

    /// Why a child did not run to its end, in its own line.
    pub(super) fn child_text(self) -> &'static str {
        match self {
            Stop::FailFast => "another child failed (JOBHERD_FAIL_FAST)",
            other => other.as_str(),
        }
    }
}

/// Everything that happens to a run, as `herd` turns it into events.
#[derive(Debug)]
pub enum Event {
    /// The Job watch (label `jobherd.io/run`).
    Jobs(Box<watcher::Event<Job>>),
    /// The Pod watch (same label).
    Pods(Box<watcher::Event<Pod>>),
    /// A create request came back.
    Created {
        index: usize,
        outcome: Created,
    },
    /// Delete requests for these children went through (or failed for good: see the log).
    Deleted {
        indices: Vec<usize>,
    },
    /// The tail of a child's log came back; `None` when there was nothing to show.
    Logs {
        index: usize,
        from: LogSource,
        text: Option<String>,
    },
    /// One line of a followed log.
    LogLine {
        index: usize,
        line: String,
    },
    /// A followed log ended.
    LogEnded,
    /// Time passed: stuck children, logs waited for long enough.
    Tick,
    /// `JOBHERD_TIMEOUT` passed.
    Deadline,
    Signal(Stop),
    /// A succeeded child's pods were listed for its result: the message of the container that
    /// succeeded, `None` when it wrote none or no succeeded pod was found.
    Output {
        index: usize,
        message: Option<String>,
    },
    /// SIGTERM, and jobherd's pod is being disrupted while its Job goes on (`disruption`).
    Moving {
        reason: String,
    },
    /// The API cannot be used (forbidden, or gone for too long): the run ends with exit 4.
    Fatal(ClusterError),
}

/// What a create request ended in.
#[derive(Debug)]
pub enum Created {
    Created(Box<Job>),
    /// AlreadyExists, and the Job is this run's: an earlier attempt created it.
    Adopted(Box<Job>),
    /// The run stopped before this child's create was sent.
    NotStarted,
    Failed {
        reason: String,
        message: String,
    },
}

/// I/O the run asks `herd` to do; results come back as events.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Create(usize),
    /// Send none of the creates handed out so far; they come back as `Created::NotStarted`.
    StopCreating,
    /// The run's children changed (laid out, or given the results of their dependencies):
    /// what creates from now on must build from.
    Children(std::sync::Arc<crate::child::Children>),
    /// List a succeeded child's pods for its result, which the pod watch has not shown.
    ReadOutput(usize),
    /// Delete these children's Jobs, with their pods (Background propagation).
    Delete(Vec<usize>),
    /// The tail of a failed container's log, while its pod exists.
    FetchLogs {
        index: usize,
        pod: String,
        container: String,
        previous: bool,
    },
    /// The tail of the log of a child's newest pod.
    FetchNewestLogs(usize),
    /// Follow a running pod's log (`JOBHERD_LOGS=all`).
    FollowLogs {
        index: usize,
        pod: String,
    },
}

/// The answer to one event.
#[derive(Debug, Default)]
pub struct Reaction {
    pub transitions: Vec<Transition>,
    pub effects: Vec<Effect>,
}

impl Reaction {
    pub(super) fn child(&mut self, index: usize, change: Change) {
        self.transitions.push(Transition::Child { index, change });
    }
}
