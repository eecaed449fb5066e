//! Building runs and feeding them events, for the unit tests of what reads or drives a run.

use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;

use super::{At, Change, Effect, Event, Reaction, Rules, Run, Transition};
use crate::child::{self, Identity, RUN_LABEL};
use crate::config::{LogsMode, StepSettings};

pub(crate) const RULES: Rules = Rules {
    parallelism: None,
    fail_fast: false,
    stuck_timeout: Duration::from_secs(10),
    logs: LogsMode::Failed,
};

pub(crate) fn identity() -> Identity {
    Identity {
        run_id: "r".into(),
        prefix: "r".into(),
        namespace: Some("ns".into()),
        owner: None,
    }
}

pub(crate) fn defaults() -> StepSettings {
    StepSettings {
        image: Some("busybox".into()),
        ..Default::default()
    }
}

/// A run of plan steps `(name, depends_on)`; child `i` is step `i`, named `r-<step>`.
pub(crate) fn plan_run(steps: &[(&str, &[&str])], rules: &Rules) -> Run {
    let steps: Vec<serde_json::Value> = steps
        .iter()
        .map(|(name, deps)| serde_json::json!({"name": name, "depends_on": deps}))
        .collect();
    let text = serde_json::json!({ "steps": steps }).to_string();
    let plan = crate::plan::parse(&text, "test", std::path::Path::new("")).unwrap();
    let children = child::children(&defaults(), Some(&plan), &identity()).unwrap();
    Run::new(children, rules, "r", At::now())
}

/// A run of `n` children without a plan, named `r-0` .. `r-<n-1>`.
pub(crate) fn fan_out(n: u32, rules: &Rules) -> Run {
    Run::fanned_out("r", n, rules)
}

pub(crate) fn job(name: &str, conditions: &[(&str, &str)], active: i32) -> Job {
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

pub(crate) fn apply(run: &mut Run, event: Event) -> Reaction {
    run.apply(event, At::now())
}

pub(crate) fn seen(run: &mut Run, job: Job) -> Reaction {
    apply(run, Event::Jobs(Box::new(watcher::Event::Apply(job))))
}

/// The first list of the Job watch, showing `existing`; returns what it started.
pub(crate) fn listed(run: &mut Run, existing: Vec<Job>) -> Reaction {
    let mut out = apply(run, Event::Jobs(Box::new(watcher::Event::Init)));
    for job in existing {
        out.transitions
            .extend(apply(run, Event::Jobs(Box::new(watcher::Event::InitApply(job)))).transitions);
    }
    let done = apply(run, Event::Jobs(Box::new(watcher::Event::InitDone)));
    out.transitions.extend(done.transitions);
    out.effects.extend(done.effects);
    out
}

pub(crate) fn creates(r: &Reaction) -> Vec<usize> {
    r.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Create { index, .. } => Some(*index),
            _ => None,
        })
        .collect()
}

/// The children a reaction deletes.
pub(crate) fn deleted(r: &Reaction) -> Vec<usize> {
    r.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Delete(targets) => Some(targets.iter().map(|t| t.index)),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Whether a reaction asks for a child's output.
pub(crate) fn reads_output(r: &Reaction, child: usize) -> bool {
    r.effects
        .iter()
        .any(|e| matches!(e, Effect::ReadOutput { index, .. } if *index == child))
}

pub(crate) fn changes(r: &Reaction) -> Vec<(usize, Change)> {
    r.transitions
        .iter()
        .filter_map(|t| match t {
            Transition::Child { index, change } => Some((*index, change.clone())),
            Transition::Stopping(_) | Transition::Moving { .. } | Transition::Note(_) => None,
        })
        .collect()
}

/// A run of a plan given as JSON text; children are named `r-<step>`.
pub(crate) fn run_of_plan(text: &str, rules: &Rules) -> Run {
    let plan = crate::plan::parse(text, "test", std::path::Path::new("")).unwrap();
    let children = child::children(&defaults(), Some(&plan), &identity()).unwrap();
    Run::new(children, rules, "r", At::now())
}

/// A child that succeeds: its pod first, writing `message`, then its Job.
pub(crate) fn succeed(run: &mut Run, name: &str, message: Option<&str>) -> Reaction {
    apply(
        run,
        Event::Pods(Box::new(watcher::Event::Apply(succeeded_pod(
            name, message,
        )))),
    );
    seen(run, job(name, &[("Complete", "")], 0))
}

/// A child's pod that succeeded, its container having written `message`.
pub(crate) fn succeeded_pod(job: &str, message: Option<&str>) -> Pod {
    let mut terminated = serde_json::json!({"exitCode": 0, "reason": "Completed"});
    if let Some(m) = message {
        terminated["message"] = m.into();
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{job}-ok"), "uid": format!("p-ok-{job}"), "labels": {"job-name": job}},
        "spec": {"containers": [{"name": job, "image": "i"}]},
        "status": {"phase": "Succeeded",
          "containerStatuses": [{"name": job, "image": "i", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": terminated}}]}
    }))
    .unwrap()
}
