//! Why a SIGTERM came (SPEC §9). A pod evicted by a drain, preempted or moved off a tainted
//! node carries the condition `DisruptionTarget` while its Job goes on and starts another pod:
//! then the run moves, and its children keep their work for the next attempt. Every other
//! SIGTERM (the parent Job deleted, finished or past its deadline, a plain delete of the pod, a
//! Job that will not try again) ends the run, which deletes its active children.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::Api;

use crate::cluster::{Parent, describe};
use crate::exit::Exit;
use crate::run::job_outcome;

/// How long the reads may take: a pod has 30 s of grace by default, and a run that ends still
/// has its children to delete in it.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// The exit code jobherd leaves with on SIGTERM, which a `podFailurePolicy` rule may name.
const SIGTERM_EXIT: i32 = Exit::Terminated.code();

/// What a SIGTERM means for the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Only the pod goes; the Job starts another one, which adopts the children. The reason
    /// is the condition's (`EvictionByEvictionAPI`, `PreemptionByScheduler`, ...).
    Moving { reason: String },
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
    /// Reads its own pod and its parent Job. What cannot be read in time ends the run: a run
    /// that really ends must not leave its children behind, and when the API cannot be read
    /// the children's deletes do not get through either, so nothing is lost by trying.
    pub async fn why_terminated(&self) -> Verdict {
        match tokio::time::timeout(CHECK_TIMEOUT, self.read()).await {
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

    async fn read(&self) -> Result<(Pod, Option<Job>), String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let pod = pods
            .get(&self.pod)
            .await
            .map_err(|e| format!("its own pod {}: {}", self.pod, describe(&e)))?;
        if disruption(&pod).is_none() || self.parent.kind != "Job" {
            return Ok((pod, None));
        }
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.parent.namespace);
        let job = jobs
            .get_opt(&self.parent.name)
            .await
            .map_err(|e| format!("its parent Job {}: {}", self.parent.name, describe(&e)))?;
        Ok((pod, job))
    }
}

fn ending(why: String) -> Verdict {
    Verdict::Ending { why: Some(why) }
}

/// The decision, from what the pod and its Job say: the pod must be disrupted, and its Job
/// must be there, not being deleted, not finished, within its deadline, and about to start
/// another pod, as its `podFailurePolicy` and `backoffLimit` say.
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
    match job_outcome(job) {
        Some(Ok(())) => return moving_but("its parent Job has ended (it succeeded)"),
        Some(Err((reason, _))) => {
            return moving_but(&format!("its parent Job has ended (it failed: {reason})"));
        }
        None => {}
    }
    let spec = job.spec.as_ref();
    let deadline = spec.and_then(|s| s.active_deadline_seconds);
    let started = job.status.as_ref().and_then(|s| s.start_time.as_ref());
    if let (Some(seconds), Some(started)) = (deadline, started)
        && started.0 + jiff::SignedDuration::from_secs(seconds) <= now
    {
        return moving_but("its parent Job is past its activeDeadlineSeconds");
    }
    match failure_rule(job, pod) {
        Some("Ignore") => Verdict::Moving { reason },
        Some("FailJob") => moving_but("its parent Job's podFailurePolicy fails the Job for it"),
        _ => {
            let failed = job.status.as_ref().and_then(|s| s.failed).unwrap_or(0);
            let limit = spec.and_then(|s| s.backoff_limit).unwrap_or(6);
            if failed < limit {
                Verdict::Moving { reason }
            } else {
                moving_but("its parent Job has reached its backoffLimit: no other pod follows")
            }
        }
    }
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

/// The action of the first `podFailurePolicy` rule that matches this pod once jobherd has
/// exited 143, as the Job controller picks it; `None` when no rule matches.
fn failure_rule<'a>(job: &'a Job, pod: &Pod) -> Option<&'a str> {
    let rules = &job.spec.as_ref()?.pod_failure_policy.as_ref()?.rules;
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    rules.iter().find_map(|rule| {
        let matched = if let Some(codes) = &rule.on_exit_codes {
            let listed = codes.values.contains(&SIGTERM_EXIT);
            match codes.operator.as_str() {
                "In" => listed,
                "NotIn" => !listed,
                _ => false,
            }
        } else {
            rule.on_pod_conditions.iter().flatten().any(|pattern| {
                conditions
                    .iter()
                    .any(|c| c.type_ == pattern.type_ && c.status == pattern.status)
            })
        };
        matched.then_some(rule.action.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(condition: Option<&str>) -> Pod {
        let conditions = match condition {
            Some(reason) => {
                json!([{"type": "DisruptionTarget", "status": "True", "reason": reason}])
            }
            None => json!([{"type": "Ready", "status": "True"}]),
        };
        serde_json::from_value(
            json!({"metadata": {"name": "p"}, "status": {"conditions": conditions}}),
        )
        .unwrap()
    }

    /// The parent as `cronjob.yaml` makes it: exits 1-3 fail it, disruptions are ignored.
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
        let later = job(json!({"spec": {"activeDeadlineSeconds": 2581}}));
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
        assert_eq!(
            verdict(&p, Some(&plain(1)), at(NOW)),
            moving("EvictionByEvictionAPI")
        );
        ends_because(verdict(&p, Some(&plain(2)), at(NOW)), "backoffLimit");
    }

    #[test]
    fn the_first_matching_failure_rule_decides_as_the_job_controller_does() {
        let p = pod(Some("EvictionByEvictionAPI"));
        let mut j = job(json!({}));
        let rules = &mut j
            .spec
            .as_mut()
            .unwrap()
            .pod_failure_policy
            .as_mut()
            .unwrap()
            .rules;
        rules[0].on_exit_codes.as_mut().unwrap().operator = "NotIn".into();
        rules[0].on_exit_codes.as_mut().unwrap().values = vec![0];
        ends_because(verdict(&p, Some(&j), at(NOW)), "podFailurePolicy");
    }
}
