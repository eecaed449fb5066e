//! The Job controller: creates a Job's pods (one per index for an Indexed Job; failed ones
//! replaced after the controller's back-off), counts the pods that ended, applies
//! `podFailurePolicy`, deadlines and `backoffLimit`, and writes status and conditions as the
//! configured version does:
//!
//! - 1.31+: `SuccessCriteriaMet`/`FailureTarget` in one update, `Complete`/`Failed` in a later
//!   one, once nothing is uncounted and no pod is terminating;
//! - 1.26+: pods carry the `batch.kubernetes.io/job-tracking` finalizer; a pod that ended is
//!   first listed in `uncountedTerminatedPods`, then its finalizer is removed, then it moves to
//!   `succeeded`/`failed` (three updates);
//! - before: one status update with the counts and `Complete`/`Failed`.
//!
//! A suspended Job (1.22+) has no pods: those it had are released from job tracking, then
//! deleted, and never counted; resuming it resets `startTime`, so `activeDeadlineSeconds`
//! counts from there.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::lock;
use super::meta::{self, Kind};
use super::sim::{Sim, Timer, UNMANAGED};
use super::store::{self, Key, Propagation, Store};
use super::versions::Version;

/// The finalizer that keeps a Job's pod until the Job controller has counted it (1.26+).
pub const TRACKING: &str = "batch.kubernetes.io/job-tracking";

/// An Indexed Job's pod's index (annotation; also a label from 1.28).
pub const INDEX: &str = "batch.kubernetes.io/job-completion-index";

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
    completed: std::collections::BTreeSet<u32>,
    failures_since_success: u32,
    last_failure: Option<Instant>,
    /// A pass is scheduled for when the back-off ends.
    backoff_until: Option<Instant>,
    /// When the pass that checks `activeDeadlineSeconds` is scheduled.
    deadline_pass: Option<Instant>,
    ttl_armed: bool,
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

/// What a podFailurePolicy says about a failed pod.
enum Rule {
    Count,
    Ignore,
    FailJob(String),
}

impl Sim {
    pub(super) fn reconcile_job(&mut self, key: &Key) {
        let shared = self.shared.clone();
        let v = shared.config.version;
        let mut st = lock(&shared.store);
        let Some(job) = st.get(Kind::Job, key).cloned() else {
            return;
        };
        if meta::annotation(&job, UNMANAGED).is_some() {
            return;
        }
        let uid = meta::uid_of(&job).to_string();
        let pods = owned_pods(&st, &uid);
        if !job["metadata"]["deletionTimestamp"].is_null() {
            // Being deleted: nothing is counted any more; let the pods go.
            strip_tracking(&mut st, &pods);
            return;
        }
        let status0 = if job["status"].is_object() {
            job["status"].clone()
        } else {
            json!({})
        };
        let scale = shared.config.time_scale;
        let track = self
            .jobs
            .entry(uid.clone())
            .or_insert_with(|| JobTrack::from_status(&status0));
        if finished(&status0) {
            strip_tracking(&mut st, &pods);
            if let Some(ttl) = job["spec"]["ttlSecondsAfterFinished"].as_u64()
                && !track.ttl_armed
            {
                track.ttl_armed = true;
                drop(st);
                let timer = Timer::Ttl {
                    key: key.clone(),
                    uid,
                };
                self.after(Duration::from_secs(ttl), timer);
            }
            return;
        }
        let spec = job["spec"].clone();
        let now = meta::now_time();
        let success_interim = condition_true(&status0, "SuccessCriteriaMet");
        let failure_interim = condition_true(&status0, "FailureTarget");
        let replace_terminating = replaces_terminating(&spec, v);
        let before = (track.succeeded, track.failed);

        // Pods that ended since the last pass. A pod being deleted counts as failed at once
        // when the Job replaces terminating pods (and when the Job is failing anyway).
        let mut new_s: Vec<String> = Vec::new();
        let mut new_f: Vec<String> = Vec::new();
        let mut policy_failure = None;
        let clock = Instant::now();
        for p in &pods {
            let puid = meta::uid_of(p).to_string();
            if track.counted.contains(&puid) {
                continue;
            }
            match phase(p) {
                "Succeeded" => new_s.push(puid),
                "Failed" => match pod_failure_policy(&spec, p) {
                    Rule::Ignore => {
                        // Not a failure of the Job, but a failed pod all the same: the
                        // controller's back-off record counts it before the next pod.
                        track.counted.insert(puid);
                        track.failures_since_success += 1;
                        track.last_failure = Some(clock);
                    }
                    Rule::FailJob(message) => {
                        policy_failure.get_or_insert(message);
                        new_f.push(puid);
                    }
                    Rule::Count => new_f.push(puid),
                },
                _ if deleting(p)
                    && success_interim.is_none()
                    && (replace_terminating || failure_interim.is_some()) =>
                {
                    new_f.push(puid)
                }
                _ => {}
            }
        }
        let indexed = v.indexed_and_suspend() && spec["completionMode"] == "Indexed";
        for puid in &new_s {
            track.counted.insert(puid.clone());
            track.succeeded += 1;
            track.failures_since_success = 0;
            if let Some(i) = pods
                .iter()
                .find(|p| meta::uid_of(p) == puid)
                .and_then(index_of)
            {
                track.completed.insert(i);
            }
        }
        for puid in &new_f {
            track.counted.insert(puid.clone());
            track.failed += 1;
            track.failures_since_success += 1;
            track.last_failure = Some(clock);
        }

        let active: Vec<Value> = pods.iter().filter(|p| is_active(p)).cloned().collect();
        let terminating_before = pods.iter().filter(|p| is_terminating(p)).count();
        let mut to_delete: Vec<Value> = Vec::new();
        let mut count_deleted = false;
        let mut interim: Option<(&str, String, String)> = None;
        let mut fin: Option<(&str, String, String)> = None;
        // A final condition that waits for an earlier interim one.
        let mut pending_fin: Option<(&str, String, String)> = None;
        let mut create = 0usize;
        let mut status = status0.clone();
        let mut timers: Vec<Duration> = Vec::new();
        let mut events: Vec<(&str, &str, String)> = Vec::new();
        // Released from job tracking before they are deleted (suspension).
        let mut release_first = false;

        if let Some((reason, message)) = failure_interim {
            to_delete = active.clone();
            count_deleted = true;
            pending_fin = Some(("Failed", reason, message));
        } else if let Some((reason, message)) = success_interim {
            to_delete = active.clone();
            pending_fin = Some(("Complete", reason, message));
        } else if v.indexed_and_suspend() && spec["suspend"].as_bool() == Some(true) {
            // Pods deleted because the Job is suspended are no failures: the controller lets
            // them go from job tracking before it deletes them, so they are never counted.
            // `startTime` stays (resuming resets it).
            to_delete = active.clone();
            release_first = true;
            for p in &to_delete {
                track.counted.insert(meta::uid_of(p).to_string());
            }
            if condition_true(&status, "Suspended").is_none() {
                set_condition(
                    &mut status,
                    "Suspended",
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    &now,
                );
                events.push(("Normal", "Suspended", "Job suspended".to_string()));
            }
        } else {
            if condition_true(&status, "Suspended").is_some() {
                set_condition(
                    &mut status,
                    "Suspended",
                    "False",
                    "JobResumed",
                    "Job resumed",
                    &now,
                );
                events.push(("Normal", "Resumed", "Job resumed".to_string()));
                // activeDeadlineSeconds counts the time a Job is continuously active.
                status["startTime"] = json!(now);
            }
            if status["startTime"].is_null() {
                status["startTime"] = json!(now);
            }
            let limit = spec["backoffLimit"].as_u64().unwrap_or(6) as u32;
            let deadline_exceeded = match (
                spec["activeDeadlineSeconds"].as_u64(),
                parse_time(&status["startTime"]),
            ) {
                (Some(secs), Some(start)) => {
                    let left = start.as_millisecond() + secs as i64 * 1000
                        - jiff::Timestamp::now().as_millisecond();
                    if left <= 0 {
                        true
                    } else {
                        // A pass when the deadline comes, unless one is due by then: the
                        // deadline moves with a changed activeDeadlineSeconds or startTime,
                        // and a pass that came a little early schedules the next.
                        let due = clock + Duration::from_millis(left as u64);
                        if track.deadline_pass.is_none_or(|t| t <= clock || t > due) {
                            track.deadline_pass = Some(due);
                            timers.push(due - clock);
                        }
                        false
                    }
                }
                _ => false,
            };
            let failure = if let Some(message) = policy_failure {
                Some(("PodFailurePolicy", message))
            } else if deadline_exceeded {
                Some((
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline".to_string(),
                ))
            } else if track.failed > limit || past_backoff_limit_on_failure(&spec, &active, limit) {
                Some((
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit".to_string(),
                ))
            } else {
                None
            };
            let completions = spec["completions"].as_u64().map(|c| c as u32);
            let parallelism = spec["parallelism"].as_u64().unwrap_or(1) as u32;
            // An Indexed Job counts distinct indexes, not pods.
            let succeeded = if indexed {
                track.completed.len() as u32
            } else {
                track.succeeded
            };
            let complete = match completions {
                Some(c) => succeeded >= c,
                None => succeeded >= 1 && active.is_empty(),
            };
            if let Some((reason, message)) = failure {
                to_delete = active.clone();
                count_deleted = true;
                let condition = ("FailureTarget", reason.to_string(), message.clone());
                if v.interim_conditions()
                    || (reason == "PodFailurePolicy" && v.pod_failure_policy())
                {
                    interim = Some(condition);
                } else {
                    fin = Some(("Failed", reason.to_string(), message));
                }
            } else if complete {
                to_delete = active.clone();
                if v.interim_conditions() {
                    interim = Some((
                        "SuccessCriteriaMet",
                        "CompletionsReached".into(),
                        "Reached expected number of succeeded pods".into(),
                    ));
                } else {
                    fin = Some(("Complete", String::new(), String::new()));
                }
            } else {
                let want = match completions {
                    Some(c) => parallelism.min(c.saturating_sub(succeeded)),
                    None if succeeded > 0 => 0,
                    None => parallelism,
                } as usize;
                let have = active.len()
                    + if replace_terminating {
                        0
                    } else {
                        terminating_before
                    };
                if have < want {
                    let until = track
                        .last_failure
                        .filter(|_| track.failures_since_success > 0)
                        .map(|last| last + backoff(track.failures_since_success).mul_f64(scale));
                    match until {
                        Some(until) if clock < until => {
                            if track.backoff_until != Some(until) {
                                track.backoff_until = Some(until);
                                timers.push(until - clock);
                            }
                        }
                        _ => create = want - have,
                    }
                }
            }
        }
        if count_deleted {
            for p in &to_delete {
                let puid = meta::uid_of(p).to_string();
                if track.counted.insert(puid.clone()) {
                    track.failed += 1;
                    new_f.push(puid);
                }
            }
        }
        let counts = (track.succeeded, track.failed);
        let any_new = !new_s.is_empty() || !new_f.is_empty();

        // Write 1 (job tracking): what ended is listed as uncounted, with the interim condition,
        // before any pod is deleted or loses its finalizer.
        if v.tracking_finalizers() && (any_new || interim.is_some()) {
            if let Some((ty, reason, message)) = &interim {
                add_condition(&mut status, ty, reason, message, &now);
            }
            let mut uncounted = status["uncountedTerminatedPods"].clone();
            for (list, uids) in [("succeeded", &new_s), ("failed", &new_f)] {
                let mut all: Vec<Value> = uncounted[list].as_array().cloned().unwrap_or_default();
                all.extend(uids.iter().map(|u| json!(u)));
                if !all.is_empty() {
                    uncounted[list] = json!(all);
                }
            }
            status["uncountedTerminatedPods"] = uncounted;
            render_counts(&mut status, v, before, &pods);
            put_status(&mut st, key, status.clone());
        } else if let Some((ty, reason, message)) = &interim {
            add_condition(&mut status, ty, reason, message, &now);
        }

        if release_first {
            strip_tracking(&mut st, &to_delete);
        }
        for p in &to_delete {
            st.delete(
                Kind::Pod,
                &store::key(meta::namespace_of(p), meta::name_of(p)),
                Propagation::Background,
                None,
            );
        }
        // Indexed: the lowest indexes that neither succeeded nor run.
        let mut free = (0..spec["completions"].as_u64().unwrap_or(0) as u32).filter(|i| {
            let track = &self.jobs[&uid];
            !track.completed.contains(i) && !active.iter().any(|p| index_of(p) == Some(*i))
        });
        let indexes: Vec<Option<u32>> = (0..create)
            .map(|_| if indexed { free.next() } else { None })
            .collect();
        for index in indexes {
            if indexed && index.is_none() {
                break;
            }
            let pod = pod_from_template(&st, &job, v, index);
            if let Ok(created) = st.create(Kind::Pod, pod) {
                self.attempt_base
                    .insert(meta::uid_of(&created).to_string(), counts.1);
            }
        }
        let pods = owned_pods(&st, &uid);
        let finishing = interim.is_some() || pending_fin.is_some() || fin.is_some();
        let track = self.jobs.get(&uid);
        let releasable: Vec<Value> = pods
            .iter()
            .filter(|p| finishing || track.is_some_and(|t| t.counted.contains(meta::uid_of(p))))
            .cloned()
            .collect();
        strip_tracking(&mut st, &releasable);

        // The last write: counts, and a final condition.
        let pods = owned_pods(&st, &uid);
        let terminating = pods.iter().filter(|p| is_terminating(p)).count();
        if let Some(pending) = pending_fin
            && !any_new
            && (!v.interim_conditions() || terminating == 0)
        {
            fin = Some(pending);
        }
        if v.tracking_finalizers() {
            status["uncountedTerminatedPods"] = json!({});
        }
        if let Some((ty, reason, message)) = &fin {
            add_condition(&mut status, ty, reason, message, &now);
            if *ty == "Complete" {
                status["completionTime"] = json!(now);
                events.push(("Normal", "Completed", "Job completed".to_string()));
            } else {
                events.push(("Warning", reason.as_str(), message.clone()));
            }
        }
        render_counts(&mut status, v, counts, &pods);
        if indexed && let Some(track) = self.jobs.get(&uid) {
            let ranges = index_ranges(&track.completed);
            if !ranges.is_empty() {
                status["completedIndexes"] = json!(ranges);
            }
        }
        if status
            != st
                .get(Kind::Job, key)
                .map_or(Value::Null, |j| j["status"].clone())
        {
            put_status(&mut st, key, status);
        }
        for (ty, reason, message) in events {
            job_event(&mut st, &job, ty, reason, &message);
        }
        drop(st);
        for d in timers {
            self.after(d, Timer::Reconcile(key.clone()));
        }
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

/// The first podFailurePolicy rule that matches a failed pod decides what its failure means.
fn pod_failure_policy(spec: &Value, pod: &Value) -> Rule {
    let Some(rules) = spec["podFailurePolicy"]["rules"].as_array() else {
        return Rule::Count;
    };
    let ns = meta::namespace_of(pod);
    let name = meta::name_of(pod);
    for (i, rule) in rules.iter().enumerate() {
        let action = rule["action"].as_str().unwrap_or("");
        let matched = if rule["onExitCodes"].is_object() {
            let req = &rule["onExitCodes"];
            let values: Vec<i64> = req["values"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default();
            let only = req["containerName"].as_str();
            ["initContainerStatuses", "containerStatuses"]
                .iter()
                .flat_map(|list| pod["status"][*list].as_array().into_iter().flatten())
                .filter(|c| only.is_none_or(|n| c["name"] == n))
                .find_map(|c| {
                    let code = c["state"]["terminated"]["exitCode"].as_i64()?;
                    let hit = match req["operator"].as_str() {
                        Some("NotIn") => code != 0 && !values.contains(&code),
                        _ => values.contains(&code),
                    };
                    hit.then(|| {
                        format!(
                            "Container {} for pod {ns}/{name} failed with exit code {code} matching {action} rule at index {i}",
                            c["name"].as_str().unwrap_or("")
                        )
                    })
                })
        } else {
            rule["onPodConditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|pattern| {
                    let ty = pattern["type"].as_str()?;
                    let want = pattern["status"].as_str().unwrap_or("True");
                    pod["status"]["conditions"]
                        .as_array()?
                        .iter()
                        .any(|c| c["type"] == ty && c["status"] == want)
                        .then(|| {
                            format!(
                                "Pod {ns}/{name} has condition {ty} matching {action} rule at index {i}"
                            )
                        })
                })
        };
        if let Some(message) = matched {
            return match action {
                "Ignore" => Rule::Ignore,
                "FailJob" => Rule::FailJob(message),
                _ => Rule::Count,
            };
        }
    }
    Rule::Count
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

/// Removes the job-tracking finalizer from these pods (a pod being deleted whose grace period
/// is over goes with it).
pub(super) fn strip_tracking(st: &mut Store, pods: &[Value]) {
    for p in pods {
        let key = store::key(meta::namespace_of(p), meta::name_of(p));
        let Some(mut pod) = st.get(Kind::Pod, &key).cloned() else {
            continue;
        };
        let Some(fins) = pod["metadata"]["finalizers"].as_array_mut() else {
            continue;
        };
        let before = fins.len();
        fins.retain(|f| f != TRACKING);
        if fins.len() == before {
            continue;
        }
        if fins.is_empty()
            && let Some(m) = pod["metadata"].as_object_mut()
        {
            m.remove("finalizers");
        }
        st.put(Kind::Pod, pod);
    }
}

fn owned_pods(st: &Store, job_uid: &str) -> Vec<Value> {
    st.dependents(job_uid)
        .into_iter()
        .filter(|(k, _)| *k == Kind::Pod)
        .filter_map(|(_, k)| st.get(Kind::Pod, &k).cloned())
        .filter(|p| meta::controller_uid(p) == Some(job_uid))
        .collect()
}

fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("Pending")
}

fn deleting(p: &Value) -> bool {
    !p["metadata"]["deletionTimestamp"].is_null()
}

fn is_terminal(p: &Value) -> bool {
    matches!(phase(p), "Succeeded" | "Failed")
}

fn is_active(p: &Value) -> bool {
    !is_terminal(p) && !deleting(p)
}

fn is_terminating(p: &Value) -> bool {
    !is_terminal(p) && deleting(p)
}

fn is_ready(p: &Value) -> bool {
    phase(p) == "Running"
        && p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
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

/// The labels the Job controller puts on a Job's pods (and the API on its template).
pub fn job_labels(v: Version, uid: &str, name: &str) -> Vec<(&'static str, String)> {
    let mut labels = vec![
        ("controller-uid", uid.to_string()),
        ("job-name", name.to_string()),
    ];
    if v.batch_labels() {
        labels.push(("batch.kubernetes.io/controller-uid", uid.to_string()));
        labels.push(("batch.kubernetes.io/job-name", name.to_string()));
    }
    labels
}

/// The index of an Indexed Job's pod.
fn index_of(pod: &Value) -> Option<u32> {
    meta::annotation(pod, INDEX)?.parse().ok()
}

/// `0-2,5`: completed indexes as `status.completedIndexes` writes them.
fn index_ranges(indexes: &std::collections::BTreeSet<u32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().unwrap_or(end);
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

/// A pod as the Job controller creates it: `<job>-<5 chars>` (`<job>-<index>-<5 chars>` for an
/// Indexed Job, with its index as annotation, label, hostname and `JOB_COMPLETION_INDEX`),
/// template labels (which include the controller labels added on Job create), a controller
/// ownerReference, and from 1.26 the job-tracking finalizer.
pub fn pod_from_template(st: &Store, job: &Value, v: Version, index: Option<u32>) -> Value {
    let ns = meta::namespace_of(job);
    let job_name = meta::name_of(job);
    let tmpl = &job["spec"]["template"];
    let base = match index {
        Some(i) => format!("{job_name}-{i}"),
        None => job_name.to_string(),
    };
    let mut name = format!("{base}-{}", meta::random_suffix(5));
    while st.get(Kind::Pod, &store::key(ns, &name)).is_some() {
        name = format!("{base}-{}", meta::random_suffix(5));
    }
    let mut labels = tmpl["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    for (k, val) in job_labels(v, meta::uid_of(job), job_name) {
        labels[k] = json!(val);
    }
    let mut metadata = json!({
        "name": name, "generateName": format!("{job_name}-"), "namespace": ns, "labels": labels,
        "ownerReferences": [meta::owner_ref(Kind::Job, job, true)],
    });
    if tmpl["metadata"]["annotations"].is_object() {
        metadata["annotations"] = tmpl["metadata"]["annotations"].clone();
    }
    if v.tracking_finalizers() {
        metadata["finalizers"] = json!([TRACKING]);
    }
    let mut spec = tmpl["spec"].clone();
    if let Some(i) = index {
        if !metadata["annotations"].is_object() {
            metadata["annotations"] = json!({});
        }
        metadata["annotations"][INDEX] = json!(i.to_string());
        if v.0 >= 28 {
            metadata["labels"][INDEX] = json!(i.to_string());
        }
        spec["hostname"] = json!(format!("{job_name}-{i}"));
        let env = json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef":
            {"fieldPath": format!("metadata.annotations['{INDEX}']")}}});
        for c in spec["containers"].as_array_mut().into_iter().flatten() {
            if !c["env"].is_array() {
                c["env"] = json!([]);
            }
            if let Some(e) = c["env"].as_array_mut() {
                e.push(env.clone());
            }
        }
    }
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec,
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    })
}
