//! The Job controller: creates a Job's pods (one per index for an Indexed Job; failed ones
//! replaced after the controller's back-off, per index with `backoffLimitPerIndex`), counts
//! the pods that ended, applies `podFailurePolicy`, deadlines, `backoffLimit`,
//! `backoffLimitPerIndex` and `maxFailedIndexes`, and writes status and conditions as the
//! configured version does:
//!
//! - 1.31+: `SuccessCriteriaMet`/`FailureTarget` in one update, `Complete`/`Failed` in a later
//!   one, once nothing is uncounted and no pod is terminating;
//! - 1.26+: pods carry the `batch.kubernetes.io/job-tracking` finalizer; a pod that ended is
//!   first listed in `uncountedTerminatedPods` (a succeeded pod of an Indexed Job only in
//!   `completedIndexes`), then its finalizer is removed, then it moves to
//!   `succeeded`/`failed` (three updates);
//! - before: one status update with the counts and `Complete`/`Failed`.
//!
//! A suspended Job (1.22+) has no pods: those it had are released from job tracking, then
//! deleted, and never counted; resuming it resets `startTime`, so `activeDeadlineSeconds`
//! counts from there.
//!
//! With `backoffLimitPerIndex` (1.29+) a failed pod whose index will run again keeps its
//! finalizer and is not counted until its replacement exists, as the real controller delays
//! it to carry the failure count over (`indexed.rs`). Every pass tells the request model
//! (`cost.rs`) what it did.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::cost;
use super::indexed::{self, PerIndex, index_of};
use super::job_pods::{
    self, Rule, deleting, is_active, is_ready, is_terminating, owned_pods, phase,
};
use super::lock;
use super::meta::{self, Kind};
use super::sim::{Sim, Timer, UNMANAGED};
use super::store::{self, Key, Propagation, Store};
use super::versions::Version;

/// The Job controller's pod-failure back-off: 10 s, doubling, at most 6 minutes (real time).
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// What the controller remembers about a Job between passes.
#[derive(Default)]
pub struct JobTrack {
    succeeded: u32,
    failed: u32,
    /// Pods already counted (or ignored by a podFailurePolicy rule).
    counted: HashSet<String>,
    /// Indexed Jobs: the indexes that succeeded.
    completed: BTreeSet<u32>,
    /// backoffLimitPerIndex: the indexes that failed, when failed pods were seen.
    per_index: PerIndex,
    failures_since_success: u32,
    last_failure: Option<Instant>,
    /// A pass is scheduled for when the back-off ends.
    backoff_until: Option<Instant>,
    /// Creating pods waits for a back-off: the pass that creates them is a sync of its own.
    deferred: bool,
    /// The final condition waited for terminating pods.
    waited: bool,
    /// When the pass that checks `activeDeadlineSeconds` is scheduled.
    deadline_pass: Option<Instant>,
    ttl_armed: bool,
    /// `metadata.generation` as last seen: a new one is a change of the Job's spec.
    generation: Option<i64>,
}

impl JobTrack {
    fn from_status(status: &Value) -> Self {
        JobTrack {
            succeeded: status["succeeded"].as_u64().unwrap_or(0) as u32,
            failed: status["failed"].as_u64().unwrap_or(0) as u32,
            ..Default::default()
        }
    }
}

/// A condition to write: type, reason, message.
type Cond = (&'static str, String, String);

/// A pod to create: its index, and with backoffLimitPerIndex its failure counts.
struct NewPod {
    index: Option<u32>,
    counts: Option<(u32, u32)>,
}

/// One pass over one Job: what the controller found, decided and did.
struct Pass {
    v: Version,
    key: Key,
    job: Value,
    spec: Value,
    pods: Vec<Value>,
    status: Value,
    now: String,
    clock: Instant,
    scale: f64,
    indexed: bool,
    /// `backoffLimitPerIndex` (Indexed Jobs, 1.29+).
    per_index: Option<u32>,
    success_interim: Option<(String, String)>,
    failure_interim: Option<(String, String)>,
    replace_terminating: bool,
    /// The counts before this pass.
    before: (u32, u32),
    new_s: Vec<String>,
    new_f: Vec<String>,
    policy_failure: Option<String>,
    to_delete: Vec<Value>,
    count_deleted: bool,
    /// Released from job tracking before they are deleted (suspension).
    release_first: bool,
    interim: Option<Cond>,
    fin: Option<Cond>,
    /// A final condition that waits for an earlier interim one.
    pending_fin: Option<Cond>,
    create: Vec<NewPod>,
    timers: Vec<Duration>,
    events: Vec<(&'static str, String, String)>,
    report: cost::Pass,
}

impl Sim {
    pub(super) fn reconcile_job(&mut self, key: &Key) {
        let shared = self.shared.clone();
        let mut st = lock(&shared.store);
        let Some(job) = st.get(Kind::Job, key).cloned() else {
            return;
        };
        if meta::annotation(&job, UNMANAGED).is_some() {
            return;
        }
        let uid = meta::uid_of(&job).to_string();
        let pods = owned_pods(&st, &uid);
        let status = if job["status"].is_object() {
            job["status"].clone()
        } else {
            json!({})
        };
        let track = self
            .jobs
            .entry(uid.clone())
            .or_insert_with(|| JobTrack::from_status(&status));
        if !job["metadata"]["deletionTimestamp"].is_null() || finished(&status) {
            // Being deleted or done: nothing is counted any more; let the pods go.
            let released = job_pods::strip_tracking(&mut st, &pods);
            let ttl = job["spec"]["ttlSecondsAfterFinished"].as_u64();
            let arm = finished(&status)
                && ttl.is_some()
                && !std::mem::replace(&mut track.ttl_armed, true);
            let pass = cost::Pass {
                released,
                ..Default::default()
            };
            self.record(&uid, &pass);
            drop(st);
            if let (true, Some(ttl)) = (arm, ttl) {
                let timer = Timer::Ttl {
                    key: key.clone(),
                    uid,
                };
                self.after(Duration::from_secs(ttl), timer);
            }
            return;
        }
        let generation = job["metadata"]["generation"].as_i64();
        let immediate = track.generation != generation;
        track.generation = generation;
        let mut pass = Pass::new(&shared.config, key, job, pods, status);
        pass.report.immediate = immediate;
        let created = pass.run(&mut st, track);
        let failed = track.failed;
        self.record(&uid, &pass.report);
        drop(st);
        for (uid, attempt) in created {
            self.attempt_base.insert(uid, attempt.unwrap_or(failed));
        }
        for d in pass.timers {
            self.after(d, Timer::Reconcile(key.clone()));
        }
    }

    /// Called with the store still locked, so that nobody sees what the pass wrote before the
    /// model has it (the lock order is always store, then cost).
    fn record(&self, uid: &str, pass: &cost::Pass) {
        lock(&self.shared.cost).record(uid, pass);
    }

    /// A pod of a Job vanished: one that was never counted (deleted before the controller saw
    /// it end, which the job-tracking finalizer prevents from 1.26 on) counts as failed.
    pub(super) fn pod_vanished(&mut self, job_uid: &str, pod_uid: &str, pod: &Value) {
        let st = lock(&self.shared.store);
        let Some((Kind::Job, job)) = st.by_uid(job_uid) else {
            return;
        };
        let status = &job["status"];
        if finished(status) || condition_true(status, "SuccessCriteriaMet").is_some() {
            return;
        }
        let Some(track) = self.jobs.get_mut(job_uid) else {
            return;
        };
        if track.counted.insert(pod_uid.to_string()) {
            if phase(pod) == "Succeeded" {
                track.succeeded += 1;
            } else {
                track.failed += 1;
                track.failures_since_success += 1;
                track.last_failure = Some(Instant::now());
            }
        }
    }
}

impl Pass {
    fn new(config: &super::Config, key: &Key, job: Value, pods: Vec<Value>, status: Value) -> Self {
        let v = config.version;
        let spec = job["spec"].clone();
        let indexed = v.indexed_and_suspend() && spec["completionMode"] == "Indexed";
        let per_index = spec["backoffLimitPerIndex"]
            .as_u64()
            .filter(|_| indexed && v.backoff_limit_per_index())
            .map(|l| l as u32);
        Pass {
            v,
            key: key.clone(),
            success_interim: condition_true(&status, "SuccessCriteriaMet"),
            failure_interim: condition_true(&status, "FailureTarget"),
            replace_terminating: replaces_terminating(&spec, v),
            job,
            spec,
            pods,
            status,
            now: meta::now_time(),
            clock: Instant::now(),
            scale: config.time_scale,
            indexed,
            per_index,
            before: (0, 0),
            new_s: Vec::new(),
            new_f: Vec::new(),
            policy_failure: None,
            to_delete: Vec::new(),
            count_deleted: false,
            release_first: false,
            interim: None,
            fin: None,
            pending_fin: None,
            create: Vec::new(),
            timers: Vec::new(),
            events: Vec::new(),
            report: cost::Pass::default(),
        }
    }

    /// The whole pass; returns the pods it created, with the attempt each is of its index
    /// (backoffLimitPerIndex; else the Job's failed pods so far stand for it).
    fn run(&mut self, st: &mut Store, track: &mut JobTrack) -> Vec<(String, Option<u32>)> {
        self.before = (track.succeeded, track.failed);
        self.count_ended(track);
        self.decide(track);
        self.count_deleted(track);
        self.write_tracking(st, track);
        let created = self.act(st);
        self.release(st, track);
        self.finish(st, track);
        created
    }

    fn active(&self) -> Vec<Value> {
        self.pods.iter().filter(|p| is_active(p)).cloned().collect()
    }

    fn finishing(&self) -> bool {
        self.failure_interim.is_some() || self.success_interim.is_some()
    }

    /// Whether a pod that did not succeed failed, and what its failure means. A pod being
    /// deleted counts as failed at once when the Job replaces terminating pods (and when the
    /// Job is failing anyway).
    fn failure_of(&self, p: &Value) -> Option<Rule> {
        match phase(p) {
            "Failed" => Some(job_pods::pod_failure_policy(&self.spec, p)),
            "Succeeded" => None,
            _ if deleting(p)
                && self.success_interim.is_none()
                && (self.replace_terminating || self.failure_interim.is_some()) =>
            {
                Some(Rule::Count)
            }
            _ => None,
        }
    }

    /// Pods that ended since the last pass, counted (or left for later, see [`Pass::delayed`]).
    fn count_ended(&mut self, track: &mut JobTrack) {
        if let Some(limit) = self.per_index {
            self.fail_indexes(track, limit);
        }
        let (mut new_s, mut new_f, mut ignored) = (Vec::new(), Vec::new(), Vec::new());
        for p in &self.pods {
            let puid = meta::uid_of(p).to_string();
            if track.counted.contains(&puid) {
                continue;
            }
            if phase(p) == "Succeeded" {
                new_s.push(puid);
                continue;
            }
            let Some(rule) = self.failure_of(p) else {
                continue;
            };
            // A FailJob rule fails the Job at once (the real controller checks every failed
            // pod for one), so its pod is not held for its index.
            if !matches!(rule, Rule::FailJob(_)) && self.delayed(p, track) {
                continue;
            }
            match rule {
                Rule::Ignore => ignored.push(puid),
                Rule::FailJob(message) => {
                    self.policy_failure.get_or_insert(message);
                    new_f.push(puid);
                }
                Rule::Count | Rule::FailIndex => new_f.push(puid),
            }
        }
        for puid in ignored {
            // Not a failure of the Job, but a failed pod all the same: the controller's
            // back-off record counts it before the next pod.
            track.counted.insert(puid);
            track.failures_since_success += 1;
            track.last_failure = Some(self.clock);
        }
        (self.new_s, self.new_f) = (new_s, new_f);
        self.apply_counts(track);
    }

    fn apply_counts(&mut self, track: &mut JobTrack) {
        for puid in &self.new_s {
            track.counted.insert(puid.clone());
            track.succeeded += 1;
            track.failures_since_success = 0;
            if let Some(i) = self
                .pods
                .iter()
                .find(|p| meta::uid_of(p) == puid)
                .and_then(index_of)
            {
                track.completed.insert(i);
            }
        }
        for puid in &self.new_f {
            track.counted.insert(puid.clone());
            track.failed += 1;
            track.failures_since_success += 1;
            track.last_failure = Some(self.clock);
        }
    }

    /// backoffLimitPerIndex: the indexes whose pod failed for the last time, by a `FailIndex`
    /// rule or with as many failures before it as the limit allows.
    fn fail_indexes(&self, track: &mut JobTrack, limit: u32) {
        for p in &self.pods {
            let puid = meta::uid_of(p);
            if track.counted.contains(puid) {
                continue;
            }
            let (Some(rule), Some(i)) = (self.failure_of(p), index_of(p)) else {
                continue;
            };
            track.per_index.saw_failed(puid, self.clock);
            let last = matches!(rule, Rule::FailIndex)
                || (rule.counts() && indexed::failure_counts(p).0 >= limit);
            if last && !track.completed.contains(&i) {
                track.per_index.failed.insert(i);
            }
        }
    }

    /// A failed pod of an index that will run again stays uncounted, with its finalizer, until
    /// the index has a new pod (or is over, or the Job is).
    fn delayed(&self, p: &Value, track: &JobTrack) -> bool {
        let (Some(_), Some(i)) = (self.per_index, index_of(p)) else {
            return false;
        };
        !self.finishing()
            && !track.completed.contains(&i)
            && !track.per_index.failed.contains(&i)
            && !self
                .pods
                .iter()
                .any(|q| is_active(q) && index_of(q) == Some(i))
    }

    fn decide(&mut self, track: &mut JobTrack) {
        let active = self.active();
        if let Some((reason, message)) = self.failure_interim.clone() {
            self.to_delete = active;
            self.count_deleted = true;
            self.pending_fin = Some(("Failed", reason, message));
        } else if let Some((reason, message)) = self.success_interim.clone() {
            self.to_delete = active;
            self.pending_fin = Some(("Complete", reason, message));
        } else if self.v.indexed_and_suspend() && self.spec["suspend"].as_bool() == Some(true) {
            self.suspend(track, active);
        } else {
            self.resume();
            self.run_job(track, active);
        }
    }

    /// Pods deleted because the Job is suspended are no failures: the controller lets them go
    /// from job tracking before it deletes them, so they are never counted. `startTime` stays
    /// (resuming resets it).
    fn suspend(&mut self, track: &mut JobTrack, active: Vec<Value>) {
        for p in &active {
            track.counted.insert(meta::uid_of(p).to_string());
        }
        self.to_delete = active;
        self.release_first = true;
        if condition_true(&self.status, "Suspended").is_none() {
            let now = self.now.clone();
            let status = &mut self.status;
            set_condition(
                status,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
                &now,
            );
            self.events
                .push(("Normal", "Suspended".into(), "Job suspended".into()));
        }
    }

    fn resume(&mut self) {
        let now = self.now.clone();
        if condition_true(&self.status, "Suspended").is_some() {
            set_condition(
                &mut self.status,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
                &now,
            );
            self.events
                .push(("Normal", "Resumed".into(), "Job resumed".into()));
            // activeDeadlineSeconds counts the time a Job is continuously active.
            self.status["startTime"] = json!(now);
        }
        if self.status["startTime"].is_null() {
            self.status["startTime"] = json!(now);
        }
    }

    fn run_job(&mut self, track: &mut JobTrack, active: Vec<Value>) {
        let failure = self.failure(track, &active);
        let completions = self.spec["completions"].as_u64().map(|c| c as u32);
        let succeeded = self.succeeded(track);
        let complete = match completions {
            Some(c) => succeeded >= c,
            None => succeeded >= 1 && active.is_empty(),
        };
        if let Some((reason, message)) = failure {
            self.to_delete = active;
            self.count_deleted = true;
            if self.v.interim_conditions()
                || (reason == "PodFailurePolicy" && self.v.pod_failure_policy())
            {
                self.interim = Some(("FailureTarget", reason.to_string(), message));
            } else {
                self.fin = Some(("Failed", reason.to_string(), message));
            }
        } else if complete {
            self.to_delete = active;
            self.interim = if self.v.interim_conditions() {
                Some((
                    "SuccessCriteriaMet",
                    "CompletionsReached".into(),
                    "Reached expected number of succeeded pods".into(),
                ))
            } else {
                self.fin = Some(("Complete", String::new(), String::new()));
                None
            };
        } else {
            self.plan_creates(track, &active, completions);
        }
    }

    /// An Indexed Job counts distinct indexes, not pods.
    fn succeeded(&self, track: &JobTrack) -> u32 {
        if self.indexed {
            track.completed.len() as u32
        } else {
            track.succeeded
        }
    }

    /// Why the Job fails now, in the order the real controller checks.
    fn failure(
        &mut self,
        track: &mut JobTrack,
        active: &[Value],
    ) -> Option<(&'static str, String)> {
        let limit = self.spec["backoffLimit"].as_u64().unwrap_or(6) as u32;
        let deadline = self.deadline_exceeded(track);
        if let Some(message) = self.policy_failure.clone() {
            return Some(("PodFailurePolicy", message));
        }
        if track.failed > limit || past_backoff_limit_on_failure(&self.spec, active, limit) {
            let message = "Job has reached the specified backoff limit";
            return Some(("BackoffLimitExceeded", message.into()));
        }
        if deadline {
            let message = "Job was active longer than specified deadline";
            return Some(("DeadlineExceeded", message.into()));
        }
        self.per_index?;
        let failed = track.per_index.failed.len() as u64;
        if self.spec["maxFailedIndexes"]
            .as_u64()
            .is_some_and(|max| failed > max)
        {
            let message = "Job has exceeded the specified maximal number of failed indexes";
            return Some(("MaxFailedIndexesExceeded", message.into()));
        }
        let completions = self.spec["completions"].as_u64().unwrap_or(0);
        let done = failed + track.completed.len() as u64;
        (failed > 0 && done >= completions)
            .then(|| ("FailedIndexes", "Job has failed indexes".to_string()))
    }

    /// Whether `activeDeadlineSeconds` has passed; if not, a pass when it will.
    fn deadline_exceeded(&mut self, track: &mut JobTrack) -> bool {
        let (Some(secs), Some(start)) = (
            self.spec["activeDeadlineSeconds"].as_u64(),
            parse_time(&self.status["startTime"]),
        ) else {
            return false;
        };
        let left =
            start.as_millisecond() + secs as i64 * 1000 - jiff::Timestamp::now().as_millisecond();
        if left <= 0 {
            return true;
        }
        // A pass when the deadline comes, unless one is due by then: the deadline moves with
        // a changed activeDeadlineSeconds or startTime, and a pass that came a little early
        // schedules the next.
        let due = self.clock + Duration::from_millis(left as u64);
        if track
            .deadline_pass
            .is_none_or(|t| t <= self.clock || t > due)
        {
            self.timers.push(due - self.clock);
            track.deadline_pass = Some(due);
        }
        false
    }

    /// The pods to create now: up to `parallelism` active (completions left), after the
    /// back-off that follows failures (per index with backoffLimitPerIndex).
    fn plan_creates(&mut self, track: &mut JobTrack, active: &[Value], completions: Option<u32>) {
        let parallelism = self.spec["parallelism"].as_u64().unwrap_or(1) as u32;
        let succeeded = self.succeeded(track);
        let want = match completions {
            Some(c) => parallelism.min(c.saturating_sub(succeeded)),
            None if succeeded > 0 => 0,
            None => parallelism,
        } as usize;
        let terminating = self.pods.iter().filter(|p| is_terminating(p)).count();
        let have = active.len()
            + if self.replace_terminating {
                0
            } else {
                terminating
            };
        if have >= want {
            return;
        }
        let n = want - have;
        if self.per_index.is_some() {
            let free = self.free_indexes(track, n);
            return self.create_per_index(track, free);
        }
        let until = track
            .last_failure
            .filter(|_| track.failures_since_success > 0)
            .map(|last| last + backoff(track.failures_since_success).mul_f64(self.scale));
        if let Some(until) = until.filter(|u| self.clock < *u) {
            if track.backoff_until != Some(until) {
                track.backoff_until = Some(until);
                self.timers.push(until - self.clock);
            }
            track.deferred = true;
            return;
        }
        self.report.after_backoff = std::mem::take(&mut track.deferred);
        let indexes: Vec<Option<u32>> = if self.indexed {
            self.free_indexes(track, n).into_iter().map(Some).collect()
        } else {
            vec![None; n]
        };
        self.create.extend(indexes.into_iter().map(|index| NewPod {
            index,
            counts: None,
        }));
    }

    /// Indexed: the lowest indexes that neither succeeded nor failed nor run (nor, when only
    /// failed pods are replaced, are still terminating).
    fn free_indexes(&self, track: &JobTrack, n: usize) -> Vec<u32> {
        let completions = self.spec["completions"].as_u64().unwrap_or(0) as u32;
        let busy: BTreeSet<u32> = self
            .pods
            .iter()
            .filter(|p| is_active(p) || (!self.replace_terminating && is_terminating(p)))
            .filter_map(index_of)
            .collect();
        (0..completions)
            .filter(|i| {
                !track.completed.contains(i)
                    && !track.per_index.failed.contains(i)
                    && !busy.contains(i)
            })
            .take(n)
            .collect()
    }

    /// backoffLimitPerIndex: each index waits for its own back-off; those ready get a pod
    /// now, carrying the failures of the pod it replaces.
    fn create_per_index(&mut self, track: &mut JobTrack, free: Vec<u32>) {
        let (base, max) = (
            BACKOFF_BASE.mul_f64(self.scale),
            BACKOFF_MAX.mul_f64(self.scale),
        );
        let mut waits = Vec::new();
        for i in free {
            let last = self.last_failed(track, i);
            let wait = track.per_index.wait(last, self.clock, base, max);
            if !wait.is_zero() {
                waits.push(wait);
                continue;
            }
            let counted = last.is_some_and(|p| self.failure_of(p).is_none_or(|r| r.counts()));
            let counts = indexed::next_counts(last, counted);
            self.create.push(NewPod {
                index: Some(i),
                counts: Some(counts),
            });
        }
        if !self.create.is_empty() {
            self.report.after_backoff = std::mem::take(&mut track.deferred);
        }
        if let Some(soonest) = waits.into_iter().min() {
            self.timers.push(soonest);
            track.deferred = true;
        }
    }

    /// The index's failed pod the controller still holds (with the most failures before it).
    fn last_failed(&self, track: &JobTrack, i: u32) -> Option<&Value> {
        self.pods
            .iter()
            .filter(|p| index_of(p) == Some(i) && !track.counted.contains(meta::uid_of(p)))
            .filter(|p| self.failure_of(p).is_some())
            .max_by_key(|p| {
                let (c, ig) = indexed::failure_counts(p);
                c + ig
            })
    }

    /// A failing Job counts the pods it deletes as failed, and lets go of the failed pods it
    /// held for their index.
    fn count_deleted(&mut self, track: &mut JobTrack) {
        if !self.count_deleted {
            return;
        }
        let held = self
            .pods
            .iter()
            .filter(|p| !is_active(p) && self.failure_of(p).is_some_and(|r| r.counts()));
        let newly: Vec<String> = self
            .to_delete
            .iter()
            .chain(held)
            .map(|p| meta::uid_of(p).to_string())
            .filter(|u| track.counted.insert(u.clone()))
            .collect();
        track.failed += newly.len() as u32;
        self.new_f.extend(newly);
    }

    /// Write 1 (job tracking): what ended is listed as uncounted, with the interim condition,
    /// before any pod is deleted or loses its finalizer. A succeeded pod of an Indexed Job is
    /// in `completedIndexes` instead.
    fn write_tracking(&mut self, st: &mut Store, track: &JobTrack) {
        let now = self.now.clone();
        if let Some((ty, reason, message)) = &self.interim {
            add_condition(&mut self.status, ty, reason, message, &now);
        }
        let any_new = !self.new_s.is_empty() || !self.new_f.is_empty();
        self.report.counted = (self.new_s.len() + self.new_f.len()) as u32;
        let succeeded_uncounted = if self.indexed {
            &[][..]
        } else {
            &self.new_s[..]
        };
        self.report.uncounted = !self.new_f.is_empty() || !succeeded_uncounted.is_empty();
        if !self.v.tracking_finalizers() || !(any_new || self.interim.is_some()) {
            return;
        }
        let mut uncounted = self.status["uncountedTerminatedPods"].clone();
        for (list, uids) in [
            ("succeeded", succeeded_uncounted),
            ("failed", &self.new_f[..]),
        ] {
            let mut all: Vec<Value> = uncounted[list].as_array().cloned().unwrap_or_default();
            all.extend(uids.iter().map(|u| json!(u)));
            if !all.is_empty() {
                uncounted[list] = json!(all);
            }
        }
        self.status["uncountedTerminatedPods"] = uncounted;
        let succeeded = if self.indexed {
            self.succeeded(track)
        } else {
            self.before.0
        };
        render_counts(
            &mut self.status,
            self.v,
            (succeeded, self.before.1),
            &self.pods,
        );
        self.render_indexes(track);
        put_status(st, &self.key, self.status.clone());
        self.report.changed = true;
    }

    /// Deletes and creates pods; returns those created (see [`Pass::run`]).
    fn act(&mut self, st: &mut Store) -> Vec<(String, Option<u32>)> {
        if self.release_first {
            self.report.released += job_pods::strip_tracking(st, &self.to_delete);
        }
        for p in &self.to_delete {
            let key = store::key(meta::namespace_of(p), meta::name_of(p));
            st.delete(Kind::Pod, &key, Propagation::Background, None);
        }
        let deleted = self.to_delete.len() as u32;
        let mut created = Vec::new();
        for new in &self.create {
            let mut pod = job_pods::pod_from_template(st, &self.job, self.v, new.index);
            if let Some(counts) = new.counts {
                job_pods::add_failure_counts(&mut pod, counts);
            }
            if let Ok(made) = st.create(Kind::Pod, pod) {
                let attempt = new.counts.map(|(counted, ignored)| counted + ignored);
                created.push((meta::uid_of(&made).to_string(), attempt));
            }
        }
        self.report.deleted = deleted;
        self.report.created = created.len() as u32;
        // SuccessfulDelete and SuccessfulCreate, one Event per pod.
        self.report.events += deleted + self.report.created;
        created
    }

    /// Pods counted (all of them once the Job is finishing) lose the job-tracking finalizer.
    fn release(&mut self, st: &mut Store, track: &JobTrack) {
        let pods = owned_pods(st, meta::uid_of(&self.job));
        let finishing = self.interim.is_some() || self.pending_fin.is_some() || self.fin.is_some();
        let releasable: Vec<Value> = pods
            .into_iter()
            .filter(|p| finishing || track.counted.contains(meta::uid_of(p)))
            .collect();
        self.report.released += job_pods::strip_tracking(st, &releasable);
    }

    /// The last write: counts, indexes and a final condition, and the Events of the pass.
    fn finish(&mut self, st: &mut Store, track: &mut JobTrack) {
        let pods = owned_pods(st, meta::uid_of(&self.job));
        let terminating = pods.iter().filter(|p| is_terminating(p)).count();
        let any_new = !self.new_s.is_empty() || !self.new_f.is_empty();
        if let Some(pending) = self.pending_fin.take() {
            if !any_new && (!self.v.interim_conditions() || terminating == 0) {
                self.fin = Some(pending);
                self.report.waited = track.waited;
            } else if terminating > 0 {
                track.waited = true;
            }
        }
        if self.v.tracking_finalizers() {
            self.status["uncountedTerminatedPods"] = json!({});
        }
        if let Some((ty, reason, message)) = self.fin.clone() {
            add_condition(&mut self.status, ty, &reason, &message, &self.now.clone());
            if ty == "Complete" {
                self.status["completionTime"] = json!(self.now);
                self.events
                    .push(("Normal", "Completed".into(), "Job completed".into()));
            } else {
                self.events.push(("Warning", reason, message));
            }
            self.report.finished = true;
        }
        let counts = (self.succeeded(track), track.failed);
        let counts = if self.indexed {
            counts
        } else {
            (track.succeeded, track.failed)
        };
        render_counts(&mut self.status, self.v, counts, &pods);
        self.render_indexes(track);
        let stored = st.get(Kind::Job, &self.key).map(|j| &j["status"]);
        if stored != Some(&self.status) {
            put_status(st, &self.key, self.status.clone());
            self.report.changed = true;
        }
        for (ty, reason, message) in &self.events {
            job_event(st, &self.job, ty, reason, message);
        }
        self.report.events += self.events.len() as u32;
    }

    /// `completedIndexes` (once there is one) and, with backoffLimitPerIndex, `failedIndexes`
    /// (`""` while none failed).
    fn render_indexes(&mut self, track: &JobTrack) {
        if !self.indexed {
            return;
        }
        let completed = indexed::ranges(&track.completed);
        if !completed.is_empty() {
            self.status["completedIndexes"] = json!(completed);
        }
        if self.per_index.is_some() {
            self.status["failedIndexes"] = json!(indexed::ranges(&track.per_index.failed));
        }
    }
}

/// `10 s * 2^(n-1)`, at most 6 minutes, for the n-th failure since the last success.
fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    (BACKOFF_BASE * 2u32.pow(exp)).min(BACKOFF_MAX)
}

/// Whether terminating pods are replaced (and counted as failed) before they are terminal:
/// `podReplacementPolicy: TerminatingOrFailed`, and every Job before the field existed.
fn replaces_terminating(spec: &Value, v: Version) -> bool {
    !v.job_terminating() || spec["podReplacementPolicy"].as_str() != Some("Failed")
}

/// `restartPolicy: OnFailure`: the restarts of the Job's active pods reach `backoffLimit`.
fn past_backoff_limit_on_failure(spec: &Value, active: &[Value], limit: u32) -> bool {
    if spec["template"]["spec"]["restartPolicy"] != "OnFailure" {
        return false;
    }
    let restarts: u32 = active
        .iter()
        .flat_map(|p| {
            ["initContainerStatuses", "containerStatuses"]
                .into_iter()
                .flat_map(move |list| p["status"][list].as_array().into_iter().flatten())
        })
        .map(|c| c["restartCount"].as_u64().unwrap_or(0) as u32)
        .sum();
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// The Job's counters as the configured version writes them.
fn render_counts(status: &mut Value, v: Version, (succeeded, failed): (u32, u32), pods: &[Value]) {
    let active: Vec<&Value> = pods.iter().filter(|p| is_active(p)).collect();
    let ready = active.iter().filter(|p| is_ready(p)).count();
    let terminating = pods.iter().filter(|p| is_terminating(p)).count();
    status["active"] = json!(active.len());
    status["succeeded"] = json!(succeeded);
    status["failed"] = json!(failed);
    if v.job_ready() {
        status["ready"] = json!(ready);
    }
    if v.job_terminating() {
        status["terminating"] = json!(terminating);
    }
    if let Some(s) = status.as_object_mut() {
        for zero in ["active", "succeeded", "failed"] {
            if s.get(zero) == Some(&json!(0)) {
                s.remove(zero);
            }
        }
        if !v.tracking_finalizers() {
            s.remove("uncountedTerminatedPods");
        }
    }
}

fn put_status(st: &mut Store, key: &Key, status: Value) {
    if let Some(mut job) = st.get(Kind::Job, key).cloned() {
        job["status"] = status;
        st.put(Kind::Job, job);
    }
}

/// The Event the Job controller records when a Job finishes (core/v1, as client-go's recorder).
fn job_event(st: &mut Store, job: &Value, ty: &str, reason: &str, message: &str) {
    let now = meta::now_time();
    let ns = meta::namespace_of(job);
    let name = format!("{}.{:x}", meta::name_of(job), fastrand::u64(..));
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"apiVersion": "batch/v1", "kind": "Job", "name": meta::name_of(job),
            "namespace": ns, "uid": meta::uid_of(job), "resourceVersion": job["metadata"]["resourceVersion"]},
        "reason": reason, "message": message, "type": ty, "count": 1,
        "source": {"component": "job-controller"},
        "firstTimestamp": now, "lastTimestamp": now, "reportingComponent": "job-controller",
        "reportingInstance": "",
    });
    let _ = st.create(Kind::CoreEvent, event);
}

pub(super) fn finished(status: &Value) -> bool {
    condition_true(status, "Complete").is_some() || condition_true(status, "Failed").is_some()
}

pub(super) fn condition_true(status: &Value, ty: &str) -> Option<(String, String)> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty && c["status"] == "True")
        .map(|c| {
            (
                c["reason"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
}

fn add_condition(status: &mut Value, ty: &str, reason: &str, message: &str, now: &str) {
    set_condition(status, ty, "True", reason, message, now);
}

fn set_condition(
    status: &mut Value,
    ty: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    let mut c =
        json!({"type": ty, "status": value, "lastProbeTime": now, "lastTransitionTime": now});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
        c["message"] = json!(message);
    }
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    if let Some(conds) = status["conditions"].as_array_mut() {
        match conds.iter_mut().find(|x| x["type"] == ty) {
            Some(existing) => *existing = c,
            None => conds.push(c),
        }
    }
}

fn parse_time(v: &Value) -> Option<jiff::Timestamp> {
    v.as_str()?.parse().ok()
}
