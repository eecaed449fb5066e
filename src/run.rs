//! The run's state machine: what each child is doing, what to create next, which children a
//! failure skips, when the run is over and with which exit code. It takes one [`Event`] at a
//! time and answers with a [`Reaction`]: the transitions the user sees and the effects `herd`
//! performs. Pure: no I/O, and the time is passed in, so every rule is unit-tested.
//!
//! Every piece of bookkeeping is kept up to date as events come (counts per phase, a queue of
//! children ready to create, per-step dependency counters), so an event costs O(1) amortised
//! however large the herd.

mod events;
mod inherit;
mod jobs;
mod logs;
mod pods;
mod queue;
mod steps;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::runtime::watcher;

use crate::child::Children;
use crate::cluster::ClusterError;
use crate::config::{Cleanup, LogsMode};
use crate::plan::When;
use crate::results::Output;
pub use events::{Change, Created, Effect, Event, Reaction, Stop, Transition};
pub use inherit::EarlierChild;
pub use jobs::job_outcome;
use logs::LogBook;
pub use logs::LogSource;
use pods::Stuck;
pub use pods::{STUCK_REASONS, pod_output};
pub use steps::{BAD_RESULT, DEPENDENCY_FAILED, NOT_NEEDED};
use steps::{StepProgress, Work};

/// How long a succeeded child's pod may take to show its result on the pod watch before its
/// pods are listed for it (the Job's watch and the pods' are separate and may be apart).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

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
    /// The Job is suspended: it waits in a queue (Kueue) for admission, without pods.
    Queued,
    Running,
    Done {
        result: ChildResult,
        reason: Option<String>,
        message: Option<String>,
    },
}

impl Phase {
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            Phase::Creating | Phase::Created | Phase::Queued | Phase::Running
        )
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
    pods: BTreeMap<String, PodRuns>,
    /// Attempts as the Job's status counts them (failed + succeeded + active pods).
    job_attempts: u32,
    /// Last pending notice given, so each is given once.
    notice: Option<String>,
    /// When it started running, as its key in `Run::running`.
    running_since: Option<Timestamp>,
    /// Succeeded in this earlier run (`JOBHERD_RETRY`), so not run again.
    pub earlier_run: Option<Arc<str>>,
    /// Seen not suspended: a later suspension is a preemption, not the queue of a new Job.
    admitted: bool,
    /// Since when it waits in a queue.
    queued_since: Option<Timestamp>,
    /// Time spent in a queue so far: before it first ran, and after each preemption.
    pub queued: Duration,
    /// How often it was suspended again once admitted.
    pub preemptions: u32,
    /// Its result (SPEC §8): what its succeeded container wrote to its termination message.
    pub output: Output,
    /// The newest `resourceVersion` of its Job seen: an older view (a create response that
    /// comes after watch events) says nothing new.
    version: u64,
}

/// What one pod of a child counts for.
#[derive(Debug, Clone, Copy, Default)]
struct PodRuns {
    /// Its container's runs (restarts + 1).
    runs: u32,
    /// A preemption deleted it: its last run was not an attempt, and it is not followed any more.
    preempted: bool,
}

impl ChildState {
    pub(crate) fn new() -> Self {
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
            admitted: false,
            queued_since: None,
            queued: Duration::ZERO,
            preemptions: 0,
            output: Output::Unread,
            version: 0,
        }
    }

    fn attempts_from_pods(&self) -> u32 {
        self.pods.values().map(|p| p.runs).sum()
    }

    /// Attempts as the pods and the Job count them; `Change::Attempt` when an active child's
    /// grew past the first (the reporter's timeline draws each attempt; the first begins when
    /// the child runs).
    fn refresh_attempts(&mut self) -> Option<Change> {
        let before = self.attempts;
        self.attempts = self
            .attempts
            .max(self.attempts_from_pods())
            .max(self.job_attempts);
        let told = self.attempts > before.max(1) && self.phase.is_active();
        told.then_some(Change::Attempt {
            number: self.attempts,
        })
    }
}

/// How many children are in each phase, kept as phases change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub waiting: usize,
    pub creating: usize,
    pub created: usize,
    pub queued: usize,
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

    /// Jobs out in the cluster (or being created): what `JOBHERD_PARALLELISM` limits.
    pub fn active(&self) -> usize {
        self.creating + self.created + self.queued + self.running
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
            Phase::Queued => &mut self.queued,
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
    pub output: Output,
}

/// The rules of a run, from the configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    pub parallelism: Option<u32>,
    pub fail_fast: bool,
    pub stuck_timeout: Duration,
    pub logs: LogsMode,
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
    /// Only jobherd's pod goes (SIGTERM with `DisruptionTarget`): the run leaves every child as
    /// it is for the next attempt. The disruption's reason.
    moving: Option<String>,
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
    /// What step progress decided, settled at the end of each event (`steps.rs`).
    work: VecDeque<Work>,
    /// Succeeded children whose result is not read yet, since when.
    unread: HashMap<usize, Instant>,
    /// Of those, the ones whose pods were listed for it.
    asked: BTreeSet<usize>,
    /// Children skipped because they were not needed: they harm nothing.
    not_needed: usize,
    /// `params_from` steps whose children are not laid out yet.
    unlaid: usize,
    /// The children changed (results given, children laid out): `herd` needs the new version.
    children_changed: bool,
    /// Children of `params_from` steps an earlier run did (`JOBHERD_RETRY`), taken over once
    /// their step is laid out: by step, (position, run, result).
    inherit_later: HashMap<usize, Vec<(usize, Arc<str>, Output)>>,
    now: Instant,
}

impl Run {
    pub fn new(children: Arc<Children>, rules: &Rules, run_id: &str, now: Instant) -> Run {
        let steps_spec = children.steps();
        let mut steps = vec![StepProgress::default(); steps_spec.len()];
        let mut dependants = vec![Vec::new(); steps_spec.len()];
        for (s, spec) in steps_spec.iter().enumerate() {
            steps[s].waiting_on = spec.depends_on.len();
            for &d in &spec.depends_on {
                dependants[d].push(s);
            }
        }
        let unlaid = steps_spec.iter().filter(|s| !s.laid_out).count();
        let tally = Tally {
            waiting: children.len(),
            ..Tally::default()
        };
        let mut run = Run {
            states: vec![ChildState::new(); children.len()],
            children,
            steps,
            dependants,
            ready: VecDeque::new(),
            tally,
            parallelism: rules.parallelism.map_or(usize::MAX, |p| p as usize),
            fail_fast: rules.fail_fast,
            stuck_timeout: rules.stuck_timeout,
            stop: None,
            moving: None,
            fatal: None,
            run_id: run_id.to_string(),
            stuck: HashMap::new(),
            running: BTreeSet::new(),
            relist: None,
            listed: false,
            logs: LogBook::new(rules.logs),
            all_done_at: None,
            recorded_exit: None,
            work: VecDeque::new(),
            unread: HashMap::new(),
            asked: BTreeSet::new(),
            not_needed: 0,
            unlaid,
            children_changed: false,
            inherit_later: HashMap::new(),
            now,
        };
        run.start_roots();
        run
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

    /// Every child is done and every log waited for has come, or the run moves, or the API
    /// cannot be used.
    pub fn is_over(&self) -> bool {
        self.fatal.is_some()
            || self.moving.is_some()
            || (self.tally.done() == self.total()
                && self.unread.is_empty()
                && self.unlaid == 0
                && self.logs.is_settled(self.now, self.all_done_at))
    }

    /// The reason the run could not go on (exit 4), once.
    pub fn take_fatal(&mut self) -> Option<ClusterError> {
        self.fatal.take()
    }

    /// SPEC §5: 0 all succeeded (or were not needed), 1 any failed/skipped, 3 timeout, 130/143
    /// signals.
    pub fn exit_code(&self) -> i32 {
        if let Some(code) = self.recorded_exit {
            return code;
        }
        if self.moving.is_some() {
            return 143;
        }
        match self.stop {
            Some(Stop::Timeout) => 3,
            Some(Stop::Interrupt) => 130,
            Some(Stop::Terminate) => 143,
            _ if self.tally.succeeded + self.not_needed == self.total() => 0,
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
        state.output = r.output;
    }

    /// A run read back after the fact ended with its parent's exit code, whatever its
    /// children say (a parent that died has no code of its children's making).
    pub fn ended_with(&mut self, code: i32) {
        self.recorded_exit = Some(code);
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
            Event::Moving { reason } => self.leave(reason, &mut out),
            Event::Output { index, message } => {
                self.output_read(index, Output::from_message(message.as_deref()))
            }
            Event::Fatal(e) => self.fatal = Some(e),
        }
        self.settle(&mut out);
        if std::mem::take(&mut self.children_changed) {
            out.effects.push(Effect::Children(self.children.clone()));
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
        // After fail-fast, the steps that run on failure or always still run.
        let stopped = self.stop.is_some_and(|s| s != Stop::FailFast);
        if !self.listed || stopped || self.moving.is_some() || self.fatal.is_some() {
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
            // Children adopted from an earlier attempt are no longer waiting; after fail-fast
            // only those of steps that run on failure or always are created.
            if self.states[index].phase == Phase::Waiting && !self.stopping_for(index) {
                self.set_phase(index, Phase::Creating);
                out.effects.push(Effect::Create(index));
                free -= 1;
            }
        }
    }

    /// Time passed: stuck children fail, logs waited for too long are given up on.
    fn on_tick(&mut self, out: &mut Reaction) {
        self.expire_stuck(out);
        for index in self.logs.expired(self.now) {
            out.child(index, Change::NoLogs);
        }
        let overdue: Vec<usize> = self
            .unread
            .iter()
            .filter(|(i, since)| {
                self.now.duration_since(**since) >= OUTPUT_GRACE && !self.asked.contains(i)
            })
            .map(|(i, _)| *i)
            .collect();
        for index in overdue {
            self.asked.insert(index);
            out.effects.push(Effect::ReadOutput(index));
        }
    }

    /// Stops the run: nothing more is created, children not created yet are skipped, and
    /// active ones are deleted (each is `cancelled` once its delete went through).
    fn begin_stop(&mut self, why: Stop, out: &mut Reaction) {
        if self.stop.is_some() || (self.tally.done() == self.total() && self.unlaid == 0) {
            return;
        }
        self.stop = Some(why);
        out.transitions.push(Transition::Stopping(why));
        out.effects.push(Effect::StopCreating);
        // Creates in flight come back as created (then deleted) or not started.
        let active: Vec<usize> = (0..self.total())
            .filter(|i| {
                matches!(
                    self.states[*i].phase,
                    Phase::Created | Phase::Queued | Phase::Running
                )
            })
            .collect();
        self.skip_unstarted(why, out);
        if !active.is_empty() {
            out.effects.push(Effect::Delete(active));
        }
    }

    /// Only jobherd's pod is disrupted while its Job goes on: nothing more is created, and every
    /// child is left as it is, for the next attempt to adopt.
    fn leave(&mut self, reason: String, out: &mut Reaction) {
        if self.stop.is_some() || self.tally.done() == self.total() {
            return;
        }
        out.transitions.push(Transition::Moving {
            reason: reason.clone(),
            active: self.tally.active(),
            waiting: self.tally.waiting,
        });
        out.effects.push(Effect::StopCreating);
        self.moving = Some(reason);
    }

    /// The run is stopping, and this child does not go on: after fail-fast, the children of
    /// steps that run on failure or always still do.
    fn stopping_for(&self, index: usize) -> bool {
        match self.stop {
            None => false,
            Some(Stop::FailFast) => self.children.step_of(index).when == When::Succeeded,
            Some(_) => true,
        }
    }

    /// Children skipped because they were not needed (`when: failed` after success).
    pub fn not_needed(&self) -> usize {
        self.not_needed
    }

    /// The disruption's reason, when the run moves to the next attempt.
    pub fn moving(&self) -> Option<&str> {
        self.moving.as_deref()
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
        let never_handed_out = match self.states[index].phase {
            Phase::Done { .. } => return,
            Phase::Waiting => true,
            _ => false,
        };
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
        // A child never handed out for creation (its step could not start) has no logs.
        if result == ChildResult::Failed && !never_handed_out {
            out.effects.extend(self.logs.child_failed(index, self.now));
        }
        self.child_done(index, result, reason);
        if result == ChildResult::Failed && self.fail_fast {
            self.begin_stop(Stop::FailFast, out);
        }
    }
}

#[cfg(test)]
mod tests;
