//! The durable record of a run, on its parent Job (annotation `jobherd.io/outcome`): its exit
//! code, whether it moved, its child name prefix, the shape of its steps, every child's result,
//! compact enough for 10,000 children, the outputs (SPEC §8) of the steps that others depend
//! on, and what it counted of children that queued, were preempted or tried more than once.
//! The next attempt of the same run starts from it ([`Record::resumed`]); `retry` reads it to
//! take over what succeeded; `trigger` reads it, with the children left in the cluster, to
//! report a run from outside.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::{Client, ResourceExt};
use serde::{Deserialize, Serialize};

use crate::child::{Children, STEP_LABEL, StepShape, same_shape};
use crate::cluster::Parent;
use crate::conditions::{Outcome, outcome};
use crate::config::LogsMode;
use crate::exit::Exit;
use crate::outputs::Output;
use crate::run::{At, ChildResult, Restored, ResumedChild, Rules, Run};

/// The annotation holding a run's record on its parent Job.
pub const RECORD: &str = "jobherd.io/outcome";
/// The annotation holding a run's summary line on its parent Job.
pub const SUMMARY: &str = "jobherd.io/summary";
/// Annotations of one object share 256 KiB; the record leaves room for the others.
pub const MAX_RECORD: usize = 200 * 1024;

/// A run's record, as the annotation holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub exit_code: i32,
    /// The child name prefix the run used.
    pub prefix: String,
    pub steps: Vec<RecordedStep>,
    /// Succeeded children, grouped by the run (parent Job) that ran them.
    pub done_by: Vec<DoneBy>,
    /// Bitmaps (see `DoneBy::children`) of the failed and the cancelled children; the others
    /// were skipped.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failed: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cancelled: String,
    /// The results of the steps others depend on, by step: each child's in order, `null` for
    /// none. A retry gives them to the steps after the ones it does not run again.
    #[serde(
        default,
        rename = "results",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub step_outputs: BTreeMap<usize, Vec<Option<String>>>,
    /// The results did not fit in the annotation: a retry runs again the steps whose results
    /// it would have to hand on.
    #[serde(
        default,
        rename = "results_left_out",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub outputs_left_out: bool,
    /// The run moved to its next attempt (a drain of its pod): the disruption's reason. Its
    /// exit code is 143, but it is not over while its Job goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved: Option<String>,
    /// What the run counted of children that tried more than once, queued or were preempted:
    /// `[index, attempts, queued milliseconds, preemptions]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ChildDetail>,
}

/// One child's counts in a record: index, attempts, queued milliseconds, preemptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildDetail(pub usize, pub u32, pub u64, pub u32);

/// One step, as `child::StepShape` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedStep {
    /// Empty without a plan.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub children: usize,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fan_out: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<usize>,
    /// It fanned out over another step's result (`params_from`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dynamic: bool,
    /// Where its children start, for a `params_from` step that was laid out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneBy {
    pub run: String,
    /// A bitmap over the children in order, as hex: bit `i % 8` of byte `i / 8` is child `i`.
    pub children: String,
}

impl Record {
    /// The record of a finished run whose parent Job is `own`.
    pub fn of(run: &Run, prefix: &str, own: &str) -> Record {
        let mut done_by: Vec<(String, Vec<usize>)> = Vec::new();
        let (mut failed, mut cancelled) = (Vec::new(), Vec::new());
        for i in 0..run.total() {
            let state = run.state(i);
            match state.phase.result() {
                Some(ChildResult::Succeeded) => {
                    let who = state.earlier_run.as_deref().unwrap_or(own);
                    match done_by.iter_mut().find(|(r, _)| r == who) {
                        Some((_, children)) => children.push(i),
                        None => done_by.push((who.to_string(), vec![i])),
                    }
                }
                Some(ChildResult::Failed) => failed.push(i),
                Some(ChildResult::Cancelled) => cancelled.push(i),
                _ => {}
            }
        }
        let total = run.total();
        Record {
            version: 1,
            exit_code: run.exit_code(),
            prefix: prefix.to_string(),
            steps: run
                .children()
                .shape()
                .into_iter()
                .map(RecordedStep::from)
                .collect(),
            done_by: done_by
                .into_iter()
                .map(|(run, children)| DoneBy {
                    run,
                    children: bitmap(&children, total),
                })
                .collect(),
            failed: bitmap(&failed, total),
            cancelled: bitmap(&cancelled, total),
            step_outputs: step_outputs(run),
            outputs_left_out: false,
            moved: run.moving().map(str::to_string),
            details: details(run),
        }
    }

    /// The annotation's value, without the results when they would make it too large to
    /// store (`outputs_left_out` then says so), or `None` when even that is.
    pub fn to_annotation(&mut self) -> Option<String> {
        let fits = |o: &Record| {
            serde_json::to_string(o)
                .ok()
                .filter(|text| text.len() <= MAX_RECORD)
        };
        if let Some(text) = fits(self) {
            return Some(text);
        }
        self.details.clear();
        if let Some(text) = fits(self) {
            return Some(text);
        }
        if !self.step_outputs.is_empty() {
            self.step_outputs.clear();
            self.outputs_left_out = true;
        }
        fits(self)
    }

    /// The recorded result of the child at `index` of the run laid out as `children`.
    pub fn output_of(&self, children: &Children, index: usize) -> Output {
        let step = children.get(index).step;
        let position = index - children.steps()[step].children.start;
        match self.outputs_of(step).and_then(|r| r.get(position)) {
            Some(result) => Output::from_message(result.as_deref()),
            None => Output::Unread,
        }
    }

    /// The recorded results of a step, when it has any.
    pub fn outputs_of(&self, step: usize) -> Option<&[Option<String>]> {
        self.step_outputs.get(&step).map(Vec::as_slice)
    }

    pub fn parse(text: &str) -> Result<Record, String> {
        serde_json::from_str(text)
            .map_err(|e| format!("its {RECORD} annotation is unreadable ({e})"))
    }

    pub fn shape(&self) -> Vec<StepShape> {
        self.steps.iter().cloned().map(StepShape::from).collect()
    }

    /// For each succeeded child, the run that succeeded with it.
    pub fn succeeded(&self) -> Result<Vec<(usize, String)>, String> {
        let mut out = Vec::new();
        for d in &self.done_by {
            out.extend(
                indices(&d.children)?
                    .into_iter()
                    .map(|i| (i, d.run.clone())),
            );
        }
        Ok(out)
    }

    /// Every child's result, in order.
    fn results(&self) -> Result<Vec<(ChildResult, Option<String>)>, String> {
        let total = self.steps.iter().map(|s| s.children).sum();
        let mut out = vec![(ChildResult::Skipped, None); total];
        let mut set = |i: usize, r: (ChildResult, Option<String>)| {
            if let Some(slot) = out.get_mut(i) {
                *slot = r;
            }
        };
        for (i, run) in self.succeeded()? {
            set(i, (ChildResult::Succeeded, Some(run)));
        }
        for i in indices(&self.failed)? {
            set(i, (ChildResult::Failed, None));
        }
        for i in indices(&self.cancelled)? {
            set(i, (ChildResult::Cancelled, None));
        }
        Ok(out)
    }
}

impl From<StepShape> for RecordedStep {
    fn from(s: StepShape) -> Self {
        RecordedStep {
            name: s.name.unwrap_or_default(),
            children: s.children,
            fan_out: s.fanned_out,
            depends_on: s.depends_on,
            dynamic: s.dynamic,
            first: s.first,
        }
    }
}

impl From<RecordedStep> for StepShape {
    fn from(s: RecordedStep) -> Self {
        StepShape {
            name: (!s.name.is_empty()).then_some(s.name),
            children: s.children,
            fanned_out: s.fan_out,
            depends_on: s.depends_on,
            dynamic: s.dynamic,
            first: s.first,
        }
    }
}

/// The outputs of the steps others depend on, by step: each child's in order, `None` for one
/// that wrote none or did not succeed; steps with none at all are left out.
fn step_outputs(run: &Run) -> BTreeMap<usize, Vec<Option<String>>> {
    let children = run.children();
    let succeeded = |i: usize| run.state(i).phase.result() == Some(ChildResult::Succeeded);
    (0..children.steps().len())
        .filter(|s| children.steps().iter().any(|d| d.depends_on.contains(s)))
        .map(|s| {
            let outputs: Vec<Option<String>> = children.steps()[s]
                .children
                .clone()
                .map(|i| {
                    let text = run.state(i).output.text().filter(|_| succeeded(i));
                    text.map(str::to_string)
                })
                .collect();
            (s, outputs)
        })
        .filter(|(_, outputs)| outputs.iter().any(Option::is_some))
        .collect()
}

/// The counts worth keeping: children that tried more than once, queued or were preempted.
fn details(run: &Run) -> Vec<ChildDetail> {
    (0..run.total())
        .filter_map(|i| {
            let state = run.state(i);
            let queued = run.time_queued(i).as_millis() as u64;
            let worth = state.attempts > 1 || queued > 0 || state.preemptions() > 0;
            worth.then_some(ChildDetail(i, state.attempts, queued, state.preemptions()))
        })
        .collect()
}

impl Record {
    /// What this record tells the next attempt of the same run (same parent Job), child by
    /// child: how the ones that succeeded or failed ended, what they wrote, their counts.
    /// Children it cancelled or skipped are run again. Nothing when the configuration no
    /// longer has the recorded shape.
    pub fn resumed(&self, children: &Children, own: &str) -> Vec<ResumedChild> {
        let layout = Children::from_shape(&self.prefix, &self.shape());
        if !same_shape(&self.shape(), &children.shape()) {
            tracing::warn!(
                "the record of an earlier attempt of this run is for another configuration; it is not resumed"
            );
            return Vec::new();
        }
        let results = self.results().unwrap_or_default();
        let details: HashMap<usize, ChildDetail> = self.details.iter().map(|d| (d.0, *d)).collect();
        let mut out = Vec::new();
        for (index, (result, by)) in results.into_iter().enumerate().take(layout.len()) {
            let detail = details.get(&index);
            let worth = matches!(result, ChildResult::Succeeded | ChildResult::Failed);
            if !worth && detail.is_none() {
                continue;
            }
            let step = layout.get(index).step;
            out.push(ResumedChild {
                step,
                position: index - layout.steps()[step].children.start,
                result: worth.then_some(result),
                earlier_run: by.filter(|r| r != own).map(|r| Arc::from(r.as_str())),
                output: self.output_of(&layout, index),
                attempts: detail.map_or(u32::from(worth), |d| d.1),
                queued: Duration::from_millis(detail.map_or(0, |d| d.2)),
                preemptions: detail.map_or(0, |d| d.3),
            });
        }
        out
    }

    /// The answer of a run that ended for good (every child succeeded, some failed, or it
    /// timed out), which a retried parent repeats; `None` for one that moved, stopped or died.
    pub fn final_answer(&self) -> Option<i32> {
        let ended = self.moved.is_none()
            && matches!(
                Exit::from_code(self.exit_code),
                Some(Exit::Succeeded | Exit::Failed | Exit::Timeout)
            );
        ended.then_some(self.exit_code)
    }
}

/// The parent Job as a run finds it when it starts.
#[derive(Debug, Default)]
pub struct AtStart {
    /// When the parent was created: `JOBHERD_TIMEOUT` counts from there.
    pub created: Option<Timestamp>,
    /// What an earlier attempt of this run recorded, with its summary line.
    pub record: Option<(Record, String)>,
}

/// Reads the parent Job once before the run starts (nothing for a pod parent or when it
/// cannot be read: the run then starts afresh).
pub async fn at_start(client: &Client, parent: &Parent) -> AtStart {
    if parent.kind != "Job" {
        return AtStart::default();
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &parent.namespace);
    let Ok(job) = jobs.get(&parent.name).await else {
        return AtStart::default();
    };
    let summary = job.annotations().get(SUMMARY).cloned().unwrap_or_default();
    let record = job
        .annotations()
        .get(RECORD)
        .and_then(|text| Record::parse(text).ok())
        .map(|r| (r, summary));
    AtStart {
        created: job.creation_timestamp().map(|t| t.0),
        record,
    }
}

/// The children at `set` of `total`, as a hex bitmap; empty when none is set.
fn bitmap(set: &[usize], total: usize) -> String {
    if set.is_empty() {
        return String::new();
    }
    let mut bytes = vec![0u8; total.div_ceil(8)];
    for &i in set {
        bytes[i / 8] |= 1 << (i % 8);
    }
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn indices(hex: &str) -> Result<Vec<usize>, String> {
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| format!("its {RECORD} annotation has a bad bitmap"))?;
    Ok(bytes
        .iter()
        .enumerate()
        .flat_map(|(byte, bits)| {
            (0..8)
                .filter(move |bit| bits & (1 << bit) != 0)
                .map(move |bit| byte * 8 + bit)
        })
        .collect())
}

/// The run a parent's record and its children left in the cluster describe, for reports
/// written after the fact. Without a record (a parent that died before writing one), the
/// children found are the run. `own` is the parent's name, `exit_code` its own.
pub fn rebuild(
    record: Option<&Record>,
    jobs: &[Job],
    (run_id, own): (&str, &str),
    exit_code: i32,
) -> Run {
    let (children, results) = match record.and_then(|r| Some((r, r.results().ok()?))) {
        Some((record, results)) => (
            Children::from_shape(&record.prefix, &record.shape()),
            results,
        ),
        None => {
            let mut found: Vec<(String, String)> = jobs
                .iter()
                .map(|j| {
                    (
                        j.name_any(),
                        j.labels().get(STEP_LABEL).cloned().unwrap_or_default(),
                    )
                })
                .collect();
            found.sort();
            let results = found
                .iter()
                .map(|_| (ChildResult::Cancelled, None))
                .collect();
            // (A child still running when its parent ended reads as cancelled.)
            (Children::named(found), results)
        }
    };
    let rules = Rules {
        parallelism: None,
        fail_fast: false,
        stuck_timeout: Duration::from_secs(120),
        logs: LogsMode::None,
    };
    let by_name: HashMap<String, &Job> = jobs.iter().map(|j| (j.name_any(), j)).collect();
    let mut run = Run::new(children, &rules, run_id, At::now());
    let mut origins: HashMap<String, Arc<str>> = HashMap::new();
    for (index, (result, earlier)) in results.into_iter().enumerate() {
        let job = by_name.get(run.children().name(index)).copied();
        let earlier = earlier.filter(|r| r != own).map(|r| {
            origins
                .entry(r)
                .or_insert_with_key(|r| Arc::from(r.as_str()))
                .clone()
        });
        let mut r = restored(result, job, earlier);
        r.output = record.map_or(Output::Unread, |o| o.output_of(run.children(), index));
        run.restore(index, r);
    }
    run.ended_with(exit_code);
    run
}

/// A child's result, with what its Job (when still there) adds: reason, attempts, times.
fn restored(result: ChildResult, job: Option<&Job>, earlier_run: Option<Arc<str>>) -> Restored {
    let status = job.and_then(|j| j.status.as_ref());
    let (result, reason, message) = match job.and_then(outcome) {
        Some(Outcome::Succeeded) => (ChildResult::Succeeded, None, None),
        Some(Outcome::Failed { reason, message }) => {
            (ChildResult::Failed, Some(reason), Some(message))
        }
        None => (result, None, None),
    };
    let attempts = status.map_or(0, |s| {
        (s.failed.unwrap_or(0) + s.succeeded.unwrap_or(0) + s.active.unwrap_or(0)).max(0) as u32
    });
    Restored {
        result,
        reason,
        message,
        attempts,
        started: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
        finished: status.and_then(|s| s.completion_time.as_ref()).map(|t| t.0),
        earlier_run,
        output: Output::Unread,
    }
}

#[cfg(test)]
mod tests;
