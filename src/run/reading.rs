//! Outputs being read: a succeeded child's output comes with its pod on the pod watch; when
//! the watch has not shown it `OUTPUT_GRACE` after the child succeeded, its pods are listed for
//! it, a few at a time (an adopted fan-out of thousands must not list pods all at once).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long a succeeded child's pod may take to show its output on the pod watch before its
/// pods are listed for it (the Job's watch and the pods' are separate and may be apart).
pub(super) const OUTPUT_GRACE: Duration = Duration::from_secs(2);
/// Most pod lists for outputs in flight at once.
const MAX_READS: usize = 16;

#[derive(Debug, Default)]
pub(super) struct Reading {
    /// Succeeded children whose output is not read yet, since when.
    unread: HashMap<usize, Instant>,
    /// Of those, the ones whose pods are being listed for it.
    asked: HashSet<usize>,
}

impl Reading {
    /// A child succeeded and its output is not known yet.
    pub(super) fn expect(&mut self, index: usize, now: Instant) {
        self.unread.entry(index).or_insert(now);
    }

    /// A child's output came: whether it was awaited.
    pub(super) fn arrived(&mut self, index: usize) -> bool {
        self.asked.remove(&index);
        self.unread.remove(&index).is_some()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.unread.is_empty()
    }

    /// Children whose output is overdue and whose pods are to be listed now: the longest
    /// waiting first, no more than `MAX_READS` in flight.
    pub(super) fn overdue(&mut self, now: Instant) -> Vec<usize> {
        let free = MAX_READS.saturating_sub(self.asked.len());
        if free == 0 {
            return Vec::new();
        }
        let mut due: Vec<(Instant, usize)> = self
            .unread
            .iter()
            .filter(|(i, since)| {
                now.saturating_duration_since(**since) >= OUTPUT_GRACE && !self.asked.contains(i)
            })
            .map(|(i, since)| (*since, *i))
            .collect();
        due.sort_unstable();
        due.truncate(free);
        let due: Vec<usize> = due.into_iter().map(|(_, i)| i).collect();
        self.asked.extend(due.iter().copied());
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overdue_outputs_are_asked_for_a_few_at_a_time_oldest_first() {
        let t0 = Instant::now();
        let mut reading = Reading::default();
        for i in 0..40 {
            reading.expect(i, t0 + Duration::from_millis(i as u64));
        }
        assert!(reading.overdue(t0 + Duration::from_secs(1)).is_empty());
        let later = t0 + Duration::from_secs(3);
        let first = reading.overdue(later);
        assert_eq!(first, (0..16).collect::<Vec<_>>());
        assert!(reading.overdue(later).is_empty(), "16 are in flight");
        assert!(reading.arrived(3));
        assert_eq!(reading.overdue(later), vec![16]);
        assert!(!reading.arrived(3), "once");
    }
}
