//! Following a triggered parent: which of its pods' logs to stream (one after another, through
//! retried pods), when it has ended, and with which exit code. Pure, like `run::Run`: the
//! trigger feeds it watch events and log ends, and does what it answers.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::watcher;

use crate::exit::Exit;

/// The parent ended without jobherd's own exit code (pod deleted, evicted, lost, killed).
pub const NO_CODE: i32 = Exit::NoCode.code();
/// How long the last lines of a log are waited for once the parent Job has ended.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum Seen {
    Job(Box<watcher::Event<Job>>),
    Pod(Box<watcher::Event<Pod>>),
    /// The log being streamed ended.
    LogEnded,
    Tick,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Act {
    /// A line of the trigger's own.
    Say(String),
    /// Stream this pod's log (the jobherd container's) to the end.
    Stream { pod: String },
}

/// How the parent ended: the exit code to pass on and, when not jobherd's own, why.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub code: i32,
    pub why: Option<String>,
}

#[derive(Debug)]
struct PodSeen {
    uid: String,
    name: String,
    created: Option<Timestamp>,
    started: bool,
    /// The jobherd container's exit code and reason, once terminated.
    exit: Option<(i32, String)>,
    /// Why the pod ended, when the kubelet or an eviction says (`Evicted`, ...).
    reason: Option<String>,
    gone: bool,
    streamed: bool,
    waiting_told: Option<String>,
}

pub struct Follow {
    job: String,
    container: String,
    pods: Vec<PodSeen>,
    streaming: bool,
    /// The parent Job's final condition: (complete, reason, message).
    job_end: Option<(bool, String, String)>,
    ended_at: Option<Instant>,
    now: Instant,
}

impl Follow {
    pub fn new(job: &str, container: &str, now: Instant) -> Self {
        Follow {
            job: job.to_string(),
            container: container.to_string(),
            pods: Vec::new(),
            streaming: false,
            job_end: None,
            ended_at: None,
            now,
        }
    }

    pub fn apply(&mut self, seen: Seen, now: Instant) -> (Vec<Act>, Option<Ending>) {
        self.now = now;
        let mut acts = Vec::new();
        match seen {
            Seen::Job(event) => self.job_seen(*event),
            Seen::Pod(event) => match *event {
                watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                    self.pod_seen(&pod, &mut acts)
                }
                watcher::Event::Delete(pod) => {
                    self.pod_seen(&pod, &mut acts);
                    if let Some(p) = self
                        .pods
                        .iter_mut()
                        .find(|p| Some(&p.uid) == pod.uid().as_ref())
                    {
                        p.gone = true;
                    }
                }
                _ => {}
            },
            Seen::LogEnded => self.streaming = false,
            Seen::Tick => {}
        }
        self.next_stream(&mut acts);
        let end = self.ending();
        (acts, end)
    }

    fn job_seen(&mut self, event: watcher::Event<Job>) {
        let (job, deleted) = match event {
            watcher::Event::Apply(job) | watcher::Event::InitApply(job) => (job, false),
            watcher::Event::Delete(job) => (job, true),
            _ => return,
        };
        if self.job_end.is_some() {
            return;
        }
        let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
        // Only the final conditions: SuccessCriteriaMet/FailureTarget come first, while pods
        // may still be terminating.
        let end = conditions.into_iter().flatten().find_map(|c| {
            let complete = match c.type_.as_str() {
                "Complete" => true,
                "Failed" => false,
                _ => return None,
            };
            (c.status == "True").then(|| {
                let reason = c.reason.clone().unwrap_or_default();
                (complete, reason, c.message.clone().unwrap_or_default())
            })
        });
        let end = end.or_else(|| {
            deleted.then(|| (false, "Deleted".into(), "the parent Job was deleted".into()))
        });
        if end.is_some() {
            self.job_end = end;
            self.ended_at = Some(self.now);
        }
    }

    fn pod_seen(&mut self, pod: &Pod, acts: &mut Vec<Act>) {
        let uid = pod.uid().unwrap_or_default();
        let index = match self.pods.iter().position(|p| p.uid == uid) {
            Some(i) => i,
            None => {
                self.pods.push(PodSeen {
                    uid,
                    name: pod.name_any(),
                    created: pod.creation_timestamp().map(|t| t.0),
                    started: false,
                    exit: None,
                    reason: None,
                    gone: false,
                    streamed: false,
                    waiting_told: None,
                });
                // Creation times have whole seconds: a retry in the same second keeps the
                // order the watch showed (a stable sort), which is the order of creation.
                self.pods.sort_by_key(|p| p.created);
                self.pods
                    .iter()
                    .position(|p| p.name == pod.name_any())
                    .unwrap_or(0)
            }
        };
        let status = pod.status.as_ref();
        let container = status
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == self.container));
        let state = container.and_then(|c| c.state.as_ref());
        let seen = &mut self.pods[index];
        seen.started |= state.is_some_and(|s| s.running.is_some() || s.terminated.is_some());
        if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            seen.exit = Some((t.exit_code, t.reason.clone().unwrap_or_default()));
        }
        if let Some(reason) = status.and_then(|s| s.reason.clone()) {
            let message = status.and_then(|s| s.message.clone()).unwrap_or_default();
            seen.reason = Some(format!("{reason}: {message}"));
        }
        if let Some(w) = state.and_then(|s| s.waiting.as_ref())
            && let Some(reason) = w.reason.clone().filter(|r| r != "ContainerCreating")
            && seen.waiting_told.as_ref() != Some(&reason)
        {
            let message = w.message.clone().unwrap_or_default();
            acts.push(Act::Say(format!(
                "jobherd trigger: pod {} is waiting: {reason}: {message}",
                seen.name
            )));
            seen.waiting_told = Some(reason);
        }
    }

    /// Streams the pods' logs in the order the pods were made, one at a time.
    fn next_stream(&mut self, acts: &mut Vec<Act>) {
        if self.streaming {
            return;
        }
        let Some(index) = self
            .pods
            .iter()
            .position(|p| !p.streamed && (p.started || p.gone))
        else {
            return;
        };
        let pod = &mut self.pods[index];
        pod.streamed = true;
        if !pod.started {
            acts.push(Act::Say(format!(
                "jobherd trigger: pod {} ended without starting{}",
                pod.name,
                pod.reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )));
            return self.next_stream(acts);
        }
        let text = if index == 0 {
            format!("jobherd trigger: following pod {}", pod.name)
        } else {
            format!(
                "jobherd trigger: the parent was retried: following pod {} (attempt {})",
                pod.name,
                index + 1
            )
        };
        acts.push(Act::Say(text));
        acts.push(Act::Stream {
            pod: pod.name.clone(),
        });
        self.streaming = true;
    }

    /// Once the parent Job has ended and its logs are read (or had `DRAIN` to come).
    fn ending(&self) -> Option<Ending> {
        let ended_at = self.ended_at?;
        // The Job's watch and the pods' are separate: the last pod's exit code may come after
        // the Job's final condition.
        let last_known = self.pods.last().is_none_or(|p| p.exit.is_some() || p.gone);
        let settled =
            !self.streaming && last_known && self.pods.iter().all(|p| p.streamed || p.gone);
        if !settled && self.now < ended_at + DRAIN {
            return None;
        }
        let (_, reason, message) = self.job_end.clone()?;
        let last = self.pods.last();
        Some(match last.and_then(|p| p.exit.clone()) {
            // Any other ending of the parent's container is not jobherd's own.
            Some((code, _)) if Exit::from_code(code).is_some_and(|e| e != Exit::NoCode) => {
                Ending { code, why: None }
            }
            Some((code, why)) => Ending {
                code: NO_CODE,
                why: Some(match why.as_str() {
                    "OOMKilled" => format!(
                        "jobherd was killed for using more memory than its limit (OOMKilled, exit {code}): raise the parent's memory limit"
                    ),
                    _ => format!(
                        "jobherd's container ended with exit code {code} ({why}), not one of its own: it was killed"
                    ),
                }),
            },
            None => Ending {
                code: NO_CODE,
                why: Some(match last.and_then(|p| p.reason.clone()) {
                    Some(pod_reason) => format!("its pod ended before jobherd did: {pod_reason}"),
                    None if last.is_none() => format!(
                        "job/{} ended without running a pod ({reason}: {message})",
                        self.job
                    ),
                    None => {
                        format!("its pod was gone before jobherd finished ({reason}: {message})")
                    }
                }),
            },
        })
    }
}

#[cfg(test)]
mod tests;
