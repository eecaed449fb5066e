//! Per plan step: how far its dependencies and its own children are, which steps become ready
//! when a step succeeds, and which are skipped when one fails.

use std::collections::VecDeque;

use super::{Change, ChildResult, Phase, Reaction, Run};

/// Per plan step: how far its dependencies and its own children are.
#[derive(Debug, Clone, Default)]
pub(super) struct StepProgress {
    /// Dependencies that have not succeeded yet.
    pub(super) waiting_on: usize,
    /// Its children that succeeded.
    pub(super) succeeded: usize,
    /// A dependency will never succeed: its children are skipped.
    pub(super) blocked: bool,
}

impl Run {
    /// When the last child of a step succeeds, its dependants may be ready.
    pub(super) fn step_child_succeeded(&mut self, index: usize) {
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
    pub(super) fn skip_dependants(&mut self, index: usize, out: &mut Reaction) {
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
