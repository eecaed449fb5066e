//! What the Job watch's lists tell: whether the first list is in (only then is it known which
//! children exist already), which children a re-list showed (the others vanished while the
//! watch was down), and what was seen of children not laid out yet: the Jobs and outputs of a
//! `params_from` step's children that a restarted parent finds before it knows that step's
//! children. They are kept here and applied when the step is laid out, instead of each child
//! being found again by a create answered AlreadyExists.

use std::collections::HashMap;

use super::jobs::JobSeen;
use crate::outputs::Output;

#[derive(Debug, Default)]
pub(super) struct Relist {
    /// The first list is done.
    listed: bool,
    /// During a list: the children it showed so far (grows as children are laid out).
    seen: Option<Vec<bool>>,
    /// What was seen of children not laid out yet, by Job name.
    kept: HashMap<String, Kept>,
}

/// What was seen of a child not laid out yet.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Kept {
    pub(super) job: Option<JobSeen>,
    pub(super) output: Option<Output>,
}

impl Relist {
    pub(super) fn listed(&self) -> bool {
        self.listed
    }

    /// A list begins. Jobs kept from before are forgotten: the list shows those that still
    /// exist (outputs come from the pod watch and stay).
    pub(super) fn begin(&mut self) {
        self.seen = Some(Vec::new());
        self.kept.retain(|_, k| {
            k.job = None;
            k.output.is_some()
        });
    }

    /// A list showed this child's Job.
    pub(super) fn saw(&mut self, index: usize) {
        if let Some(seen) = self.seen.as_mut() {
            if seen.len() <= index {
                seen.resize(index + 1, false);
            }
            seen[index] = true;
        }
    }

    /// The list is over: the children of `known` it did not show, when it was a re-list (the
    /// first list only tells what exists).
    pub(super) fn end(&mut self, known: usize) -> Vec<usize> {
        let seen = self.seen.take().unwrap_or_default();
        let relist = std::mem::replace(&mut self.listed, true);
        if !relist {
            return Vec::new();
        }
        (0..known)
            .filter(|i| !seen.get(*i).copied().unwrap_or(false))
            .collect()
    }

    pub(super) fn keep_job(&mut self, job: JobSeen) {
        let name = job.name.clone();
        self.kept.entry(name).or_default().job = Some(job);
    }

    pub(super) fn keep_output(&mut self, job: &str, output: Output) {
        self.kept.entry(job.to_string()).or_default().output = Some(output);
    }

    /// A Job not laid out yet was deleted.
    pub(super) fn forget(&mut self, job: &str) {
        if let Some(k) = self.kept.get_mut(job) {
            k.job = None;
        }
    }

    /// The packs kept for a step not laid out until now (by its plan name).
    pub(super) fn take_packs(&mut self, step: &str) -> Vec<JobSeen> {
        let names: Vec<String> = self
            .kept
            .iter()
            .filter(|(_, k)| {
                k.job
                    .as_ref()
                    .and_then(|j| j.pack.as_ref())
                    .is_some_and(|p| p.step == step)
            })
            .map(|(n, _)| n.clone())
            .collect();
        names
            .into_iter()
            .filter_map(|n| self.kept.remove(&n)?.job)
            .collect()
    }

    /// What was seen of a child now laid out.
    pub(super) fn take(&mut self, job: &str) -> Option<Kept> {
        self.kept.remove(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_list_finds_nothing_missing_and_a_relist_names_what_vanished() {
        let mut relist = Relist::default();
        relist.begin();
        relist.saw(0);
        assert_eq!(relist.end(3), Vec::<usize>::new());
        assert!(relist.listed());
        relist.begin();
        relist.saw(2);
        // A child laid out during the list, past what the list began with.
        relist.saw(7);
        assert_eq!(relist.end(8), vec![0, 1, 3, 4, 5, 6]);
    }

    #[test]
    fn what_was_kept_is_taken_once_and_a_list_forgets_jobs_not_outputs() {
        let mut relist = Relist::default();
        relist.keep_output("r-work-0", Output::Absent);
        relist.begin();
        assert_eq!(
            relist.take("r-work-0"),
            Some(Kept {
                job: None,
                output: Some(Output::Absent)
            })
        );
        assert_eq!(relist.take("r-work-0"), None);
    }
}
