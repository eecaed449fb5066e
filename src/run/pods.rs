//! What a child's pods say: what it wrote, attempts, running, pending for a reason worth
//! telling, and stuck in a waiting state that will not resolve itself
//! (`JOBHERD_STUCK_TIMEOUT`, kept by [`StuckPods`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::ResourceExt;

use super::{Change, ChildResult, Effect, Phase, Reaction, Run};
use crate::outputs::Output;

/// Waiting reasons after which a pod will not start by itself (image or config problems).
pub const STUCK_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// A succeeded pod's output: the termination message of its main container (the first of its
/// spec, which jobherd builds), as the kubelet reports it once the container has ended.
/// `None` while the pod has not succeeded.
pub fn pod_output(pod: &Pod) -> Option<Output> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Succeeded") {
        return None;
    }
    let main = pod.spec.as_ref()?.containers.first()?.name.as_str();
    let message = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == main)
        .and_then(|c| c.state.as_ref()?.terminated.as_ref()?.message.as_deref());
    Some(Output::from_message(message))
}

/// The child a pod belongs to, by its Job's name.
fn job_name(pod: &Pod) -> Option<&String> {
    let labels = pod.labels();
    labels
        .get("batch.kubernetes.io/job-name")
        .or_else(|| labels.get("job-name"))
}

/// A pod waiting for a reason that will not resolve itself, since when.
#[derive(Debug, Clone)]
pub(super) struct Stuck {
    /// The pod that waits.
    pub(super) pod: String,
    pub(super) reason: String,
    pub(super) message: String,
    pub(super) since: Instant,
}

/// Children whose pods wait for a reason that will not resolve itself, and for how long they may.
#[derive(Debug)]
pub(super) struct StuckPods {
    limit: Duration,
    by_child: HashMap<usize, Stuck>,
}

impl StuckPods {
    pub(super) fn new(limit: Duration) -> Self {
        StuckPods {
            limit,
            by_child: HashMap::new(),
        }
    }

    pub(super) fn get(&self, index: usize) -> Option<&Stuck> {
        self.by_child.get(&index)
    }

    pub(super) fn clear(&mut self, index: usize) {
        self.by_child.remove(&index);
    }

    /// Notes the first waiting reason that will not resolve itself; ErrImagePull alternating
    /// with ImagePullBackOff is one stuck period.
    pub(super) fn track(
        &mut self,
        index: usize,
        pod: &str,
        containers: &[ContainerStatus],
        now: Instant,
    ) {
        let waiting = containers.iter().find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            let reason = w.reason.clone()?;
            STUCK_REASONS
                .contains(&reason.as_str())
                .then(|| (reason, w.message.clone().unwrap_or_default()))
        });
        fn kind(r: &str) -> &str {
            if r == "ImagePullBackOff" {
                "ErrImagePull"
            } else {
                r
            }
        }
        let Some((reason, message)) = waiting else {
            self.by_child.remove(&index);
            return;
        };
        let since = match self.by_child.get(&index) {
            Some(s) if kind(&s.reason) == kind(&reason) => s.since,
            _ => now,
        };
        let stuck = Stuck {
            pod: pod.to_string(),
            reason,
            message,
            since,
        };
        self.by_child.insert(index, stuck);
    }

    /// Children stuck for the limit, in index order, with their pod, reason and the message
    /// their failure gives.
    pub(super) fn expired(&mut self, now: Instant) -> Vec<(usize, String, String, String)> {
        let limit = self.limit;
        let mut expired: Vec<usize> = self
            .by_child
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.since) >= limit)
            .map(|(i, _)| *i)
            .collect();
        expired.sort_unstable();
        expired
            .into_iter()
            .filter_map(|index| {
                let stuck = self.by_child.remove(&index)?;
                let message = format!(
                    "pod stuck in {} for {}s (JOBHERD_STUCK_TIMEOUT): {}",
                    stuck.reason,
                    limit.as_secs(),
                    stuck.message
                );
                Some((index, stuck.pod, stuck.reason, message))
            })
            .collect()
    }
}

impl Run {
    /// A pod of one of our children: its output, attempts, running state, stuck detection, logs.
    pub(super) fn observe_pod(&mut self, pod: &Pod, out: &mut Reaction) {
        let Some(name) = job_name(pod) else {
            return;
        };
        let index = self.children.index_of(name).or_else(|| {
            let labels = pod.labels();
            let at = labels
                .get(crate::pack::COMPLETION_INDEX)
                .map(String::as_str);
            self.pack_member_of_pod(name, at)
        });
        let Some(index) = index else {
            // A child of a step not laid out yet: what it wrote is kept for then.
            if let Some(output) = pod_output(pod) {
                self.relist.keep_output(name, output);
            }
            return;
        };
        // Read when the pod has succeeded, before or after the Job says so (two watches).
        let failed =
            matches!(self.book.phase(index).result(), Some(r) if r != ChildResult::Succeeded);
        if let Some(output) = pod_output(pod).filter(|_| !failed) {
            self.output_read(index, output);
        }
        if self.preempted_pod(index, pod) {
            return;
        }
        // A stopping run deletes its children: their ends are not failures worth a log.
        if !self.stopping.is_stopping() {
            let done = self.book.phase(index).result().is_some();
            let now = self.now.instant;
            out.effects
                .extend(self.logs.pod_seen(index, pod, done, now));
        }
        let Some(status) = pod.status.as_ref() else {
            return;
        };
        let containers = status.container_statuses.as_deref().unwrap_or_default();
        // Also of a child whose Job (or pack) said it was done before its pod was seen.
        if let Some(change) = self.count_attempts(index, pod, containers) {
            out.child(index, change);
        }
        if matches!(self.book.phase(index), Phase::Done { .. } | Phase::Waiting) {
            return;
        }
        if status.reason.as_deref() == Some("DeadlineExceeded") {
            self.book.get_mut(index).job.deadline_exceeded = true;
        }
        let running = containers
            .iter()
            .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
        if running && *self.book.phase(index) == Phase::Created {
            self.book.set_phase(index, Phase::Running, self.now.instant);
            out.child(index, Change::Running);
        }
        self.stuck
            .track(index, &pod.name_any(), containers, self.now.instant);
        self.tell_pending(index, pod, out);
    }

    /// A queued child's pods are those its preemption deletes: not attempts, not stuck, also
    /// when they were not seen before; and a pod a preemption took is not followed any more.
    fn preempted_pod(&mut self, index: usize, pod: &Pod) -> bool {
        let queued = *self.book.phase(index) == Phase::Queued;
        let state = self.book.get_mut(index);
        let uid = pod.uid().unwrap_or_default();
        if queued {
            state.pods.entry(&uid).preempted = true;
            return true;
        }
        state.pods.get(&uid).is_some_and(|p| p.preempted)
    }

    /// A pod pending for a reason worth telling (stuck, unschedulable), once per reason.
    fn tell_pending(&mut self, index: usize, pod: &Pod, out: &mut Reaction) {
        let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_deref());
        let unschedulable = conditions.unwrap_or_default().iter().find_map(|c| {
            let yes = c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable");
            yes.then(|| {
                let message = c.message.clone().unwrap_or_default();
                ("Unschedulable".to_string(), message)
            })
        });
        let pending = self
            .stuck
            .get(index)
            .map(|s| (s.reason.clone(), s.message.clone()))
            .or(unschedulable);
        let state = self.book.get_mut(index);
        match pending {
            Some((reason, message)) if state.notice.as_deref() != Some(reason.as_str()) => {
                state.notice = Some(reason.as_str().into());
                out.child(index, Change::Pending { reason, message });
            }
            Some(_) => {}
            None => state.notice = None,
        }
    }

    fn count_attempts(
        &mut self,
        index: usize,
        pod: &Pod,
        containers: &[ContainerStatus],
    ) -> Option<Change> {
        // A pod counts from when it exists, as its Job's status counts it (`active`): an
        // unpacked child's Job says so, a packed child has only its pods to say it.
        let restarts = containers
            .iter()
            .map(|c| c.restart_count.max(0) as u32)
            .max()
            .unwrap_or(0);
        let state = self.book.get_mut(index);
        let runs = &mut state.pods.entry(&pod.uid().unwrap_or_default()).runs;
        *runs = (*runs).max(restarts + 1);
        state.refresh_attempts()
    }

    /// Children stuck for `JOBHERD_STUCK_TIMEOUT` fail, and their Jobs are deleted.
    pub(super) fn expire_stuck(&mut self, out: &mut Reaction) {
        for (index, pod, reason, message) in self.stuck.expired(self.now.instant) {
            if !self.book.phase(index).is_active() {
                continue;
            }
            self.finish(index, ChildResult::Failed, &reason, &message, None, out);
            // A packed child's index fails alone; its pack goes on.
            let effect = if self.is_packed(index) {
                Effect::FailPod { pod, reason }
            } else {
                Effect::Delete(vec![self.target(index)])
            };
            out.effects.push(effect);
        }
    }
}
