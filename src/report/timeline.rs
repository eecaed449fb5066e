//! The page's timeline record: when each child was created, queued, running (attempt by
//! attempt) and done. The reporter keeps it from the run's transitions as they come (the run
//! does not grow for it), or it is read back from the child Jobs' timestamps (trigger mode).
//! One clock per record, as offsets from the run's start: the reporter's monotonic clock
//! (`Instant`) for a run it follows, the cluster's timestamps for a run read back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::run::{Change, ChildResult, Run, Stop, Transition};

/// Which clock a record's offsets come from, for the page to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// When jobherd saw each change (its own monotonic clock, to the millisecond).
    Local,
    /// The child Jobs' timestamps as the cluster recorded them (whole seconds).
    Cluster,
}

/// Something that happened to a child, as the timeline draws it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Its Job exists (created or adopted): pending until it runs.
    Created,
    /// Its Job is suspended, waiting for a queue to admit it.
    Queued,
    /// The queue admitted it: pending again until its pod runs.
    Admitted,
    Running,
    /// Attempt number N began (a new pod, or its container restarted).
    Attempt(u32),
    /// Suspended again while running: the attempt ends without failing.
    Preempted,
    Done(ChildResult),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    child: u32,
    /// Milliseconds since the run's start.
    at: u32,
    mark: Mark,
}

/// What a child's time went to, on one clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Pending,
    Queued,
    Running,
}

/// One stretch of a child's time: `[from, to)` in milliseconds since the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub from: u32,
    pub to: u32,
    pub span: Span,
    /// The attempt a running segment is (0 before the first).
    pub attempt: u32,
    /// A running segment a preemption ended (not a failed attempt).
    pub preempted: bool,
}

/// A child's row: its segments in time order, and when and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bar {
    pub segments: Vec<Segment>,
    pub end: Option<(u32, ChildResult)>,
}

impl Bar {
    /// When it was first seen at all (its first segment, or its end).
    pub fn first(&self) -> Option<u32> {
        self.segments
            .first()
            .map(|s| s.from)
            .or(self.end.map(|e| e.0))
    }

    /// When it stopped taking time: its end, or its last segment's.
    pub fn last(&self) -> Option<u32> {
        self.end.map(|e| e.0).or(self.segments.last().map(|s| s.to))
    }
}

/// The record of one run.
#[derive(Debug, Clone)]
pub struct Timeline {
    start: Instant,
    clock: Clock,
    entries: Vec<Entry>,
    /// Children waiting in a queue now: since when (ms), and their queued time before.
    waiting_in_queue: HashMap<usize, (u32, Duration)>,
    /// When the run began to stop, and why.
    stopped: Option<(u32, Stop)>,
}

impl Timeline {
    /// A record kept from the transitions, with offsets from `start`.
    pub fn new(start: Instant) -> Self {
        Timeline {
            start,
            clock: Clock::Local,
            entries: Vec::new(),
            waiting_in_queue: HashMap::new(),
            stopped: None,
        }
    }

    /// A record read back from the cluster's timestamps ([`Timeline::mark`]).
    pub fn read_back() -> Self {
        Timeline {
            clock: Clock::Cluster,
            ..Timeline::new(Instant::now())
        }
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn stopped(&self) -> Option<(u32, Stop)> {
        self.stopped
    }

    /// Milliseconds from the run's start to `now` on the reporter's clock.
    pub fn offset(&self, now: Instant) -> u32 {
        millis(now.saturating_duration_since(self.start))
    }

    /// Notes the transitions of one event, seen at `now`.
    pub fn record(&mut self, run: &Run, transitions: &[Transition], now: Instant) {
        let at = self.offset(now);
        for t in transitions {
            match t {
                Transition::Child { index, change } => self.child_changed(run, *index, change, at),
                Transition::Stopping(why) => {
                    self.stopped.get_or_insert((at, *why));
                }
                Transition::Moving { .. } | Transition::Note(_) => {}
            }
        }
    }

    fn child_changed(&mut self, run: &Run, index: usize, change: &Change, at: u32) {
        let mark = match change {
            Change::Created | Change::Adopted => Mark::Created,
            Change::Queued { .. } => Mark::Queued,
            Change::Running => Mark::Running,
            Change::Attempt { number } => Mark::Attempt(*number),
            Change::Preempted => Mark::Preempted,
            Change::Done(result) => Mark::Done(*result),
            Change::Pending { .. } | Change::Logs(_) | Change::NoLogs | Change::LogLine(_) => {
                return;
            }
        };
        self.admitted(run, index, at);
        if mark == Mark::Queued {
            let before = run.time_queued(index);
            self.waiting_in_queue.insert(index, (at, before));
        }
        self.mark(index, Duration::from_millis(at.into()), mark);
    }

    /// The run tells no admission (a queued child is pending again, silently): its wait ends
    /// where the run's own queue accounting (the table's QUEUED) says, at most now.
    fn admitted(&mut self, run: &Run, index: usize, at: u32) {
        let Some((since, before)) = self.waiting_in_queue.remove(&index) else {
            return;
        };
        let total = run.time_queued(index);
        let waited = millis(total.saturating_sub(before));
        let admitted = since.saturating_add(waited).min(at);
        self.mark(
            index,
            Duration::from_millis(admitted.into()),
            Mark::Admitted,
        );
    }

    /// Notes one mark of a child, `at` after the run's start. A child's marks come in the
    /// order they happened.
    pub fn mark(&mut self, child: usize, at: Duration, mark: Mark) {
        self.entries.push(Entry {
            child: u32::try_from(child).unwrap_or(u32::MAX),
            at: millis(at),
            mark,
        });
    }

    /// The last time anything happened, in milliseconds.
    pub fn latest(&self) -> u32 {
        self.entries.iter().map(|e| e.at).max().unwrap_or(0)
    }

    /// Every child's bar; segments still open end at `now` (milliseconds).
    pub fn bars(&self, children: usize, now: u32) -> Vec<Bar> {
        let mut order: Vec<&Entry> = self.entries.iter().collect();
        // Stable: each child's marks keep the order they happened in.
        order.sort_by_key(|e| e.child);
        let mut bars = vec![Bar::default(); children];
        let mut rest = order.as_slice();
        while let Some(first) = rest.first() {
            let n = rest.iter().take_while(|e| e.child == first.child).count();
            let (mine, others) = rest.split_at(n);
            if let Some(bar) = bars.get_mut(first.child as usize) {
                *bar = bar_of(mine, now);
            }
            rest = others;
        }
        bars
    }
}

/// One child's marks, in order, as segments.
fn bar_of(marks: &[&Entry], now: u32) -> Bar {
    let mut bar = Bar::default();
    // The segment going on: since when, what, which attempt.
    let mut open: Option<(u32, Span)> = None;
    let mut attempt = 0;
    for e in marks {
        match e.mark {
            Mark::Created if open.is_none() => open = Some((e.at, Span::Pending)),
            Mark::Created => {}
            Mark::Queued | Mark::Admitted | Mark::Running => {
                close(&mut bar, &mut open, e.at, attempt, false);
                let span = match e.mark {
                    Mark::Queued => Span::Queued,
                    Mark::Admitted => Span::Pending,
                    _ => {
                        attempt = attempt.max(1);
                        Span::Running
                    }
                };
                open = Some((e.at, span));
            }
            Mark::Attempt(n) => {
                if matches!(open, Some((_, Span::Running))) && n > attempt {
                    close(&mut bar, &mut open, e.at, attempt, false);
                    open = Some((e.at, Span::Running));
                }
                attempt = attempt.max(n);
            }
            Mark::Preempted => close(&mut bar, &mut open, e.at, attempt, true),
            Mark::Done(result) => {
                close(&mut bar, &mut open, e.at, attempt, false);
                bar.end = Some((e.at, result));
            }
        }
    }
    let end = now.max(marks.last().map_or(0, |e| e.at));
    close(&mut bar, &mut open, end, attempt, false);
    bar
}

/// Ends the open segment at `to`; an empty one is left out.
fn close(bar: &mut Bar, open: &mut Option<(u32, Span)>, to: u32, attempt: u32, preempted: bool) {
    if let Some((from, span)) = open.take()
        && to > from
    {
        bar.segments.push(Segment {
            from,
            to,
            span,
            attempt: if span == Span::Running { attempt } else { 0 },
            preempted,
        });
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(marks: &[(u32, Mark)], now: u32) -> Bar {
        let mut t = Timeline::read_back();
        for (at, mark) in marks {
            t.mark(0, Duration::from_millis((*at).into()), *mark);
        }
        t.bars(1, now).remove(0)
    }

    fn spans(b: &Bar) -> Vec<(u32, u32, Span, u32)> {
        b.segments
            .iter()
            .map(|s| (s.from, s.to, s.span, s.attempt))
            .collect()
    }

    #[test]
    fn a_child_is_pending_then_runs_each_attempt_as_its_own_segment() {
        let b = bar(
            &[
                (100, Mark::Created),
                (400, Mark::Running),
                (1400, Mark::Attempt(2)),
                (2000, Mark::Done(ChildResult::Succeeded)),
            ],
            5000,
        );
        assert_eq!(
            spans(&b),
            [
                (100, 400, Span::Pending, 0),
                (400, 1400, Span::Running, 1),
                (1400, 2000, Span::Running, 2)
            ]
        );
        assert_eq!(b.end, Some((2000, ChildResult::Succeeded)));
        assert_eq!((b.first(), b.last()), (Some(100), Some(2000)));
    }

    #[test]
    fn a_queued_child_waits_then_is_pending_and_a_preemption_ends_its_attempt() {
        let b = bar(
            &[
                (0, Mark::Created),
                (10, Mark::Queued),
                (500, Mark::Admitted),
                (700, Mark::Running),
                (900, Mark::Preempted),
                (900, Mark::Queued),
            ],
            1500,
        );
        assert_eq!(
            spans(&b),
            [
                (0, 10, Span::Pending, 0),
                (10, 500, Span::Queued, 0),
                (500, 700, Span::Pending, 0),
                (700, 900, Span::Running, 1),
                (900, 1500, Span::Queued, 0)
            ]
        );
        assert!(b.segments[3].preempted);
        assert_eq!(b.end, None, "still queued: its last segment ends now");
    }

    /// The reporter's record of a real run: a child created suspended, admitted 3 s later by
    /// the run's clock, and seen running when the reporter is an hour in. The run tells no
    /// admission: the queue's part is the run's own accounting (3 s), the rest of the wait is
    /// pending.
    #[test]
    fn a_queued_childs_wait_is_the_runs_own_queue_time_not_the_gap_to_its_next_change() {
        use crate::run::testing::{RULES, fan_out, job, listed};
        use crate::run::{At, Created, Event};
        use k8s_openapi::api::batch::v1::JobCondition;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        use kube::runtime::watcher;
        let since = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(3);
        let suspended = |suspend: bool, active: i32| {
            let mut j = job("r-0", &[], active);
            j.spec.get_or_insert_with(Default::default).suspend = Some(suspend);
            let status = j.status.get_or_insert_with(Default::default);
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(JobCondition {
                    type_: "Suspended".into(),
                    status: if suspend { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(since)),
                    ..Default::default()
                });
            j
        };
        let mut run = fan_out(1, &RULES);
        let t0 = Instant::now();
        let mut timeline = Timeline::new(t0);
        listed(&mut run, vec![]);
        let created = Event::Created {
            index: 0,
            outcome: Created::Created(Box::new(suspended(true, 0))),
        };
        let at = At::now();
        let r = run.apply(created, at);
        timeline.record(&run, &r.transitions, t0);
        let admitted = Event::Jobs(Box::new(watcher::Event::Apply(suspended(false, 1))));
        let r = run.apply(admitted, at.after(Duration::from_secs(3)));
        timeline.record(&run, &r.transitions, t0 + Duration::from_secs(3600));
        let bar = timeline.bars(1, 3_601_000).remove(0);
        let spans: Vec<Span> = bar.segments.iter().map(|s| s.span).collect();
        assert_eq!(
            spans,
            [Span::Queued, Span::Pending, Span::Running],
            "{bar:?}"
        );
        let queued = bar.segments[0].to - bar.segments[0].from;
        assert!(
            (3000..3100).contains(&queued),
            "queued for the run's {queued} ms, not the hour until it ran"
        );
        assert_eq!(bar.segments[1].to, 3_600_000);
    }

    #[test]
    fn the_first_attempt_is_not_split_and_a_skipped_child_has_only_an_end() {
        let b = bar(
            &[
                (0, Mark::Created),
                (5, Mark::Running),
                (6, Mark::Attempt(1)),
                (9, Mark::Done(ChildResult::Failed)),
            ],
            10,
        );
        assert_eq!(
            spans(&b),
            [(0, 5, Span::Pending, 0), (5, 9, Span::Running, 1)]
        );
        let skipped = bar(&[(3, Mark::Done(ChildResult::Skipped))], 10);
        assert!(skipped.segments.is_empty());
        assert_eq!(skipped.first(), Some(3));
    }
}
