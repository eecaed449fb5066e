//! Taking over what an earlier run did (`JOBHERD_RETRY`): its children that succeeded are done
//! before anything starts, with their results, and the steps after them start as if they had
//! just succeeded. Those of a `params_from` step are taken over once it is laid out, when its
//! source was taken over too: the same result gives the same children. (Which children are
//! taken over is `retry.rs`'s to say.)

use std::sync::Arc;

use super::{ChildResult, Phase, Reaction, Run, Transition};
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
            let later = self.inherit_later.entry(done.step).or_default();
            later.push((done.position, done.run, done.output));
        }
        out.transitions
    }

    /// A `params_from` step was laid out: what an earlier run did of it is taken over when its
    /// source's children all were, which gave it the same items.
    pub(super) fn inherit_laid_out(&mut self, step: usize, source: usize, out: &mut Reaction) {
        let Some(earlier) = self.inherit_later.remove(&step) else {
            return;
        };
        let source_range = self.children.steps()[source].children.clone();
        if !source_range
            .clone()
            .all(|i| self.states[i].earlier_run.is_some())
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
        if self.states[index].phase != Phase::Waiting {
            return;
        }
        let state = &mut self.states[index];
        state.earlier_run = Some(run);
        // A result the earlier run could not keep is not known (see `record.rs`).
        state.output = match output {
            Output::Unread => Output::Absent,
            known => known,
        };
        self.finish(index, ChildResult::Succeeded, "", "", None, out);
        self.states[index].finished = None;
    }

    /// How many children an earlier run did (`JOBHERD_RETRY`).
    pub fn inherited(&self) -> usize {
        self.states
            .iter()
            .filter(|s| s.earlier_run.is_some())
            .count()
    }
}

#[cfg(test)]
impl EarlierChild {
    /// The child at `index` of a run laid out now, done by `run` with no result.
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
