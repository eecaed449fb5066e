//! Why a SIGTERM came (SPEC §9). A pod evicted by a drain, preempted or moved off a tainted
//! node carries the condition `DisruptionTarget` while its Job goes on and starts another pod:
//! then the run moves, and its children keep their work for the next attempt. Every other
//! SIGTERM (the parent Job deleted, finished or past its deadline, a plain delete of the pod, a
//! Job that will not try again) ends the run, which deletes its active children. Where the
//! answer cannot be known (the API does not answer within the check's time, a rule depends on
//! another container's exit code), the run ends: a run that really ends must not leave its
//! children running unwatched.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{
    Job, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::Client;
use kube::api::Api;

use crate::cluster::{Parent, describe, status_code};
use crate::conditions::{Outcome, outcome};
use crate::exit::Exit;

/// How long the reads may take: a pod has 30 s of grace by default, and a run that ends still
/// has its children to delete in it.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// The exit code jobherd leaves with on SIGTERM, which a `podFailurePolicy` rule may name.
const SIGTERM_EXIT: i32 = Exit::Terminated.code();
/// The Job controller's pod-failure back-off: 10 s, doubled per failure, at most 6 minutes.
/// A pod that replaces one a rule ignored still waits for it (KUBERNETES.md: about 9 s).
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// What a SIGTERM means for the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Only the pod goes; the Job starts another one, which adopts the children. The reason
    /// is the condition's (`EvictionByEvictionAPI`, `PreemptionByScheduler`, ...);
    /// `restart_in` about when the next pod starts (the Job controller's back-off).
    Moving {
        reason: String,
        restart_in: Duration,
    },
    /// The run ends. `why` is worth telling when the pod was disrupted yet the run ends, or
    /// when jobherd could not tell.
    Ending { why: Option<String> },
}

/// jobherd's own pod and its parent, read back when a SIGTERM comes.
#[derive(Clone)]
pub struct OwnPod {
    pub client: Client,
    pub pod: String,
    pub namespace: String,
    pub parent: Parent,
}

impl OwnPod {
    /// Reads its own pod and its parent Job, trying again on errors that pass (a 429, a 5xx,
    /// a reset) within `CHECK_TIMEOUT`. What cannot be read in time ends the run: when the
    /// API cannot be read the children's deletes do not get through either, so the next
    /// attempt finds them all the same.
    pub async fn why_terminated(&self) -> Verdict {
        match tokio::time::timeout(CHECK_TIMEOUT, self.read_patiently()).await {
            Ok(Ok((pod, job))) => verdict(&pod, job.as_ref(), Timestamp::now()),
            Ok(Err(e)) => ending(format!(
                "could not read {e}; stopping the run as if it ended"
            )),
            Err(_) => ending(format!(
                "could not read its pod and parent Job within {}s; stopping the run as if it ended",
                CHECK_TIMEOUT.as_secs()
            )),
        }
    }

    async fn read_patiently(&self) -> Result<(Pod, Option<Job>), String> {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.read().await {
                Ok(found) => return Ok(found),
                Err((e, passing)) if passing => {
                    tracing::debug!("reading its pod and parent Job: {e}; trying again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// The pod, and its parent Job when the pod is disrupted; an error says whether it may pass.
    async fn read(&self) -> Result<(Pod, Option<Job>), (String, bool)> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let failed =
            |what: String| move |e: kube::Error| (format!("{what}: {}", describe(&e)), passes(&e));
        let pod = pods
            .get(&self.pod)
            .await
            .map_err(failed(format!("its own pod {}", self.pod)))?;
        if disruption(&pod).is_none() || self.parent.kind != "Job" {
            return Ok((pod, None));
        }
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.parent.namespace);
        let job = jobs
            .get_opt(&self.parent.name)
            .await
            .map_err(failed(format!("its parent Job {}", self.parent.name)))?;
        Ok((pod, job))
    }
}

/// Errors worth another try: throttling, the server's own trouble, and no answer at all.
fn passes(e: &kube::Error) -> bool {
    match status_code(e) {
        Some(code) => code == 429 || code >= 500,
        None => true,
    }
}

fn ending(why: String) -> Verdict {
    Verdict::Ending { why: Some(why) }
}

/// The decision, from what the pod and its Job say: the pod must be disrupted, and its Job
/// must be there, not being deleted, not finished, far enough from its deadline for another
/// pod to start, and about to start one, as its `podFailurePolicy` and `backoffLimit` say.
pub fn verdict(pod: &Pod, job: Option<&Job>, now: Timestamp) -> Verdict {
    let Some(reason) = disruption(pod) else {
        return Verdict::Ending { why: None };
    };
    let moving_but =
        |why: &str| ending(format!("its pod is being disrupted ({reason}), but {why}"));
    let Some(job) = job else {
        return moving_but("it has no parent Job to start another pod");
    };
    if job.metadata.deletion_timestamp.is_some() {
        return moving_but("its parent Job is being deleted");
    }
    match outcome(job) {
        Some(Outcome::Succeeded) => return moving_but("its parent Job has ended (it succeeded)"),
        Some(Outcome::Failed { reason, .. }) => {
            return moving_but(&format!("its parent Job has ended (it failed: {reason})"));
        }
        None => {}
    }
    let failed = job.status.as_ref().and_then(|s| s.failed).unwrap_or(0);
    let restart_in = backoff(failed);
    if let Some(left) = deadline_left(job, now) {
        if left <= jiff::SignedDuration::ZERO {
            return moving_but("its parent Job is past its activeDeadlineSeconds");
        }
        let left = Duration::try_from(left).unwrap_or_default();
        if left <= restart_in {
            return moving_but(&format!(
                "its parent Job's activeDeadlineSeconds passes in {}s, before another pod would start (the Job controller waits about {}s): moving would be futile",
                left.as_secs(),
                restart_in.as_secs()
            ));
        }
    }
    let limit = job.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(6);
    match failure_rule(job, pod) {
        Rule::Action("Ignore") => Verdict::Moving { reason, restart_in },
        Rule::Action("FailJob") => {
            moving_but("its parent Job's podFailurePolicy fails the Job for it")
        }
        Rule::Action("Count") | Rule::None if failed < limit => {
            Verdict::Moving { reason, restart_in }
        }
        Rule::Action("Count") | Rule::None => {
            moving_but("its parent Job has reached its backoffLimit: no other pod follows")
        }
        Rule::Action(other) => moving_but(&format!(
            "its parent Job's podFailurePolicy takes action {other} for it"
        )),
        Rule::Unknown(why) => moving_but(&format!(
            "whether its parent Job starts another pod cannot be told: {why}"
        )),
    }
}

/// The Job controller's back-off before it replaces a failed pod, after `failed` failures.
fn backoff(failed: i32) -> Duration {
    let doublings = failed.clamp(0, 6) as u32;
    (BACKOFF_BASE * 2u32.pow(doublings)).min(BACKOFF_MAX)
}

/// How long until the Job's `activeDeadlineSeconds` passes, if it has one.
fn deadline_left(job: &Job, now: Timestamp) -> Option<jiff::SignedDuration> {
    let seconds = job.spec.as_ref()?.active_deadline_seconds?;
    let started = job.status.as_ref()?.start_time.as_ref()?.0;
    Some((started + jiff::SignedDuration::from_secs(seconds)).duration_since(now))
}

/// The reason of the pod's `DisruptionTarget=True` condition.
fn disruption(pod: &Pod) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| c.type_ == "DisruptionTarget" && c.status == "True")
        .map(|c| {
            c.reason
                .clone()
                .unwrap_or_else(|| "DisruptionTarget".into())
        })
}

/// What the Job's `podFailurePolicy` does with the pod once jobherd has exited 143.
#[derive(Debug, PartialEq)]
enum Rule<'a> {
    /// The first matching rule's action.
    Action(&'a str),
    /// No rule matches: the failure counts against `backoffLimit`.
    None,
    /// A rule may match or not, depending on what cannot be known yet.
    Unknown(String),
}

/// Does as the Job controller does: the rules in order, the first that matches decides. A
/// rule on exit codes looks at every container (init containers too) that ended with another
/// code than 0, restricted to `containerName` when it is set; jobherd's container will end
/// with 143; another container that has not ended yet could end with anything.
fn failure_rule<'a>(job: &'a Job, pod: &Pod) -> Rule<'a> {
    let Some(policy) = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref())
    else {
        return Rule::None;
    };
    let own = own_container(pod);
    for rule in &policy.rules {
        match rule_matches(rule, pod, own) {
            Some(true) => return Rule::Action(rule.action.as_str()),
            Some(false) => {}
            None => {
                return Rule::Unknown(format!(
                    "its podFailurePolicy rule with action {} looks at the exit codes of containers other than jobherd's, which have not ended yet",
                    rule.action
                ));
            }
        }
    }
    Rule::None
}

/// Whether a rule matches; `None` when that depends on what cannot be known yet.
fn rule_matches(rule: &PodFailurePolicyRule, pod: &Pod, own: Option<&str>) -> Option<bool> {
    if let Some(codes) = &rule.on_exit_codes {
        return exit_codes_match(codes, pod, own);
    }
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let patterns = rule.on_pod_conditions.as_deref().unwrap_or_default();
    Some(patterns.iter().any(|p| {
        conditions
            .iter()
            .any(|c| c.type_ == p.type_ && c.status == p.status)
    }))
}

/// At least one container's exit code (0 excluded) satisfies the operator.
fn exit_codes_match(
    codes: &PodFailurePolicyOnExitCodesRequirement,
    pod: &Pod,
    own: Option<&str>,
) -> Option<bool> {
    let satisfies = |code: i32| match codes.operator.as_str() {
        "In" => codes.values.contains(&code),
        "NotIn" => !codes.values.contains(&code),
        // As the Job controller: an operator it does not know is not satisfied.
        _ => false,
    };
    let looked_at = |name: &str| codes.container_name.as_deref().is_none_or(|n| n == name);
    // jobherd's own container ends with 143.
    if own.is_some_and(looked_at) && satisfies(SIGTERM_EXIT) {
        return Some(true);
    }
    let status = pod.status.as_ref();
    let others = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default()
        .iter()
        .chain(
            status
                .and_then(|s| s.init_container_statuses.as_deref())
                .unwrap_or_default(),
        )
        .filter(|c| Some(c.name.as_str()) != own && looked_at(&c.name));
    let mut unknown = own.is_none();
    for c in others {
        match exit_code(c) {
            Some(0) => {}
            Some(code) if satisfies(code) => return Some(true),
            Some(_) => {}
            None => unknown = true,
        }
    }
    if unknown { None } else { Some(false) }
}

/// Another container's exit code as the Job controller will see it: its code when it has
/// ended, else anything (`None`).
fn exit_code(c: &ContainerStatus) -> Option<i32> {
    let terminated = c.state.as_ref().and_then(|s| s.terminated.as_ref());
    terminated.map(|t| t.exit_code)
}

/// Which of the pod's containers is jobherd: the only one, or the one named `jobherd`, or the
/// one whose image is jobherd's.
fn own_container(pod: &Pod) -> Option<&str> {
    let containers = &pod.spec.as_ref()?.containers;
    if let [only] = containers.as_slice() {
        return Some(&only.name);
    }
    let by_name = containers.iter().find(|c| c.name == "jobherd");
    let by_image = || {
        containers.iter().find(|c| {
            let image = c.image.as_deref().unwrap_or_default();
            let last = image.split('@').next().unwrap_or_default();
            let last = last.rsplit('/').next().unwrap_or_default();
            last.split(':').next() == Some("jobherd")
        })
    };
    by_name.or_else(by_image).map(|c| c.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(condition: Option<&str>) -> Pod {
        with_sidecar(condition, None)
    }

    /// jobherd's pod, running; with a sidecar `istio-proxy` running (`None`) or ended with a
    /// code.
    fn with_sidecar(condition: Option<&str>, sidecar: Option<Option<i32>>) -> Pod {
        let conditions = match condition {
            Some(reason) => {
                json!([{"type": "DisruptionTarget", "status": "True", "reason": reason}])
            }
            None => json!([{"type": "Ready", "status": "True"}]),
        };
        let status = |name: &str, code: Option<i32>| {
            let state = match code {
                Some(c) => json!({"terminated": {"exitCode": c}}),
                None => json!({"running": {}}),
            };
            json!({"name": name, "image": "i", "imageID": "", "ready": true,
                   "restartCount": 0, "state": state})
        };
        let mut containers = vec![json!({"name": "jobherd", "image": "jobherd:0.1.0"})];
        let mut statuses = vec![status("jobherd", None)];
        if let Some(code) = sidecar {
            containers.push(json!({"name": "istio-proxy", "image": "istio/proxyv2"}));
            statuses.push(status("istio-proxy", code));
        }
        serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": containers},
            "status": {"conditions": conditions, "containerStatuses": statuses}}))
        .unwrap()
    }

    /// The parent as `cronjob.yaml` makes it: exits 1-3 fail it, disruptions are ignored.
    /// The Job's `podFailurePolicy` rules, to change for one case.
    fn rules(j: &mut Job) -> &mut Vec<PodFailurePolicyRule> {
        &mut j
            .spec
            .as_mut()
            .unwrap()
            .pod_failure_policy
            .as_mut()
            .unwrap()
            .rules
    }

    fn job(extra: serde_json::Value) -> Job {
        let mut j = json!({
            "metadata": {"name": "nightly"},
            "spec": {"backoffLimit": 2, "template": {},
              "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1, 2, 3]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}},
            "status": {"startTime": "2026-12-01T03:17:00Z", "active": 1}
        });
        merge(&mut j, extra);
        serde_json::from_value(j).unwrap()
    }

    fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
        match (into, from) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (slot, v) => *slot = v,
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-12-01T04:00:00Z";

    fn moving(reason: &str) -> Verdict {
        Verdict::Moving {
            reason: reason.into(),
            restart_in: Duration::from_secs(10),
        }
    }

    fn moves(v: Verdict, reason: &str) {
        match v {
            Verdict::Moving { reason: r, .. } => assert_eq!(r, reason),
            other => panic!("expected the run to move, got {other:?}"),
        }
    }

    fn ends_because(v: Verdict, words: &str) {
        match v {
            Verdict::Ending { why: Some(why) } => assert!(why.contains(words), "{why}"),
            other => panic!("expected the run to end because {words}, got {other:?}"),
        }
    }

    #[test]
    fn an_evicted_pod_of_a_job_that_goes_on_moves() {
        let v = verdict(
            &pod(Some("EvictionByEvictionAPI")),
            Some(&job(json!({}))),
            at(NOW),
        );
        assert_eq!(v, moving("EvictionByEvictionAPI"));
        let v = verdict(
            &pod(Some("PreemptionByScheduler")),
            Some(&job(json!({}))),
            at(NOW),
        );
        assert_eq!(v, moving("PreemptionByScheduler"));
    }

    #[test]
    fn a_plain_delete_ends_the_run_without_reading_the_job() {
        assert_eq!(
            verdict(&pod(None), None, at(NOW)),
            Verdict::Ending { why: None }
        );
    }

    #[test]
    fn a_disrupted_pod_whose_job_is_gone_deleted_or_finished_ends_the_run() {
        let p = pod(Some("EvictionByEvictionAPI"));
        ends_because(verdict(&p, None, at(NOW)), "no parent Job");
        let deleting = job(json!({"metadata": {"deletionTimestamp": "2026-12-01T03:59:00Z"}}));
        ends_because(verdict(&p, Some(&deleting), at(NOW)), "being deleted");
        let failed = job(json!({"status": {"conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}]}}));
        ends_because(
            verdict(&p, Some(&failed), at(NOW)),
            "has ended (it failed: DeadlineExceeded)",
        );
    }

    #[test]
    fn a_disrupted_pod_past_its_jobs_deadline_ends_the_run() {
        let p = pod(Some("EvictionByEvictionAPI"));
        let deadline = job(json!({"spec": {"activeDeadlineSeconds": 2580}}));
        ends_because(
            verdict(&p, Some(&deadline), at(NOW)),
            "activeDeadlineSeconds",
        );
        // 5s left, and the Job controller waits about 10s before the next pod: futile.
        let soon = job(json!({"spec": {"activeDeadlineSeconds": 2585}}));
        ends_because(verdict(&p, Some(&soon), at(NOW)), "moving would be futile");
        let later = job(json!({"spec": {"activeDeadlineSeconds": 2600}}));
        assert_eq!(
            verdict(&p, Some(&later), at(NOW)),
            moving("EvictionByEvictionAPI")
        );
    }

    #[test]
    fn without_an_ignore_rule_the_backoff_limit_decides() {
        let p = pod(Some("EvictionByEvictionAPI"));
        let plain = |failed: i32| {
            let mut j = job(json!({"status": {"failed": failed}}));
            j.spec.as_mut().unwrap().pod_failure_policy = None;
            j
        };
        moves(
            verdict(&p, Some(&plain(1)), at(NOW)),
            "EvictionByEvictionAPI",
        );
        ends_because(verdict(&p, Some(&plain(2)), at(NOW)), "backoffLimit");
    }

    #[test]
    fn the_first_matching_failure_rule_decides_as_the_job_controller_does() {
        let p = pod(Some("EvictionByEvictionAPI"));
        let mut j = job(json!({}));
        let codes = rules(&mut j)[0].on_exit_codes.as_mut().unwrap();
        codes.operator = "NotIn".into();
        codes.values = vec![0];
        ends_because(verdict(&p, Some(&j), at(NOW)), "podFailurePolicy");
    }

    #[test]
    fn a_rule_on_jobherds_container_ignores_a_sidecar() {
        let mut j = job(json!({}));
        let codes = rules(&mut j)[0].on_exit_codes.as_mut().unwrap();
        codes.container_name = Some("jobherd".into());
        let p = with_sidecar(Some("EvictionByEvictionAPI"), Some(None));
        moves(verdict(&p, Some(&j), at(NOW)), "EvictionByEvictionAPI");
    }

    #[test]
    fn a_rule_that_depends_on_a_running_sidecars_exit_code_ends_the_run() {
        let running = with_sidecar(Some("EvictionByEvictionAPI"), Some(None));
        ends_because(
            verdict(&running, Some(&job(json!({}))), at(NOW)),
            "cannot be told",
        );
        // A sidecar that ended with 0 is not looked at, as the Job controller does.
        let ended = with_sidecar(Some("EvictionByEvictionAPI"), Some(Some(0)));
        moves(
            verdict(&ended, Some(&job(json!({}))), at(NOW)),
            "EvictionByEvictionAPI",
        );
        // One that ended with 2 matches the FailJob rule.
        let failed = with_sidecar(Some("EvictionByEvictionAPI"), Some(Some(2)));
        ends_because(
            verdict(&failed, Some(&job(json!({}))), at(NOW)),
            "podFailurePolicy fails the Job",
        );
    }

    #[test]
    fn a_rule_on_exit_code_143_decides_before_the_disruption_rule() {
        let mut j = job(json!({}));
        rules(&mut j)[0].on_exit_codes.as_mut().unwrap().values = vec![143];
        let p = pod(Some("EvictionByEvictionAPI"));
        ends_because(
            verdict(&p, Some(&j), at(NOW)),
            "podFailurePolicy fails the Job",
        );
        // A Count rule first: the failure counts against backoffLimit (2), 1 so far.
        rules(&mut j)[0].action = "Count".into();
        j.status.as_mut().unwrap().failed = Some(1);
        moves(verdict(&p, Some(&j), at(NOW)), "EvictionByEvictionAPI");
        j.status.as_mut().unwrap().failed = Some(2);
        ends_because(verdict(&p, Some(&j), at(NOW)), "backoffLimit");
    }
}
