//! The run's state machine: what each child is doing, what to create next, which children a
//! failure skips, when and how the run stops or moves, when it is over and with which exit
//! code. It takes one [`Event`] at a time, with the time it happened, and answers with a
//! [`Reaction`]: the transitions the user sees and the effects `herd` performs. Pure: no I/O,
//! no clock; every rule is unit-tested.
//!
//! Its state is a few parts, each owning one concern: the children's [`book::Book`] (states
//! and counts), the steps' [`progress::Progress`], the outputs being read
//! ([`reading::Reading`]), how it stops ([`stopping::Stopping`]), what the watch's lists showed
//! ([`relist::Relist`]), stuck pods, logs, and what earlier runs and attempts did
//! ([`before::Before`]). Each event costs O(1) amortised however large the herd.

mod before;
mod book;
mod events;
mod jobs;
mod logs;
mod packs;
mod pods;
mod progress;
mod queue;
mod reading;
mod relist;
mod stopping;
#[cfg(test)]
pub(crate) mod testing;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::runtime::watcher;

use crate::child::Children;
use crate::cluster::ClusterError;
use crate::config::{Cleanup, LogsMode};
use crate::disruption::Verdict;
use crate::exit::Exit;
use crate::outputs::Output;
use crate::plan::When;
use before::Before;
pub use before::{EarlierChild, ResumedChild};
use book::Book;
pub use book::{ChildResult, ChildState, Phase, Tally};
pub use events::{
    At, Change, Created, Effect, Event, OutputRead, Reaction, Signal, Stop, Target, Transition,
};
use logs::LogBook;
pub use logs::LogSource;
use packs::Packs;
use pods::StuckPods;
pub use pods::{STUCK_REASONS, pod_output};
use progress::Progress;
pub use progress::{BAD_RESULT, DEPENDENCY_FAILED, NOT_NEEDED};
pub use queue::QueueTime;
use reading::Reading;
use relist::Relist;
use stopping::{OnSignal, OnVerdict, Stopping};

/// The most creates handed out and not answered yet: enough to keep the fastest rate limit
/// busy between two events, few enough that a herd of 100,000 waits as children, not as Jobs.
const AHEAD: usize = 512;

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
    children: Children,
    run_id: String,
    rules: Rules,
    book: Book,
    progress: Progress,
    reading: Reading,
    stopping: Stopping,
    relist: Relist,
    stuck: StuckPods,
    logs: LogBook,
    packs: Packs,
    before: Before,
    /// The time of the event being applied.
    now: At,
}

impl Run {
    pub fn new(children: Children, rules: &Rules, run_id: &str, at: At) -> Run {
        let mut run = Run {
            book: Book::new(children.len()),
            progress: Progress::new(&children),
            children,
            run_id: run_id.to_string(),
            rules: rules.clone(),
            reading: Reading::default(),
            stopping: Stopping::default(),
            relist: Relist::default(),
            stuck: StuckPods::new(rules.stuck_timeout),
            logs: LogBook::new(rules.logs),
            packs: Packs::default(),
            before: Before::default(),
            now: at,
        };
        run.start_roots();
        run
    }

    /// `JOBHERD_TIMEOUT`, as the instant the whole run must be over by (across attempts), and
    /// whether a SIGTERM may mean that only the pod goes (in a pod with a parent Job).
    pub fn with_limits(mut self, deadline: Option<Instant>, may_move: bool) -> Run {
        self.stopping = Stopping::new(deadline, may_move);
        self
    }

    /// `JOBHERD_PACK_SIZE`, and the jobherd image packed children copy its entrypoint from.
    pub fn with_packing(mut self, size: usize, image: Option<String>) -> Run {
        self.packs = Packs::new(size, image);
        self
    }

    pub fn children(&self) -> &Children {
        &self.children
    }

    pub fn state(&self, index: usize) -> &ChildState {
        self.book.get(index)
    }

    pub fn states(&self) -> &[ChildState] {
        self.book.states()
    }

    pub fn total(&self) -> usize {
        self.book.len()
    }

    pub fn tally(&self) -> Tally {
        self.book.tally()
    }

    /// The time of the last event.
    pub fn now(&self) -> At {
        self.now
    }

    pub fn stop_reason(&self) -> Option<Stop> {
        self.stopping.stop()
    }

    /// The child that has been running longest, and for how long (by this run's clock).
    pub fn longest_running(&self) -> Option<(usize, Duration)> {
        self.book.longest_running(self.now.instant)
    }

    /// Children skipped because they were not needed (`when: failed` after success).
    pub fn not_needed(&self) -> usize {
        self.progress.not_needed()
    }

    /// The disruption's reason, when the run moves to the next attempt.
    pub fn moving(&self) -> Option<&str> {
        self.stopping.moving()
    }

    /// The run is over: every child is done, its outputs read and its logs in; or it moves; or
    /// the API cannot be used; or a hard stop has deleted what was out (or ran out of time).
    pub fn is_over(&self) -> bool {
        let now = self.now.instant;
        let logs_in = self.logs.is_settled(now, self.book.all_done_at());
        if self.stopping.is_fatal() || self.stopping.is_moving() {
            return true;
        }
        if self.stopping.is_checking() {
            return false;
        }
        if self.stopping.is_hard() {
            let deleted = self.relist.listed() && self.book.tally().active() == 0;
            // A fan-out still to be laid out may have children to delete (see
            // `skip_unstarted`).
            let known = self.progress.all_laid_out();
            return self.stopping.out_of_time(now) || (deleted && known && logs_in);
        }
        self.book.all_done() && self.progress.all_laid_out() && self.reading.is_empty() && logs_in
    }

    /// The reason the run could not go on (exit 4), once.
    pub fn take_fatal(&mut self) -> Option<ClusterError> {
        self.stopping.take_fatal()
    }

    /// SPEC §5: 0 all succeeded (or were not needed), 1 any failed/skipped, 3 timeout, 130/143
    /// signals (and a run that moves).
    pub fn exit_code(&self) -> i32 {
        if let Some(code) = self.before.ended_with() {
            return code;
        }
        let tally = self.book.tally();
        let exit = match self.stopping.stop() {
            _ if self.stopping.is_moving() => Exit::Terminated,
            Some(Stop::Timeout) => Exit::Timeout,
            Some(Stop::Interrupt) => Exit::Interrupted,
            Some(Stop::Terminate) => Exit::Terminated,
            _ if tally.succeeded + self.not_needed() == self.total() => Exit::Succeeded,
            _ => Exit::Failed,
        };
        exit.code()
    }

    /// `JOBHERD_CLEANUP`: the finished children to delete at the end.
    pub fn to_clean_up(&self, policy: Cleanup) -> Vec<Target> {
        let wanted = |r: ChildResult| match policy {
            Cleanup::Never => false,
            Cleanup::Succeeded => r == ChildResult::Succeeded,
            Cleanup::Always => matches!(r, ChildResult::Succeeded | ChildResult::Failed),
        };
        let wanted = |i: usize| {
            self.book.phase(i).result().is_some_and(wanted)
                && self.book.get(i).earlier_run.is_none()
        };
        // A pack goes when every child of it is to go.
        let whole = |i: usize| {
            self.packs
                .of_child(i)
                .is_none_or(|p| p.members.iter().all(|m| wanted(*m)))
        };
        let mut targets: Vec<Target> = (0..self.total())
            .filter(|i| wanted(*i) && whole(*i))
            .map(|i| self.target(i))
            .collect();
        targets.dedup_by(|a, b| a.name == b.name);
        targets
    }

    /// Takes one event; returns what the user sees and what to do next.
    pub fn apply(&mut self, event: Event, at: At) -> Reaction {
        self.now = at;
        let mut out = Reaction::default();
        // With every event, not only ticks: an attempt that starts past the deadline must not
        // create what its first list shows missing before the first tick.
        if self.stopping.past_deadline(at.instant) {
            self.request_stop(Stop::Timeout, &mut out);
        }
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
            Event::Signal(signal) => self.on_signal(signal, &mut out),
            Event::Disruption(verdict) => self.on_verdict(verdict, &mut out),
            Event::Output { index, read } => {
                let output = match read {
                    OutputRead::Found(message) => Output::from_message(message.as_deref()),
                    OutputRead::Lost(why) => Output::Lost(why.into()),
                };
                self.output_read(index, output)
            }
            Event::Fatal(e) => self.stopping.set_fatal(e),
        }
        // A child refused for its size fails at once, which may decide more.
        loop {
            self.settle(&mut out);
            if !self.schedule(&mut out) {
                break;
            }
        }
        out
    }

    /// Hands out children to create: dependencies succeeded, a slot free, the run neither
    /// stopping nor paused. Returns whether a child failed on the way (too large to create).
    fn schedule(&mut self, out: &mut Reaction) -> bool {
        if !self.relist.listed() || !self.stopping.may_create() {
            return false;
        }
        let limit = self.rules.parallelism.map_or(usize::MAX, |p| p as usize);
        // A pack holds its share of the limit (its Job's parallelism), not one per child.
        let (slots, packed) = self.packs.held();
        let used = self.book.tally().active() - packed.min(self.book.tally().active()) + slots;
        // Creates are handed out a few hundred ahead of what the rate limit sends: the rest
        // wait as children, not as built recipes.
        let mut ahead = AHEAD.saturating_sub(self.book.tally().creating);
        let mut free = limit.saturating_sub(used);
        let mut failed = false;
        while free > 0 && ahead > 0 {
            let Some(index) = self.progress.peek_ready() else {
                break;
            };
            // Children adopted from an earlier attempt are no longer waiting; after fail fast
            // only those of steps that run on failure or always are created.
            if *self.book.phase(index) != Phase::Waiting || self.stopping_for(index) {
                self.progress.next_ready();
                continue;
            }
            if self.is_packed(index)
                && let Some(taken) = self.hand_out_pack(index, free, out)
            {
                free = free.saturating_sub(taken);
                ahead = 0;
                continue;
            }
            self.progress.next_ready();
            let job = self.children.recipe(index);
            if let Err(why) = job.check() {
                self.finish(index, ChildResult::Failed, "TooLarge", &why, None, out);
                failed = true;
                continue;
            }
            self.book
                .set_phase(index, Phase::Creating, self.now.instant);
            let job = Box::new(job);
            out.effects.push(Effect::Create { index, job });
            free -= 1;
            ahead -= 1;
        }
        failed
    }

    /// Time passed: a stop's time, stuck children, logs and outputs waited for (the deadline
    /// is looked at with every event).
    fn on_tick(&mut self, out: &mut Reaction) {
        let now = self.now.instant;
        if self.stopping.is_hard() && self.stopping.out_of_time(now) {
            self.stop_ran_out(out);
        }
        self.expire_stuck(out);
        for index in self.logs.expired(now) {
            out.child(index, Change::NoLogs);
        }
        for index in self.logs.unfollowed_due(now) {
            let pods = self.pods_of(index);
            out.effects.push(Effect::FollowNewestLogs { index, pods });
        }
        for index in self.reading.overdue(now) {
            let pods = self.pods_of(index);
            out.effects.push(Effect::ReadOutput { index, pods });
        }
    }

    fn on_signal(&mut self, signal: Signal, out: &mut Reaction) {
        // A signal after every child finished changes nothing.
        if self.book.all_done() && self.progress.all_laid_out() {
            return;
        }
        match self.stopping.on_signal(signal, self.now.instant) {
            OnSignal::Check => {
                out.effects.push(Effect::StopCreating);
                out.effects.push(Effect::CheckDisruption);
            }
            OnSignal::Stop(why) => self.request_stop(why, out),
            OnSignal::Ignore => {}
        }
    }

    fn on_verdict(&mut self, verdict: Verdict, out: &mut Reaction) {
        match self.stopping.on_verdict(verdict, self.now.instant) {
            OnVerdict::Move(reason) => self.leave(reason, out),
            OnVerdict::End(why) => {
                if let Some(why) = why {
                    out.transitions
                        .push(Transition::Note(format!("jobherd: {why}")));
                }
                self.request_stop(Stop::Terminate, out);
            }
            OnVerdict::Ignore => {}
        }
    }

    /// Stops the run (or, after fail fast, stops it harder): nothing more is created, children
    /// not created yet are skipped, and those out in the cluster are deleted (each is
    /// `cancelled` once its delete went through). Before the first list it is not known which
    /// children exist: that waits for the list.
    fn request_stop(&mut self, why: Stop, out: &mut Reaction) {
        let nothing_left = self.book.all_done() && self.progress.all_laid_out();
        if nothing_left || !self.stopping.request(why, self.now.instant) {
            return;
        }
        out.transitions.push(Transition::Stopping(why));
        out.effects.push(Effect::StopCreating);
        if self.relist.listed() {
            self.carry_out_stop(out);
        }
    }

    /// The stop's skips and deletes, once it is known which children exist.
    fn carry_out_stop(&mut self, out: &mut Reaction) {
        let Some(why) = self.stopping.stop() else {
            return;
        };
        let mut targets: Vec<Target> = self
            .book
            .out()
            .filter(|i| self.stopping_for(*i))
            .map(|i| self.target(i))
            .collect();
        targets.dedup_by(|a, b| a.name == b.name);
        self.skip_unstarted(why, out);
        if !targets.is_empty() {
            out.effects.push(Effect::Delete(targets));
        }
    }

    /// The first list is in: the children an earlier attempt recorded as done whose Jobs are
    /// gone are done, and a stop that came before it is carried out.
    fn first_listed(&mut self, out: &mut Reaction) {
        self.restore_recorded(out);
        if self.stopping.is_stopping() {
            self.carry_out_stop(out);
        }
    }

    /// A hard stop's time is up: children whose deletes were not confirmed are given up on.
    fn stop_ran_out(&mut self, out: &mut Reaction) {
        let message = format!(
            "its delete was not confirmed within the {}s the stop may take (the API did not answer in time)",
            stopping::STOP_WITHIN.as_secs()
        );
        let active: Vec<usize> = (0..self.total())
            .filter(|i| self.book.phase(*i).is_active())
            .collect();
        for index in active {
            self.finish(
                index,
                ChildResult::Cancelled,
                "Cancelled",
                &message,
                None,
                out,
            );
        }
    }

    /// Only jobherd's pod goes while its Job goes on: every child is left as it is, for the
    /// next attempt to adopt. With nothing left to leave, the run just ends.
    fn leave(&mut self, reason: String, out: &mut Reaction) {
        self.stopping.leave(reason.clone());
        let tally = self.book.tally();
        out.transitions.push(Transition::Moving {
            reason,
            active: tally.active(),
            waiting: tally.waiting,
        });
    }

    /// The run is stopping, and this child does not go on: after fail-fast, the children of
    /// steps that run on failure or always still do.
    fn stopping_for(&self, index: usize) -> bool {
        match self.stopping.stop() {
            None => false,
            Some(Stop::FailFast) => self.children.step_of(index).when == When::Succeeded,
            Some(_) => true,
        }
    }

    /// What names a child for a delete.
    fn target(&self, index: usize) -> Target {
        if let Some(pack) = self.pack_target(index) {
            return pack;
        }
        let spec = self.children.get(index);
        Target {
            index,
            name: spec.name.to_string(),
            label: self.children.label(index).into_owned(),
        }
    }

    /// An active child was deleted because the run stopped.
    fn cancelled(&mut self, index: usize, out: &mut Reaction) {
        if self.is_packed(index)
            && self
                .packs
                .of_child(index)
                .is_some_and(|p| p.members[0] == index)
        {
            // A pack's delete names its first child: every active child of it goes.
            let members = self
                .packs
                .of_child(index)
                .map(|p| p.members.clone())
                .unwrap_or_default();
            for m in members.into_iter().filter(|m| *m != index) {
                self.cancel_one(m, out);
            }
        }
        self.cancel_one(index, out);
    }

    fn cancel_one(&mut self, index: usize, out: &mut Reaction) {
        if self.book.phase(index).is_active() {
            let why = self.stopping.stop().map_or("stopped", Stop::child_text);
            self.finish(index, ChildResult::Cancelled, "Cancelled", why, None, out);
        }
    }

    /// A child is done; `finished` is the server's time when it gives one.
    fn finish(
        &mut self,
        index: usize,
        result: ChildResult,
        reason: &str,
        message: &str,
        finished: Option<Timestamp>,
        out: &mut Reaction,
    ) {
        let never_handed_out = match self.book.phase(index) {
            Phase::Done { .. } => return,
            Phase::Waiting => true,
            _ => false,
        };
        let was_active = self.book.phase(index).is_active();
        self.pack_member_done(index, was_active);
        let text = |s: &str| (!s.is_empty()).then(|| s.into());
        let done = Phase::Done {
            result,
            reason: text(reason),
            message: text(message),
        };
        self.book.set_phase(index, done, self.now.instant);
        self.stuck.clear(index);
        if result != ChildResult::Skipped {
            self.book
                .get_mut(index)
                .set_finished(Some(finished.unwrap_or(self.now.wall)));
        }
        out.child(index, Change::Done(result));
        // A child never handed out for creation (its step could not start) has no logs.
        if !never_handed_out && !self.stopping.is_hard() {
            self.child_logs(index, result, out);
        }
        self.child_done(index, result, reason);
        if result == ChildResult::Failed && self.rules.fail_fast {
            self.request_stop(Stop::FailFast, out);
        }
    }

    /// The logs a finished child still owes (`JOBHERD_LOGS`).
    fn child_logs(&mut self, index: usize, result: ChildResult, out: &mut Reaction) {
        let now = self.now.instant;
        self.logs.child_done(index, now);
        if result == ChildResult::Failed && self.logs.child_failed(index, now) {
            let pods = self.pods_of(index);
            out.effects.push(Effect::FetchNewestLogs { index, pods });
        }
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
        Run::new(children, rules, "r", At::now())
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
        let message = reason.map(|_| "Job has reached the specified backoff limit".into());
        let done = Phase::Done {
            result,
            reason: reason.map(Into::into),
            message,
        };
        self.book.set_phase(index, done, self.now.instant);
        self.book.get_mut(index).attempts = attempts;
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_combined;
