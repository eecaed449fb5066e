//! What came before this run, taken over before anything starts.
//!
//! - An earlier *run* (`JOBHERD_RETRY`): its children that succeeded are done, with their
//!   outputs, and the steps after them start as if they had just succeeded. Those of a
//!   `params_from` step are taken over once it is laid out, when its source was taken over
//!   too: the same output gives the same children. (Which children are taken over is
//!   `retry.rs`'s to say.)
//! - An earlier *attempt* of this run (the same parent Job, whose pod moved or died): its
//!   record gives what it had read (outputs, queue time, preemptions, attempts), so nothing is
//!   read twice and nothing is lost with the pods a drain or a TTL removed; a child it
//!   recorded as done whose Job is gone is done.
//! - A run read back after the fact (`record::rebuild`) ends with its parent's exit code.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::queue::QueueTime;
use super::{ChildResult, Phase, Reaction, Restored, Run, Transition};
use crate::outputs::Output;

/// A child an earlier run succeeded with, by its place in its step (its index may differ: a
/// `params_from` step's children are laid out as they come).
#[derive(Debug, Clone, PartialEq)]
pub struct EarlierChild {
    pub step: usize,
    pub position: usize,
    /// The run (parent Job) that did it.
    pub run: Arc<str>,
    pub output: Output,
}

/// What an earlier attempt of this run recorded of one child, by its place in its step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResumedChild {
    pub step: usize,
    pub position: usize,
    /// How it ended, when it had.
    pub result: Option<ChildResult>,
    /// The run that succeeded with it, when an earlier run (`JOBHERD_RETRY`) did.
    pub earlier_run: Option<Arc<str>>,
    pub output: Output,
    pub attempts: u32,
    pub queued: Duration,
    pub preemptions: u32,
}

#[derive(Debug, Default)]
pub(super) struct Before {
    /// Children of `params_from` steps an earlier run did, taken over once their step is laid
    /// out: by step, (position, run, output).
    inherit_later: HashMap<usize, Vec<(usize, Arc<str>, Output)>>,
    /// What an earlier attempt recorded of children not laid out yet, by (step, position).
    resume_later: HashMap<(usize, usize), ResumedChild>,
    /// Children an earlier attempt recorded as done: done when the first list shows no Job.
    recorded: Vec<(usize, ResumedChild)>,
    /// The exit code of a run read back after the fact.
    ended_with: Option<i32>,
}

impl Before {
    pub(super) fn ended_with(&self) -> Option<i32> {
        self.ended_with
    }
}

impl Run {
    /// Takes over a child an earlier run did; returns what the user sees.
    pub fn inherit(&mut self, done: EarlierChild) -> Vec<Transition> {
        let mut out = Reaction::default();
        let Some(spec) = self.children.steps().get(done.step) else {
            return out.transitions;
        };
        if spec.laid_out {
            let index = spec.children.start + done.position;
            if index < spec.children.end {
                self.take_over(index, done.run, done.output, &mut out);
            }
            self.settle(&mut out);
        } else {
            let later = self.before.inherit_later.entry(done.step).or_default();
            later.push((done.position, done.run, done.output));
        }
        out.transitions
    }

    /// A `params_from` step was laid out: what an earlier run did of it is taken over when its
    /// source's children all were, which gave it the same items.
    pub(super) fn inherit_laid_out(&mut self, step: usize, source: usize, out: &mut Reaction) {
        let Some(earlier) = self.before.inherit_later.remove(&step) else {
            return;
        };
        let source_range = self.children.steps()[source].children.clone();
        if !source_range
            .clone()
            .all(|i| self.book.get(i).earlier_run.is_some())
        {
            return;
        }
        let range = self.children.steps()[step].children.clone();
        for (position, run, output) in earlier {
            let index = range.start + position;
            if index < range.end {
                self.take_over(index, run, output, out);
            }
        }
    }

    fn take_over(&mut self, index: usize, run: Arc<str>, output: Output, out: &mut Reaction) {
        if *self.book.phase(index) != Phase::Waiting {
            return;
        }
        let state = self.book.get_mut(index);
        state.earlier_run = Some(run);
        // An output the earlier run could not keep is not known (see `record.rs`).
        state.output = match output {
            Output::Unread => Output::Absent,
            known => known,
        };
        self.finish(index, ChildResult::Succeeded, "", "", None, out);
        self.book.get_mut(index).set_finished(None);
    }

    /// How many children an earlier run did (`JOBHERD_RETRY`).
    pub fn inherited(&self) -> usize {
        self.book
            .states()
            .iter()
            .filter(|s| s.earlier_run.is_some())
            .count()
    }

    /// Starts from what an earlier attempt of this run recorded (before the first list).
    pub fn resume(&mut self, children: Vec<ResumedChild>) {
        for child in children {
            let Some(spec) = self.children.steps().get(child.step) else {
                continue;
            };
            if spec.laid_out {
                let index = spec.children.start + child.position;
                if index < spec.children.end {
                    self.apply_resumed(index, child);
                }
            } else {
                let place = (child.step, child.position);
                self.before.resume_later.insert(place, child);
            }
        }
    }

    /// A child of a `params_from` step was laid out: what an earlier attempt recorded of it.
    pub(super) fn resume_laid_out(&mut self, index: usize) {
        let step = self.children.get(index).step;
        let position = index - self.children.steps()[step].children.start;
        if let Some(child) = self.before.resume_later.remove(&(step, position)) {
            self.apply_resumed(index, child);
        }
    }

    fn apply_resumed(&mut self, index: usize, child: ResumedChild) {
        let state = self.book.get_mut(index);
        if state.output.is_unread() && child.output != Output::Unread {
            state.output = child.output.clone();
        }
        state.attempts = state.attempts.max(child.attempts);
        if !child.queued.is_zero() || child.preemptions > 0 {
            state.queue = Some(Box::new(QueueTime::resumed(
                child.queued,
                child.preemptions,
            )));
        }
        if child.result.is_some() {
            self.before.recorded.push((index, child));
        }
    }

    /// Children an earlier attempt recorded as done whose Jobs the list did not show (a TTL or
    /// a cleanup removed them): done as recorded, never created again.
    pub(super) fn restore_recorded(&mut self, out: &mut Reaction) {
        for (index, child) in std::mem::take(&mut self.before.recorded) {
            if *self.book.phase(index) != Phase::Waiting {
                continue;
            }
            let Some(result) = child.result else {
                continue;
            };
            let message = "as an earlier attempt of this run recorded; its Job is gone";
            let reason = match result {
                ChildResult::Succeeded => "",
                ChildResult::Failed => "Failed",
                ChildResult::Skipped => "Skipped",
                ChildResult::Cancelled => "Cancelled",
            };
            self.book.get_mut(index).earlier_run = child.earlier_run;
            self.finish(index, result, reason, message, None, out);
            if result == ChildResult::Succeeded {
                self.book.get_mut(index).set_finished(None);
            }
        }
    }

    /// Puts a child in the final state a record or its Job says it reached.
    pub fn restore(&mut self, index: usize, r: Restored) {
        let done = Phase::Done {
            result: r.result,
            reason: r.reason.map(Into::into),
            message: r.message.map(Into::into),
        };
        self.book.set_phase(index, done, self.now.instant);
        let state = self.book.get_mut(index);
        state.attempts = r.attempts;
        state.set_started(r.started);
        state.set_finished(r.finished);
        state.earlier_run = r.earlier_run;
        state.output = r.output;
    }

    /// A run read back after the fact ended with its parent's exit code, whatever its
    /// children say (a parent that died has no code of its children's making).
    pub fn ended_with(&mut self, code: i32) {
        self.before.ended_with = Some(code);
    }
}

#[cfg(test)]
impl EarlierChild {
    /// The child at `index` of a run laid out now, done by `run` with no output.
    pub(crate) fn of(r: &Run, index: usize, run: &str) -> EarlierChild {
        let step = r.children().get(index).step;
        EarlierChild {
            step,
            position: index - r.children().steps()[step].children.start,
            run: Arc::from(run),
            output: Output::Absent,
        }
    }
}
