//! The run's vocabulary: the [`Event`]s it takes (each with the time it happened, [`At`]), and
//! what it answers with: the [`Transition`]s the user sees and the [`Effect`]s `herd` performs.

use std::time::Instant;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;

use super::ChildResult;
use super::logs::LogSource;
use crate::child::{ChildJob, PackJob};
use crate::cluster::ClusterError;
use crate::disruption::Verdict;

/// When an event happened, as the loop read the clock once for it: the run never reads a
/// clock itself. `instant` measures how long things take (queues, stuck pods, the stop's
/// time); `wall` dates what the server does not date (a child jobherd cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub instant: Instant,
    pub wall: Timestamp,
}

impl At {
    /// Now, by the two clocks.
    pub fn now() -> At {
        At {
            instant: Instant::now(),
            wall: Timestamp::now(),
        }
    }

    /// `d` later, by both clocks (for tests and simulations).
    pub fn after(self, d: std::time::Duration) -> At {
        At {
            instant: self.instant + d,
            wall: self.wall + d,
        }
    }
}

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
    /// The run stops early (or, after fail fast, stops harder): nothing more is created, active
    /// children are deleted.
    Stopping(Stop),
    /// Only jobherd's pod goes (a drain, a preemption): every child is left for the next
    /// attempt. `active` children exist, `waiting` ones are not created yet.
    Moving {
        reason: String,
        active: usize,
        waiting: usize,
    },
    /// Something about the run as a whole, worth a line of its own.
    Note(String),
}

/// Why a run stopped before every child finished by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A soft stop: the steps that run on failure or always still run, and every other stop
    /// overrides it.
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

    /// A hard stop ends the run whatever else goes on: after it, nothing more runs.
    pub fn is_hard(self) -> bool {
        self != Stop::FailFast
    }

    /// Why a child did not run to its end, in its own line.
    pub(super) fn child_text(self) -> &'static str {
        match self {
            Stop::FailFast => "another child failed (JOBHERD_FAIL_FAST)",
            other => other.as_str(),
        }
    }
}

/// The two signals that end a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
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
    /// Time passed: stuck children, logs waited for long enough, deadlines.
    Tick,
    Signal(Signal),
    /// What a SIGTERM means, as `Effect::CheckDisruption` found.
    Disruption(Verdict),
    /// A succeeded child's pods were listed for what it wrote.
    Output {
        index: usize,
        read: OutputRead,
    },
    /// The API cannot be used (forbidden, or gone for too long): the run ends with exit 4.
    Fatal(ClusterError),
}

/// What listing a succeeded child's pods for its output found.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputRead {
    /// The message of the container that succeeded; `None` when it wrote none.
    Found(Option<String>),
    /// It cannot be read, and why (its pods are gone, reading pods is forbidden, ...).
    Lost(String),
}

/// What a create request ended in.
#[derive(Debug)]
pub enum Created {
    Created(Box<Job>),
    /// AlreadyExists, and the Job is this run's: an earlier attempt created it.
    Adopted(Box<Job>),
    /// The run stopped (or paused) before this child's create was sent.
    NotStarted,
    Failed {
        reason: String,
        message: String,
    },
}

/// A child to delete: its place, and what names it in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub index: usize,
    pub name: String,
    /// Its `jobherd.io/step` label, which deletes many at once select by.
    pub label: String,
}

/// I/O the run asks `herd` to do; results come back as events.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Create this child's Job (built from its recipe when its turn comes).
    Create { index: usize, job: Box<ChildJob> },
    /// Create a pack (its ConfigMap first, when it has one); the answer comes back as
    /// `Event::Created` for its first child.
    CreatePack { index: usize, job: Box<PackJob> },
    /// A stuck packed child: mark its pod with `jobherd.io/Stuck` (its pack's
    /// `podFailurePolicy` then fails its index) and delete the pod.
    FailPod { pod: String, reason: String },
    /// Send none of the creates handed out so far; they come back as `Created::NotStarted`.
    StopCreating,
    /// List a succeeded child's pods (this label selector) for its output, which the pod
    /// watch has not shown.
    ReadOutput { index: usize, pods: String },
    /// Delete these children's Jobs, with their pods (Background propagation).
    Delete(Vec<Target>),
    /// The tail of a failed container's log, while its pod exists.
    FetchLogs {
        index: usize,
        pod: String,
        container: String,
        previous: bool,
    },
    /// The tail of the log of a child's newest pod (of this label selector).
    FetchNewestLogs { index: usize, pods: String },
    /// Follow a pod's log from its start (`JOBHERD_LOGS=all`).
    FollowLogs { index: usize, pod: String },
    /// Follow the log of a child's newest pod, if it still has one (`JOBHERD_LOGS=all`, for a
    /// child none of whose pods the pod watch showed).
    FollowNewestLogs { index: usize, pods: String },
    /// Read jobherd's own pod and parent Job to tell what a SIGTERM means; the answer comes
    /// back as `Event::Disruption`.
    CheckDisruption,
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
