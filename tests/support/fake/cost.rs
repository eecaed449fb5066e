//! What the real Job controller would have sent to kube-apiserver for what the fake's Job
//! controller did: a model, kept beside the fake (which writes its store directly, sends
//! nothing, and is never slowed down by it). `FakeCluster::controller_requests` reads it.
//!
//! Counted exactly, one request each: pod creates, pod deletes, job-tracking finalizer
//! removals (a patch per pod; adding it is part of the create). Modelled: Events, through
//! client-go's spam filter (25 per Job, then one per 5 minutes), and `jobs/status` updates,
//! by the real controller's syncs. It syncs a Job at once when the Job is created or its spec
//! changes and when a back-off it waited for is over; pod changes are batched
//! (`syncJobBatchPeriod`, 1 s): one sync sees all that happened within it, up to 500 pods
//! (`MaxUncountedPods`, `MaxPodCreateDeletePerSync`). A sync writes the status once if
//! anything in it changed, and a second time when pods went through
//! `uncountedTerminatedPods` (failures; successes of a NonIndexed Job) or the Job finished.
//! Calibrated on KUBERNETES.md's audit figures (see the support module's doc).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// `syncJobBatchPeriod`: pod changes within it are one sync. Real time: the pods it is
/// compared with run in real time too.
const BATCH: Duration = Duration::from_secs(1);
/// `MaxUncountedPods` and `MaxPodCreateDeletePerSync`.
const PER_SYNC: u32 = 500;
/// client-go's `EventSourceObjectSpamFilter`: 25 Events per object, then one per 5 minutes.
const EVENT_BURST: f64 = 25.0;
const EVENT_REFILL: Duration = Duration::from_secs(300);

/// The Job controller's requests, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControllerRequests {
    pub pod_creates: u64,
    pub pod_deletes: u64,
    /// Patches removing the `batch.kubernetes.io/job-tracking` finalizer.
    pub finalizer_patches: u64,
    pub status_updates: u64,
    /// Event creates (and patches of aggregated ones) that pass client-go's spam filter.
    pub events: u64,
}

impl ControllerRequests {
    pub fn total(&self) -> u64 {
        self.pod_creates
            + self.pod_deletes
            + self.finalizer_patches
            + self.status_updates
            + self.events
    }

    /// How long the controller's client needs for them at its rate limit (kube-controller-
    /// manager's default `--kube-api-qps` is 20).
    pub fn seconds_at(&self, qps: f64) -> f64 {
        self.total() as f64 / qps
    }

    fn add(&mut self, o: &ControllerRequests) {
        self.pod_creates += o.pod_creates;
        self.pod_deletes += o.pod_deletes;
        self.finalizer_patches += o.finalizer_patches;
        self.status_updates += o.status_updates;
        self.events += o.events;
    }
}

/// What one pass of the fake's Job controller over one Job did.
#[derive(Default, Debug)]
pub struct Pass {
    /// The Job's first pass, or its spec changed: the real controller syncs at once.
    pub immediate: bool,
    /// Pods created once a pod-failure back-off was over: a sync the controller scheduled.
    pub after_backoff: bool,
    /// The final condition, written after the Job's pods had gone: a sync of its own.
    pub waited: bool,
    pub created: u32,
    pub deleted: u32,
    pub released: u32,
    /// Pods counted as succeeded or failed.
    pub counted: u32,
    /// Some of them went through `uncountedTerminatedPods`.
    pub uncounted: bool,
    /// The Job's status changed.
    pub changed: bool,
    /// `Complete` or `Failed` was written.
    pub finished: bool,
    /// Events the controller recorded.
    pub events: u32,
}

/// One sync of the real controller, as the model groups passes into it.
#[derive(Default)]
struct Sync {
    opened: Option<Instant>,
    created: u32,
    counted: u32,
    changed: bool,
    uncounted: bool,
    finished: bool,
}

impl Sync {
    /// Its `jobs/status` updates (one only before job tracking with finalizers, 1.26).
    fn updates(&self, tracking: bool) -> u64 {
        let second = self.uncounted || self.finished;
        if tracking {
            u64::from(self.changed) + u64::from(second)
        } else {
            u64::from(self.changed || second)
        }
    }
}

#[derive(Default)]
struct JobModel {
    sent: ControllerRequests,
    open: Option<Sync>,
    /// The spam filter's tokens, and when they were last refilled.
    tokens: Option<(f64, Instant)>,
}

/// The model of the whole controller.
pub struct Model {
    tracking: bool,
    /// What Jobs no longer there sent.
    retired: ControllerRequests,
    jobs: HashMap<String, JobModel>,
}

impl Model {
    pub fn new(tracking: bool) -> Self {
        Model {
            tracking,
            retired: ControllerRequests::default(),
            jobs: HashMap::new(),
        }
    }

    /// Adds one pass over the Job with this uid.
    pub fn record(&mut self, uid: &str, pass: &Pass) {
        let now = Instant::now();
        let tracking = self.tracking;
        let job = self.jobs.entry(uid.to_string()).or_default();
        job.sent.pod_creates += u64::from(pass.created);
        job.sent.pod_deletes += u64::from(pass.deleted);
        job.sent.finalizer_patches += u64::from(pass.released);
        for _ in 0..pass.events {
            job.sent.events += u64::from(job.take_token(now));
        }
        job.sync(pass, now, tracking);
    }

    /// Finalizers the controller removes from pods of a Job that is gone.
    pub fn released_orphans(&mut self, n: u32) {
        self.retired.finalizer_patches += u64::from(n);
    }

    /// The Job is gone: what it sent stays in the totals.
    pub fn forget(&mut self, uid: &str) {
        if let Some(job) = self.jobs.remove(uid) {
            self.retired.add(&job.total(self.tracking));
        }
    }

    pub fn total(&self) -> ControllerRequests {
        let mut all = self.retired;
        for job in self.jobs.values() {
            all.add(&job.total(self.tracking));
        }
        all
    }

    pub fn of(&self, uid: &str) -> ControllerRequests {
        self.jobs
            .get(uid)
            .map(|j| j.total(self.tracking))
            .unwrap_or_default()
    }

    /// Starts counting from zero (syncs under way are forgotten).
    pub fn reset(&mut self) {
        self.retired = ControllerRequests::default();
        for job in self.jobs.values_mut() {
            job.sent = ControllerRequests::default();
            job.open = None;
        }
    }
}

impl JobModel {
    fn total(&self, tracking: bool) -> ControllerRequests {
        let mut t = self.sent;
        t.status_updates += self.open.as_ref().map_or(0, |s| s.updates(tracking));
        t
    }

    fn take_token(&mut self, now: Instant) -> bool {
        let (tokens, at) = self.tokens.get_or_insert((EVENT_BURST, now));
        let refill = now.duration_since(*at).as_secs_f64() / EVENT_REFILL.as_secs_f64();
        *tokens = (*tokens + refill).min(EVENT_BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn close(&mut self, tracking: bool) {
        if let Some(s) = self.open.take() {
            self.sent.status_updates += s.updates(tracking);
        }
    }

    /// Puts the pass into the sync the real controller would have done it in.
    fn sync(&mut self, pass: &Pass, now: Instant, tracking: bool) {
        let relevant = pass.changed || pass.created + pass.deleted + pass.counted > 0;
        if !relevant && !pass.finished {
            return;
        }
        if pass.immediate || pass.after_backoff || pass.waited {
            self.close(tracking);
            // What does not fit is left to the next sync, which pod changes join.
            if !self.fill(pass, now, tracking) {
                self.close(tracking);
            }
            return;
        }
        if self
            .open
            .as_ref()
            .and_then(|s| s.opened)
            .is_some_and(|t| now.duration_since(t) > BATCH)
        {
            self.close(tracking);
        }
        self.fill(pass, now, tracking);
    }

    /// Adds the pass to the open sync, going on in new syncs where one is full (returns
    /// whether it did); a Job that finishes in a full sync gets its final condition in the next.
    fn fill(&mut self, pass: &Pass, now: Instant, tracking: bool) -> bool {
        let (mut created, mut counted) = (pass.created, pass.counted);
        let mut spilled = false;
        loop {
            let s = self.open.get_or_insert_with(Sync::default);
            s.opened.get_or_insert(now);
            let c = created.min(PER_SYNC - s.created.min(PER_SYNC));
            let n = counted.min(PER_SYNC - s.counted.min(PER_SYNC));
            s.created += c;
            s.counted += n;
            created -= c;
            counted -= n;
            s.changed |= pass.changed;
            s.uncounted |= pass.uncounted && n > 0;
            if created == 0 && counted == 0 {
                break;
            }
            self.close(tracking);
            spilled = true;
        }
        if pass.finished {
            let s = self.open.get_or_insert_with(Sync::default);
            if s.counted >= PER_SYNC {
                self.close(tracking);
                self.open = Some(Sync {
                    opened: Some(now),
                    ..Sync::default()
                });
            }
            if let Some(s) = &mut self.open {
                s.finished = true;
            }
        }
        spilled
    }
}
