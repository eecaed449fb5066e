//! What a child's pods say: attempts, running, pending for a reason worth telling, and stuck
//! in a waiting state that will not resolve itself (`JOBHERD_STUCK_TIMEOUT`).

use std::time::Instant;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::ResourceExt;

use super::{Change, ChildResult, Effect, Phase, Reaction, Run};
use crate::results::Output;

/// Waiting reasons after which a pod will not start by itself (image or config problems).
pub const STUCK_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// A pod waiting for a reason that will not resolve itself, since when.
#[derive(Debug, Clone)]
pub(super) struct Stuck {
    pub(super) reason: String,
    pub(super) message: String,
    pub(super) since: Instant,
}

/// A succeeded pod's result: the termination message of its main container (the first of
/// its spec, which jobherd builds), as the kubelet reports it once the container has ended.
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

impl Run {
    /// A pod of one of our children: its result, attempts, running state, stuck detection, logs.
    pub(super) fn observe_pod(&mut self, pod: &Pod, out: &mut Reaction) {
        let labels = pod.labels();
        let job_name = labels
            .get("batch.kubernetes.io/job-name")
            .or_else(|| labels.get("job-name"));
        let Some(index) = job_name.and_then(|n| self.children.index_of(n)) else {
            return;
        };
        // Read when the pod has succeeded, before or after the Job says so (two watches).
        let failed =
            matches!(self.states[index].phase.result(), Some(r) if r != ChildResult::Succeeded);
        if let Some(output) = pod_output(pod).filter(|_| !failed) {
            self.output_read(index, output);
        }
        // A queued child's pods are those its preemption deletes: not attempts, not stuck,
        // also when they were not seen before.
        let state = &mut self.states[index];
        let uid = pod.uid().unwrap_or_default();
        if state.phase == Phase::Queued {
            state.pods.entry(uid).or_default().preempted = true;
            return;
        }
        if matches!(state.phase, Phase::Done { .. } | Phase::Waiting)
            || state.pods.get(&uid).is_some_and(|p| p.preempted)
        {
            return;
        }
        // A stopping run deletes its children: their ends are not failures worth a log.
        if self.stop.is_none() {
            out.effects.extend(self.logs.pod_seen(index, pod));
        }
        let Some(status) = pod.status.as_ref() else {
            return;
        };
        let containers = status.container_statuses.as_deref().unwrap_or_default();
        if let Some(change) = self.count_attempts(index, pod, containers) {
            out.child(index, change);
        }
        let running = containers
            .iter()
            .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
        if running && self.states[index].phase == Phase::Created {
            self.set_phase(index, Phase::Running);
            out.child(index, Change::Running);
        }
        self.track_stuck(index, containers);
        let unschedulable = status.conditions.iter().flatten().find_map(|c| {
            (c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable"))
            .then(|| {
                (
                    "Unschedulable".to_string(),
                    c.message.clone().unwrap_or_default(),
                )
            })
        });
        let pending = self
            .stuck
            .get(&index)
            .map(|s| (s.reason.clone(), s.message.clone()))
            .or(unschedulable);
        let state = &mut self.states[index];
        match pending {
            Some((reason, message)) if state.notice.as_deref() != Some(reason.as_str()) => {
                state.notice = Some(reason.clone());
                out.child(index, Change::Pending { reason, message });
            }
            Some(_) => {}
            None => state.notice = None,
        }
    }

    pub(super) fn count_attempts(
        &mut self,
        index: usize,
        pod: &Pod,
        containers: &[ContainerStatus],
    ) -> Option<Change> {
        let started = containers.iter().any(|c| {
            c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
                || c.restart_count > 0
        });
        if !started {
            return None;
        }
        let restarts = containers
            .iter()
            .map(|c| c.restart_count.max(0) as u32)
            .max()
            .unwrap_or(0);
        let state = &mut self.states[index];
        let runs = &mut state
            .pods
            .entry(pod.uid().unwrap_or_default())
            .or_default()
            .runs;
        *runs = (*runs).max(restarts + 1);
        state.refresh_attempts()
    }

    /// Notes the first waiting reason that will not resolve itself; ErrImagePull alternating
    /// with ImagePullBackOff is one stuck period.
    pub(super) fn track_stuck(&mut self, index: usize, containers: &[ContainerStatus]) {
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
            self.stuck.remove(&index);
            return;
        };
        let since = match self.stuck.get(&index) {
            Some(s) if kind(&s.reason) == kind(&reason) => s.since,
            _ => self.now,
        };
        self.stuck.insert(
            index,
            Stuck {
                reason,
                message,
                since,
            },
        );
    }

    /// Children stuck for `JOBHERD_STUCK_TIMEOUT` fail, and their Jobs are deleted.
    pub(super) fn expire_stuck(&mut self, out: &mut Reaction) {
        let limit = self.stuck_timeout;
        let mut expired: Vec<usize> = self
            .stuck
            .iter()
            .filter(|(_, s)| self.now.duration_since(s.since) >= limit)
            .map(|(i, _)| *i)
            .collect();
        expired.sort_unstable();
        for index in expired {
            let Some(stuck) = self.stuck.remove(&index) else {
                continue;
            };
            if !self.states[index].phase.is_active() {
                continue;
            }
            let message = format!(
                "pod stuck in {} for {}s (JOBHERD_STUCK_TIMEOUT): {}",
                stuck.reason,
                limit.as_secs(),
                stuck.message
            );
            self.finish(
                index,
                ChildResult::Failed,
                &stuck.reason,
                &message,
                None,
                out,
            );
            out.effects.push(Effect::Delete(vec![index]));
        }
    }
}
