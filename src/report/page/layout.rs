//! The page's geometry, apart from drawing it: where a time falls on the axis, readable
//! ticks, which rows the timeline shows, a step's children summed per slice of time, what
//! colour each stretch of a child's time gets, the critical path of a plan, and where each
//! step of the plan graph goes. Pure, and unit-tested.

use crate::report::timeline::{Bar, Span};
use crate::run::{ChildResult, Run};

/// The timeline's width, its label column and its plot area, in CSS pixels.
pub const WIDTH: f64 = 1180.0;
pub const PLOT_X: f64 = 270.0;
pub const PLOT_W: f64 = WIDTH - PLOT_X - 20.0;
/// A run of at most this many children shows every child on its own row.
pub const ONE_BY_ONE_UP_TO: usize = 40;
/// Past that, a step of more children than this is one aggregate row.
pub const STEP_ROWS_UP_TO: usize = 10;
/// Failed children shown one by one under aggregate rows, at most, in the whole timeline.
pub const MOST_FAILED_ROWS: usize = 500;
/// Slices of the axis an aggregate row sums its children over.
pub const BUCKETS: usize = 150;
/// At most this many ticks on the axis.
pub const MOST_TICKS: usize = 10;

/// Where a time (milliseconds since the run's start) falls on the plot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// The time at the right end of the axis.
    pub span: u32,
}

impl Scale {
    pub fn new(span: u32) -> Scale {
        Scale { span: span.max(1) }
    }

    pub fn x(&self, ms: u32) -> f64 {
        PLOT_X + f64::from(ms.min(self.span)) * PLOT_W / f64::from(self.span)
    }

    pub fn width(&self, from: u32, to: u32) -> f64 {
        self.x(to) - self.x(from)
    }
}

/// A tick on the time axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    pub at: u32,
    pub label: String,
}

/// Tick spacings a person reads at a glance, in milliseconds.
const TICK_STEPS: &[u32] = &[
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000,
    300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000,
    86_400_000,
];

/// Ticks from 0 every round step, at most `MOST_TICKS` + 1 of them over `span`.
pub fn ticks(span: u32) -> Vec<Tick> {
    let span = span.max(1);
    let most = u32::try_from(MOST_TICKS).unwrap_or(10);
    let step = TICK_STEPS
        .iter()
        .copied()
        .find(|s| span / s <= most)
        .unwrap_or_else(|| span.div_ceil(most).max(1));
    (0..=span / step)
        .map(|k| Tick {
            at: k * step,
            label: tick_label(k * step, step),
        })
        .collect()
}

/// `0s`, `0.25s` under a second's steps; `45s`, `2m`, `2m30s`, `1h`, `1h30m` above.
pub fn tick_label(ms: u32, step: u32) -> String {
    if ms == 0 {
        return "0s".into();
    }
    if step < 1_000 {
        let decimals = if step.is_multiple_of(100) { 1 } else { 2 };
        return format!("{:.*}s", decimals, f64::from(ms) / 1000.0);
    }
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut label = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            label.push_str(&format!("{n}{unit}"));
        }
    }
    if label.is_empty() { "0s".into() } else { label }
}

/// About how wide `text` is in the page's sans-serif font at `size` pixels (no script can
/// measure it): narrow, wide and capital letters apart.
pub fn text_width(text: &str, size: f64) -> f64 {
    let em: f64 = text
        .chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 0.3,
            'f' | 't' | 'r' | ' ' | '(' | ')' | '-' => 0.4,
            'm' | 'w' | 'M' | 'W' => 0.9,
            c if c.is_uppercase() => 0.7,
            _ => 0.6,
        })
        .sum();
    em * size
}

/// Where the words after a child's bar go: right of the bar when they fit in the picture, else
/// left of where the bar begins, else over the bar's end. `(x, text-anchor)`.
pub fn label_place(bar_from: f64, bar_to: f64, text_w: f64) -> (f64, &'static str) {
    if bar_to + 4.0 + text_w <= WIDTH {
        (bar_to + 4.0, "start")
    } else if bar_from - 4.0 - text_w >= PLOT_X {
        (bar_from - 4.0, "end")
    } else {
        (WIDTH - 2.0, "end")
    }
}

/// A row of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// A plan step's heading.
    Step(usize),
    Child(usize),
    /// A step's children summed per slice of time.
    Aggregate(usize),
    /// Failed children of this step not shown one by one (past `MOST_FAILED_ROWS`).
    More {
        step: usize,
        failed: usize,
    },
}

/// The rows: every child up to `ONE_BY_ONE_UP_TO` children; past that, steps of more than
/// `STEP_ROWS_UP_TO` children as one aggregate row each, followed by their failed children one
/// by one. Steps in plan order, each under its heading when the run has a plan.
pub fn rows(run: &Run) -> Vec<Row> {
    let children = run.children();
    let plan = children.steps().iter().any(|s| s.name.is_some());
    let one_by_one = run.total() <= ONE_BY_ONE_UP_TO;
    let mut rows = Vec::new();
    let mut failed_rows = 0;
    for (step, spec) in children.steps().iter().enumerate() {
        if plan {
            rows.push(Row::Step(step));
        }
        if one_by_one || spec.children.len() <= STEP_ROWS_UP_TO {
            rows.extend(spec.children.clone().map(Row::Child));
            continue;
        }
        rows.push(Row::Aggregate(step));
        let failed = spec
            .children
            .clone()
            .filter(|&i| run.state(i).phase.result() == Some(ChildResult::Failed));
        let mut more = 0;
        for i in failed {
            if failed_rows < MOST_FAILED_ROWS {
                rows.push(Row::Child(i));
                failed_rows += 1;
            } else {
                more += 1;
            }
        }
        if more > 0 {
            rows.push(Row::More { step, failed: more });
        }
    }
    rows
}

/// The colour a stretch of a child's time gets: what it waited for, or how its attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Paint {
    Succeeded,
    Failed,
    /// An attempt that did not succeed, followed by another.
    Retried,
    Cancelled,
    /// An attempt a preemption ended (not a failure).
    Preempted,
    /// Running now.
    Running,
    Pending,
    Queued,
}

/// Every paint, in the order aggregate rows stack them (bottom first).
pub const PAINTS: [Paint; 8] = [
    Paint::Succeeded,
    Paint::Failed,
    Paint::Retried,
    Paint::Cancelled,
    Paint::Preempted,
    Paint::Running,
    Paint::Pending,
    Paint::Queued,
];

impl Paint {
    pub fn colour(self) -> &'static str {
        match self {
            Paint::Succeeded => "#2e9d4f",
            Paint::Failed => "#d32f2f",
            Paint::Retried => "#f19a94",
            Paint::Cancelled => "#8d8d8d",
            Paint::Preempted => "#a58fd6",
            Paint::Running => "#1e7fd9",
            Paint::Pending => "#f4c542",
            Paint::Queued => "#cfc2ee",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Paint::Succeeded => "succeeded",
            Paint::Failed => "failed",
            Paint::Retried => "failed attempt, retried",
            Paint::Cancelled => "cancelled",
            Paint::Preempted => "preempted",
            Paint::Running => "running",
            Paint::Pending => "pending",
            Paint::Queued => "queued",
        }
    }

    fn slot(self) -> usize {
        PAINTS.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// The paint of each of a bar's segments: waits as they are; attempts by how they went (every
/// running segment but the last was retried, unless a preemption ended it; the last one as
/// the child ended).
pub fn paints(bar: &Bar) -> Vec<Paint> {
    let last_run = bar.segments.iter().rposition(|s| s.span == Span::Running);
    bar.segments
        .iter()
        .enumerate()
        .map(|(i, s)| match s.span {
            Span::Pending => Paint::Pending,
            Span::Queued => Paint::Queued,
            Span::Running if s.preempted => Paint::Preempted,
            Span::Running if Some(i) != last_run => Paint::Retried,
            Span::Running => match bar.end.map(|e| e.1) {
                None => Paint::Running,
                Some(ChildResult::Succeeded) => Paint::Succeeded,
                Some(ChildResult::Failed) => Paint::Failed,
                Some(ChildResult::Cancelled | ChildResult::Skipped) => Paint::Cancelled,
            },
        })
        .collect()
}

/// How many children were in each paint on average during each of `BUCKETS` slices of the
/// axis (indexed like `PAINTS`): an aggregate row's heights.
pub fn buckets<'a>(bars: impl Iterator<Item = &'a Bar>, scale: Scale) -> Vec<[f64; 8]> {
    let mut sums = vec![[0.0; 8]; BUCKETS];
    let width = f64::from(scale.span) / BUCKETS as f64;
    for bar in bars {
        for (segment, paint) in bar.segments.iter().zip(paints(bar)) {
            let (from, to) = (f64::from(segment.from), f64::from(segment.to));
            let first = ((from / width) as usize).min(BUCKETS - 1);
            let last = ((to / width) as usize).min(BUCKETS - 1);
            for (b, sum) in sums.iter_mut().enumerate().take(last + 1).skip(first) {
                let (lo, hi) = (b as f64 * width, (b + 1) as f64 * width);
                let overlap = to.min(hi) - from.max(lo);
                if overlap > 0.0 {
                    sum[paint.slot()] += overlap / width;
                }
            }
        }
    }
    sums
}

/// The plan's critical path, first step first: from the step that ended last, back through
/// the dependency that ended last, each time. `ends[s]` is when step `s` ended, and whether it
/// ran (a skipped step ends when it is skipped, and passes the time on; on a tie the step that
/// ran is on the path); steps never reached are not on it.
pub fn critical_path(depends_on: &[&[usize]], ends: &[Option<(u32, bool)>]) -> Vec<usize> {
    let latest = |steps: &mut dyn Iterator<Item = usize>| {
        steps
            .filter_map(|s| Some((ends.get(s).copied().flatten()?, s)))
            .max()
            .map(|(_, s)| s)
    };
    let mut path = Vec::new();
    let mut at = latest(&mut (0..ends.len()));
    while let Some(step) = at {
        path.push(step);
        at = latest(
            &mut depends_on
                .get(step)
                .copied()
                .unwrap_or_default()
                .iter()
                .copied(),
        );
    }
    path.reverse();
    path
}

/// Where each step goes in the plan graph: its column (the longest chain of dependencies
/// before it) and its place in that column (ordered by the places of what it depends on).
pub fn graph_places(depends_on: &[&[usize]]) -> Vec<(usize, usize)> {
    let n = depends_on.len();
    let mut column = vec![0usize; n];
    // Dependencies come before their dependants, but a fixed point does not rely on it.
    for _ in 0..n {
        let mut changed = false;
        for s in 0..n {
            let c = depends_on[s]
                .iter()
                .filter(|&&d| d < n)
                .map(|&d| column[d] + 1)
                .max()
                .unwrap_or(0);
            changed |= c != column[s];
            column[s] = c;
        }
        if !changed {
            break;
        }
    }
    let mut place = vec![0usize; n];
    let columns = column.iter().max().map_or(0, |c| c + 1);
    for c in 0..columns {
        let mut in_column: Vec<usize> = (0..n).filter(|&s| column[s] == c).collect();
        let weight = |s: usize| {
            let deps = depends_on[s];
            if deps.is_empty() {
                return s as f64;
            }
            deps.iter().map(|&d| place[d] as f64).sum::<f64>() / deps.len() as f64
        };
        in_column.sort_by(|a, b| weight(*a).total_cmp(&weight(*b)).then(a.cmp(b)));
        for (p, s) in in_column.into_iter().enumerate() {
            place[s] = p;
        }
    }
    column.into_iter().zip(place).collect()
}

#[cfg(test)]
mod tests;
