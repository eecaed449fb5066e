//! Packed children (SPEC §10): the children of a packed step are handed out in packs, one
//! Indexed Job each, up to `JOBHERD_PACK_SIZE` children (fewer when their own values would not
//! fit in the pack's ConfigMap). A packed child is still a child: its state, attempts, output
//! and logs are its own, read from its index in the pack's status (`completedIndexes`,
//! `failedIndexes`) and from its pods (by their completion index). A pack holds its share of
//! `JOBHERD_PARALLELISM` (its Job's `parallelism`) until every child of it is done.

use std::collections::HashMap;

use super::jobs::JobSeen;
use super::{Change, ChildResult, Created, Effect, Phase, Reaction, Run, Stop, Target};
use crate::child::PackHow;
use crate::conditions::Outcome;
use crate::pack::{MAX_VALUES, parse_ranges};

/// In `Packs::of_child`: the child is in no pack.
const NO_PACK: u32 = u32::MAX;

/// One pack as the run knows it.
#[derive(Debug, Clone)]
pub(super) struct PackState {
    pub(super) name: String,
    pub(super) label: String,
    /// Its children, completion index `i` being the `i`-th.
    pub(super) members: Vec<usize>,
    /// The slots of `JOBHERD_PARALLELISM` it holds (its Job's `parallelism`).
    slots: usize,
    /// Its children not done yet.
    open: usize,
    /// Its Job's uid ([`super::jobs::uid_key`]).
    uid: Option<u64>,
    version: u64,
}

#[derive(Debug, Default)]
pub(super) struct Packs {
    /// `JOBHERD_PACK_SIZE`.
    size: usize,
    /// The jobherd image an entrypoint is copied from (`JOBHERD_PACK_IMAGE`, or its own).
    image: Option<String>,
    packs: Vec<PackState>,
    by_name: HashMap<String, usize>,
    /// Each child's pack (`NO_PACK` for none), by child index: 4 bytes a child.
    of_child: Vec<u32>,
    /// Slots held by packs with children not done.
    slots: usize,
    /// Packed children that are active (handed out, created, queued, running).
    active: usize,
}

impl Packs {
    pub(super) fn new(size: usize, image: Option<String>) -> Packs {
        Packs {
            size: size.max(1),
            image,
            ..Packs::default()
        }
    }

    pub(super) fn of_child(&self, index: usize) -> Option<&PackState> {
        self.pack_id(index).map(|p| &self.packs[p])
    }

    fn pack_id(&self, index: usize) -> Option<usize> {
        let id = *self.of_child.get(index)?;
        (id != NO_PACK).then_some(id as usize)
    }

    pub(super) fn by_name(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub(super) fn get(&self, pack: usize) -> &PackState {
        &self.packs[pack]
    }

    /// What packs hold against `JOBHERD_PARALLELISM`, in place of their active children.
    pub(super) fn held(&self) -> (usize, usize) {
        (self.slots, self.active)
    }

    fn add(&mut self, name: String, label: String, members: Vec<usize>, slots: usize) -> usize {
        let id = self.packs.len();
        for &m in &members {
            if self.of_child.len() <= m {
                self.of_child.resize(m + 1, NO_PACK);
            }
            self.of_child[m] = id as u32;
        }
        self.by_name.insert(name.clone(), id);
        self.slots += slots;
        self.packs.push(PackState {
            name,
            label,
            open: members.len(),
            members,
            slots,
            uid: None,
            version: 0,
        });
        id
    }

    /// A child of a pack left the active phases (`was_active`) or ended.
    fn member_done(&mut self, index: usize, was_active: bool) {
        let Some(id) = self.pack_id(index) else {
            return;
        };
        if was_active {
            self.active = self.active.saturating_sub(1);
        }
        let pack = &mut self.packs[id];
        pack.open = pack.open.saturating_sub(1);
        if pack.open == 0 {
            self.slots = self.slots.saturating_sub(pack.slots);
            pack.slots = 0;
        }
    }
}

impl Run {
    /// Whether a child belongs to a packed step.
    pub(super) fn is_packed(&self, index: usize) -> bool {
        self.children.step_of(index).packed
    }

    /// Hands out a pack starting with `first`: the ready children of its step after it, up to
    /// the pack size and what the pack's ConfigMap holds. Returns the slots it takes, or `None`
    /// when the step cannot be packed (it then runs its children as Jobs of their own).
    pub(super) fn hand_out_pack(
        &mut self,
        first: usize,
        free: usize,
        out: &mut Reaction,
    ) -> Option<usize> {
        let members = self.pack_members(first);
        let slots = free.min(members.len()).max(1);
        let how = PackHow {
            image: self.packs.image.as_deref(),
            parallelism: slots,
            fail_fast: self.rules.fail_fast,
        };
        let job = match self.children.pack_job(&members, &how) {
            Ok(job) => job,
            Err(why) => {
                let step = self.children.get(first).step;
                let which = match &self.children.steps()[step].name {
                    Some(name) => format!("step {name} is"),
                    None => "the fan-out is".to_string(),
                };
                out.transitions.push(super::Transition::Note(format!(
                    "jobherd: {which} not packed: {why}; its children run as Jobs of their own"
                )));
                self.children.unpack(step);
                self.progress.requeue_many(&members);
                return None;
            }
        };
        for &m in &members {
            self.book.set_phase(m, Phase::Creating, self.now.instant);
        }
        self.packs.active += members.len();
        self.packs
            .add(job.name.clone(), job.label.clone(), members, slots);
        out.effects.push(Effect::CreatePack {
            index: first,
            job: Box::new(job),
        });
        Some(slots)
    }

    /// The ready children that go into a pack with `first`, taken from the ready queue.
    fn pack_members(&mut self, first: usize) -> Vec<usize> {
        let step = self.children.get(first).step;
        let mut members = Vec::new();
        let mut values = 0;
        while members.len() < self.packs.size {
            let Some(next) = self.progress.peek_ready() else {
                break;
            };
            if self.children.get(next).step != step {
                break;
            }
            let wanted = *self.book.phase(next) == Phase::Waiting && !self.stopping_for(next);
            let size: usize = self
                .children
                .own_env(next)
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum();
            if wanted && !members.is_empty() && values + size > MAX_VALUES {
                break;
            }
            self.progress.next_ready();
            if wanted {
                values += size;
                members.push(next);
            }
        }
        members
    }

    /// A pack's create came back (reported for its first child).
    pub(super) fn pack_created(&mut self, pack: usize, outcome: Created, out: &mut Reaction) {
        let members = self.packs.get(pack).members.clone();
        match outcome {
            Created::Created(job) | Created::Adopted(job) => {
                if let Some(job) = JobSeen::of(&job, &self.run_id) {
                    self.observe_pack(pack, &job, out);
                }
                for m in members {
                    self.delete_if_stopping(m, out);
                }
            }
            Created::NotStarted => {
                for m in members {
                    self.not_started(m, out);
                }
            }
            Created::Failed { reason, message } => {
                for m in members {
                    self.finish(m, ChildResult::Failed, &reason, &message, None, out);
                }
            }
        }
    }

    /// A Job that packs children of this run: one this run handed out, or one an earlier
    /// attempt did (adopted once its step is laid out).
    pub(super) fn pack_seen(&mut self, job: JobSeen, out: &mut Reaction) {
        let pack = match self.packs.by_name(&job.name) {
            Some(pack) => pack,
            None => match self.adopt_pack(&job) {
                Some(pack) => pack,
                None => return self.relist.keep_job(job),
            },
        };
        self.observe_pack(pack, &job, out);
    }

    /// A pack of an earlier attempt: its children by its members annotation, when its step
    /// is laid out.
    fn adopt_pack(&mut self, job: &JobSeen) -> Option<usize> {
        let seen = job.pack.as_ref()?;
        let step = self.children.steps().iter().position(|s| {
            s.packed && s.name.as_deref().unwrap_or_default() == seen.step.as_str()
        })?;
        let spec = &self.children.steps()[step];
        if !spec.laid_out {
            return None;
        }
        let range = spec.children.clone();
        let members: Vec<usize> = parse_ranges(&seen.members)?
            .into_iter()
            .map(|p| range.start + p)
            .filter(|i| range.contains(i))
            .collect();
        self.packs.active += members.len();
        let (name, label) = (job.name.clone(), seen.label.clone());
        Some(self.packs.add(name, label, members, job.parallelism.max(1)))
    }

    /// What a pack's Job says of each of its children.
    fn observe_pack(&mut self, pack: usize, job: &JobSeen, out: &mut Reaction) {
        let state = &mut self.packs.packs[pack];
        if state.uid.is_some() && job.uid.is_some() && state.uid != job.uid {
            return;
        }
        state.uid = state.uid.or(job.uid);
        if let Some(version) = job.version {
            if version < state.version {
                return;
            }
            state.version = version;
        }
        let members = state.members.clone();
        for &m in &members {
            self.relist.saw(m);
            self.member_seen(m, job, out);
        }
        let completed = job
            .completed
            .as_deref()
            .and_then(parse_ranges)
            .unwrap_or_default();
        let failed = job
            .failed_indexes
            .as_deref()
            .and_then(parse_ranges)
            .unwrap_or_default();
        // (A child already done, such as a stuck one this run failed, ended as it was.)
        let ending = |i: &usize| {
            members
                .get(*i)
                .copied()
                .filter(|&m| self.book.phase(m).result().is_none())
        };
        let completed: Vec<usize> = completed.iter().filter_map(ending).collect();
        let failed: Vec<usize> = failed.iter().filter_map(ending).collect();
        for m in completed {
            self.index_ran(m, 1);
            self.finish(m, ChildResult::Succeeded, "", "", None, out);
        }
        for m in failed {
            let (reason, message, ran) = self.index_failure(m, job);
            self.index_ran(m, ran);
            self.finish(m, ChildResult::Failed, &reason, &message, None, out);
        }
        self.pack_ended(&members, job, out);
    }

    /// One child of a pack, as its Job shows it: created, queued, running.
    fn member_seen(&mut self, index: usize, job: &JobSeen, out: &mut Reaction) {
        let now = self.now.instant;
        match self.book.phase(index) {
            Phase::Waiting => {
                self.book.set_phase(index, Phase::Created, now);
                self.packs.active += 1;
                out.child(index, Change::Adopted);
            }
            Phase::Creating => {
                self.book.set_phase(index, Phase::Created, now);
                out.child(index, Change::Created);
            }
            _ => {}
        }
        let state = self.book.get_mut(index);
        state.set_started(state.started().or(job.started));
        self.observe_suspension(index, job, out);
    }

    /// Why a child's index failed, as its own Job would have said, and how often it ran at
    /// least: its pod's deadline (`JOBHERD_CHILD_TIMEOUT`), or its retries used up.
    fn index_failure(&self, index: usize, job: &JobSeen) -> (String, String, u32) {
        if self.book.get(index).job.deadline_exceeded {
            let message = "its pod ran past its activeDeadlineSeconds (JOBHERD_CHILD_TIMEOUT)";
            return ("DeadlineExceeded".into(), message.into(), 1);
        }
        let limit = job.backoff_limit_per_index.unwrap_or(job.backoff_limit);
        let ran = limit.max(0) as u32 + 1;
        let message = format!(
            "its index in pack {} failed {ran} times (backoffLimitPerIndex {limit})",
            job.name
        );
        ("BackoffLimitExceeded".into(), message, ran)
    }

    /// A packed child's index ended after at least `times` attempts. Its pods count them
    /// exactly when they were seen; a pack's status has no count per index, so this is what a
    /// parent knows that started after they were gone (an unpacked child's Job counts them).
    fn index_ran(&mut self, index: usize, times: u32) {
        let state = self.book.get_mut(index);
        state.attempts = state.attempts.max(times);
    }

    /// A pack that ended: its children not done by their indexes end with it.
    fn pack_ended(&mut self, members: &[usize], job: &JobSeen, out: &mut Reaction) {
        match &job.outcome {
            None => {}
            Some(Outcome::Succeeded) => {
                for &m in members {
                    self.finish(m, ChildResult::Succeeded, "", "", job.finished, out);
                }
            }
            Some(Outcome::Failed { reason, .. }) if reason == "MaxFailedIndexesExceeded" => {
                let why = Stop::FailFast.child_text();
                for &m in members {
                    self.finish(
                        m,
                        ChildResult::Cancelled,
                        "Cancelled",
                        why,
                        job.finished,
                        out,
                    );
                }
            }
            Some(Outcome::Failed { reason, message }) => {
                for &m in members {
                    self.finish(m, ChildResult::Failed, reason, message, job.finished, out);
                }
            }
        }
    }

    /// A child of a pack left the active phases: its pack may release its slots.
    pub(super) fn pack_member_done(&mut self, index: usize, was_active: bool) {
        self.packs.member_done(index, was_active);
    }

    /// What names a packed child's pack for a delete.
    pub(super) fn pack_target(&self, index: usize) -> Option<Target> {
        let pack = self.packs.of_child(index)?;
        Some(Target {
            index: pack.members[0],
            name: pack.name.clone(),
            label: pack.label.clone(),
        })
    }

    /// The label selector of a child's pods: its Job's, or its index in its pack.
    pub(super) fn pods_of(&self, index: usize) -> String {
        match self.packs.of_child(index) {
            Some(pack) => {
                let i = pack.members.iter().position(|m| *m == index).unwrap_or(0);
                format!(
                    "job-name={},{}={i}",
                    pack.name,
                    crate::pack::COMPLETION_INDEX
                )
            }
            None => format!("job-name={}", self.children.name(index)),
        }
    }

    /// The child a pod of a pack belongs to, by its completion index.
    pub(super) fn pack_member_of_pod(&self, job: &str, index: Option<&str>) -> Option<usize> {
        let pack = self.packs.get(self.packs.by_name(job)?);
        let i: usize = index?.parse().ok()?;
        pack.members.get(i).copied()
    }
}
