//! Which child logs a run asks for, and how long it waits for them (`JOBHERD_LOGS`).
//!
//! `failed`: with `OnFailure` the Job controller deletes the pod when it gives up, so the tail of
//! each failed attempt is fetched while its pod still exists and kept aside; when the child
//! fails, its newest pod's tail is asked for, and the kept one used when that pod is gone.
//!
//! `all`: every pod's log is followed once, from its start, whenever its pod is first seen
//! running or ended, also after its child is done (the Job watch may tell the end before the
//! pod watch shows the pod). A child that ends without any of its pods seen gets its newest
//! pod's log once a short wait has shown none is coming. So every child's log is printed
//! exactly once, however fast it ran, and a failed one's is not repeated as a tail.

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
    /// Children one of whose pods' logs is followed.
    followed_children: HashSet<usize>,
    /// Children that ended with none of their pods' logs followed: until when the pod watch
    /// may still show one, before their newest pod's log is followed instead.
    unfollowed: HashMap<usize, Instant>,
    /// When the last follow began: a follow begun after the last child finished has its own
    /// `LOG_WAIT` to print its lines.
    last_follow: Option<Instant>,
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
            followed_children: HashSet::new(),
            unfollowed: HashMap::new(),
            last_follow: None,
        }
    }

    /// No failed child's log is still awaited, and followed logs have ended (or had
    /// `LOG_WAIT` after the last child finished to print their last lines).
    pub fn is_settled(&self, now: Instant, all_done_at: Option<Instant>) -> bool {
        let last = all_done_at.map(|at| self.last_follow.map_or(at, |f| f.max(at)));
        let follows_over = self.following == 0 || last.is_some_and(|at| now >= at + LOG_WAIT);
        self.awaiting.is_empty() && self.unfollowed.is_empty() && follows_over
    }

    /// A followed log ended (its container stopped, or its pod is gone).
    pub fn follow_ended(&mut self) {
        self.following = self.following.saturating_sub(1);
    }

    /// A pod of a child: fetch the tail of a container that just failed (`failed`, while the
    /// child is not done yet), follow its log once it runs or has ended (`all`).
    pub fn pod_seen(
        &mut self,
        index: usize,
        pod: &Pod,
        child_done: bool,
        now: Instant,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        match self.mode {
            LogsMode::None => {}
            LogsMode::Failed if !child_done => self.failed_attempts(index, pod, &mut out),
            LogsMode::Failed => {}
            LogsMode::All => self.follow(index, pod, now, &mut out),
        }
        out
    }

    /// The tails of containers that failed, while their pod exists.
    fn failed_attempts(&mut self, index: usize, pod: &Pod, out: &mut Vec<Effect>) {
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
    }

    /// Follows a pod's log once it runs or has ended (its whole log, from its start).
    fn follow(&mut self, index: usize, pod: &Pod, now: Instant, out: &mut Vec<Effect>) {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let started = matches!(phase, Some("Running" | "Succeeded" | "Failed"));
        if started && self.followed.insert(pod.uid().unwrap_or_default()) {
            self.following += 1;
            self.last_follow = Some(now);
            self.followed_children.insert(index);
            self.unfollowed.remove(&index);
            out.push(Effect::FollowLogs {
                index,
                pod: pod.name_any(),
            });
        }
    }

    /// A child is done (`all`): when none of its pods' logs was followed, its newest pod's is
    /// followed after a short wait, unless the pod watch shows one first.
    pub fn child_done(&mut self, index: usize, now: Instant) {
        if self.mode == LogsMode::All && !self.followed_children.contains(&index) {
            self.unfollowed.insert(index, now + LOG_WAIT);
        }
    }

    /// A child failed (`failed`): whether to ask for its newest pod's tail, which is then
    /// waited for a little.
    pub fn child_failed(&mut self, index: usize, now: Instant) -> bool {
        if self.mode != LogsMode::Failed {
            return false;
        }
        let until = now + LOG_WAIT;
        self.awaiting.insert(
            index,
            Awaiting {
                until,
                newest_answered: false,
            },
        );
        true
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

    /// Children that ended with none of their pods' logs followed, whose wait is over: their
    /// newest pod's log is followed now (in index order).
    pub fn unfollowed_due(&mut self, now: Instant) -> Vec<usize> {
        let mut due: Vec<usize> = self
            .unfollowed
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(i, _)| *i)
            .collect();
        due.sort_unstable();
        for index in &due {
            self.unfollowed.remove(index);
            self.followed_children.insert(*index);
            self.following += 1;
            self.last_follow = Some(now);
        }
        due
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
