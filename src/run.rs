//! The run's state machine: what each child is doing, what to create next, which children a
//! failure skips, when the run is over and with which exit code. It takes one [`Event`] at a
//! time and answers with a [`Reaction`]: the transitions the user sees and the effects `herd`
//! performs. Pure: no I/O, and the time is passed in, so every rule is unit-tested.
//!
//! Every piece of bookkeeping is kept up to date as events come (counts per phase, a queue of
//! children ready to create, per-step dependency counters), so an event costs O(1) amortised
//! however large the herd.

mod logs;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::watcher;

use crate::child::{Children, RUN_LABEL};
use crate::cluster::ClusterError;
use crate::config::{Cleanup, LogsMode};
use logs::LogBook;
pub use logs::LogSource;

/// Waiting reasons after which a pod will not start by itself (image or config problems).
pub const STUCK_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildResult {
    Succeeded,
    Failed,
    /// Never created: a dependency failed, or the run stopped first.
    Skipped,
    /// Deleted while active because the run stopped (fail-fast, timeout, signal).
    Cancelled,
}

impl ChildResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ChildResult::Succeeded => "succeeded",
            ChildResult::Failed => "failed",
            ChildResult::Skipped => "skipped",
            ChildResult::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Not created yet: waiting for dependencies or a free slot.
    Waiting,
    /// Handed out for creation; the create may still be queued behind the rate limit.
    Creating,
    /// The Job exists; no pod is running yet.
    Created,
    Running,
    Done {
        result: ChildResult,
        reason: Option<String>,
        message: Option<String>,
    },
}

impl Phase {
    pub fn is_active(&self) -> bool {
        matches!(self, Phase::Creating | Phase::Created | Phase::Running)
    }

    pub fn result(&self) -> Option<ChildResult> {
        match self {
            Phase::Done { result, .. } => Some(*result),
            _ => None,
        }
    }
}

/// Everything known about one child. Kept small: a herd of 10,000 holds 10,000 of these.
#[derive(Debug, Clone)]
pub struct ChildState {
    pub phase: Phase,
    pub attempts: u32,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// The uid of the Job this run created or adopted.
    uid: Option<String>,
    /// Runs per pod (restarts + 1), keyed by pod uid.
    pods: BTreeMap<String, u32>,
    /// Attempts as the Job's status counts them (failed + succeeded + active pods).
    job_attempts: u32,
    /// Last pending notice given, so each is given once.
    notice: Option<String>,
    /// When it started running, as its key in `Run::running`.
    running_since: Option<Timestamp>,
    /// Succeeded in this earlier run (`JOBHERD_RETRY`), so not run again.
    pub earlier_run: Option<Arc<str>>,
}

impl ChildState {
    fn new() -> Self {
        ChildState {
            phase: Phase::Waiting,
            attempts: 0,
            started: None,
            finished: None,
            uid: None,
            pods: BTreeMap::new(),
            job_attempts: 0,
            notice: None,
            running_since: None,
            earlier_run: None,
        }
    }

    fn refresh_attempts(&mut self) {
        let from_pods: u32 = self.pods.values().sum();
        self.attempts = self.attempts.max(from_pods).max(self.job_attempts);
    }
}

/// How many children are in each phase, kept as phases change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub waiting: usize,
    pub creating: usize,
    pub created: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub cancelled: usize,
}

impl Tally {
    pub fn done(&self) -> usize {
        self.succeeded + self.failed + self.skipped + self.cancelled
    }

    pub fn active(&self) -> usize {
        self.creating + self.created + self.running
    }

    /// Created (or being created) but not running yet.
    pub fn pending(&self) -> usize {
        self.creating + self.created
    }

    pub fn of(&self, result: ChildResult) -> usize {
        match result {
            ChildResult::Succeeded => self.succeeded,
            ChildResult::Failed => self.failed,
            ChildResult::Skipped => self.skipped,
            ChildResult::Cancelled => self.cancelled,
        }
    }

    fn slot(&mut self, phase: &Phase) -> &mut usize {
        match phase {
            Phase::Waiting => &mut self.waiting,
            Phase::Creating => &mut self.creating,
            Phase::Created => &mut self.created,
            Phase::Running => &mut self.running,
            Phase::Done { result, .. } => match result {
                ChildResult::Succeeded => &mut self.succeeded,
                ChildResult::Failed => &mut self.failed,
                ChildResult::Skipped => &mut self.skipped,
                ChildResult::Cancelled => &mut self.cancelled,
            },
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
    fn child_text(self) -> &'static str {
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
    /// Send no more creates; queued ones come back as `Created::NotStarted`.
    StopCreating,
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
    fn child(&mut self, index: usize, change: Change) {
        self.transitions.push(Transition::Child { index, change });
    }
}

/// A child's final state, read back after the fact (`record::rebuild`).
#[derive(Debug, Clone)]
pub struct Restored {
    pub result: ChildResult,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub attempts: u32,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    pub earlier_run: Option<Arc<str>>,
}

/// The rules of a run, from the configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    pub parallelism: Option<u32>,
    pub fail_fast: bool,
    pub stuck_timeout: Duration,
    pub logs: LogsMode,
}

/// Per plan step: how far its dependencies and its own children are.
#[derive(Debug, Clone, Default)]
struct StepProgress {
    /// Dependencies that have not succeeded yet.
    waiting_on: usize,
    /// Its children that succeeded.
    succeeded: usize,
    /// A dependency will never succeed: its children are skipped.
    blocked: bool,
}

/// A pod waiting for a reason that will not resolve itself, since when.
#[derive(Debug, Clone)]
struct Stuck {
    reason: String,
    message: String,
    since: Instant,
}

pub struct Run {
    children: Arc<Children>,
    states: Vec<ChildState>,
    steps: Vec<StepProgress>,
    dependants: Vec<Vec<usize>>,
    /// Children whose dependencies succeeded, not yet handed out (each range is one step's).
    ready: VecDeque<Range<usize>>,
    tally: Tally,
    parallelism: usize,
    fail_fast: bool,
    stuck_timeout: Duration,
    stop: Option<Stop>,
    fatal: Option<ClusterError>,
    run_id: String,
    stuck: HashMap<usize, Stuck>,
    /// Running children by the time they started, for the longest-running one.
    running: BTreeSet<(Timestamp, usize)>,
    /// Which children a re-list of the Jobs has shown so far.
    relist: Option<Vec<bool>>,
    /// The first list is done: only then is it known which children exist already.
    listed: bool,
    logs: LogBook,
    /// When the last child finished.
    all_done_at: Option<Instant>,
    /// The exit code of a run read back after the fact (`ended_with`).
    recorded_exit: Option<i32>,
    now: Instant,
}

impl Run {
    pub fn new(children: Arc<Children>, rules: &Rules, run_id: &str, now: Instant) -> Run {
        let steps_spec = children.steps();
        let mut steps = vec![StepProgress::default(); steps_spec.len()];
        let mut dependants = vec![Vec::new(); steps_spec.len()];
        let mut ready = VecDeque::new();
        for (s, spec) in steps_spec.iter().enumerate() {
            steps[s].waiting_on = spec.depends_on.len();
            for &d in &spec.depends_on {
                dependants[d].push(s);
            }
            if spec.depends_on.is_empty() {
                ready.push_back(spec.children.clone());
            }
        }
        let tally = Tally {
            waiting: children.len(),
            ..Tally::default()
        };
        Run {
            states: vec![ChildState::new(); children.len()],
            children,
            steps,
            dependants,
            ready,
            tally,
            parallelism: rules.parallelism.map_or(usize::MAX, |p| p as usize),
            fail_fast: rules.fail_fast,
            stuck_timeout: rules.stuck_timeout,
            stop: None,
            fatal: None,
            run_id: run_id.to_string(),
            stuck: HashMap::new(),
            running: BTreeSet::new(),
            relist: None,
            listed: false,
            logs: LogBook::new(rules.logs),
            all_done_at: None,
            recorded_exit: None,
            now,
        }
    }

    pub fn children(&self) -> &Children {
        &self.children
    }

    /// The children, to share with what performs the run's effects.
    pub fn shared_children(&self) -> Arc<Children> {
        self.children.clone()
    }

    pub fn state(&self, index: usize) -> &ChildState {
        &self.states[index]
    }

    pub fn states(&self) -> &[ChildState] {
        &self.states
    }

    pub fn total(&self) -> usize {
        self.states.len()
    }

    pub fn tally(&self) -> Tally {
        self.tally
    }

    pub fn stop_reason(&self) -> Option<Stop> {
        self.stop
    }

    /// The child that has been running longest, and since when.
    pub fn longest_running(&self) -> Option<(usize, Timestamp)> {
        self.running.first().map(|(since, index)| (*index, *since))
    }

    /// Every child is done and every log waited for has come, or the API cannot be used.
    pub fn is_over(&self) -> bool {
        self.fatal.is_some()
            || (self.tally.done() == self.total()
                && self.logs.is_settled(self.now, self.all_done_at))
    }

    /// The reason the run could not go on (exit 4), once.
    pub fn take_fatal(&mut self) -> Option<ClusterError> {
        self.fatal.take()
    }

    /// SPEC §5: 0 all succeeded, 1 any failed/skipped, 3 timeout, 130/143 signals.
    pub fn exit_code(&self) -> i32 {
        if let Some(code) = self.recorded_exit {
            return code;
        }
        match self.stop {
            Some(Stop::Timeout) => 3,
            Some(Stop::Interrupt) => 130,
            Some(Stop::Terminate) => 143,
            _ if self.tally.succeeded == self.total() => 0,
            _ => 1,
        }
    }

    /// `JOBHERD_CLEANUP`: the finished children to delete at the end.
    pub fn to_clean_up(&self, policy: Cleanup) -> Vec<usize> {
        let wanted = |r: ChildResult| match policy {
            Cleanup::Never => false,
            Cleanup::Succeeded => r == ChildResult::Succeeded,
            Cleanup::Always => matches!(r, ChildResult::Succeeded | ChildResult::Failed),
        };
        (0..self.total())
            .filter(|i| self.states[*i].phase.result().is_some_and(wanted))
            .collect()
    }

    /// `JOBHERD_RETRY`: children that succeeded in an earlier run are done before anything
    /// starts, and their dependants are ready as if they had just succeeded.
    pub fn inherit(&mut self, (index, run): &(usize, Arc<str>)) -> Vec<Transition> {
        let mut out = Reaction::default();
        if *index < self.total() && self.states[*index].phase == Phase::Waiting {
            self.states[*index].earlier_run = Some(run.clone());
            self.finish(*index, ChildResult::Succeeded, "", "", None, &mut out);
            self.states[*index].finished = None;
        }
        out.transitions
    }

    /// Puts a child in the final state a record or its Job says it reached.
    pub fn restore(&mut self, index: usize, r: Restored) {
        let done = Phase::Done {
            result: r.result,
            reason: r.reason,
            message: r.message,
        };
        self.set_phase(index, done);
        let state = &mut self.states[index];
        state.attempts = r.attempts;
        state.started = r.started;
        state.finished = r.finished;
        state.earlier_run = r.earlier_run;
    }

    /// A run read back after the fact ended with its parent's exit code, whatever its
    /// children say (a parent that died has no code of its children's making).
    pub fn ended_with(&mut self, code: i32) {
        self.recorded_exit = Some(code);
    }

    /// How many children an earlier run did (`JOBHERD_RETRY`).
    pub fn inherited(&self) -> usize {
        self.states
            .iter()
            .filter(|s| s.earlier_run.is_some())
            .count()
    }

    /// Takes one event; returns what the user sees and what to do next.
    pub fn apply(&mut self, event: Event, now: Instant) -> Reaction {
        self.now = now;
        let mut out = Reaction::default();
        match event {
            Event::Jobs(event) => self.on_job_event(*event, &mut out),
            Event::Pods(event) => {
                if let watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) = *event {
                    self.observe_pod(&pod, &mut out)
                }
            }
            Event::Created { index, outcome } => self.on_created(index, outcome, &mut out),
            Event::Deleted { indices } => {
                for index in indices {
                    self.cancelled(index, &mut out);
                }
            }
            Event::Logs { index, from, text } => {
                if let Some(change) = self.logs.arrived(index, from, text) {
                    out.child(index, change);
                }
            }
            Event::LogLine { index, line } => out.child(index, Change::LogLine(line)),
            Event::LogEnded => self.logs.follow_ended(),
            Event::Tick => self.on_tick(&mut out),
            Event::Deadline => self.begin_stop(Stop::Timeout, &mut out),
            Event::Signal(why) => self.begin_stop(why, &mut out),
            Event::Fatal(e) => self.fatal = Some(e),
        }
        self.schedule(&mut out);
        out
    }

    /// A run of `n` children without a plan, named `<prefix>-0` .., for tests.
    #[cfg(test)]
    pub(crate) fn fanned_out(prefix: &str, n: u32, rules: &Rules) -> Run {
        let settings = crate::config::StepSettings {
            image: Some("busybox".into()),
            fan_out: crate::config::FanOut::Count(n),
            ..Default::default()
        };
        let id = crate::child::Identity {
            run_id: "r".into(),
            prefix: prefix.into(),
            namespace: Some("ns".into()),
            owner: None,
        };
        let children = crate::child::children(&settings, None, &id).expect("a valid fan-out");
        Run::new(Arc::new(children), rules, "r", Instant::now())
    }

    /// Puts a child in a final state directly, for tests of what reads a run.
    #[cfg(test)]
    pub(crate) fn force_done(
        &mut self,
        index: usize,
        result: ChildResult,
        reason: Option<&str>,
        attempts: u32,
    ) {
        let message = reason.map(|_| "Job has reached the specified backoff limit".to_string());
        self.set_phase(
            index,
            Phase::Done {
                result,
                reason: reason.map(String::from),
                message,
            },
        );
        self.states[index].attempts = attempts;
    }

    fn set_phase(&mut self, index: usize, phase: Phase) {
        let state = &mut self.states[index];
        *self.tally.slot(&state.phase) -= 1;
        *self.tally.slot(&phase) += 1;
        if let Some(since) = state.running_since.take() {
            self.running.remove(&(since, index));
        }
        if phase == Phase::Running {
            let since = state.started.unwrap_or_else(Timestamp::now);
            state.running_since = Some(since);
            self.running.insert((since, index));
        }
        state.phase = phase;
        if self.tally.done() == self.states.len() {
            self.all_done_at.get_or_insert(self.now);
        }
    }

    /// Hands out children to create: dependencies succeeded, a slot free, the run not stopping.
    fn schedule(&mut self, out: &mut Reaction) {
        if !self.listed || self.stop.is_some() || self.fatal.is_some() {
            return;
        }
        let mut free = self.parallelism.saturating_sub(self.tally.active());
        while free > 0 {
            let Some(range) = self.ready.front_mut() else {
                break;
            };
            let Some(index) = range.next() else {
                self.ready.pop_front();
                continue;
            };
            // Children adopted from an earlier attempt are no longer waiting.
            if self.states[index].phase == Phase::Waiting {
                self.set_phase(index, Phase::Creating);
                out.effects.push(Effect::Create(index));
                free -= 1;
            }
        }
    }

    fn on_job_event(&mut self, event: watcher::Event<Job>, out: &mut Reaction) {
        match event {
            watcher::Event::Init => self.relist = Some(vec![false; self.total()]),
            watcher::Event::InitApply(job) => {
                if let (Some(seen), Some(index)) = (
                    self.relist.as_mut(),
                    self.children.index_of(&job.name_any()),
                ) {
                    seen[index] = true;
                }
                self.observe_job(&job, out);
            }
            watcher::Event::InitDone => {
                // Children that vanished while the watch was down get no DELETE event.
                if let Some(seen) = self.relist.take()
                    && self.listed
                {
                    for (index, seen) in seen.into_iter().enumerate() {
                        if !seen {
                            self.gone(index, out);
                        }
                    }
                }
                self.listed = true;
            }
            watcher::Event::Apply(job) => self.observe_job(&job, out),
            watcher::Event::Delete(job) => {
                let Some(index) = self.children.index_of(&job.name_any()) else {
                    return;
                };
                let uid = &self.states[index].uid;
                // While stopping, jobherd deleted them itself.
                if (uid.is_none() || *uid == job.uid()) && self.stop.is_none() {
                    self.gone(index, out);
                }
            }
        }
    }

    fn on_created(&mut self, index: usize, outcome: Created, out: &mut Reaction) {
        match outcome {
            Created::Created(job) => self.created(index, &job, Change::Created, out),
            Created::Adopted(job) => self.created(index, &job, Change::Adopted, out),
            Created::NotStarted => {
                if self.states[index].phase == Phase::Creating {
                    let why = self.stop.map_or("stopped", Stop::child_text);
                    self.finish(index, ChildResult::Skipped, "NotStarted", why, None, out);
                }
            }
            Created::Failed { reason, message } => {
                self.finish(index, ChildResult::Failed, &reason, &message, None, out)
            }
        }
    }

    /// The API accepted our create (or answered AlreadyExists with a Job of this run).
    fn created(&mut self, index: usize, job: &Job, change: Change, out: &mut Reaction) {
        if self.states[index].phase == Phase::Creating {
            self.set_phase(index, Phase::Created);
            self.states[index].uid = job.uid();
            out.child(index, change);
        }
        self.observe_job(job, out);
        // Created while the run was stopping: it goes at once.
        if self.stop.is_some() && self.states[index].phase.is_active() {
            out.effects.push(Effect::Delete(vec![index]));
        }
    }

    /// A Job of this run as the API shows it now (watch event, list, or create response).
    fn observe_job(&mut self, job: &Job, out: &mut Reaction) {
        let Some(index) = self.children.index_of(&job.name_any()) else {
            return;
        };
        if job.labels().get(RUN_LABEL) != Some(&self.run_id) {
            return;
        }
        let state = &self.states[index];
        if state.uid.is_some() && job.uid().is_some() && state.uid != job.uid() {
            // A different Job under the same name (deleted and recreated by someone else).
            return;
        }
        match state.phase {
            // Exists before we asked for it: created by an earlier attempt of this run.
            Phase::Waiting => {
                self.set_phase(index, Phase::Created);
                out.child(index, Change::Adopted);
            }
            Phase::Creating => {
                self.set_phase(index, Phase::Created);
                out.child(index, Change::Created);
            }
            _ => {}
        }
        let state = &mut self.states[index];
        if state.uid.is_none() {
            state.uid = job.uid();
        }
        let Some(status) = job.status.as_ref() else {
            return;
        };
        state.started = state.started.or(status.start_time.as_ref().map(|t| t.0));
        state.job_attempts = (status.failed.unwrap_or(0)
            + status.succeeded.unwrap_or(0)
            + status.active.unwrap_or(0))
        .max(0) as u32;
        state.refresh_attempts();
        self.read_conditions(index, job, out);
    }

    /// What a Job's conditions say: done (how), or running.
    fn read_conditions(&mut self, index: usize, job: &Job, out: &mut Reaction) {
        let Some(status) = job.status.as_ref() else {
            return;
        };
        // The server's clock at both ends: `startTime` has whole seconds, and so do these.
        let finished = status
            .completion_time
            .as_ref()
            .map(|t| t.0)
            .or_else(|| decided_at(job));
        match job_outcome(job) {
            Some(Ok(())) => self.finish(index, ChildResult::Succeeded, "", "", finished, out),
            Some(Err((reason, message))) => {
                if reason == "BackoffLimitExceeded" {
                    // The pod that made the last attempt may be deleted before we saw it; by
                    // definition the Job used backoffLimit + 1 attempts.
                    let limit = job.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(6);
                    let state = &mut self.states[index];
                    state.attempts = state.attempts.max(limit.max(0) as u32 + 1);
                }
                self.finish(index, ChildResult::Failed, &reason, &message, finished, out);
            }
            None => {
                let running = status.active.unwrap_or(0) > 0 && status.ready.unwrap_or(0) > 0;
                if running && self.states[index].phase == Phase::Created {
                    self.set_phase(index, Phase::Running);
                    out.child(index, Change::Running);
                }
            }
        }
    }

    /// A child's Job disappeared before it finished (watch DELETE, or missing from a re-list).
    fn gone(&mut self, index: usize, out: &mut Reaction) {
        if matches!(self.states[index].phase, Phase::Created | Phase::Running) {
            let why = "the Job was deleted before it finished";
            self.finish(index, ChildResult::Failed, "Deleted", why, None, out);
        }
    }

    /// A pod of one of our children: attempts, running state, stuck detection, logs.
    fn observe_pod(&mut self, pod: &Pod, out: &mut Reaction) {
        let labels = pod.labels();
        let job_name = labels
            .get("batch.kubernetes.io/job-name")
            .or_else(|| labels.get("job-name"));
        let Some(index) = job_name.and_then(|n| self.children.index_of(n)) else {
            return;
        };
        if matches!(
            self.states[index].phase,
            Phase::Done { .. } | Phase::Waiting
        ) {
            return;
        }
        // A stopping run deletes its children: their ends are not failures worth a log.
        if self.stop.is_none() {
            out.effects.extend(self.logs.pod_seen(index, pod));
        }
        let Some(status) = pod.status.as_ref() else {
            return;
        };
        let containers = status.container_statuses.as_deref().unwrap_or_default();
        self.count_attempts(index, pod, containers);
        let running = containers
            .iter()
            .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
        if running && self.states[index].phase == Phase::Created {
            self.set_phase(index, Phase::Running);
            out.child(index, Change::Running);
        }
        self.track_stuck(index, containers);
        let unschedulable = status.conditions.iter().flatten().find_map(|c| {
            (c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable"))
            .then(|| {
                (
                    "Unschedulable".to_string(),
                    c.message.clone().unwrap_or_default(),
                )
            })
        });
        let pending = self
            .stuck
            .get(&index)
            .map(|s| (s.reason.clone(), s.message.clone()))
            .or(unschedulable);
        let state = &mut self.states[index];
        match pending {
            Some((reason, message)) if state.notice.as_deref() != Some(reason.as_str()) => {
                state.notice = Some(reason.clone());
                out.child(index, Change::Pending { reason, message });
            }
            Some(_) => {}
            None => state.notice = None,
        }
    }

    fn count_attempts(
        &mut self,
        index: usize,
        pod: &Pod,
        containers: &[k8s_openapi::api::core::v1::ContainerStatus],
    ) {
        let started = containers.iter().any(|c| {
            c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
                || c.restart_count > 0
        });
        if !started {
            return;
        }
        let restarts = containers
            .iter()
            .map(|c| c.restart_count.max(0) as u32)
            .max()
            .unwrap_or(0);
        let state = &mut self.states[index];
        let runs = state.pods.entry(pod.uid().unwrap_or_default()).or_insert(0);
        *runs = (*runs).max(restarts + 1);
        state.refresh_attempts();
    }

    /// Notes the first waiting reason that will not resolve itself; ErrImagePull alternating
    /// with ImagePullBackOff is one stuck period.
    fn track_stuck(
        &mut self,
        index: usize,
        containers: &[k8s_openapi::api::core::v1::ContainerStatus],
    ) {
        let waiting = containers.iter().find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            let reason = w.reason.clone()?;
            STUCK_REASONS
                .contains(&reason.as_str())
                .then(|| (reason, w.message.clone().unwrap_or_default()))
        });
        fn kind(r: &str) -> &str {
            if r == "ImagePullBackOff" {
                "ErrImagePull"
            } else {
                r
            }
        }
        let Some((reason, message)) = waiting else {
            self.stuck.remove(&index);
            return;
        };
        let since = match self.stuck.get(&index) {
            Some(s) if kind(&s.reason) == kind(&reason) => s.since,
            _ => self.now,
        };
        self.stuck.insert(
            index,
            Stuck {
                reason,
                message,
                since,
            },
        );
    }

    fn on_tick(&mut self, out: &mut Reaction) {
        let limit = self.stuck_timeout;
        let mut expired: Vec<usize> = self
            .stuck
            .iter()
            .filter(|(_, s)| self.now.duration_since(s.since) >= limit)
            .map(|(i, _)| *i)
            .collect();
        expired.sort_unstable();
        for index in expired {
            let Some(stuck) = self.stuck.remove(&index) else {
                continue;
            };
            if !self.states[index].phase.is_active() {
                continue;
            }
            let message = format!(
                "pod stuck in {} for {}s (JOBHERD_STUCK_TIMEOUT): {}",
                stuck.reason,
                limit.as_secs(),
                stuck.message
            );
            self.finish(
                index,
                ChildResult::Failed,
                &stuck.reason,
                &message,
                None,
                out,
            );
            out.effects.push(Effect::Delete(vec![index]));
        }
        for index in self.logs.expired(self.now) {
            out.child(index, Change::NoLogs);
        }
    }

    /// Stops the run: nothing more is created, children not created yet are skipped, and
    /// active ones are deleted (each is `cancelled` once its delete went through).
    fn begin_stop(&mut self, why: Stop, out: &mut Reaction) {
        if self.stop.is_some() || self.tally.done() == self.total() {
            return;
        }
        self.stop = Some(why);
        out.transitions.push(Transition::Stopping(why));
        out.effects.push(Effect::StopCreating);
        let mut active = Vec::new();
        for index in 0..self.total() {
            match self.states[index].phase {
                Phase::Waiting => {
                    let why = why.child_text();
                    self.finish(index, ChildResult::Skipped, "NotStarted", why, None, out);
                }
                Phase::Created | Phase::Running => active.push(index),
                // Creates in flight come back as created (then deleted) or not started.
                _ => {}
            }
        }
        if !active.is_empty() {
            out.effects.push(Effect::Delete(active));
        }
    }

    /// An active child was deleted because the run stopped.
    fn cancelled(&mut self, index: usize, out: &mut Reaction) {
        if self.states[index].phase.is_active() {
            let why = self.stop.map_or("stopped", Stop::child_text);
            self.finish(index, ChildResult::Cancelled, "Cancelled", why, None, out);
        }
    }

    fn finish(
        &mut self,
        index: usize,
        result: ChildResult,
        reason: &str,
        message: &str,
        finished: Option<Timestamp>,
        out: &mut Reaction,
    ) {
        if matches!(self.states[index].phase, Phase::Done { .. }) {
            return;
        }
        let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
        self.set_phase(
            index,
            Phase::Done {
                result,
                reason: text(reason),
                message: text(message),
            },
        );
        self.stuck.remove(&index);
        if result != ChildResult::Skipped {
            self.states[index].finished = Some(finished.unwrap_or_else(Timestamp::now));
        }
        out.child(index, Change::Done(result));
        if result == ChildResult::Failed {
            out.effects.extend(self.logs.child_failed(index, self.now));
        }
        if result == ChildResult::Succeeded {
            self.step_child_succeeded(index);
        } else {
            self.skip_dependants(index, out);
        }
        if result == ChildResult::Failed && self.fail_fast {
            self.begin_stop(Stop::FailFast, out);
        }
    }

    /// When the last child of a step succeeds, its dependants may be ready.
    fn step_child_succeeded(&mut self, index: usize) {
        let step = self.children.get(index).step;
        self.steps[step].succeeded += 1;
        if self.steps[step].succeeded < self.children.steps()[step].children.len() {
            return;
        }
        for &d in &self.dependants[step] {
            let progress = &mut self.steps[d];
            progress.waiting_on -= 1;
            if progress.waiting_on == 0 && !progress.blocked {
                self.ready
                    .push_back(self.children.steps()[d].children.clone());
            }
        }
    }

    /// Steps that (transitively) depend on the step of a child that will never succeed are
    /// skipped, each once: blocked by the first failure that reached it.
    fn skip_dependants(&mut self, index: usize, out: &mut Reaction) {
        let children = self.children.clone();
        let mut queue = VecDeque::from([(children.get(index).step, index)]);
        while let Some((step, blocker)) = queue.pop_front() {
            for d in self.dependants[step].clone() {
                if std::mem::replace(&mut self.steps[d].blocked, true) {
                    continue;
                }
                let result = self.states[blocker].phase.result();
                let message = format!(
                    "dependency {} {}",
                    children.name(blocker),
                    result.map_or("", ChildResult::as_str)
                );
                let range = children.steps()[d].children.clone();
                let mut first = None;
                for i in range.clone() {
                    if self.states[i].phase == Phase::Waiting {
                        let skipped = Phase::Done {
                            result: ChildResult::Skipped,
                            reason: Some("DependencyFailed".into()),
                            message: Some(message.clone()),
                        };
                        self.set_phase(i, skipped);
                        out.child(i, Change::Done(ChildResult::Skipped));
                        first.get_or_insert(i);
                    }
                }
                queue.push_back((d, first.unwrap_or(range.start)));
            }
        }
    }
}

/// When the condition that decided a Job's outcome was set (1.31+ sets `completionTime` only
/// with `Complete`, after `SuccessCriteriaMet`; failures have none).
fn decided_at(job: &Job) -> Option<Timestamp> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .filter(|c| {
            matches!(
                c.type_.as_str(),
                "Complete" | "SuccessCriteriaMet" | "Failed" | "FailureTarget"
            )
        })
        .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
        .min()
}

/// Reads a Job's conditions: `SuccessCriteriaMet`/`Complete` is success, `FailureTarget`/
/// `Failed` failure with its reason and message. `None` while it is still running.
/// (kube's `is_job_completed` never reports a failed Job, so conditions are read here.)
pub fn job_outcome(job: &Job) -> Option<Result<(), (String, String)>> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let mut failure = None;
    for c in conditions.iter().filter(|c| c.status == "True") {
        match c.type_.as_str() {
            "Complete" | "SuccessCriteriaMet" => return Some(Ok(())),
            // Prefer the final `Failed` over `FailureTarget` when both are there.
            "Failed" | "FailureTarget" if failure.is_none() || c.type_ == "Failed" => {
                failure = Some((
                    c.reason.clone().unwrap_or_else(|| "Failed".into()),
                    c.message.clone().unwrap_or_default(),
                ));
            }
            _ => {}
        }
    }
    failure.map(Err)
}

#[cfg(test)]
mod tests;
