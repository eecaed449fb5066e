//! What a child's Job says: created, adopted, running, done (read from its conditions), or
//! gone; and the watch's lists and deletes that tell which Jobs exist.

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::runtime::watcher;

use super::queue::is_suspended;
use super::{Change, ChildResult, Created, Effect, Phase, Reaction, Run, Stop};
use crate::child::RUN_LABEL;

impl Run {
    pub(super) fn on_job_event(&mut self, event: watcher::Event<Job>, out: &mut Reaction) {
        match event {
            watcher::Event::Init => self.relist = Some(vec![false; self.total()]),
            watcher::Event::InitApply(job) => {
                if let (Some(seen), Some(index)) = (
                    self.relist.as_mut(),
                    self.children.index_of(&job.name_any()),
                ) {
                    seen[index] = true;
                }
                self.observe_job(&job, out);
            }
            watcher::Event::InitDone => {
                // Children that vanished while the watch was down get no DELETE event.
                if let Some(seen) = self.relist.take()
                    && self.listed
                {
                    for (index, seen) in seen.into_iter().enumerate() {
                        if !seen {
                            self.gone(index, out);
                        }
                    }
                }
                self.listed = true;
            }
            watcher::Event::Apply(job) => self.observe_job(&job, out),
            watcher::Event::Delete(job) => {
                let Some(index) = self.children.index_of(&job.name_any()) else {
                    return;
                };
                let uid = &self.states[index].uid;
                // While stopping, jobherd deleted them itself.
                if (uid.is_none() || *uid == job.uid()) && self.stop.is_none() {
                    self.gone(index, out);
                }
            }
        }
    }

    pub(super) fn on_created(&mut self, index: usize, outcome: Created, out: &mut Reaction) {
        match outcome {
            Created::Created(job) => self.created(index, &job, Change::Created, out),
            Created::Adopted(job) => self.created(index, &job, Change::Adopted, out),
            Created::NotStarted => {
                if self.states[index].phase == Phase::Creating {
                    let why = self.stop.map_or("stopped", Stop::child_text);
                    self.finish(index, ChildResult::Skipped, "NotStarted", why, None, out);
                }
            }
            Created::Failed { reason, message } => {
                self.finish(index, ChildResult::Failed, &reason, &message, None, out)
            }
        }
    }

    /// The API accepted our create (or answered AlreadyExists with a Job of this run).
    pub(super) fn created(&mut self, index: usize, job: &Job, change: Change, out: &mut Reaction) {
        if self.states[index].phase == Phase::Creating {
            self.set_phase(index, Phase::Created);
            self.states[index].uid = job.uid();
            out.child(index, change);
        }
        self.observe_job(job, out);
        // Created while the run was stopping: it goes at once (but for a step that runs on
        // failure or always, after fail-fast).
        if self.stopping_for(index) && self.states[index].phase.is_active() {
            out.effects.push(Effect::Delete(vec![index]));
        }
    }

    /// A Job of this run as the API shows it now (watch event, list, or create response).
    pub(super) fn observe_job(&mut self, job: &Job, out: &mut Reaction) {
        let Some(index) = self.children.index_of(&job.name_any()) else {
            return;
        };
        if job.labels().get(RUN_LABEL) != Some(&self.run_id) {
            return;
        }
        let state = &self.states[index];
        if state.uid.is_some() && job.uid().is_some() && state.uid != job.uid() {
            // A different Job under the same name (deleted and recreated by someone else).
            return;
        }
        match state.phase {
            // Exists before we asked for it: created by an earlier attempt of this run.
            Phase::Waiting => {
                self.set_phase(index, Phase::Created);
                out.child(index, Change::Adopted);
            }
            Phase::Creating => {
                self.set_phase(index, Phase::Created);
                out.child(index, Change::Created);
            }
            _ => {}
        }
        let state = &mut self.states[index];
        if state.uid.is_none() {
            state.uid = job.uid();
        }
        // resourceVersions of one object grow (etcd revisions); one that does not parse as a
        // number is taken as new.
        if let Some(version) = job.resource_version().and_then(|v| v.parse::<u64>().ok()) {
            if version < state.version {
                return;
            }
            state.version = version;
        }
        if let Some(status) = job.status.as_ref() {
            state.started = state.started.or(status.start_time.as_ref().map(|t| t.0));
            // The pods of a suspended Job are being deleted by the queue, not run.
            let active = if is_suspended(job) {
                0
            } else {
                status.active.unwrap_or(0)
            };
            state.job_attempts =
                (status.failed.unwrap_or(0) + status.succeeded.unwrap_or(0) + active).max(0) as u32;
            if let Some(change) = state.refresh_attempts() {
                out.child(index, change);
            }
        }
        self.observe_suspension(index, job, out);
        self.read_conditions(index, job, out);
    }

    /// What a Job's conditions say: done (how), or running.
    pub(super) fn read_conditions(&mut self, index: usize, job: &Job, out: &mut Reaction) {
        let Some(status) = job.status.as_ref() else {
            return;
        };
        // The server's clock at both ends: `startTime` has whole seconds, and so do these.
        let finished = status
            .completion_time
            .as_ref()
            .map(|t| t.0)
            .or_else(|| decided_at(job));
        match job_outcome(job) {
            Some(Ok(())) => self.finish(index, ChildResult::Succeeded, "", "", finished, out),
            Some(Err((reason, message))) => {
                if reason == "BackoffLimitExceeded" {
                    // The pod that made the last attempt may be deleted before we saw it; by
                    // definition the Job used backoffLimit + 1 attempts.
                    let limit = job.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(6);
                    let state = &mut self.states[index];
                    state.attempts = state.attempts.max(limit.max(0) as u32 + 1);
                }
                self.finish(index, ChildResult::Failed, &reason, &message, finished, out);
            }
            None => {
                let running = status.active.unwrap_or(0) > 0 && status.ready.unwrap_or(0) > 0;
                if running && self.states[index].phase == Phase::Created {
                    self.set_phase(index, Phase::Running);
                    out.child(index, Change::Running);
                }
            }
        }
    }

    /// A child's Job disappeared before it finished (watch DELETE, or missing from a re-list).
    pub(super) fn gone(&mut self, index: usize, out: &mut Reaction) {
        if matches!(
            self.states[index].phase,
            Phase::Created | Phase::Queued | Phase::Running
        ) {
            let why = "the Job was deleted before it finished";
            self.finish(index, ChildResult::Failed, "Deleted", why, None, out);
        }
    }
}

/// When the condition that decided a Job's outcome was set (1.31+ sets `completionTime` only
/// with `Complete`, after `SuccessCriteriaMet`; failures have none).
fn decided_at(job: &Job) -> Option<Timestamp> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .filter(|c| {
            matches!(
                c.type_.as_str(),
                "Complete" | "SuccessCriteriaMet" | "Failed" | "FailureTarget"
            )
        })
        .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
        .min()
}

/// Reads a Job's conditions: `SuccessCriteriaMet`/`Complete` is success, `FailureTarget`/
/// `Failed` failure with its reason and message. `None` while it is still running.
/// (kube's `is_job_completed` never reports a failed Job, so conditions are read here.)
pub fn job_outcome(job: &Job) -> Option<Result<(), (String, String)>> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let mut failure = None;
    for c in conditions.iter().filter(|c| c.status == "True") {
        match c.type_.as_str() {
            "Complete" | "SuccessCriteriaMet" => return Some(Ok(())),
            // Prefer the final `Failed` over `FailureTarget` when both are there.
            "Failed" | "FailureTarget" if failure.is_none() || c.type_ == "Failed" => {
                failure = Some((
                    c.reason.clone().unwrap_or_else(|| "Failed".into()),
                    c.message.clone().unwrap_or_default(),
                ));
            }
            _ => {}
        }
    }
    failure.map(Err)
}
