//! The run's state machine: what each child is doing, what to create next, which children a
//! failure skips, when the run is over and with which exit code. Pure: no I/O, no clock reads
//! (times are passed in), so every rule is unit-tested. `herd.rs` feeds it from the API.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::child::{ChildSpec, RUN_LABEL};

/// Waiting reasons after which a pod will not start by itself (image or config problems).
pub const STUCK_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildResult {
    Succeeded,
    Failed,
    /// Never created: a dependency failed, or the run stopped first.
    Skipped,
    /// Deleted while active because the run stopped (fail-fast, timeout, signal).
    Cancelled,
}

impl ChildResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ChildResult::Succeeded => "succeeded",
            ChildResult::Failed => "failed",
            ChildResult::Skipped => "skipped",
            ChildResult::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Not created yet: waiting for dependencies or a free slot.
    Waiting,
    /// Create request sent.
    Creating,
    /// The Job exists; no pod is running yet.
    Created,
    Running,
    Done {
        result: ChildResult,
        reason: Option<String>,
        message: Option<String>,
    },
}

impl Phase {
    pub fn is_active(&self) -> bool {
        matches!(self, Phase::Creating | Phase::Created | Phase::Running)
    }

    pub fn result(&self) -> Option<ChildResult> {
        match self {
            Phase::Done { result, .. } => Some(*result),
            _ => None,
        }
    }
}

/// Everything known about one child.
#[derive(Debug, Clone)]
pub struct ChildState {
    pub phase: Phase,
    pub attempts: u32,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// The uid of the Job this run created or adopted.
    pub uid: Option<String>,
    /// Runs per pod (restarts + 1), keyed by pod uid.
    pods: BTreeMap<String, u32>,
    /// Attempts as the Job's status counts them (failed + succeeded + active pods).
    job_attempts: u32,
    /// An unrecoverable-looking waiting state: reason, message, first seen.
    pub stuck: Option<(String, String, Instant)>,
    /// Last pending notice printed, so each is printed once.
    notice: Option<String>,
}

impl ChildState {
    fn new() -> Self {
        ChildState {
            phase: Phase::Waiting,
            attempts: 0,
            started: None,
            finished: None,
            uid: None,
            pods: BTreeMap::new(),
            job_attempts: 0,
            stuck: None,
            notice: None,
        }
    }

    fn refresh_attempts(&mut self) {
        let from_pods: u32 = self.pods.values().sum();
        self.attempts = self.attempts.max(from_pods).max(self.job_attempts);
    }
}

/// Something the user should see about one child.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Created,
    /// Found already existing from an earlier attempt of this run (restarted parent).
    Adopted,
    Running,
    /// A pod is pending for a reason worth telling (image pull, scheduling, config).
    Pending {
        reason: String,
        message: String,
    },
    Done(ChildResult),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub index: usize,
    pub change: Change,
}

/// Why a run stopped before every child finished by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    FailFast,
    Timeout,
    Interrupt,
    Terminate,
}

pub struct Run {
    pub specs: Vec<ChildSpec>,
    pub states: Vec<ChildState>,
    by_name: HashMap<String, usize>,
    parallelism: usize,
    fail_fast: bool,
    pub stop: Option<Stop>,
    run_id: String,
}

impl Run {
    pub fn new(
        specs: Vec<ChildSpec>,
        parallelism: Option<u32>,
        fail_fast: bool,
        run_id: &str,
    ) -> Run {
        let by_name = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let states = specs.iter().map(|_| ChildState::new()).collect();
        Run {
            parallelism: parallelism.map_or(usize::MAX, |p| p as usize),
            specs,
            states,
            by_name,
            fail_fast,
            stop: None,
            run_id: run_id.to_string(),
        }
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn total(&self) -> usize {
        self.specs.len()
    }

    pub fn done_count(&self) -> usize {
        self.states
            .iter()
            .filter(|s| matches!(s.phase, Phase::Done { .. }))
            .count()
    }

    pub fn active_count(&self) -> usize {
        self.states.iter().filter(|s| s.phase.is_active()).count()
    }

    pub fn is_done(&self) -> bool {
        self.done_count() == self.total()
    }

    /// Children to create now: dependencies succeeded, a slot is free, the run is not stopping.
    /// They move to `Creating`.
    pub fn next_to_create(&mut self) -> Vec<usize> {
        if self.stop.is_some() {
            return vec![];
        }
        let mut free = self.parallelism.saturating_sub(self.active_count());
        let mut out = Vec::new();
        for i in 0..self.specs.len() {
            if free == 0 {
                break;
            }
            let ready = self.states[i].phase == Phase::Waiting
                && self.specs[i]
                    .depends_on
                    .iter()
                    .all(|d| self.states[*d].phase.result() == Some(ChildResult::Succeeded));
            if ready {
                self.states[i].phase = Phase::Creating;
                out.push(i);
                free -= 1;
            }
        }
        out
    }

    /// The API accepted our create (or answered AlreadyExists with a Job of this run).
    pub fn created(&mut self, index: usize, job: &Job, adopted: bool) -> Vec<Transition> {
        let mut out = Vec::new();
        if self.states[index].phase == Phase::Creating {
            self.states[index].phase = Phase::Created;
            self.states[index].uid = job.uid();
            out.push(Transition {
                index,
                change: if adopted {
                    Change::Adopted
                } else {
                    Change::Created
                },
            });
        }
        out.extend(self.observe_job(job));
        out
    }

    /// The create failed for good (invalid, name taken by another run...).
    pub fn create_failed(&mut self, index: usize, reason: &str, message: &str) -> Vec<Transition> {
        self.finish(
            index,
            ChildResult::Failed,
            Some(reason),
            Some(message),
            None,
        )
    }

    /// A Job of this run as the API shows it now (watch event, list, or create response).
    pub fn observe_job(&mut self, job: &Job) -> Vec<Transition> {
        let Some(index) = self.index_of(&job.name_any()) else {
            return vec![];
        };
        if job.labels().get(RUN_LABEL) != Some(&self.run_id) {
            return vec![];
        }
        let state = &mut self.states[index];
        if state.uid.is_some() && job.uid().is_some() && state.uid != job.uid() {
            // A different Job under the same name (deleted and recreated by someone else).
            return vec![];
        }
        let mut out = Vec::new();
        if state.phase == Phase::Waiting {
            // Exists before we asked for it: created by an earlier attempt of this run.
            out.push(Transition {
                index,
                change: Change::Adopted,
            });
            state.phase = Phase::Created;
        } else if state.phase == Phase::Creating {
            state.phase = Phase::Created;
            out.push(Transition {
                index,
                change: Change::Created,
            });
        }
        state.uid = state.uid.clone().or_else(|| job.uid());
        let status = job.status.clone().unwrap_or_default();
        state.started = state.started.or(status.start_time.as_ref().map(|t| t.0));
        state.job_attempts = (status.failed.unwrap_or(0)
            + status.succeeded.unwrap_or(0)
            + status.active.unwrap_or(0))
        .max(0) as u32;
        state.refresh_attempts();
        let finished = status.completion_time.as_ref().map(|t| t.0);
        match job_outcome(job) {
            Some(Ok(())) => {
                out.extend(self.finish(index, ChildResult::Succeeded, None, None, finished))
            }
            Some(Err((reason, message))) => {
                if reason == "BackoffLimitExceeded" {
                    // The pod that made the last attempt may be deleted before we saw it; by
                    // definition the Job used backoffLimit + 1 attempts.
                    let limit = job.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(6);
                    let state = &mut self.states[index];
                    state.attempts = state.attempts.max(limit.max(0) as u32 + 1);
                }
                out.extend(self.finish(
                    index,
                    ChildResult::Failed,
                    Some(&reason),
                    Some(&message),
                    finished,
                ));
            }
            None => {
                let running = status.active.unwrap_or(0) > 0 && status.ready.unwrap_or(0) > 0;
                let state = &mut self.states[index];
                if running && state.phase == Phase::Created {
                    state.phase = Phase::Running;
                    out.push(Transition {
                        index,
                        change: Change::Running,
                    });
                }
            }
        }
        out
    }

    /// A child's Job disappeared (watch DELETE, or missing from a re-list).
    pub fn observe_gone(&mut self, name: &str) -> Vec<Transition> {
        match self.index_of(name) {
            Some(index) if matches!(self.states[index].phase, Phase::Created | Phase::Running) => {
                self.finish(
                    index,
                    ChildResult::Failed,
                    Some("Deleted"),
                    Some("the Job was deleted before it finished"),
                    None,
                )
            }
            _ => vec![],
        }
    }

    /// A pod of one of our children: attempts, running state, stuck detection.
    pub fn observe_pod(&mut self, pod: &Pod, now: Instant) -> Vec<Transition> {
        let labels = pod.labels();
        let job_name = labels
            .get("batch.kubernetes.io/job-name")
            .or_else(|| labels.get("job-name"));
        let Some(index) = job_name.and_then(|n| self.index_of(n)) else {
            return vec![];
        };
        let state = &mut self.states[index];
        if matches!(state.phase, Phase::Done { .. } | Phase::Waiting) {
            return vec![];
        }
        let status = pod.status.clone().unwrap_or_default();
        let containers = status.container_statuses.clone().unwrap_or_default();
        let started = containers.iter().any(|c| {
            c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
                || c.restart_count > 0
        });
        let restarts = containers
            .iter()
            .map(|c| c.restart_count.max(0) as u32)
            .max()
            .unwrap_or(0);
        if started {
            let runs = state.pods.entry(pod.uid().unwrap_or_default()).or_insert(0);
            *runs = (*runs).max(restarts + 1);
            state.refresh_attempts();
        }
        let mut out = Vec::new();
        let running = containers
            .iter()
            .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
        if running && state.phase == Phase::Created {
            state.phase = Phase::Running;
            out.push(Transition {
                index,
                change: Change::Running,
            });
        }
        // The first waiting reason that will not resolve itself, or an unschedulable pod.
        let waiting = containers.iter().find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            let reason = w.reason.clone()?;
            STUCK_REASONS
                .contains(&reason.as_str())
                .then(|| (reason, w.message.clone().unwrap_or_default()))
        });
        let unschedulable = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find_map(|c| {
                (c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable"))
                .then(|| ("Unschedulable".to_string(), c.message.unwrap_or_default()))
            });
        fn stuck_kind(r: &str) -> &str {
            if r == "ImagePullBackOff" {
                "ErrImagePull"
            } else {
                r
            }
        }
        match &waiting {
            Some((reason, message)) => {
                let keep = state
                    .stuck
                    .as_ref()
                    .is_some_and(|(r, _, _)| stuck_kind(r) == stuck_kind(reason));
                let since = if keep {
                    state.stuck.as_ref().map_or(now, |s| s.2)
                } else {
                    now
                };
                state.stuck = Some((reason.clone(), message.clone(), since));
            }
            None => state.stuck = None,
        }
        if let Some((reason, message)) = waiting.or(unschedulable) {
            if state.notice.as_deref() != Some(reason.as_str()) {
                state.notice = Some(reason.clone());
                out.push(Transition {
                    index,
                    change: Change::Pending { reason, message },
                });
            }
        } else {
            state.notice = None;
        }
        out
    }

    /// Children whose pod has been stuck for longer than `limit`.
    pub fn stuck(&self, now: Instant, limit: Duration) -> Vec<usize> {
        self.states
            .iter()
            .enumerate()
            .filter(|(_, s)| s.phase.is_active())
            .filter(|(_, s)| {
                s.stuck
                    .as_ref()
                    .is_some_and(|(_, _, since)| now.duration_since(*since) >= limit)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Fails a child because jobherd decided so (stuck pod); the caller deletes its Job.
    pub fn fail_stuck(&mut self, index: usize, limit: Duration) -> Vec<Transition> {
        let (reason, message) = match &self.states[index].stuck {
            Some((r, m, _)) => (r.clone(), m.clone()),
            None => return vec![],
        };
        let message = format!(
            "pod stuck in {reason} for {}s (JOBHERD_STUCK_TIMEOUT): {message}",
            limit.as_secs()
        );
        self.finish(
            index,
            ChildResult::Failed,
            Some(&reason),
            Some(&message),
            None,
        )
    }

    /// Stops the run: nothing more is created. Returns the children to delete (active ones);
    /// the caller marks each `cancelled` once its delete went through.
    pub fn stop(&mut self, why: Stop) -> (Vec<usize>, Vec<Transition>) {
        if self.stop.is_none() {
            self.stop = Some(why);
        }
        let mut out = Vec::new();
        for i in 0..self.specs.len() {
            if self.states[i].phase == Phase::Waiting {
                out.extend(self.finish(
                    i,
                    ChildResult::Skipped,
                    Some("NotStarted"),
                    Some(stop_text(why)),
                    None,
                ));
            }
        }
        let active = (0..self.specs.len())
            .filter(|i| self.states[*i].phase.is_active())
            .collect();
        (active, out)
    }

    /// A child queued for creation that the run stopped before its turn.
    pub fn not_started(&mut self, index: usize) -> Vec<Transition> {
        if self.states[index].phase != Phase::Creating {
            return vec![];
        }
        let why = self.stop.map_or("stopped", stop_text);
        self.finish(
            index,
            ChildResult::Skipped,
            Some("NotStarted"),
            Some(why),
            None,
        )
    }

    /// An active child was deleted because the run stopped.
    pub fn cancelled(&mut self, index: usize) -> Vec<Transition> {
        if !self.states[index].phase.is_active() {
            return vec![];
        }
        let why = self.stop.map_or("stopped", stop_text);
        self.finish(
            index,
            ChildResult::Cancelled,
            Some("Cancelled"),
            Some(why),
            None,
        )
    }

    fn finish(
        &mut self,
        index: usize,
        result: ChildResult,
        reason: Option<&str>,
        message: Option<&str>,
        finished: Option<Timestamp>,
    ) -> Vec<Transition> {
        let state = &mut self.states[index];
        if matches!(state.phase, Phase::Done { .. }) {
            return vec![];
        }
        state.phase = Phase::Done {
            result,
            reason: reason.map(str::to_string),
            message: message.map(str::to_string),
        };
        state.stuck = None;
        if result != ChildResult::Skipped {
            state.finished = Some(finished.unwrap_or_else(Timestamp::now));
        }
        let mut out = vec![Transition {
            index,
            change: Change::Done(result),
        }];
        if result == ChildResult::Failed && self.fail_fast && self.stop.is_none() {
            self.stop = Some(Stop::FailFast);
        }
        if result != ChildResult::Succeeded {
            out.extend(self.skip_dependants());
        }
        out
    }

    /// Children waiting on a child that will never succeed are skipped. Children come in a
    /// topological order, so one forward pass reaches every transitive dependant.
    fn skip_dependants(&mut self) -> Vec<Transition> {
        let mut out = Vec::new();
        for i in 0..self.specs.len() {
            if self.states[i].phase != Phase::Waiting {
                continue;
            }
            let blocker = self.specs[i].depends_on.iter().find(|d| {
                matches!(self.states[**d].phase.result(), Some(r) if r != ChildResult::Succeeded)
            });
            if let Some(&d) = blocker {
                let message = format!(
                    "dependency {} {}",
                    self.specs[d].name,
                    self.states[d]
                        .phase
                        .result()
                        .map_or("", ChildResult::as_str)
                );
                self.states[i].phase = Phase::Done {
                    result: ChildResult::Skipped,
                    reason: Some("DependencyFailed".into()),
                    message: Some(message),
                };
                out.push(Transition {
                    index: i,
                    change: Change::Done(ChildResult::Skipped),
                });
            }
        }
        out
    }

    /// SPEC §5: 0 all succeeded, 1 any failed/skipped, 3 timeout, 130/143 signals.
    pub fn exit_code(&self) -> i32 {
        match self.stop {
            Some(Stop::Timeout) => 3,
            Some(Stop::Interrupt) => 130,
            Some(Stop::Terminate) => 143,
            _ if self
                .states
                .iter()
                .all(|s| s.phase.result() == Some(ChildResult::Succeeded)) =>
            {
                0
            }
            _ => 1,
        }
    }

    pub fn count(&self, result: ChildResult) -> usize {
        self.states
            .iter()
            .filter(|s| s.phase.result() == Some(result))
            .count()
    }
}

fn stop_text(why: Stop) -> &'static str {
    match why {
        Stop::FailFast => "another child failed (JOBHERD_FAIL_FAST)",
        Stop::Timeout => "JOBHERD_TIMEOUT passed",
        Stop::Interrupt => "interrupted (SIGINT)",
        Stop::Terminate => "terminated (SIGTERM)",
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    fn spec(name: &str, deps: &[usize]) -> ChildSpec {
        ChildSpec {
            name: name.into(),
            step: name.into(),
            plan_step: None,
            depends_on: deps.to_vec(),
            depends_on_steps: vec![],
            job: Job::default(),
        }
    }

    fn job(name: &str, conditions: &[(&str, &str)], active: i32) -> Job {
        let mut j = Job::default();
        j.metadata.name = Some(name.into());
        j.metadata.uid = Some(format!("uid-{name}"));
        j.metadata.labels = Some([(RUN_LABEL.to_string(), "r".to_string())].into());
        j.status = Some(JobStatus {
            active: Some(active),
            ready: Some(active),
            conditions: Some(
                conditions
                    .iter()
                    .map(|(t, r)| JobCondition {
                        type_: t.to_string(),
                        status: "True".into(),
                        reason: Some(r.to_string()),
                        message: Some(format!("{r} happened")),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        });
        j
    }

    fn results(run: &Run) -> Vec<Option<ChildResult>> {
        run.states.iter().map(|s| s.phase.result()).collect()
    }

    #[test]
    fn parallelism_limits_what_is_created() {
        let mut run = Run::new(
            (0..5).map(|i| spec(&format!("c{i}"), &[])).collect(),
            Some(2),
            false,
            "r",
        );
        assert_eq!(run.next_to_create(), vec![0, 1]);
        assert_eq!(run.next_to_create(), Vec::<usize>::new());
        run.created(0, &job("c0", &[], 0), false);
        run.observe_job(&job("c0", &[("Complete", "")], 0));
        assert_eq!(run.next_to_create(), vec![2]);
    }

    #[test]
    fn success_and_failure_are_read_from_conditions() {
        let mut run = Run::new(vec![spec("a", &[]), spec("b", &[])], None, false, "r");
        run.next_to_create();
        let t = run.observe_job(&job(
            "a",
            &[("SuccessCriteriaMet", "CompletionsReached")],
            0,
        ));
        assert!(t.contains(&Transition {
            index: 0,
            change: Change::Done(ChildResult::Succeeded)
        }));
        run.observe_job(&job(
            "b",
            &[
                ("FailureTarget", "BackoffLimitExceeded"),
                ("Failed", "BackoffLimitExceeded"),
            ],
            0,
        ));
        match &run.states[1].phase {
            Phase::Done { result, reason, .. } => {
                assert_eq!(*result, ChildResult::Failed);
                assert_eq!(reason.as_deref(), Some("BackoffLimitExceeded"));
            }
            other => panic!("{other:?}"),
        }
        assert!(run.is_done());
        assert_eq!(run.exit_code(), 1);
    }

    #[test]
    fn transitions_are_not_doubled_on_relist() {
        let mut run = Run::new(vec![spec("a", &[])], None, false, "r");
        run.next_to_create();
        let done = job("a", &[("Complete", "")], 0);
        assert_eq!(run.observe_job(&done).len(), 2, "created + succeeded");
        assert!(run.observe_job(&done).is_empty());
        assert!(
            run.observe_gone("a").is_empty(),
            "TTL deleting a finished child is fine"
        );
    }

    #[test]
    fn existing_jobs_are_adopted_not_recreated() {
        let mut run = Run::new(vec![spec("a", &[]), spec("b", &[])], None, false, "r");
        let t = run.observe_job(&job("a", &[("Complete", "")], 0));
        assert_eq!(t[0].change, Change::Adopted);
        assert_eq!(
            run.next_to_create(),
            vec![1],
            "only the missing child is created"
        );
    }

    #[test]
    fn jobs_of_other_runs_are_ignored() {
        let mut run = Run::new(vec![spec("a", &[])], None, false, "other-run");
        assert!(
            run.observe_job(&job("a", &[("Complete", "")], 0))
                .is_empty()
        );
    }

    #[test]
    fn failure_skips_dependants_transitively_and_independent_branches_go_on() {
        // a -> b -> c ; d independent
        let mut run = Run::new(
            vec![
                spec("a", &[]),
                spec("b", &[0]),
                spec("c", &[1]),
                spec("d", &[]),
            ],
            None,
            false,
            "r",
        );
        assert_eq!(run.next_to_create(), vec![0, 3]);
        run.observe_job(&job("a", &[("Failed", "BackoffLimitExceeded")], 0));
        assert_eq!(
            results(&run)[..3],
            [
                Some(ChildResult::Failed),
                Some(ChildResult::Skipped),
                Some(ChildResult::Skipped)
            ]
        );
        assert_eq!(run.states[3].phase, Phase::Creating, "d goes on");
        run.observe_job(&job("d", &[("Complete", "")], 0));
        assert!(run.is_done());
        assert_eq!(run.exit_code(), 1);
    }

    #[test]
    fn dependants_start_as_soon_as_their_dependencies_succeed() {
        // a -> c, b (slow) -> d
        let mut run = Run::new(
            vec![
                spec("a", &[]),
                spec("b", &[]),
                spec("c", &[0]),
                spec("d", &[1]),
            ],
            None,
            false,
            "r",
        );
        assert_eq!(run.next_to_create(), vec![0, 1]);
        run.observe_job(&job("a", &[("Complete", "")], 0));
        assert_eq!(run.next_to_create(), vec![2], "c does not wait for b");
    }

    #[test]
    fn fail_fast_stops_and_lists_active_children() {
        let mut run = Run::new(
            (0..4).map(|i| spec(&format!("c{i}"), &[])).collect(),
            Some(2),
            true,
            "r",
        );
        run.next_to_create();
        run.created(1, &job("c1", &[], 1), false);
        run.observe_job(&job("c0", &[("Failed", "BackoffLimitExceeded")], 0));
        assert_eq!(run.stop, Some(Stop::FailFast));
        assert!(run.next_to_create().is_empty());
        let (active, skipped) = run.stop(Stop::FailFast);
        assert_eq!(active, vec![1]);
        assert_eq!(skipped.len(), 2);
        run.cancelled(1);
        assert!(run.is_done());
        assert_eq!(run.count(ChildResult::Cancelled), 1);
        assert_eq!(run.exit_code(), 1);
    }

    #[test]
    fn exit_codes_follow_the_spec() {
        let mut run = Run::new(vec![spec("a", &[])], None, false, "r");
        run.next_to_create();
        run.observe_job(&job("a", &[("Complete", "")], 0));
        assert_eq!(run.exit_code(), 0);
        for (stop, code) in [
            (Stop::Timeout, 3),
            (Stop::Interrupt, 130),
            (Stop::Terminate, 143),
        ] {
            let mut run = Run::new(vec![spec("a", &[])], None, false, "r");
            run.stop(stop);
            assert_eq!(run.exit_code(), code);
        }
    }

    #[test]
    fn a_child_deleted_by_someone_else_fails() {
        let mut run = Run::new(vec![spec("a", &[])], None, false, "r");
        run.next_to_create();
        run.created(0, &job("a", &[], 1), false);
        let t = run.observe_gone("a");
        assert_eq!(t[0].change, Change::Done(ChildResult::Failed));
    }

    fn pod(job: &str, waiting: Option<&str>, restarts: i32) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{job}-x"), "uid": format!("p-{job}"), "labels": {"job-name": job}},
            "status": {"phase": if waiting.is_some() {"Pending"} else {"Running"},
              "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": waiting.is_none(),
                "restartCount": restarts,
                "state": match waiting { Some(r) => serde_json::json!({"waiting": {"reason": r, "message": "no such image"}}),
                                         None => serde_json::json!({"running": {}}) }}]}
        }))
        .unwrap()
    }

    #[test]
    fn stuck_pods_are_detected_after_the_limit() {
        let mut run = Run::new(vec![spec("a", &[])], None, false, "r");
        run.next_to_create();
        run.created(0, &job("a", &[], 1), false);
        let t0 = Instant::now();
        let t = run.observe_pod(&pod("a", Some("ErrImagePull"), 0), t0);
        assert!(matches!(&t[0].change, Change::Pending { reason, .. } if reason == "ErrImagePull"));
        // ErrImagePull alternating with ImagePullBackOff is one stuck period.
        run.observe_pod(
            &pod("a", Some("ImagePullBackOff"), 0),
            t0 + Duration::from_secs(5),
        );
        let limit = Duration::from_secs(10);
        assert!(run.stuck(t0 + Duration::from_secs(9), limit).is_empty());
        assert_eq!(run.stuck(t0 + Duration::from_secs(10), limit), vec![0]);
        let t = run.fail_stuck(0, limit);
        assert_eq!(t[0].change, Change::Done(ChildResult::Failed));
    }

    #[test]
    fn attempts_count_restarts_and_pods() {
        let mut run = Run::new(vec![spec("a", &[])], None, false, "r");
        run.next_to_create();
        run.created(0, &job("a", &[], 1), false);
        run.observe_pod(&pod("a", None, 2), Instant::now());
        assert_eq!(run.states[0].attempts, 3);
        let mut failed = job("a", &[("Failed", "BackoffLimitExceeded")], 0);
        failed.status.as_mut().unwrap().failed = Some(1);
        failed.spec = Some(k8s_openapi::api::batch::v1::JobSpec {
            backoff_limit: Some(2),
            ..Default::default()
        });
        run.observe_job(&failed);
        assert_eq!(
            run.states[0].attempts, 3,
            "backoffLimit + 1, though the last pod is gone"
        );
    }
}
