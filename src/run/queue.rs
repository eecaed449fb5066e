//! Queues: a child whose Job is suspended (Kueue holds every Job of a queue so until it is
//! admitted) waits without pods, which is not being stuck; one suspended again once admitted
//! was preempted, and the pods its preemption deleted are not failed attempts.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use super::{Change, Phase, Reaction, Run};
use crate::child::QUEUE_LABEL;

impl Run {
    /// Queued when its Job is suspended, preempted when that happens again once admitted.
    pub(super) fn observe_suspension(&mut self, index: usize, job: &Job, out: &mut Reaction) {
        let state = &mut self.states[index];
        match (is_suspended(job), &state.phase) {
            (true, Phase::Created | Phase::Running) => {
                if state.admitted {
                    self.preempted(index, out);
                }
                self.stuck.remove(&index);
                let state = &mut self.states[index];
                state.queued_since = Some(suspended_since(job).unwrap_or_else(Timestamp::now));
                self.set_phase(index, Phase::Queued);
                let queue = job.labels().get(QUEUE_LABEL).cloned();
                out.child(index, Change::Queued { queue });
            }
            (false, Phase::Queued) => {
                state.admitted = true;
                if let Some(since) = state.queued_since.take() {
                    let waited = Timestamp::now().duration_since(since);
                    state.queued += Duration::try_from(waited).unwrap_or_default();
                }
                self.set_phase(index, Phase::Created);
            }
            (false, Phase::Created | Phase::Running) => state.admitted = true,
            _ => {}
        }
    }

    /// The run its pods were in when the preemption came ended no attempt: each pod's last
    /// run is taken back, and the pods are not followed any more.
    fn preempted(&mut self, index: usize, out: &mut Reaction) {
        let state = &mut self.states[index];
        state.preemptions += 1;
        for pod in state.pods.values_mut().filter(|p| !p.preempted) {
            pod.preempted = true;
            pod.runs = pod.runs.saturating_sub(1);
        }
        state.attempts = state.attempts_from_pods().max(state.job_attempts);
        out.child(index, Change::Preempted);
    }

    /// How long a child has waited in queues, counting the wait it is in now.
    pub fn time_queued(&self, index: usize) -> Duration {
        let state = &self.states[index];
        let now = state
            .queued_since
            .map(|since| Timestamp::now().duration_since(since))
            .and_then(|d| Duration::try_from(d).ok())
            .unwrap_or_default();
        state.queued + now
    }
}

/// The queue holds the Job: `spec.suspend`, which it flips before the Job controller's
/// `Suspended` condition follows.
pub(super) fn is_suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}

/// When the Job controller says the Job was suspended, if its condition already says so (an
/// adopted child may have waited long before this run saw it).
fn suspended_since(job: &Job) -> Option<Timestamp> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| c.type_ == "Suspended" && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}
