//! What the user sees. The [`Reporter`] consumes the run's transitions and owns every line on
//! stdout (progress, heartbeat, logs, table, summary) and everything a run leaves behind (JSON
//! and JUnit files, termination message, Event and annotation on the parent). It only reads
//! the run; it never decides anything.

mod counts;
mod documents;
pub mod metrics;
mod outputs;
pub mod page;
pub mod timeline;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::Client;

use crate::cluster::{self, Parent};
use crate::config::Progress;
pub use crate::config::human;
use crate::exit::Exit;
use crate::record::{RECORD, Record, SUMMARY};
use crate::run::{Change, ChildResult, ChildState, Phase, Run, Transition};
pub use counts::{Counts, exit_meaning};
pub use documents::{json, junit};
pub use outputs::{Outputs, write_read_back};

/// `JOBHERD_PROGRESS=auto` prints a line per child state change up to this many children, and
/// counts above: past that, a console scrolled by a person is read by its counts and failures.
pub const LINES_UP_TO: usize = 100;
/// Said once counts lines take over from a line per child.
const COUNTS_NOTE: &str = "progress: a counts line every 10s while things change, and a line per failure (JOBHERD_PROGRESS=lines for a line per child)";
/// How often a counts line is printed while things change (`JOBHERD_PROGRESS=counts`).
const COUNTS_EVERY: Duration = Duration::from_secs(10);
/// Rows of skipped or cancelled children the final table shows in counts mode.
const QUIET_ROWS: usize = 20;
/// How much of a child's result the table shows (the JSON report has all of it).
const OUTPUT_SHOWN: usize = 40;
/// How long a run that moves, or stopped hard (a signal, its timeout), may take to record
/// itself on its parent: the pod's grace period is running.
const PUBLISH_MOVE_WITHIN: Duration = Duration::from_secs(8);
/// How long any other run may take to post its Event and record on the parent.
const PUBLISH_WITHIN: Duration = Duration::from_secs(60);
/// The reasons of the Events on the parent: a run that ended, and one that moves to another pod.
pub const RUN_SUCCEEDED: &str = "RunSucceeded";
pub const RUN_FAILED: &str = "RunFailed";
pub const RUN_MOVING: &str = "RunMoving";

/// Where a finished run's reports go.
pub struct Ending<'a> {
    pub elapsed: Duration,
    pub run_id: &'a str,
    pub namespace: &'a str,
    pub parent: Option<&'a Parent>,
    /// The child name prefix: the JUnit suite's name without a parent, and part of the record.
    pub prefix: &'a str,
    pub report_file: Option<&'a Path>,
    pub junit_file: Option<&'a Path>,
    pub termination_log: &'a Path,
}

pub struct Reporter<W: Write> {
    out: W,
    /// A line per failure and counts lines, instead of a line per state change.
    counts_only: bool,
    /// `JOBHERD_PROGRESS=auto`: counts once the herd grows past `LINES_UP_TO` (a step that
    /// fans out over a result adds its children as the run goes).
    auto: bool,
    heartbeat: Option<Duration>,
    now: Instant,
    last_output: Instant,
    next_counts: Instant,
    changed: bool,
    /// Pending reasons already told (counts mode tells each once).
    pending_told: HashSet<String>,
    /// The page and the metrics, when asked for.
    outputs: Option<Outputs>,
}

impl<W: Write> Reporter<W> {
    pub fn new(
        out: W,
        progress: Progress,
        heartbeat: Option<Duration>,
        children: usize,
        now: Instant,
    ) -> Self {
        let counts_only = match progress {
            Progress::Auto => children > LINES_UP_TO,
            Progress::Lines => false,
            Progress::Counts => true,
        };
        Reporter {
            out,
            counts_only,
            auto: progress == Progress::Auto,
            heartbeat,
            now,
            last_output: now,
            next_counts: now + COUNTS_EVERY,
            changed: false,
            pending_told: HashSet::new(),
            outputs: None,
        }
    }

    /// Keeps the page and the metrics up to date from now on.
    pub fn show(&mut self, outputs: Outputs) {
        self.outputs = Some(outputs);
    }

    fn line(&mut self, text: &str) {
        // stdout going away (a closed pipe) must not stop the run.
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
        self.last_output = self.now;
    }

    /// A line of its own, about the run as a whole.
    pub fn note(&mut self, text: &str) {
        self.line(text);
    }

    /// The first line of a run.
    pub fn start(&mut self, header: &str) {
        self.line(header);
        if self.counts_only {
            self.line(COUNTS_NOTE);
        }
    }

    /// Prints what happened, then a counts line or a heartbeat when one is due.
    pub fn report(&mut self, run: &Run, transitions: &[Transition], now: Instant) {
        self.now = now;
        if self.auto && !self.counts_only && run.total() > LINES_UP_TO {
            self.counts_only = true;
            self.line(COUNTS_NOTE);
        }
        for t in transitions {
            self.transition(run, t);
        }
        if let Some(outputs) = &mut self.outputs {
            outputs.seen(run, transitions, now);
            outputs.refresh_if_due(run, now);
        }
        if self.counts_only && self.changed && now >= self.next_counts {
            self.line(&counts_line(run, "progress"));
            self.next_counts = now + COUNTS_EVERY;
            self.changed = false;
        }
        if let Some(every) = self.heartbeat
            && now.duration_since(self.last_output) >= every
        {
            self.line(&counts_line(run, "heartbeat"));
        }
    }

    fn transition(&mut self, run: &Run, t: &Transition) {
        let (index, change) = match t {
            Transition::Stopping(why) => {
                let text = format!(
                    "jobherd stopping: {}; deleting active children",
                    why.as_str()
                );
                return self.line(&text);
            }
            Transition::Moving {
                reason,
                active,
                waiting,
            } => {
                let text = format!(
                    "jobherd moving: its pod is being disrupted ({reason}) while its Job goes on; {active} active {} left as {} for the next attempt{}",
                    if *active == 1 {
                        "child is"
                    } else {
                        "children are"
                    },
                    if *active == 1 { "it is" } else { "they are" },
                    match waiting {
                        0 => String::new(),
                        n => format!(", which creates the {n} not created yet"),
                    }
                );
                return self.line(&text);
            }
            Transition::Note(text) => return self.line(text),
            Transition::Child { index, change } => (*index, change),
        };
        let name = run.children().name(index);
        match change {
            Change::Logs(text) => {
                let mut block = format!("{name} last log lines:");
                for line in text.lines() {
                    let _ = write!(block, "\n{name} | {line}");
                }
                self.line(&block);
            }
            Change::NoLogs => self.line(&format!(
                "{name} left no logs to show (its pods are gone or printed nothing)"
            )),
            Change::LogLine(line) => self.line(&format!("{name} | {line}")),
            // Drawn on the page's timeline only: a console tells the attempts at the end.
            Change::Attempt { .. } => {}
            change => {
                self.changed = true;
                if !self.counts_only || self.worth_a_line(change) {
                    self.line(&progress_line(run, index, change));
                }
            }
        }
    }

    /// In counts mode: every failure, and the first child pending for each reason.
    fn worth_a_line(&mut self, change: &Change) -> bool {
        match change {
            Change::Done(ChildResult::Failed) => true,
            Change::Pending { reason, .. } => self.pending_told.insert(reason.clone()),
            Change::Queued { .. } => self.pending_told.insert("queued".into()),
            Change::Preempted => self.pending_told.insert("preempted".into()),
            _ => false,
        }
    }

    /// The table and the summary line; returns the summary.
    pub fn finish(&mut self, run: &Run, elapsed: Duration) -> String {
        if self.counts_only {
            self.line(&counts_line(run, "progress"));
        }
        let _ = writeln!(self.out);
        let rows = self.table_rows(run);
        let text = table(run, &rows);
        let _ = write!(self.out, "{text}");
        let listed = rows.len();
        if listed < run.total() {
            let _ = writeln!(
                self.out,
                "({} more children not listed; JOBHERD_REPORT_FILE and JOBHERD_JUNIT_FILE list every child)",
                run.total() - listed
            );
        }
        let summary = summary(run, elapsed);
        self.line(&summary);
        summary
    }

    /// Every child, or in counts mode the failed ones and a few skipped or cancelled ones.
    fn table_rows(&self, run: &Run) -> Vec<usize> {
        let children = run.children();
        if !self.counts_only {
            return children.in_step_order().collect();
        }
        let result = |i: usize| run.state(i).phase.result();
        let quiet = |i: &usize| {
            matches!(
                result(*i),
                Some(ChildResult::Skipped | ChildResult::Cancelled)
            )
        };
        let mut listed: std::collections::HashSet<usize> = children
            .in_step_order()
            .filter(|i| result(*i) == Some(ChildResult::Failed))
            .collect();
        listed.extend(children.in_step_order().filter(quiet).take(QUIET_ROWS));
        children
            .in_step_order()
            .filter(|i| listed.contains(i))
            .collect()
    }

    /// Writes the reports, the termination message, and the Event and annotation on the parent
    /// (within a few seconds when `hurried`: the run stopped on a signal or its deadline, and
    /// its pod's grace period is running).
    pub async fn publish(
        &mut self,
        run: &Run,
        summary: &str,
        client: Option<&Client>,
        end: &Ending<'_>,
        hurried: bool,
    ) {
        if let Some(path) = end.report_file {
            let text = json(run, end.run_id, Some(end.namespace), end.elapsed);
            write_file(path, &text);
        }
        if let Some(path) = end.junit_file {
            let suite = end.parent.map_or(end.prefix, |p| p.name.as_str());
            write_file(path, &junit(run, suite, end.elapsed));
        }
        cluster::write_termination_log(end.termination_log, summary);
        if let Some(outputs) = &mut self.outputs {
            outputs.publish(run, end.elapsed).await;
        }
        let (Some(parent), Some(client)) = (end.parent, client) else {
            return;
        };
        let failed = run.exit_code() != Exit::Succeeded.code();
        let reason = if failed { RUN_FAILED } else { RUN_SUCCEEDED };
        let posted = post_on_parent(client, parent, (failed, reason), summary, run, end.prefix);
        let within = if hurried {
            PUBLISH_MOVE_WITHIN
        } else {
            PUBLISH_WITHIN
        };
        if tokio::time::timeout(within, posted).await.is_err() {
            tracing::warn!(
                "could not record the run on its parent within {}s (the API did not answer)",
                within.as_secs()
            );
        }
    }

    /// A run that moves to the next attempt writes no reports (the run goes on elsewhere):
    /// its line goes to the termination message, and its record on the parent is brought up
    /// to date. Within a few seconds: the pod's grace period is running.
    pub async fn publish_move(&self, run: &Run, client: &Client, end: &Ending<'_>) {
        let line = format!(
            "jobherd moving: its pod was disrupted ({}); {} active children left for the next attempt",
            run.moving().unwrap_or_default(),
            run.tally().active()
        );
        cluster::write_termination_log(end.termination_log, &line);
        let Some(parent) = end.parent else {
            return;
        };
        let posted = post_on_parent(client, parent, (false, RUN_MOVING), &line, run, end.prefix);
        if tokio::time::timeout(PUBLISH_MOVE_WITHIN, posted)
            .await
            .is_err()
        {
            tracing::warn!(
                "could not record the run on its parent within {}s; the next attempt adopts the children all the same",
                PUBLISH_MOVE_WITHIN.as_secs()
            );
        }
    }
}

/// The Event and the annotations (summary line and record) on the parent.
async fn post_on_parent(
    client: &Client,
    parent: &Parent,
    (warning, reason): (bool, &str),
    summary: &str,
    run: &Run,
    prefix: &str,
) {
    if let Err(e) = cluster::event_on_parent(client, parent, warning, reason, summary).await {
        tracing::warn!(
            "could not post an Event on the parent: {}",
            cluster::describe(&e)
        );
    }
    let mut outcome = Record::of(run, prefix, &parent.name);
    let record = outcome.to_annotation();
    if record.is_none() {
        tracing::warn!(
            "the run's record is too large for an annotation: JOBHERD_RETRY will read its children instead"
        );
    } else if outcome.outputs_left_out {
        tracing::warn!(
            "the results of this run's steps do not fit in its record on the parent Job ({} KiB at most): they were left out, so a JOBHERD_RETRY of this run runs again the steps whose results the steps after them need; keep results small (write large ones to object storage and pass their key)",
            crate::record::MAX_RECORD / 1024
        );
    }
    let mut annotations = vec![(SUMMARY, summary.to_string())];
    annotations.extend(record.map(|r| (RECORD, r)));
    if let Err(e) = cluster::annotate_parent(client, parent, &annotations).await {
        tracing::warn!("could not annotate the parent: {}", cluster::describe(&e));
    }
}

fn write_file(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        tracing::warn!(path = %PathBuf::from(path).display(), "could not write report: {e}");
    }
}

/// One progress line, the child's name first, with done/total counts.
pub fn progress_line(run: &Run, index: usize, change: &Change) -> String {
    let state = run.state(index);
    let what = match change {
        Change::Created => "created".to_string(),
        Change::Adopted => "adopted (created by an earlier attempt of this run)".to_string(),
        Change::Running => "running".to_string(),
        Change::Pending { reason, message } => format!("pending: {reason}: {message}"),
        Change::Queued { queue } => match queue {
            Some(q) => format!("queued (suspended until queue {q} admits it)"),
            None => "queued (suspended until it is admitted)".to_string(),
        },
        Change::Preempted => {
            "preempted (suspended again; its pod was deleted, which is not a failed attempt)"
                .to_string()
        }
        Change::Done(result) => {
            let mut s = result.as_str().to_string();
            if let Some(run) = &state.earlier_run {
                let _ = write!(s, " in earlier run {run}");
            }
            if let Phase::Done {
                reason, message, ..
            } = &state.phase
                && *result != ChildResult::Succeeded
            {
                if let Some(r) = reason {
                    let _ = write!(s, ": {r}");
                }
                if let Some(m) = message.as_deref().filter(|m| !m.is_empty()) {
                    let _ = write!(s, " ({m})");
                }
            }
            if matches!(result, ChildResult::Succeeded | ChildResult::Failed)
                && state.earlier_run.is_none()
            {
                let _ = write!(s, " after {}", attempts(state.attempts));
                if let Some(d) = duration(state.started(), state.finished()) {
                    let _ = write!(s, " in {}", human(d));
                }
                if let Some(q) = queue_text(run, index) {
                    let _ = write!(s, " ({q})");
                }
            }
            s
        }
        Change::Logs(_) | Change::NoLogs | Change::LogLine(_) | Change::Attempt { .. } => {
            String::new()
        }
    };
    let tally = run.tally();
    format!(
        "{} {what} [{}/{}]",
        run.children().name(index),
        tally.done(),
        run.total()
    )
}

/// The counts of a run on one line, for heartbeats and counts mode:
/// `heartbeat: 12/300 done, 40 running, 3 pending, 245 waiting, 1 failed; longest running: x (5m0s)`.
pub fn counts_line(run: &Run, label: &str) -> String {
    let t = run.tally();
    let mut line = format!(
        "{label}: {}/{} done, {} running, {} pending, ",
        t.done(),
        run.total(),
        t.running,
        t.pending(),
    );
    if t.queued > 0 {
        let _ = write!(line, "{} queued, ", t.queued);
    }
    let _ = write!(line, "{} waiting, {} failed", t.waiting, t.failed);
    for (n, what) in [(t.skipped, "skipped"), (t.cancelled, "cancelled")] {
        if n > 0 {
            let _ = write!(line, ", {n} {what}");
        }
    }
    if let Some((index, running)) = run.longest_running() {
        let name = run.children().name(index);
        let _ = write!(line, "; longest running: {name} ({})", human(running));
    }
    line
}

/// Time in queues and preemptions, when there were any: `queued 30s, preempted once`.
fn queue_text(run: &Run, index: usize) -> Option<String> {
    let queued = run.time_queued(index);
    let preemptions = run.state(index).preemptions();
    let mut parts = Vec::new();
    // A wait under a second is an admission as it happens, not a queue worth telling.
    if queued >= Duration::from_secs(1) {
        parts.push(format!("queued {}", human(queued)));
    }
    match preemptions {
        0 => {}
        1 => parts.push("preempted once".into()),
        n => parts.push(format!("preempted {n} times")),
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn attempts(n: u32) -> String {
    let n = n.max(1);
    if n == 1 {
        "1 attempt".into()
    } else {
        format!("{n} attempts")
    }
}

fn duration(started: Option<Timestamp>, finished: Option<Timestamp>) -> Option<Duration> {
    let (s, f) = (started?, finished?);
    Duration::try_from(f.duration_since(s)).ok()
}

/// The final table: one row per listed child.
pub fn table(run: &Run, rows: &[usize]) -> String {
    let columns = Columns::of(run, rows);
    let mut table = vec![columns.header()];
    table.extend(rows.iter().map(|&i| columns.row(run, i)));
    align(table)
}

/// The final table's columns, the same for the text table and the page's HTML table: the
/// optional ones are shown when a listed child has something to put there.
pub struct Columns {
    queues: bool,
    deps: bool,
    outputs: bool,
}

impl Columns {
    pub fn of(run: &Run, rows: &[usize]) -> Columns {
        Columns {
            queues: rows.iter().any(|&i| queue_text(run, i).is_some()),
            deps: run
                .children()
                .steps()
                .iter()
                .any(|s| !s.depends_on_names.is_empty()),
            outputs: rows.iter().any(|&i| run.state(i).output.text().is_some()),
        }
    }

    pub fn header(&self) -> Vec<String> {
        let mut header = vec!["CHILD", "STEP", "RESULT", "ATTEMPTS", "DURATION"];
        if self.queues {
            header.push("QUEUED");
        }
        if self.deps {
            header.push("DEPENDS ON");
        }
        if self.outputs {
            header.push("OUTPUT");
        }
        header.push("REASON");
        header.into_iter().map(String::from).collect()
    }

    /// One child's cells, in the header's order.
    pub fn row(&self, run: &Run, i: usize) -> Vec<String> {
        let children = run.children();
        let state = run.state(i);
        let (result, reason) = result_and_reason(state);
        let mut row = vec![
            children.name(i).to_string(),
            children.step_name(i).into_owned(),
            result,
            if state.attempts == 0 {
                "-".into()
            } else {
                state.attempts.to_string()
            },
            duration(state.started(), state.finished()).map_or("-".into(), human),
        ];
        if self.queues {
            row.push(queue_text(run, i).unwrap_or_else(|| "-".into()));
        }
        if self.deps {
            let deps = &children.step_of(i).depends_on_names;
            row.push(if deps.is_empty() {
                "-".into()
            } else {
                deps.join(",")
            });
        }
        if self.outputs {
            row.push(state.output.text().map_or("-".into(), shortened));
        }
        row.push(reason);
        row
    }
}

/// A child's RESULT and REASON cells.
fn result_and_reason(state: &ChildState) -> (String, String) {
    match &state.phase {
        Phase::Done {
            result,
            reason,
            message,
        } => (
            result.as_str().to_string(),
            match (reason, message.as_deref().filter(|m| !m.is_empty())) {
                (Some(r), Some(m)) if *result != ChildResult::Succeeded => format!("{r}: {m}"),
                (Some(r), None) if *result != ChildResult::Succeeded => r.to_string(),
                _ => state
                    .earlier_run
                    .as_ref()
                    .map_or(String::new(), |run| format!("done by earlier run {run}")),
            },
        ),
        other => (format!("{other:?}").to_lowercase(), String::new()),
    }
}

/// A child's result on one line of the table: at most `OUTPUT_SHOWN` characters.
fn shortened(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= OUTPUT_SHOWN {
        return one_line;
    }
    let head: String = one_line.chars().take(OUTPUT_SHOWN - 3).collect();
    format!("{head}...")
}

/// Columns padded to their widest cell; the last one is not padded.
fn align(rows: Vec<Vec<String>>) -> String {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let last = row.len() - 1;
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i == last {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The one summary line (also the termination message, the Event and the annotation).
pub fn summary(run: &Run, elapsed: Duration) -> String {
    let outcome = match Exit::from_code(run.exit_code()) {
        Some(Exit::Succeeded) => "succeeded",
        Some(Exit::Timeout) => "timed out",
        Some(Exit::Interrupted | Exit::Terminated) => "interrupted",
        _ => "failed",
    };
    let counts = Counts::of(run);
    let mut parts = Vec::new();
    if counts.inherited > 0 {
        parts.push(format!(
            "{} succeeded ({} in earlier runs)",
            counts.succeeded, counts.inherited
        ));
    } else {
        parts.push(format!("{} succeeded", counts.succeeded));
    }
    for (n, what) in [
        (counts.failed, "failed"),
        (counts.skipped, "skipped"),
        (counts.cancelled, "cancelled"),
        (counts.not_needed, "not needed"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let mut line = format!(
        "jobherd {outcome}: {} of {} children in {}",
        parts.join(", "),
        run.total(),
        human(elapsed)
    );
    let first_failure = run
        .children()
        .in_step_order()
        .find_map(|i| match &run.state(i).phase {
            Phase::Done {
                result: ChildResult::Failed,
                reason,
                ..
            } => Some(format!(
                "{} {}",
                run.children().name(i),
                reason.as_deref().unwrap_or("Failed")
            )),
            _ => None,
        });
    if let Some(f) = first_failure {
        let _ = write!(line, "; first failure: {f}");
    }
    line
}

#[cfg(test)]
mod tests;
