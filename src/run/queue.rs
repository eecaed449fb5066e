//! Queues: a child whose Job is suspended (Kueue holds every Job of a queue so until it is
//! admitted) waits without pods, which is not being stuck; one suspended again once admitted
//! was preempted, and the pods its preemption deleted are not failed attempts. Queue time is
//! counted by this run's clock from when it saw the wait begin, plus what an earlier attempt
//! of the run counted (its record).

use std::time::{Duration, Instant};

use super::jobs::JobSeen;
use super::{Change, Phase, Reaction, Run};

/// A child's time in queues.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueTime {
    /// Since when it waits, if it does.
    since: Option<Instant>,
    /// Time spent waiting so far: before it first ran, and after each preemption.
    waited: Duration,
    /// How often it was suspended again once admitted.
    pub preemptions: u32,
}

impl QueueTime {
    /// What an earlier attempt of the run counted.
    pub(super) fn resumed(waited: Duration, preemptions: u32) -> QueueTime {
        QueueTime {
            waited,
            preemptions,
            ..QueueTime::default()
        }
    }

    /// How long it has waited in queues, counting the wait it is in now.
    pub fn waited(&self, now: Instant) -> Duration {
        let current = self
            .since
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        self.waited + current
    }

    fn begin(&mut self, now: Instant) {
        self.since.get_or_insert(now);
    }

    fn end(&mut self, now: Instant) {
        if let Some(since) = self.since.take() {
            self.waited += now.saturating_duration_since(since);
        }
    }
}

impl Run {
    /// Queued when its Job is suspended, preempted when that happens again once admitted.
    pub(super) fn observe_suspension(&mut self, index: usize, job: &JobSeen, out: &mut Reaction) {
        let now = self.now.instant;
        let state = self.book.get_mut(index);
        match (job.suspended, &state.phase) {
            (true, Phase::Created | Phase::Running) => {
                if state.admitted {
                    self.preempted(index, out);
                }
                self.stuck.clear(index);
                self.book.get_mut(index).queue_mut().begin(now);
                self.book.set_phase(index, Phase::Queued, now);
                let queue = job.queue.clone();
                out.child(index, Change::Queued { queue });
            }
            (false, Phase::Queued) => {
                state.admitted = true;
                state.queue_mut().end(now);
                self.book.set_phase(index, Phase::Created, now);
            }
            (false, Phase::Created | Phase::Running) => state.admitted = true,
            _ => {}
        }
    }

    /// The run its pods were in when the preemption came ended no attempt: each pod's last
    /// run is taken back, and the pods are not followed any more.
    fn preempted(&mut self, index: usize, out: &mut Reaction) {
        let state = self.book.get_mut(index);
        state.queue_mut().preemptions += 1;
        for pod in state.pods.all_mut().filter(|p| !p.preempted) {
            pod.preempted = true;
            pod.runs = pod.runs.saturating_sub(1);
        }
        state.recount_attempts();
        out.child(index, Change::Preempted);
    }

    /// How long a child has waited in queues, counting the wait it is in now.
    pub fn time_queued(&self, index: usize) -> Duration {
        let queue = self.book.get(index).queue.as_deref();
        queue.map_or(Duration::ZERO, |q| q.waited(self.now.instant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_add_up_and_the_current_one_counts() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut q = QueueTime::resumed(s(30), 1);
        q.begin(t0);
        assert_eq!(q.waited(t0 + s(5)), s(35));
        q.begin(t0 + s(1));
        q.end(t0 + s(10));
        assert_eq!(
            q.waited(t0 + s(60)),
            s(40),
            "a wait counts from its first sight"
        );
    }
}
