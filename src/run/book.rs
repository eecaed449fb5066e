//! The book of a run's children: what each one is doing and has done, and the counts per phase,
//! kept up to date as phases change so that reading them costs nothing however large the herd.

use std::num::NonZeroI64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::outputs::Output;

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

#[derive(Debug, Clone, PartialEq, Default)]
pub enum Phase {
    /// Not created yet: waiting for dependencies or a free slot.
    #[default]
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
        reason: Option<Box<str>>,
        message: Option<Box<str>>,
    },
}

impl Phase {
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            Phase::Creating | Phase::Created | Phase::Queued | Phase::Running
        )
    }

    /// Its Job exists and has not ended (what a stop deletes).
    pub fn is_out(&self) -> bool {
        matches!(self, Phase::Created | Phase::Queued | Phase::Running)
    }

    pub fn result(&self) -> Option<ChildResult> {
        match self {
            Phase::Done { result, .. } => Some(*result),
            _ => None,
        }
    }
}

/// Everything known about one child. Kept small: a herd of 10,000 holds 10,000 of these.
#[derive(Debug, Clone, Default)]
pub struct ChildState {
    pub phase: Phase,
    pub attempts: u32,
    /// The server's times: the Job's `startTime`, and when it ended (or, for a child jobherd
    /// ended itself, the local time it did); read with [`ChildState::started`] and
    /// [`ChildState::finished`].
    started: Stamp,
    finished: Stamp,
    /// Succeeded in this earlier run (`JOBHERD_RETRY`), so not run again.
    pub earlier_run: Option<Arc<str>>,
    /// What its succeeded container wrote to its termination message (SPEC §8).
    pub output: Output,
    /// Its time in queues (Kueue) and its preemptions, once it has queued (most never do).
    pub(super) queue: Option<Box<super::queue::QueueTime>>,
    /// Seen not suspended: a later suspension is a preemption, not the queue of a new Job.
    pub(super) admitted: bool,
    /// The Job this run created or adopted, as last seen.
    pub(super) job: JobTrack,
    /// Its pods, as their attempts count.
    pub(super) pods: Pods,
    /// Last pending notice given, so each is given once.
    pub(super) notice: Option<Box<str>>,
    /// When this run saw it start running, while it runs.
    pub(super) running_since: Option<Instant>,
}

impl ChildState {
    pub fn started(&self) -> Option<Timestamp> {
        self.started.get()
    }

    pub fn finished(&self) -> Option<Timestamp> {
        self.finished.get()
    }

    pub(super) fn set_started(&mut self, at: Option<Timestamp>) {
        self.started = Stamp::new(at);
    }

    pub(super) fn set_finished(&mut self, at: Option<Timestamp>) {
        self.finished = Stamp::new(at);
    }

    /// How often it was preempted (suspended again once admitted).
    pub fn preemptions(&self) -> u32 {
        self.queue.as_ref().map_or(0, |q| q.preemptions)
    }

    pub(super) fn queue_mut(&mut self) -> &mut super::queue::QueueTime {
        self.queue.get_or_insert_with(Default::default)
    }

    fn attempts_from_pods(&self) -> u32 {
        self.pods.0.iter().map(|(_, p)| p.runs).sum()
    }

    /// Attempts are the most of what its pods, its Job and what is known from before say;
    /// `Change::Attempt` when an active child's grew past the first (the reporter's timeline
    /// draws each attempt; the first begins when the child runs).
    pub(super) fn refresh_attempts(&mut self) -> Option<super::Change> {
        let before = self.attempts;
        self.attempts = self
            .attempts
            .max(self.attempts_from_pods())
            .max(self.job.attempts);
        let told = self.attempts > before.max(1) && self.phase.is_active();
        told.then_some(super::Change::Attempt {
            number: self.attempts,
        })
    }

    /// Attempts counted again after a preemption took back its pods' last runs.
    pub(super) fn recount_attempts(&mut self) {
        self.attempts = self.attempts_from_pods().max(self.job.attempts);
    }
}

/// A time in 8 bytes, where `Option<Timestamp>` takes 24 (a herd of 100,000 children keeps
/// two each): nanoseconds since the Unix epoch, which an `i64` holds until 2262.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stamp(Option<NonZeroI64>);

impl Stamp {
    fn new(at: Option<Timestamp>) -> Stamp {
        Stamp(at.and_then(|t| {
            i64::try_from(t.as_nanosecond())
                .ok()
                .and_then(NonZeroI64::new)
        }))
    }

    fn get(self) -> Option<Timestamp> {
        self.0
            .and_then(|n| Timestamp::from_nanosecond(n.get().into()).ok())
    }
}

/// The child's Job as last seen.
#[derive(Debug, Clone, Default)]
pub(super) struct JobTrack {
    /// The uid of the Job this run created or adopted ([`super::jobs::uid_key`]).
    pub(super) uid: Option<u64>,
    /// The newest `resourceVersion` seen: an older view (a create response that comes after
    /// watch events) says nothing new.
    pub(super) version: u64,
    /// Attempts as the Job's status counts them (failed + succeeded + active pods).
    pub(super) attempts: u32,
    /// A pod of it ran past its own deadline (a packed child's `JOBHERD_CHILD_TIMEOUT`).
    pub(super) deadline_exceeded: bool,
}

/// A child's pods, by a hash of their uid: most children have one or two, and a herd of
/// 100,000 keeps 100,000 of these (a map would allocate a node of eleven for each).
#[derive(Debug, Clone, Default)]
pub(super) struct Pods(Vec<(u64, PodRuns)>);

impl Pods {
    /// The pod with this uid, added when new.
    pub(super) fn entry(&mut self, uid: &str) -> &mut PodRuns {
        let key = crate::child::fnv1a(uid);
        match self.0.iter().position(|(k, _)| *k == key) {
            Some(i) => &mut self.0[i].1,
            None => {
                // Most children have one pod: no room for four.
                self.0.reserve_exact(1);
                self.0.push((key, PodRuns::default()));
                let last = self.0.len() - 1;
                &mut self.0[last].1
            }
        }
    }

    pub(super) fn get(&self, uid: &str) -> Option<&PodRuns> {
        let key = crate::child::fnv1a(uid);
        self.0.iter().find(|(k, _)| *k == key).map(|(_, p)| p)
    }

    pub(super) fn all_mut(&mut self) -> impl Iterator<Item = &mut PodRuns> {
        self.0.iter_mut().map(|(_, p)| p)
    }
}

/// What one pod of a child counts for.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct PodRuns {
    /// Its container's runs (restarts + 1).
    pub(super) runs: u32,
    /// A preemption deleted it: its last run was not an attempt, and it is not followed any more.
    pub(super) preempted: bool,
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

/// Every child's state, the counts per phase, and which ones run since when.
#[derive(Debug, Default)]
pub(super) struct Book {
    states: Vec<ChildState>,
    tally: Tally,

    /// When the last child finished.
    all_done_at: Option<Instant>,
}

impl Book {
    pub(super) fn new(children: usize) -> Book {
        Book {
            states: vec![ChildState::default(); children],
            tally: Tally {
                waiting: children,
                ..Tally::default()
            },
            ..Book::default()
        }
    }

    pub(super) fn len(&self) -> usize {
        self.states.len()
    }

    pub(super) fn states(&self) -> &[ChildState] {
        &self.states
    }

    pub(super) fn get(&self, index: usize) -> &ChildState {
        &self.states[index]
    }

    /// A child's state, to change anything but its phase (which `set_phase` keeps counted).
    pub(super) fn get_mut(&mut self, index: usize) -> &mut ChildState {
        &mut self.states[index]
    }

    pub(super) fn phase(&self, index: usize) -> &Phase {
        &self.states[index].phase
    }

    pub(super) fn tally(&self) -> Tally {
        self.tally
    }

    pub(super) fn all_done(&self) -> bool {
        self.tally.done() == self.states.len()
    }

    pub(super) fn all_done_at(&self) -> Option<Instant> {
        self.all_done_at
    }

    /// Children laid out later (a `params_from` step): they join waiting.
    pub(super) fn grow(&mut self, to: usize) {
        let added = to.saturating_sub(self.states.len());
        self.states.resize(to, ChildState::default());
        self.tally.waiting += added;
        if added > 0 {
            self.all_done_at = None;
        }
    }

    pub(super) fn set_phase(&mut self, index: usize, phase: Phase, now: Instant) {
        let state = &mut self.states[index];
        *self.tally.slot(&state.phase) -= 1;
        *self.tally.slot(&phase) += 1;
        state.running_since = (phase == Phase::Running).then_some(now);
        state.phase = phase;
        if self.tally.done() == self.states.len() {
            self.all_done_at.get_or_insert(now);
        }
    }

    /// The child that has been running longest, and for how long: a scan, for the counts
    /// lines every few seconds (a sorted set would cost every running child a tree node).
    pub(super) fn longest_running(&self, now: Instant) -> Option<(usize, Duration)> {
        let (since, index) = self
            .states
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((s.running_since?, i)))
            .min()?;
        Some((index, now.saturating_duration_since(since)))
    }

    /// Children whose Jobs are out in the cluster and not ended.
    pub(super) fn out(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.states.len()).filter(|i| self.states[*i].phase.is_out())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_phases_and_the_longest_running_is_the_first_seen() {
        let t0 = Instant::now();
        let mut book = Book::new(3);
        assert_eq!(book.tally().waiting, 3);
        book.set_phase(0, Phase::Running, t0);
        book.set_phase(1, Phase::Running, t0 + Duration::from_secs(1));
        assert_eq!(book.tally().running, 2);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(
            book.longest_running(later),
            Some((0, Duration::from_secs(5)))
        );
        let done = Phase::Done {
            result: ChildResult::Succeeded,
            reason: None,
            message: None,
        };
        book.set_phase(0, done, later);
        assert_eq!(
            book.longest_running(later),
            Some((1, Duration::from_secs(4)))
        );
        assert_eq!(book.tally().succeeded, 1);
        assert!(book.all_done_at().is_none());
        book.grow(5);
        assert_eq!(book.tally().waiting, 3, "two children joined waiting");
    }
}
