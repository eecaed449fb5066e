//! Re-running what failed (SPEC §7, `JOBHERD_RETRY`): a later run of the same configuration
//! reads an earlier run back from its record (`record.rs`), or from its children when it left
//! none, and takes over what succeeded there; or refuses with the reason it cannot.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::child::{Children, RUN_LABEL, StepShape, same_shape};
use crate::cluster::{ClusterError, Parent};
use crate::conditions::{Outcome, outcome};
use crate::config::{LAST_FAILED, RetryFrom};
use crate::outputs::Output;
use crate::pack::{COMPLETION_INDEX, MEMBERS, PACK_LABEL, PACK_STEP, parse_ranges};
use crate::plan::When;
use crate::record::{RECORD, Record, SUMMARY};
use crate::run::EarlierChild;

#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// The earlier run cannot be used (exit 2: nothing is created).
    #[error("JOBHERD_RETRY={wanted}: {problem}")]
    Unusable { wanted: String, problem: String },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Why two shapes differ, in the user's words; `None` when they match. Dependencies may
/// change: what succeeded stays done. How many children a `params_from` step has is its
/// source's result's, not the configuration's.
fn differences(earlier: &[StepShape], now: &[StepShape]) -> Option<String> {
    if same_shape(earlier, now) {
        return None;
    }
    let plan = |s: &[StepShape]| s.iter().any(|step| step.name.is_some());
    if !plan(earlier) && !plan(now) {
        let count = |s: &[StepShape]| s.iter().map(|step| step.children).sum::<usize>();
        return Some(format!(
            "the earlier run had {} children, this configuration has {} (JOBHERD_COUNT or JOBHERD_PARAMS differ)",
            count(earlier),
            count(now)
        ));
    }
    if plan(earlier) != plan(now) {
        return Some("one of the runs has a plan and the other has none".into());
    }
    let name = |s: &StepShape| s.name.clone().unwrap_or_default();
    let before: HashMap<String, &StepShape> = earlier.iter().map(|s| (name(s), s)).collect();
    let after: HashMap<String, &StepShape> = now.iter().map(|s| (name(s), s)).collect();
    let mut parts = Vec::new();
    let gone: Vec<String> = earlier
        .iter()
        .map(name)
        .filter(|n| !after.contains_key(n))
        .collect();
    let new: Vec<String> = now
        .iter()
        .map(name)
        .filter(|n| !before.contains_key(n))
        .collect();
    if !gone.is_empty() {
        parts.push(format!("steps no longer in the plan: {}", gone.join(", ")));
    }
    if !new.is_empty() {
        parts.push(format!("steps new in the plan: {}", new.join(", ")));
    }
    parts.extend(step_differences(&before, now));
    if parts.is_empty() {
        parts.push("the plan's steps come in another order".into());
    }
    Some(parts.join("; "))
}

/// How the steps both runs have differ, step by step.
fn step_differences(before: &HashMap<String, &StepShape>, now: &[StepShape]) -> Vec<String> {
    let name = |s: &StepShape| s.name.clone().unwrap_or_default();
    let mut parts = Vec::new();
    for step in now {
        let Some(was) = before.get(&name(step)) else {
            continue;
        };
        if was.dynamic != step.dynamic {
            let n = name(step);
            parts.push(format!(
                "step {n} fans out over another step's result (params_from) in one run and not in the other"
            ));
        } else if step.dynamic {
            continue;
        } else if was.children != step.children {
            let n = name(step);
            parts.push(format!(
                "step {n} had {} children, now {}",
                was.children, step.children
            ));
        } else if was.fanned_out != step.fanned_out {
            let n = name(step);
            parts.push(format!("step {n} fans out in one run and not in the other"));
        }
    }
    parts
}

/// What a retry takes over: the earlier run's name, and for each child it succeeded with, the
/// run that did it (the earlier run, or one it had itself taken over from).
#[derive(Debug, Clone, PartialEq)]
pub struct Inherited {
    pub from: String,
    pub done: Vec<EarlierChild>,
}

/// Where a retry looks: the namespace of the parents, and this run's own parent, if any.
pub struct Lookup<'a> {
    pub client: &'a Client,
    pub namespace: &'a str,
    pub parent: Option<&'a Parent>,
    pub prefix: &'a str,
}

/// Reads the earlier run a retry starts from, and checks that this run can take it over.
pub async fn earlier_run(
    lookup: &Lookup<'_>,
    wanted: &RetryFrom,
    children: &Children,
) -> Result<Inherited, RetryError> {
    let jobs: Api<Job> = Api::namespaced(lookup.client.clone(), lookup.namespace);
    let shown = match wanted {
        RetryFrom::Job(name) => name.clone(),
        RetryFrom::LastFailed => LAST_FAILED.to_string(),
    };
    let refuse = |problem: String| RetryError::Unusable {
        wanted: shown.clone(),
        problem,
    };
    let earlier = find_earlier(&jobs, lookup, wanted).await?.map_err(refuse)?;
    let name = earlier.name_any();
    if lookup
        .parent
        .is_some_and(|p| p.kind == "Job" && p.name == name)
    {
        return Err(refuse("that is this run's own parent Job".into()));
    }
    check_finished(&earlier).map_err(&refuse)?;
    let done = match earlier.annotations().get(RECORD) {
        Some(text) => from_record(text, children, lookup.prefix).map_err(&refuse)?,
        None => {
            let pods: Api<Pod> = Api::namespaced(lookup.client.clone(), lookup.namespace);
            let found = Found {
                jobs: &jobs,
                pods: &pods,
                namespace: lookup.namespace,
            };
            from_children(&found, &earlier, children)
                .await?
                .map_err(&refuse)?
        }
    };
    Ok(Inherited {
        from: name,
        done: taken_over(done, children),
    })
}

/// The earlier parent Job a retry names, or why there is none to use.
async fn find_earlier(
    jobs: &Api<Job>,
    lookup: &Lookup<'_>,
    wanted: &RetryFrom,
) -> Result<Result<Job, String>, ClusterError> {
    match wanted {
        RetryFrom::Job(name) => {
            let found = jobs
                .get_opt(name)
                .await
                .map_err(|e| ClusterError::from_kube("get", "jobs", lookup.namespace, e))?;
            Ok(found
                .ok_or_else(|| format!("no Job named {name} in namespace {}", lookup.namespace)))
        }
        RetryFrom::LastFailed => last_failed(jobs, lookup).await,
    }
}

/// What a retry takes over of what the earlier run did. Steps that run on failure or always
/// answer the run they are in: a retry's `notify` tells the retry's outcome, and its `revert`
/// runs only when the retry needs one.
fn taken_over(done: Vec<Done>, children: &Children) -> Vec<EarlierChild> {
    let mut origins: HashMap<String, Arc<str>> = HashMap::new();
    let answers_its_run = |d: &Done| children.steps()[d.step].when != When::Succeeded;
    done.into_iter()
        .filter(|d| !answers_its_run(d))
        .map(|d| {
            let run = origins
                .entry(d.run)
                .or_insert_with_key(|r| Arc::from(r.as_str()));
            EarlierChild {
                step: d.step,
                position: d.position,
                run: run.clone(),
                output: d.output,
            }
        })
        .collect()
}

/// A child an earlier run succeeded with, as read back: its step and place in it, the run that
/// did it, and its result.
pub(crate) struct Done {
    pub(crate) step: usize,
    pub(crate) position: usize,
    pub(crate) run: String,
    pub(crate) output: Output,
}

/// The earlier parent must be a jobherd parent that is no longer running.
fn check_finished(earlier: &Job) -> Result<(), String> {
    let is_jobherd = earlier.annotations().contains_key(RECORD)
        || earlier.annotations().contains_key(SUMMARY)
        || runs_jobherd(earlier);
    if !is_jobherd {
        return Err(format!(
            "Job {} is not a jobherd parent (no {RECORD} annotation, and its pods do not run jobherd)",
            earlier.name_any()
        ));
    }
    let status = earlier.status.as_ref();
    let active = status.and_then(|s| s.active).unwrap_or(0);
    let terminating = status.and_then(|s| s.terminating).unwrap_or(0);
    let moved = earlier
        .annotations()
        .get(RECORD)
        .and_then(|t| Record::parse(t).ok())
        .is_some_and(|r| r.moved.is_some());
    if outcome(earlier).is_none() && (active > 0 || terminating > 0 || moved) {
        return Err(format!(
            "Job {} is still running; retry it once it has finished (kubectl wait --for=condition=complete or failed)",
            earlier.name_any()
        ));
    }
    Ok(())
}

/// A Job whose pods run jobherd: its image is named jobherd, or it sets JOBHERD_* variables.
fn runs_jobherd(job: &Job) -> bool {
    let containers = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers.as_slice())
        .unwrap_or_default();
    containers.iter().any(|c| {
        let image = c.image.as_deref().unwrap_or_default();
        let last = image
            .split('@')
            .next()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default();
        last.split(':').next() == Some("jobherd")
            || c.env
                .iter()
                .flatten()
                .any(|e| e.name.starts_with("JOBHERD_"))
    })
}

fn from_record(text: &str, children: &Children, prefix: &str) -> Result<Vec<Done>, String> {
    let record = Record::parse(text)?;
    if let Some(diff) = differences(&record.shape(), &children.shape()) {
        return Err(format!(
            "this configuration does not match the earlier run's: {diff}"
        ));
    }
    if record.prefix == prefix {
        return Err(format!(
            "the earlier run used the same child name prefix {prefix:?}: its children's names would be taken; give this run another JOBHERD_NAME_PREFIX"
        ));
    }
    // Where each earlier child was: `params_from` steps' children come after the others.
    let layout = Children::from_shape(&record.prefix, &record.shape());
    let needed = |step: usize| {
        children
            .steps()
            .iter()
            .any(|s| s.depends_on.contains(&step))
    };
    let mut done = Vec::new();
    for (index, run) in record.succeeded()? {
        if index >= layout.len() {
            return Err(format!(
                "its {RECORD} annotation names a child it does not have"
            ));
        }
        let step = layout.get(index).step;
        let position = index - layout.steps()[step].children.start;
        let output = match record.outputs_of(step).and_then(|r| r.get(position)) {
            Some(result) => Output::from_message(result.as_deref()),
            // A step whose result the steps after it need runs again when it was not kept.
            None if record.outputs_left_out && needed(step) => continue,
            None => Output::Absent,
        };
        done.push(Done {
            step,
            position,
            run,
            output,
        });
    }
    Ok(done)
}

/// Where a retry without a record looks: the earlier run's Jobs and pods.
struct Found<'a> {
    jobs: &'a Api<Job>,
    pods: &'a Api<Pod>,
    namespace: &'a str,
}

/// Without a record (an older jobherd, or a run that died before writing it): the earlier
/// run's children that still exist tell which succeeded, and their pods what they gave.
async fn from_children(
    at: &Found<'_>,
    earlier: &Job,
    children: &Children,
) -> Result<Result<Vec<Done>, String>, ClusterError> {
    let namespace = at.namespace;
    let uid = earlier.uid().unwrap_or_default();
    let params = ListParams::default().labels(&format!("{RUN_LABEL}={uid}"));
    let found = at
        .jobs
        .list(&params)
        .await
        .map_err(|e| ClusterError::from_kube("list", "jobs", namespace, e))?;
    if found.items.is_empty() {
        return Ok(Err(format!(
            "Job {} left no {RECORD} record and none of its children are left (cleaned up, or removed by their TTL): a retry would run everything again; start a new run instead",
            earlier.name_any()
        )));
    }
    let pods = at
        .pods
        .list(&params)
        .await
        .map_err(|e| ClusterError::from_kube("list", "pods", namespace, e))?;
    let by_label: HashMap<String, usize> = (0..children.len())
        .map(|i| (children.label(i).into_owned(), i))
        .collect();
    let done: Result<Vec<Vec<Done>>, String> = found
        .items
        .iter()
        .map(|job| succeeded_of(children, &by_label, job, &pods.items, earlier))
        .collect();
    Ok(done.map(|d| d.into_iter().flatten().collect()))
}

/// The succeeded children of one of the earlier run's Jobs: the child it is, or those of a
/// pack; why not, when they have no counterpart in this configuration.
fn succeeded_of(
    children: &Children,
    by_label: &HashMap<String, usize>,
    job: &Job,
    pods: &[Pod],
    earlier: &Job,
) -> Result<Vec<Done>, String> {
    let mismatch = |what: String| {
        format!("this configuration does not match the earlier run's: {what} no counterpart here")
    };
    if job.labels().contains_key(PACK_LABEL) {
        return pack_done(children, job, pods, earlier).ok_or_else(|| {
            mismatch(format!(
                "its pack {} holds children that have",
                job.name_any()
            ))
        });
    }
    let label = job
        .labels()
        .get(crate::child::STEP_LABEL)
        .map(String::as_str)
        .unwrap_or_default();
    let Some((step, position)) = place_of(children, by_label, label) else {
        let which = format!("its child {} (step {label:?}) has", job.name_any());
        return Err(mismatch(which));
    };
    if outcome(job) != Some(Outcome::Succeeded) {
        return Ok(Vec::new());
    }
    Ok(vec![Done {
        step,
        position,
        run: earlier.name_any(),
        output: written(pods, job, None),
    }])
}

/// The succeeded children of an earlier run's pack: its step and its children's places from
/// its annotations, which of them succeeded from its `completedIndexes`, and what each wrote
/// from its pod of that completion index. `None` when the pack does not fit these children.
fn pack_done(children: &Children, pack: &Job, pods: &[Pod], earlier: &Job) -> Option<Vec<Done>> {
    let annotations = pack.annotations();
    let step_name = annotations.get(PACK_STEP)?;
    let step = children
        .steps()
        .iter()
        .position(|s| s.name.as_deref().unwrap_or_default() == step_name)?;
    let positions = parse_ranges(annotations.get(MEMBERS)?)?;
    let completed = pack
        .status
        .as_ref()
        .and_then(|s| s.completed_indexes.as_deref())
        .unwrap_or_default();
    let mut done = Vec::new();
    for index in parse_ranges(completed)? {
        done.push(Done {
            step,
            position: *positions.get(index)?,
            run: earlier.name_any(),
            output: written(pods, pack, Some(index)),
        });
    }
    Some(done)
}

/// What the succeeded pod of a Job wrote (of its completion `index`, for a pack).
fn written(pods: &[Pod], job: &Job, index: Option<usize>) -> Output {
    let index = index.map(|i| i.to_string());
    pods.iter()
        .filter(|p| p.labels().get("job-name") == Some(&job.name_any()))
        .filter(|p| index.is_none() || p.annotations().get(COMPLETION_INDEX) == index.as_ref())
        .find_map(crate::run::pod_output)
        .unwrap_or(Output::Absent)
}

/// A child's step and place in it, from its `jobherd.io/step` label: a child of the same
/// configuration, or `<step>-<index>` of a `params_from` step.
fn place_of(
    children: &Children,
    by_label: &HashMap<String, usize>,
    label: &str,
) -> Option<(usize, usize)> {
    if let Some(&index) = by_label.get(label) {
        let step = children.get(index).step;
        return Some((step, index - children.steps()[step].children.start));
    }
    let (step, position) = label.rsplit_once('-')?;
    let position = position.parse().ok()?;
    let step = children
        .steps()
        .iter()
        .position(|s| s.source.is_some() && s.name.as_deref() == Some(step))?;
    Some((step, position))
}

/// The newest failed Job of the CronJob that made this run's parent (other than the parent).
async fn last_failed(
    jobs: &Api<Job>,
    lookup: &Lookup<'_>,
) -> Result<Result<Job, String>, ClusterError> {
    let Some(parent) = lookup.parent.filter(|p| p.kind == "Job") else {
        return Ok(Err(
            "last-failed needs a parent Job made from a CronJob (kubectl create job --from=cronjob/NAME), or JOBHERD_TRIGGER=cronjob/NAME".into(),
        ));
    };
    let own = jobs
        .get(&parent.name)
        .await
        .map_err(|e| ClusterError::from_kube("get", "jobs", lookup.namespace, e))?;
    let Some(cronjob) = own
        .owner_references()
        .iter()
        .find(|o| o.kind == "CronJob")
        .cloned()
    else {
        return Ok(Err(format!(
            "last-failed needs a parent made from a CronJob; Job {} has no CronJob owner",
            parent.name
        )));
    };
    newest_failed(
        jobs,
        lookup.namespace,
        (&cronjob.name, &cronjob.uid),
        &parent.name,
    )
    .await
}

/// The newest failed run (parent Job) of a CronJob, other than `except`.
pub async fn newest_failed(
    jobs: &Api<Job>,
    namespace: &str,
    (cronjob, uid): (&str, &str),
    except: &str,
) -> Result<Result<Job, String>, ClusterError> {
    // Parents carry no run label; children do, and there can be thousands of them.
    let params = ListParams::default().labels(&format!("!{RUN_LABEL}"));
    let all = jobs
        .list(&params)
        .await
        .map_err(|e| ClusterError::from_kube("list", "jobs", namespace, e))?;
    let newest = all
        .items
        .into_iter()
        .filter(|j| j.name_any() != except)
        .filter(|j| j.owner_references().iter().any(|o| o.uid == uid))
        .filter(failed_run)
        .max_by_key(|j| j.creation_timestamp().map(|t| t.0));
    Ok(newest.ok_or_else(|| format!("cronjob/{cronjob} has no failed run to retry")))
}

/// A parent run that ended without every child succeeding: its record says so, or the Job
/// failed (jobherd exited non-zero). A run whose record says it moved is not over while its
/// Job goes on (the next pod is about to start): retrying it would run its work twice.
fn failed_run(job: &Job) -> bool {
    match job.annotations().get(RECORD).map(|t| Record::parse(t)) {
        Some(Ok(record)) if record.moved.is_some() => {
            matches!(outcome(job), Some(Outcome::Failed { .. }))
        }
        Some(Ok(record)) => record.exit_code != 0,
        _ => matches!(outcome(job), Some(Outcome::Failed { .. })),
    }
}

#[cfg(test)]
mod tests;
