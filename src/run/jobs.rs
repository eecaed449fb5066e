//! What a child's Job says: created, adopted, running, queued, done (read from its
//! conditions), or gone; and the watch's lists and deletes that tell which Jobs exist. Every Job
//! is read once into a [`JobSeen`], the little of it the run needs: small enough to keep for the
//! children of a `params_from` step that is not laid out yet.

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::{Change, ChildResult, Created, Effect, Phase, Reaction, Run};
use crate::child::{QUEUE_LABEL, RUN_LABEL, STEP_LABEL};
use crate::conditions::{Outcome, decided_at, outcome};
use crate::pack::{MEMBERS, PACK_LABEL, PACK_STEP};

/// What the run reads of a Job.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct JobSeen {
    pub(super) name: String,
    /// A hash of its uid ([`uid_key`]).
    pub(super) uid: Option<u64>,
    /// Its `resourceVersion` as a number (etcd revisions grow); `None` when it is no number.
    pub(super) version: Option<u64>,
    /// `spec.suspend`: a queue holds it (Kueue flips it before the `Suspended` condition).
    pub(super) suspended: bool,
    pub(super) queue: Option<String>,
    pub(super) started: Option<Timestamp>,
    pub(super) active: i32,
    pub(super) ready: i32,
    pub(super) failed: i32,
    pub(super) succeeded: i32,
    pub(super) outcome: Option<Outcome>,
    /// When its outcome was decided, by the server's clock.
    pub(super) finished: Option<Timestamp>,
    pub(super) backoff_limit: i32,
    /// A pack's: its per-index retries, `completedIndexes`, `failedIndexes`, parallelism, and
    /// (step, members) from its annotations.
    pub(super) backoff_limit_per_index: Option<i32>,
    pub(super) completed: Option<String>,
    pub(super) failed_indexes: Option<String>,
    pub(super) parallelism: usize,
    pub(super) pack: Option<PackSeen>,
}

/// What the run keeps of an object's uid: only ever compared, so a hash (8 bytes, where the
/// uid takes 24 and 48 more on the heap, for each of 100,000 children).
pub(super) fn uid_key(object: &impl Resource) -> Option<u64> {
    object.meta().uid.as_deref().map(crate::child::fnv1a)
}

impl JobSeen {
    /// The run's view of a Job, when it is one of this run's (its `jobherd.io/run` label).
    pub(super) fn of(job: &Job, run_id: &str) -> Option<JobSeen> {
        if job.labels().get(RUN_LABEL).map(String::as_str) != Some(run_id) {
            return None;
        }
        let status = job.status.clone().unwrap_or_default();
        let spec = job.spec.as_ref();
        let finished = status
            .completion_time
            .as_ref()
            .map(|t| t.0)
            .or_else(|| decided_at(job));
        Some(JobSeen {
            name: job.name_any(),
            uid: uid_key(job),
            version: job.resource_version().and_then(|v| v.parse().ok()),
            suspended: spec.and_then(|s| s.suspend) == Some(true),
            queue: job.labels().get(QUEUE_LABEL).cloned(),
            started: status.start_time.map(|t| t.0),
            active: status.active.unwrap_or(0),
            ready: status.ready.unwrap_or(0),
            failed: status.failed.unwrap_or(0),
            succeeded: status.succeeded.unwrap_or(0),
            outcome: outcome(job),
            finished,
            backoff_limit: spec.and_then(|s| s.backoff_limit).unwrap_or(6),
            backoff_limit_per_index: spec.and_then(|s| s.backoff_limit_per_index),
            completed: status.completed_indexes.clone(),
            failed_indexes: status.failed_indexes.clone(),
            parallelism: spec.and_then(|s| s.parallelism).unwrap_or(1).max(0) as usize,
            pack: pack_of(job),
        })
    }

    /// Whether it packs children (SPEC §10).
    pub(super) fn is_pack(&self) -> bool {
        self.pack.is_some()
    }

    /// Attempts as its status counts them; the pods of a suspended Job are being deleted by
    /// the queue, not run.
    fn attempts(&self) -> u32 {
        let active = if self.suspended { 0 } else { self.active };
        (self.failed + self.succeeded + active).max(0) as u32
    }
}

/// What a Job that packs children says of them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PackSeen {
    /// The plan step (empty without a plan).
    pub(super) step: String,
    /// Its children's positions in their step, as index ranges.
    pub(super) members: String,
    /// Its `jobherd.io/step` label, which a stop's deletecollection selects it by.
    pub(super) label: String,
}

/// A pack's step, members and label, from its labels and annotations.
fn pack_of(job: &Job) -> Option<PackSeen> {
    let labels = job.labels();
    if labels.get(PACK_LABEL).map(String::as_str) != Some("true") {
        return None;
    }
    let annotations = job.annotations();
    Some(PackSeen {
        step: annotations.get(PACK_STEP).cloned().unwrap_or_default(),
        members: annotations.get(MEMBERS).cloned().unwrap_or_default(),
        label: labels.get(STEP_LABEL).cloned().unwrap_or_default(),
    })
}

impl Run {
    pub(super) fn on_job_event(&mut self, event: watcher::Event<Job>, out: &mut Reaction) {
        match event {
            watcher::Event::Init => self.relist.begin(),
            watcher::Event::InitApply(job) | watcher::Event::Apply(job) => {
                if let Some(seen) = JobSeen::of(&job, &self.run_id) {
                    self.job_seen(seen, out);
                }
            }
            watcher::Event::InitDone => {
                // Children that vanished while the watch was down get no DELETE event.
                let first = !self.relist.listed();
                for index in self.relist.end(self.book.len()) {
                    self.gone(index, out);
                }
                if first {
                    self.first_listed(out);
                }
            }
            watcher::Event::Delete(job) => {
                let name = job.name_any();
                if let Some(pack) = self.packs.by_name(&name) {
                    if !self.stopping.is_stopping() {
                        let first = self.packs.get(pack).members[0];
                        self.pack_gone(first, out);
                    }
                    return;
                }
                let Some(index) = self.children.index_of(&name) else {
                    self.relist.forget(&name);
                    return;
                };
                let uid = &self.book.get(index).job.uid;
                // While stopping, jobherd deleted them itself.
                if (uid.is_none() || *uid == uid_key(&job)) && !self.stopping.is_stopping() {
                    self.gone(index, out);
                }
            }
        }
    }

    /// A Job of this run: of a child, or kept until its child is laid out.
    fn job_seen(&mut self, job: JobSeen, out: &mut Reaction) {
        if job.is_pack() {
            return self.pack_seen(job, out);
        }
        match self.children.index_of(&job.name) {
            Some(index) => {
                self.relist.saw(index);
                self.observe_job(index, &job, out);
            }
            None => self.relist.keep_job(job),
        }
    }

    pub(super) fn on_created(&mut self, index: usize, outcome: Created, out: &mut Reaction) {
        if let Some(pack) = self.packs.of_child(index).map(|p| p.name.clone()) {
            let pack = self.packs.by_name(&pack).unwrap_or_default();
            return self.pack_created(pack, outcome, out);
        }
        let seen = |job: &Job| JobSeen::of(job, &self.run_id);
        match outcome {
            Created::Created(job) => {
                if let Some(job) = seen(&job) {
                    self.created(index, &job, Change::Created, out)
                }
            }
            Created::Adopted(job) => {
                if let Some(job) = seen(&job) {
                    self.created(index, &job, Change::Adopted, out)
                }
            }
            Created::NotStarted => self.not_started(index, out),
            Created::Failed { reason, message } => {
                self.finish(index, ChildResult::Failed, &reason, &message, None, out)
            }
        }
    }

    /// A create that was not sent: the child waits again when the run only paused (a SIGTERM
    /// being looked into) or moves, and is skipped when the run stops.
    pub(super) fn not_started(&mut self, index: usize, out: &mut Reaction) {
        if *self.book.phase(index) != Phase::Creating {
            return;
        }
        match self.stopping.stop() {
            Some(stop) if !self.stopping.is_moving() => {
                let why = stop.child_text();
                self.finish(index, ChildResult::Skipped, "NotStarted", why, None, out);
            }
            _ => {
                self.book.set_phase(index, Phase::Waiting, self.now.instant);
                self.progress.requeue(index);
            }
        }
    }

    /// The API accepted our create (or answered AlreadyExists with a Job of this run).
    fn created(&mut self, index: usize, job: &JobSeen, change: Change, out: &mut Reaction) {
        if *self.book.phase(index) == Phase::Creating {
            self.book.set_phase(index, Phase::Created, self.now.instant);
            self.book.get_mut(index).job.uid = job.uid;
            out.child(index, change);
        }
        self.observe_job(index, job, out);
        self.delete_if_stopping(index, out);
    }

    /// A child whose Job exists while the run stops goes at once (but, after fail fast, one of
    /// a step that runs on failure or always).
    pub(super) fn delete_if_stopping(&mut self, index: usize, out: &mut Reaction) {
        if self.relist.listed() && self.stopping_for(index) && self.book.phase(index).is_out() {
            out.effects.push(Effect::Delete(vec![self.target(index)]));
        }
    }

    /// A Job of this run as the API shows it now (watch event, list, or create response).
    pub(super) fn observe_job(&mut self, index: usize, job: &JobSeen, out: &mut Reaction) {
        let state = self.book.get(index);
        if state.job.uid.is_some() && job.uid.is_some() && state.job.uid != job.uid {
            // A different Job under the same name (deleted and recreated by someone else).
            return;
        }
        let now = self.now.instant;
        match state.phase {
            // Exists before we asked for it: created by an earlier attempt of this run.
            Phase::Waiting => {
                self.book.set_phase(index, Phase::Created, now);
                out.child(index, Change::Adopted);
                self.delete_if_stopping(index, out);
            }
            Phase::Creating => {
                self.book.set_phase(index, Phase::Created, now);
                out.child(index, Change::Created);
            }
            _ => {}
        }
        let state = self.book.get_mut(index);
        if state.job.uid.is_none() {
            state.job.uid = job.uid;
        }
        if let Some(version) = job.version {
            if version < state.job.version {
                return;
            }
            state.job.version = version;
        }
        state.set_started(state.started().or(job.started));
        state.job.attempts = job.attempts();
        if let Some(change) = state.refresh_attempts() {
            out.child(index, change);
        }
        self.observe_suspension(index, job, out);
        self.read_conditions(index, job, out);
    }

    /// What a Job's conditions say: done (how), or running.
    fn read_conditions(&mut self, index: usize, job: &JobSeen, out: &mut Reaction) {
        match &job.outcome {
            Some(Outcome::Succeeded) => {
                self.finish(index, ChildResult::Succeeded, "", "", job.finished, out)
            }
            Some(Outcome::Failed { reason, message }) => {
                if reason == "BackoffLimitExceeded" {
                    // The pod that made the last attempt may be deleted before we saw it; by
                    // definition the Job used backoffLimit + 1 attempts.
                    let state = self.book.get_mut(index);
                    state.attempts = state.attempts.max(job.backoff_limit.max(0) as u32 + 1);
                }
                self.finish(
                    index,
                    ChildResult::Failed,
                    reason,
                    message,
                    job.finished,
                    out,
                );
            }
            None => {
                let running = job.active > 0 && job.ready > 0 && !job.suspended;
                if running && *self.book.phase(index) == Phase::Created {
                    self.book.set_phase(index, Phase::Running, self.now.instant);
                    out.child(index, Change::Running);
                }
            }
        }
    }

    /// A pack's Job disappeared: its children not done are gone with it.
    fn pack_gone(&mut self, first: usize, out: &mut Reaction) {
        let members = self
            .packs
            .of_child(first)
            .map(|p| p.members.clone())
            .unwrap_or_default();
        for m in members {
            self.gone(m, out);
        }
    }

    /// A child's Job disappeared before it finished (watch DELETE, or missing from a re-list).
    pub(super) fn gone(&mut self, index: usize, out: &mut Reaction) {
        if self.book.phase(index).is_out() {
            let why = "the Job was deleted before it finished";
            self.finish(index, ChildResult::Failed, "Deleted", why, None, out);
        }
    }
}
