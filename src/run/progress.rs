//! Per plan step: how far its dependencies and its own children are, and what that decides
//! (SPEC §4, §8). A step starts when its dependencies have ended as its `when` asks: all
//! succeeded (the default), at least one did not (`failed`), or whatever happened (`always`);
//! else it is skipped. A step has ended when every child is done and the outputs of a succeeded
//! one are read. Starting a step gives its children the outputs of the steps it depends on, and
//! lays out those of a `params_from` step from its source's output.
//!
//! What one event decides can decide more (a skipped step ends at once, which may start or skip
//! the steps after it), so decisions go through a work list, settled at the end of each event.

use std::collections::VecDeque;
use std::ops::Range;

use super::{ChildResult, Phase, Reaction, Run, Stop};
use crate::child::Children;
use crate::config::EnvMap;
use crate::outputs::{self, Output};
use crate::plan::When;

/// Reasons a step's children get when it does not run.
pub const DEPENDENCY_FAILED: &str = "DependencyFailed";
pub const NOT_NEEDED: &str = "NotNeeded";
pub const BAD_RESULT: &str = "BadResult";

/// Per plan step: how far its dependencies and its own children are.
#[derive(Debug, Clone, Default)]
pub(super) struct StepProgress {
    /// Dependencies that have not ended yet.
    waiting_on: usize,
    /// Dependencies that ended without succeeding (failed, cancelled or skipped).
    failed_deps: usize,
    /// Its children that are done, that succeeded, and that were not needed.
    done: usize,
    succeeded: usize,
    not_needed: usize,
    /// Succeeded children whose outputs are not read yet.
    unread: usize,
    /// One of its children did not succeed: the step will not.
    doomed: bool,
    /// Started or skipped: decided once.
    decided: bool,
    /// Its end was passed on to the steps after it.
    ended: bool,
}

/// How a step ended, for the steps after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Succeeded,
    /// Failed, cancelled or skipped.
    Failed,
    /// Skipped because it was not needed (a `when: failed` step after success, and what
    /// depends on one): it harms nothing, and what needs it is not needed either.
    NotNeeded,
}

/// Something a step's progress decided, to be settled.
#[derive(Debug)]
enum Work {
    /// A child of this step is done, or an output of it was read: it may have ended.
    Ended(usize),
    /// The step will not run.
    Skip {
        step: usize,
        reason: &'static str,
        message: String,
    },
    /// Its dependencies have all ended.
    Decide(usize),
}

/// Every step's progress, the children ready to be created, and what is left to settle.
#[derive(Debug, Default)]
pub(super) struct Progress {
    steps: Vec<StepProgress>,
    dependants: Vec<Vec<usize>>,
    /// Children whose dependencies succeeded, not yet handed out (each range is one step's,
    /// or one child handed back).
    ready: VecDeque<Range<usize>>,
    work: VecDeque<Work>,
    /// Children skipped because they were not needed: they harm nothing.
    not_needed: usize,
    /// `params_from` steps whose children are not laid out yet.
    unlaid: usize,
}

impl Progress {
    pub(super) fn new(children: &Children) -> Progress {
        let specs = children.steps();
        let mut steps = vec![StepProgress::default(); specs.len()];
        let mut dependants = vec![Vec::new(); specs.len()];
        for (s, spec) in specs.iter().enumerate() {
            steps[s].waiting_on = spec.depends_on.len();
            for &d in &spec.depends_on {
                dependants[d].push(s);
            }
        }
        Progress {
            steps,
            dependants,
            unlaid: specs.iter().filter(|s| !s.laid_out).count(),
            ..Progress::default()
        }
    }

    /// A child of `step` is done or its output was read: check whether the step ended. One
    /// check stands for any number in a row (a pack's status can end thousands of children in
    /// one event).
    fn check_ended(&mut self, step: usize) {
        if !matches!(self.work.back(), Some(Work::Ended(s)) if *s == step) {
            self.work.push_back(Work::Ended(step));
        }
    }

    /// The next child ready to be created, if any (it may have been adopted since).
    pub(super) fn next_ready(&mut self) -> Option<usize> {
        loop {
            let range = self.ready.front_mut()?;
            match range.next() {
                Some(index) => return Some(index),
                None => {
                    self.ready.pop_front();
                }
            }
        }
    }

    /// The child `next_ready` would give, without taking it.
    pub(super) fn peek_ready(&mut self) -> Option<usize> {
        loop {
            let range = self.ready.front()?;
            if range.is_empty() {
                self.ready.pop_front();
                continue;
            }
            return Some(range.start);
        }
    }

    /// Children taken from the queue but not handed out: ready again, first, in their order.
    pub(super) fn requeue_many(&mut self, indices: &[usize]) {
        for &i in indices.iter().rev() {
            self.requeue(i);
        }
    }

    /// A child handed out but not created (the run paused): it is ready again, first.
    pub(super) fn requeue(&mut self, index: usize) {
        self.ready.push_front(index..index + 1);
    }

    pub(super) fn not_needed(&self) -> usize {
        self.not_needed
    }

    /// Every step's children are laid out.
    pub(super) fn all_laid_out(&self) -> bool {
        self.unlaid == 0
    }
}

impl Run {
    /// Steps without dependencies start at once.
    pub(super) fn start_roots(&mut self) {
        let mut out = Reaction::default();
        for step in 0..self.progress.steps.len() {
            if self.children.steps()[step].depends_on.is_empty() {
                self.start_step(step, &mut out);
            }
        }
    }

    /// A child is done: its step counts it, and a child that did not succeed dooms the step,
    /// so the steps waiting for its success are skipped at once.
    pub(super) fn child_done(&mut self, index: usize, result: ChildResult, reason: &str) {
        let step = self.children.get(index).step;
        let progress = &mut self.progress.steps[step];
        progress.done += 1;
        match result {
            ChildResult::Succeeded => {
                progress.succeeded += 1;
                if self.book.get(index).output.is_unread() {
                    progress.unread += 1;
                    self.reading.expect(index, self.now.instant);
                }
            }
            ChildResult::Skipped if reason == NOT_NEEDED => {
                progress.not_needed += 1;
                self.progress.not_needed += 1;
            }
            _ if !progress.doomed => {
                progress.doomed = true;
                let why = self.dependency_text(index);
                for d in self.progress.dependants[step].clone() {
                    if self.children.steps()[d].when == When::Succeeded {
                        self.progress.work.push_back(Work::Skip {
                            step: d,
                            reason: DEPENDENCY_FAILED,
                            message: why.clone(),
                        });
                    }
                }
            }
            _ => {}
        }
        self.progress.check_ended(step);
    }

    /// A child's output is known (from its pod, looked up, or from before). The first answer
    /// stands.
    pub(super) fn output_read(&mut self, index: usize, output: Output) {
        if !self.book.get(index).output.is_unread() {
            return;
        }
        self.book.get_mut(index).output = output;
        if self.reading.arrived(index) {
            let step = self.children.get(index).step;
            self.progress.steps[step].unread -= 1;
            self.progress.check_ended(step);
        }
    }

    /// Settles what the event decided, in order.
    pub(super) fn settle(&mut self, out: &mut Reaction) {
        while let Some(work) = self.progress.work.pop_front() {
            match work {
                Work::Ended(step) => self.maybe_ended(step),
                Work::Skip {
                    step,
                    reason,
                    message,
                } => self.skip_step(step, reason, &message, out),
                Work::Decide(step) => self.decide(step, out),
            }
        }
    }

    /// Once every child of a step is done and its outputs are read, the steps after it learn
    /// how it ended.
    fn maybe_ended(&mut self, step: usize) {
        let spec = &self.children.steps()[step];
        let progress = &self.progress.steps[step];
        let len = spec.children.len();
        if progress.ended || !spec.laid_out || progress.done < len || progress.unread > 0 {
            return;
        }
        let end = if progress.succeeded == len {
            End::Succeeded
        } else if progress.not_needed == len {
            End::NotNeeded
        } else {
            End::Failed
        };
        let why = match end {
            End::Succeeded => String::new(),
            _ => spec
                .children
                .clone()
                .find(|i| self.book.phase(*i).result() != Some(ChildResult::Succeeded))
                .map_or_else(String::new, |i| self.dependency_text(i)),
        };
        self.progress.steps[step].ended = true;
        for d in self.progress.dependants[step].clone() {
            self.dependency_ended(d, end, &why);
        }
    }

    /// One of a step's dependencies ended: the step may be skipped, or decided.
    fn dependency_ended(&mut self, step: usize, end: End, why: &str) {
        let progress = &mut self.progress.steps[step];
        progress.waiting_on -= 1;
        if end == End::Failed {
            progress.failed_deps += 1;
        }
        let waits_for_success = self.children.steps()[step].when == When::Succeeded;
        if waits_for_success && end != End::Succeeded {
            let reason = match end {
                End::NotNeeded => NOT_NEEDED,
                _ => DEPENDENCY_FAILED,
            };
            let message = why.to_string();
            self.progress.work.push_back(Work::Skip {
                step,
                reason,
                message,
            });
        }
        if self.progress.steps[step].waiting_on == 0 {
            self.progress.work.push_back(Work::Decide(step));
        }
    }

    /// Every dependency has ended: the step starts, or is not needed.
    fn decide(&mut self, step: usize, out: &mut Reaction) {
        if self.progress.steps[step].decided {
            return;
        }
        let needed = match self.children.steps()[step].when {
            When::Failed => self.progress.steps[step].failed_deps > 0,
            // Skipped already when a dependency did not succeed.
            When::Succeeded | When::Always => true,
        };
        if needed {
            self.start_step(step, out);
        } else {
            let message =
                "every dependency succeeded, and it runs only when one does not (when: failed)";
            self.skip_step(step, NOT_NEEDED, message, out);
        }
    }

    /// Starts a step: its children get the outputs of the steps it depends on, a `params_from`
    /// step's children are laid out, and they are handed to the queue of children to create.
    fn start_step(&mut self, step: usize, out: &mut Reaction) {
        self.progress.steps[step].decided = true;
        let inputs = match self.inputs(step) {
            Ok(inputs) => inputs,
            Err(problem) => return self.cannot_start(step, &problem, out),
        };
        if let Some(source) = self.children.steps()[step].source {
            let items = self
                .step_input(source)
                .and_then(|o| outputs::items(&self.step_label(source), o.as_deref()));
            match items {
                Ok(items) => self.lay_out(step, Some(items), out),
                Err(problem) => return self.cannot_start(step, &problem, out),
            }
            self.inherit_laid_out(step, source, out);
        }
        if !inputs.is_empty() {
            self.children.set_inputs(step, inputs);
        }
        let range = self.children.steps()[step].children.clone();
        self.progress.ready.push_back(range);
        // A step with nothing to run (an empty list to fan out over) has succeeded.
        self.progress.check_ended(step);
        // Laid out while the run stops: what was found of it goes, the rest is not started
        // (before the first list, that is the list's to tell).
        if let Some(why) = self.stopping.stop().filter(|_| self.relist.listed()) {
            self.skip_unstarted(why, out);
        }
    }

    /// `JOBHERD_RESULT_<STEP>` of each dependency that succeeded with an output.
    ///
    /// A `params_from` step's children get their own element of their source's output, not
    /// the whole of it: N children each holding an output of S bytes would store N × S bytes
    /// of Jobs (10,000 children over a 50 KB list: 500 MB in etcd, whose default quota is 2 GiB).
    fn inputs(&self, step: usize) -> Result<EnvMap, String> {
        let mut inputs = EnvMap::new();
        let spec = &self.children.steps()[step];
        for &d in spec.depends_on.iter().filter(|d| Some(**d) != spec.source) {
            if !self.step_succeeded(d) {
                continue;
            }
            let Some(output) = self.step_input(d)? else {
                continue;
            };
            let name = outputs::variable(&self.step_label(d));
            outputs::fits(&name, &output)?;
            inputs.insert(name, output);
        }
        Ok(inputs)
    }

    fn step_succeeded(&self, step: usize) -> bool {
        let spec = &self.children.steps()[step];
        spec.laid_out && self.progress.steps[step].succeeded == spec.children.len()
    }

    /// A step's output as the steps after it get it: `Ok(None)` when its single child wrote
    /// none, and why not when it has none to give (it did not succeed, or what a child wrote
    /// cannot be known).
    fn step_input(&self, step: usize) -> Result<Option<String>, String> {
        let name = self.step_label(step);
        if !self.step_succeeded(step) {
            let spec = &self.children.steps()[step];
            let first = spec.children.clone().find_map(|i| {
                self.book
                    .phase(i)
                    .result()
                    .filter(|r| *r != ChildResult::Succeeded)
            });
            let how = first.map_or("did not succeed", |r| match r {
                ChildResult::Skipped => "was skipped",
                ChildResult::Cancelled => "was cancelled",
                _ => "failed",
            });
            return Err(format!("step {name} {how}: it has no result to give"));
        }
        let spec = &self.children.steps()[step];
        for i in spec.children.clone() {
            if let Some(why) = self.book.get(i).output.lost() {
                let child = self.children.name(i);
                return Err(format!(
                    "the result of step {name} cannot be read: child {child} succeeded, but {why}"
                ));
            }
        }
        Ok(self.step_output(step))
    }

    /// A step's output, once it has succeeded (SPEC §8); `None` before, after anything else, or
    /// when its single child wrote none.
    pub fn step_output(&self, step: usize) -> Option<String> {
        if !self.step_succeeded(step) || self.progress.steps[step].unread > 0 {
            return None;
        }
        let spec = &self.children.steps()[step];
        let outputs = spec.children.clone().map(|i| &self.book.get(i).output);
        outputs::step_output(spec.fans_out(), outputs)
    }

    /// A step that cannot start (its source's output is no list, or cannot be read, or an
    /// output is too large for a variable) fails with `BadResult`, without creating anything.
    fn cannot_start(&mut self, step: usize, problem: &str, out: &mut Reaction) {
        if !self.children.steps()[step].laid_out {
            self.lay_out(step, None, out);
        }
        let message = format!("step {}: {problem}", self.step_label(step));
        for index in self.children.steps()[step].children.clone() {
            if *self.book.phase(index) == Phase::Waiting {
                self.finish(index, ChildResult::Failed, BAD_RESULT, &message, None, out);
            }
        }
    }

    /// A step that will not run: its children are skipped (a `params_from` step not laid out
    /// yet is laid out as one child standing for it).
    fn skip_step(&mut self, step: usize, reason: &'static str, message: &str, out: &mut Reaction) {
        if std::mem::replace(&mut self.progress.steps[step].decided, true) {
            return;
        }
        if !self.children.steps()[step].laid_out {
            self.lay_out(step, None, out);
        }
        for index in self.children.steps()[step].children.clone() {
            if *self.book.phase(index) == Phase::Waiting {
                self.finish(index, ChildResult::Skipped, reason, message, None, out);
            }
        }
    }

    /// The run stops: the steps not started yet are skipped, but with fail-fast those that
    /// run on failure or always, which still run once their dependencies have ended; and a
    /// `params_from` step whose source's output is being read, which is laid out when it
    /// comes: a restarted parent may have found its children already, to delete.
    pub(super) fn skip_unstarted(&mut self, why: Stop, out: &mut Reaction) {
        let keep = |when: When| why == Stop::FailFast && when != When::Succeeded;
        for step in 0..self.progress.steps.len() {
            let spec = &self.children.steps()[step];
            if keep(spec.when) || self.reads_its_source(step) {
                continue;
            }
            if !self.progress.steps[step].decided {
                self.skip_step(step, "NotStarted", why.child_text(), out);
                continue;
            }
            for index in spec.children.clone() {
                if *self.book.phase(index) == Phase::Waiting {
                    let text = why.child_text();
                    self.finish(index, ChildResult::Skipped, "NotStarted", text, None, out);
                }
            }
        }
    }

    /// A `params_from` step not started whose source has succeeded and whose output is still
    /// being read.
    fn reads_its_source(&self, step: usize) -> bool {
        let Some(source) = self.children.steps()[step].source else {
            return false;
        };
        !self.progress.steps[step].decided
            && self.step_succeeded(source)
            && self.progress.steps[source].unread > 0
    }

    /// Lays out a `params_from` step's children at the end of the run's, each waiting, and
    /// applies what was seen of them before (a restarted parent's list, an earlier attempt's
    /// record).
    fn lay_out(&mut self, step: usize, items: Option<Vec<EnvMap>>, out: &mut Reaction) {
        let range = self.children.lay_out(step, items);
        self.book.grow(range.end);
        self.progress.unlaid -= 1;
        for index in range {
            self.resume_laid_out(index);
            let Some(kept) = self.relist.take(self.children.name(index)) else {
                continue;
            };
            if let Some(output) = kept.output {
                self.output_read(index, output);
            }
            if let Some(job) = kept.job {
                self.relist.saw(index);
                self.observe_job(index, &job, out);
            }
        }
        let name = self.step_label(step);
        for pack in self.relist.take_packs(&name) {
            self.pack_seen(pack, out);
        }
        if self.relist.listed() {
            self.restore_recorded(out);
        }
    }

    /// `dependency NAME failed`: what a skipped child's message says of the child that did
    /// not succeed.
    pub(super) fn dependency_text(&self, index: usize) -> String {
        let result = self.book.phase(index).result();
        format!(
            "dependency {} {}",
            self.children.name(index),
            result.map_or("", ChildResult::as_str)
        )
    }

    /// A step's name as written in the plan (or the child's label without one).
    fn step_label(&self, step: usize) -> String {
        let spec = &self.children.steps()[step];
        spec.name.clone().unwrap_or_default()
    }
}
