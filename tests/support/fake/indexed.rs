//! Indexed Jobs: each pod's completion index, the compressed interval format of
//! `completedIndexes`/`failedIndexes`, and what `backoffLimitPerIndex` (1.29+) keeps per index:
//! how often it failed (the `job-index-failure-count` annotations its pods carry, as the real
//! controller keeps it) and when its next pod may start (the pod-failure back-off, per index).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::meta;

/// An Indexed Job's pod's index (annotation; also a label from 1.28).
pub const INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// How many of the index's earlier pods failed and counted (backoffLimitPerIndex).
pub const FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// How many of the index's earlier pods failed and a podFailurePolicy rule ignored.
pub const IGNORED_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";

/// The index of an Indexed Job's pod.
pub fn index_of(pod: &Value) -> Option<u32> {
    meta::annotation(pod, INDEX)?.parse().ok()
}

/// `0-2,4`: indexes as `completedIndexes`/`failedIndexes` write them. Runs of three or more
/// become `first-last`; two in a row stay `a,b`, as the Job controller's `orderedIntervals`
/// prints them.
pub fn ranges(indexes: &BTreeSet<u32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while let Some(next) = iter.next_if(|n| *n == last + 1) {
            last = next;
        }
        out.push(match last - first {
            0 => first.to_string(),
            1 => format!("{first},{last}"),
            _ => format!("{first}-{last}"),
        });
    }
    out.join(",")
}

/// The `job-index-failure-count` and `job-index-ignored-failure-count` of a pod.
pub fn failure_counts(pod: &Value) -> (u32, u32) {
    let count = |key| {
        meta::annotation(pod, key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (count(FAILURE_COUNT), count(IGNORED_COUNT))
}

/// What a Job with `backoffLimitPerIndex` keeps between passes.
#[derive(Default)]
pub struct PerIndex {
    /// `status.failedIndexes`.
    pub failed: BTreeSet<u32>,
    /// When the controller first saw each failed pod (its failure time for the back-off).
    seen: HashMap<String, Instant>,
}

impl PerIndex {
    /// Remembers when a failed pod was first seen; returns that moment.
    pub fn saw_failed(&mut self, pod_uid: &str, now: Instant) -> Instant {
        *self.seen.entry(pod_uid.to_string()).or_insert(now)
    }

    /// How long index's next pod must still wait: the pod-failure back-off (`base` doubling
    /// to `max`, already scaled) for the `n`-th failure in a row of the index, from the moment
    /// its last failed pod was seen. `last_failed` is that pod; none means no wait.
    pub fn wait(
        &self,
        last_failed: Option<&Value>,
        now: Instant,
        base: Duration,
        max: Duration,
    ) -> Duration {
        let Some(pod) = last_failed else {
            return Duration::ZERO;
        };
        let (counted, ignored) = failure_counts(pod);
        let failures = counted + ignored + 1;
        let backoff = (base * 2u32.pow(failures.saturating_sub(1).min(16))).min(max);
        let since = self
            .seen
            .get(meta::uid_of(pod))
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(*t));
        backoff.saturating_sub(since)
    }
}

/// The annotations of an index's next pod: the failures of the pod it replaces, plus that
/// pod's own failure (counted, or ignored by a podFailurePolicy rule).
pub fn next_counts(replaced: Option<&Value>, counted: bool) -> (u32, u32) {
    match replaced {
        None => (0, 0),
        Some(pod) => {
            let (c, i) = failure_counts(pod);
            if counted { (c + 1, i) } else { (c, i + 1) }
        }
    }
}
