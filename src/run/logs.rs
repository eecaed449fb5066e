//! Which child logs a run asks for, and how long it waits for them (`JOBHERD_LOGS`).
//!
//! With `OnFailure` the Job controller deletes the pod when it gives up, so the tail of each
//! failed attempt is fetched while its pod still exists and kept aside; when the child fails,
//! its newest pod's tail is asked for, and the kept one used when that pod is gone.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::{Change, Effect};
use crate::config::LogsMode;

/// How long a failed child's logs are waited for when its pods are already gone.
const LOG_WAIT: Duration = Duration::from_secs(3);

/// Where a log tail came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// A failed attempt, fetched while its pod existed.
    Attempt,
    /// The child's newest pod, fetched when the child failed.
    Newest,
}

#[derive(Debug)]
struct Awaiting {
    until: Instant,
    newest_answered: bool,
}

#[derive(Debug)]
pub struct LogBook {
    mode: LogsMode,
    /// (pod uid, restart count) of failed attempts whose tail was asked for.
    fetched: HashSet<(String, i32)>,
    /// Pods whose log is followed.
    followed: HashSet<String>,
    /// Tails of failed attempts, by child.
    kept: HashMap<usize, String>,
    /// Failed children whose tail has not been shown yet.
    awaiting: HashMap<usize, Awaiting>,
    /// Followed logs still streaming.
    following: usize,
}

impl LogBook {
    pub fn new(mode: LogsMode) -> Self {
        LogBook {
            mode,
            fetched: HashSet::new(),
            followed: HashSet::new(),
            kept: HashMap::new(),
            awaiting: HashMap::new(),
            following: 0,
        }
    }

    /// No failed child's log is still awaited, and followed logs have ended (or had
    /// `LOG_WAIT` after the last child finished to print their last lines).
    pub fn is_settled(&self, now: Instant, all_done_at: Option<Instant>) -> bool {
        let follows_over =
            self.following == 0 || all_done_at.is_some_and(|at| now >= at + LOG_WAIT);
        self.awaiting.is_empty() && follows_over
    }

    /// A followed log ended (its container stopped, or its pod is gone).
    pub fn follow_ended(&mut self) {
        self.following = self.following.saturating_sub(1);
    }

    /// A pod of an active child: fetch the tail of a container that just failed, follow a
    /// running pod with `JOBHERD_LOGS=all`.
    pub fn pod_seen(&mut self, index: usize, pod: &Pod) -> Vec<Effect> {
        let mut out = Vec::new();
        if self.mode == LogsMode::None {
            return out;
        }
        let uid = pod.uid().unwrap_or_default();
        let status = pod.status.as_ref();
        for c in status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
        {
            let current = c.state.as_ref().and_then(|s| s.terminated.as_ref());
            let previous = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
            let previous = match (current, previous) {
                (Some(t), _) if t.exit_code != 0 => false,
                (None, Some(t)) if t.exit_code != 0 => true,
                _ => continue,
            };
            if self.fetched.insert((uid.clone(), c.restart_count)) {
                out.push(Effect::FetchLogs {
                    index,
                    pod: pod.name_any(),
                    container: c.name.clone(),
                    previous,
                });
            }
        }
        let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
        if self.mode == LogsMode::All && running && self.followed.insert(uid) {
            self.following += 1;
            out.push(Effect::FollowLogs {
                index,
                pod: pod.name_any(),
            });
        }
        out
    }

    /// A child failed: ask for its newest pod's tail, and wait a little for one.
    pub fn child_failed(&mut self, index: usize, now: Instant) -> Vec<Effect> {
        if self.mode == LogsMode::None {
            return Vec::new();
        }
        let until = now + LOG_WAIT;
        self.awaiting.insert(
            index,
            Awaiting {
                until,
                newest_answered: false,
            },
        );
        vec![Effect::FetchNewestLogs(index)]
    }

    /// A tail came back: what to show now, if anything. The newest pod's tail wins; a kept
    /// attempt's tail is shown when the newest pod had none.
    pub fn arrived(
        &mut self,
        index: usize,
        from: LogSource,
        text: Option<String>,
    ) -> Option<Change> {
        match (from, text) {
            (LogSource::Newest, Some(text)) => {
                self.kept.remove(&index);
                self.awaiting.remove(&index).map(|_| Change::Logs(text))
            }
            (LogSource::Newest, None) => match self.kept.remove(&index) {
                Some(text) => self.awaiting.remove(&index).map(|_| Change::Logs(text)),
                None => {
                    if let Some(a) = self.awaiting.get_mut(&index) {
                        a.newest_answered = true;
                    }
                    None
                }
            },
            (LogSource::Attempt, Some(text)) => {
                if self.awaiting.get(&index).is_some_and(|a| a.newest_answered) {
                    self.awaiting.remove(&index);
                    return Some(Change::Logs(text));
                }
                self.kept.insert(index, text);
                None
            }
            (LogSource::Attempt, None) => None,
        }
    }

    /// Failed children whose logs did not come in time (in index order).
    pub fn expired(&mut self, now: Instant) -> Vec<usize> {
        let mut gone: Vec<usize> = self
            .awaiting
            .iter()
            .filter(|(_, a)| a.until <= now)
            .map(|(i, _)| *i)
            .collect();
        gone.sort_unstable();
        for index in &gone {
            self.awaiting.remove(index);
            self.kept.remove(index);
        }
        gone
    }
}
