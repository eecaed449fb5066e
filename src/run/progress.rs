//! Per plan step: how far its dependencies and its own children are, and what that decides
//! (SPEC §4, §8). A step starts when its dependencies have ended as its `when` asks: all
//! succeeded (the default), at least one did not (`failed`), or whatever happened (`always`);
//! else it is skipped. A step has ended when every child is done and the results of a succeeded
//! one are read. Starting a step gives its children the results of the steps it depends on, and
//! lays out those of a `params_from` step from its source's result.
//!
//! What one event decides can decide more (a skipped step ends at once, which may start or skip
//! the steps after it), so decisions go through a work list, settled at the end of each event.

use super::{ChildResult, ChildState, Phase, Reaction, Run, Stop};
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
    pub(super) waiting_on: usize,
    /// Dependencies that ended without succeeding (failed, cancelled or skipped).
    failed_deps: usize,
    /// Its children that are done, that succeeded, and that were not needed.
    done: usize,
    succeeded: usize,
    not_needed: usize,
    /// Succeeded children whose results are not read yet.
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
pub(super) enum Work {
    /// A child of this step is done, or a result of it was read: it may have ended.
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

impl Run {
    /// Steps without dependencies start at once.
    pub(super) fn start_roots(&mut self) {
        let mut out = Reaction::default();
        for step in 0..self.steps.len() {
            if self.children.steps()[step].depends_on.is_empty() {
                self.start_step(step, &mut out);
            }
        }
    }

    /// A child is done: its step counts it, and a child that did not succeed dooms the step,
    /// so the steps waiting for its success are skipped at once.
    pub(super) fn child_done(&mut self, index: usize, result: ChildResult, reason: &str) {
        let step = self.children.get(index).step;
        let progress = &mut self.steps[step];
        progress.done += 1;
        match result {
            ChildResult::Succeeded => {
                progress.succeeded += 1;
                if self.states[index].output.is_unread() {
                    self.steps[step].unread += 1;
                    self.unread.insert(index, self.now);
                }
            }
            ChildResult::Skipped if reason == NOT_NEEDED => {
                progress.not_needed += 1;
                self.not_needed += 1;
            }
            _ if !progress.doomed => {
                progress.doomed = true;
                let why = self.dependency_text(index);
                for d in self.dependants[step].clone() {
                    if self.children.steps()[d].when == When::Succeeded {
                        self.work.push_back(Work::Skip {
                            step: d,
                            reason: DEPENDENCY_FAILED,
                            message: why.clone(),
                        });
                    }
                }
            }
            _ => {}
        }
        self.work.push_back(Work::Ended(step));
    }

    /// A succeeded child's result was read (from its pod, or looked up when none was seen).
    pub(super) fn output_read(&mut self, index: usize, output: Output) {
        if !self.states[index].output.is_unread() {
            return;
        }
        self.states[index].output = output;
        self.asked.remove(&index);
        if self.unread.remove(&index).is_some() {
            let step = self.children.get(index).step;
            self.steps[step].unread -= 1;
            self.work.push_back(Work::Ended(step));
        }
    }

    /// Settles what the event decided, in order.
    pub(super) fn settle(&mut self, out: &mut Reaction) {
        while let Some(work) = self.work.pop_front() {
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

    /// Once every child of a step is done and its results are read, the steps after it learn
    /// how it ended.
    fn maybe_ended(&mut self, step: usize) {
        let spec = &self.children.steps()[step];
        let progress = self.steps[step].clone();
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
            _ => {
                let first = spec
                    .children
                    .clone()
                    .find(|i| self.states[*i].phase.result() != Some(ChildResult::Succeeded));
                first.map_or_else(String::new, |i| self.dependency_text(i))
            }
        };
        self.steps[step].ended = true;
        for d in self.dependants[step].clone() {
            let progress = &mut self.steps[d];
            progress.waiting_on -= 1;
            if end == End::Failed {
                progress.failed_deps += 1;
            }
            let waits_for_success = self.children.steps()[d].when == When::Succeeded;
            if waits_for_success && end != End::Succeeded {
                let reason = match end {
                    End::NotNeeded => NOT_NEEDED,
                    _ => DEPENDENCY_FAILED,
                };
                self.work.push_back(Work::Skip {
                    step: d,
                    reason,
                    message: why.clone(),
                });
            }
            if self.steps[d].waiting_on == 0 {
                self.work.push_back(Work::Decide(d));
            }
        }
    }

    /// Every dependency has ended: the step starts, or is not needed.
    fn decide(&mut self, step: usize, out: &mut Reaction) {
        if self.steps[step].decided {
            return;
        }
        let needed = match self.children.steps()[step].when {
            When::Failed => self.steps[step].failed_deps > 0,
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

    /// Starts a step: its children get the results of the steps it depends on, a `params_from`
    /// step's children are laid out, and they are handed to the queue of children to create.
    fn start_step(&mut self, step: usize, out: &mut Reaction) {
        self.steps[step].decided = true;
        let inputs = match self.inputs(step) {
            Ok(inputs) => inputs,
            Err(problem) => return self.cannot_start(step, &problem, out),
        };
        if let Some(source) = self.children.steps()[step].source {
            let name = self.step_label(source);
            let result = self.step_output(source);
            match outputs::items(&name, result.as_deref()) {
                Ok(items) => self.lay_out(step, Some(items)),
                Err(problem) => return self.cannot_start(step, &problem, out),
            }
            self.inherit_laid_out(step, source, out);
        }
        if !inputs.is_empty() {
            self.children_mut().set_inputs(step, inputs);
        }
        let range = self.children.steps()[step].children.clone();
        self.ready.push_back(range);
        // A step with nothing to run (an empty list to fan out over) has succeeded.
        self.work.push_back(Work::Ended(step));
    }

    /// `JOBHERD_RESULT_<STEP>` of each dependency that succeeded with a result.
    ///
    /// A `params_from` step's children get their own element of their source's result, not the
    /// whole of it: N children each holding a result of S bytes would store N × S bytes of Jobs
    /// (10,000 children over a 50 KB list: 500 MB in etcd, whose default quota is 2 GiB).
    fn inputs(&self, step: usize) -> Result<EnvMap, String> {
        let mut inputs = EnvMap::new();
        let spec = &self.children.steps()[step];
        for &d in spec.depends_on.iter().filter(|d| Some(**d) != spec.source) {
            let Some(result) = self.step_output(d) else {
                continue;
            };
            let name = outputs::variable(&self.step_label(d));
            outputs::fits(&name, &result)?;
            inputs.insert(name, result);
        }
        Ok(inputs)
    }

    /// A step's result, once it has succeeded (SPEC §8); `None` before, after anything else, or
    /// when its single child wrote none.
    pub fn step_output(&self, step: usize) -> Option<String> {
        let spec = &self.children.steps()[step];
        let progress = &self.steps[step];
        let succeeded = spec.laid_out && progress.succeeded == spec.children.len();
        if !succeeded || progress.unread > 0 {
            return None;
        }
        let outputs = spec.children.clone().map(|i| &self.states[i].output);
        outputs::step_output(spec.fans_out(), outputs)
    }

    /// A step that cannot start (its source's result is no list, or a result is too large for
    /// a variable) fails with `BadResult`, without creating anything.
    fn cannot_start(&mut self, step: usize, problem: &str, out: &mut Reaction) {
        if !self.children.steps()[step].laid_out {
            self.lay_out(step, None);
        }
        for index in self.children.steps()[step].children.clone() {
            if self.states[index].phase == Phase::Waiting {
                let message = format!("step {}: {problem}", self.step_label(step));
                self.finish(index, ChildResult::Failed, BAD_RESULT, &message, None, out);
            }
        }
    }

    /// A step that will not run: its children are skipped (a `params_from` step not laid out
    /// yet is laid out as one child standing for it).
    pub(super) fn skip_step(
        &mut self,
        step: usize,
        reason: &'static str,
        message: &str,
        out: &mut Reaction,
    ) {
        if std::mem::replace(&mut self.steps[step].decided, true) {
            return;
        }
        if !self.children.steps()[step].laid_out {
            self.lay_out(step, None);
        }
        for index in self.children.steps()[step].children.clone() {
            if self.states[index].phase == Phase::Waiting {
                self.finish(index, ChildResult::Skipped, reason, message, None, out);
            }
        }
    }

    /// The run stops: the steps not started yet are skipped, but with fail-fast those that
    /// run on failure or always, which still run once their dependencies have ended.
    pub(super) fn skip_unstarted(&mut self, why: Stop, out: &mut Reaction) {
        let keep = |when: When| why == Stop::FailFast && when != When::Succeeded;
        for step in 0..self.steps.len() {
            let spec = &self.children.steps()[step];
            if keep(spec.when) {
                continue;
            }
            if self.steps[step].decided {
                for index in spec.children.clone() {
                    if self.states[index].phase == Phase::Waiting {
                        let text = why.child_text();
                        self.finish(index, ChildResult::Skipped, "NotStarted", text, None, out);
                    }
                }
            } else {
                self.skip_step(step, "NotStarted", why.child_text(), out);
            }
        }
    }

    /// Lays out a `params_from` step's children at the end of the run's, each waiting.
    fn lay_out(&mut self, step: usize, items: Option<Vec<EnvMap>>) {
        let range = self.children_mut().lay_out(step, items);
        self.states.resize(range.end, ChildState::new());
        self.tally.waiting += range.len();
        self.unlaid -= 1;
        self.all_done_at = None;
    }

    /// The run's children, to change; `herd` gets the new version with the next effects.
    fn children_mut(&mut self) -> &mut crate::child::Children {
        self.children_changed = true;
        std::sync::Arc::make_mut(&mut self.children)
    }

    /// `dependency NAME failed`: what a skipped child's message says of the child that did
    /// not succeed.
    fn dependency_text(&self, index: usize) -> String {
        let result = self.states[index].phase.result();
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
