//! `JOBHERD_HTML_FILE`: one self-contained HTML page of a run. A header with the result, the
//! counts, the duration and the exit code; the timeline (`chart`); for a plan, the graph of its
//! steps (`graph`); the table of children as the text report has it; the failed children's
//! last log lines. HTML and inline SVG with presentation attributes only, nothing loaded from
//! elsewhere, no script and no style: it shows as it is under Jenkins' default
//! Content-Security-Policy (`sandbox; default-src 'none'; img-src 'self'; style-src 'self';`).

mod chart;
mod graph;
pub mod layout;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;

use super::timeline::{Bar, Clock, Timeline};
use super::{Columns, Counts, exit_meaning, human, summary};
use crate::run::{ChildResult, NOT_NEEDED, Phase, Run};
use chart::FONT;
use layout::{Paint, Scale};

/// Failed children the header names, at most.
const FAILED_NAMED: usize = 10;
/// How long a browser waits before reading a page of a run that goes on again.
const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// Who the run is, for the header.
#[derive(Debug, Clone)]
pub struct About {
    pub run_id: String,
    pub namespace: String,
    /// `Job nightly-28434560`, when there is a parent.
    pub parent: Option<String>,
    /// When the timeline's clock reads 0.
    pub started: Timestamp,
}

/// Everything one page shows.
pub struct Page<'a> {
    pub run: &'a Run,
    pub timeline: &'a Timeline,
    pub about: &'a About,
    /// The failed children's last log lines, as the console showed them.
    pub tails: &'a [(usize, String)],
    pub elapsed: Duration,
    /// The end of the axis: now, or when the run ended (milliseconds since its start).
    pub now: u32,
    /// The run goes on: the page is refreshed on each heartbeat.
    pub live: bool,
}

/// The whole page.
pub fn render(p: &Page) -> String {
    let run = p.run;
    let bars = p.timeline.bars(run.total(), p.now);
    let scale = Scale::new(p.now.max(p.timeline.latest()));
    let (critical, critical_children) = critical_path(run, &bars);
    let mut out = String::with_capacity(4096 + run.total() * 240);
    head(&mut out, p);
    header(&mut out, p);
    out.push_str("<h2>Timeline</h2>\n");
    let chart = chart::Chart {
        run,
        bars: &bars,
        scale,
        critical: &critical,
        critical_children: &critical_children,
        stopped: p.timeline.stopped(),
        now: p.live.then_some(p.now),
    };
    chart::draw(&mut out, &chart);
    if is_plan(run) {
        out.push_str("<h2>Plan</h2>\n");
        graph::draw(&mut out, run, &critical);
    }
    out.push_str("<h2>Children</h2>\n");
    table(&mut out, run);
    tails(&mut out, p);
    footer(&mut out, p);
    out.push_str("</font></body>\n</html>\n");
    out
}

/// Writes the page where a reader never sees half of it: a file beside it, then a rename.
pub fn write(path: &Path, html: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "names no file"))?;
    let partial = path.with_file_name(format!(
        ".{}.{}.partial",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = std::fs::write(&partial, html).and_then(|()| std::fs::rename(&partial, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

fn is_plan(run: &Run) -> bool {
    run.children().steps().iter().any(|s| s.name.is_some())
}

/// The steps on the plan's critical path, and the child that ended last in each that ran.
fn critical_path(run: &Run, bars: &[Bar]) -> (HashSet<usize>, HashSet<usize>) {
    let steps = run.children().steps();
    if !steps.iter().any(|s| !s.depends_on.is_empty()) {
        return Default::default();
    }
    // When each step's last child ended, and whether it ran (a skipped child takes no time).
    let last_child = |s: usize| {
        steps[s]
            .children
            .clone()
            .filter_map(|i| Some((bars[i].last()?, !bars[i].segments.is_empty(), i)))
            .max()
    };
    let ends: Vec<Option<(u32, bool)>> = (0..steps.len())
        .map(|s| last_child(s).map(|(at, ran, _)| (at, ran)))
        .collect();
    let deps: Vec<&[usize]> = steps.iter().map(|s| s.depends_on.as_slice()).collect();
    let path = layout::critical_path(&deps, &ends);
    let children = path
        .iter()
        .filter_map(|&s| last_child(s).filter(|c| c.1).map(|c| c.2))
        .collect();
    (path.into_iter().collect(), children)
}

fn head(out: &mut String, p: &Page) {
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>jobherd: {}</title>",
        esc(&outcome(p))
    );
    if p.live {
        // Honoured in a browser; a sandboxed frame (Jenkins) ignores it, and the page is
        // read again when the build ends anyway.
        let _ = writeln!(
            out,
            "<meta http-equiv=\"refresh\" content=\"{}\">",
            RELOAD_EVERY.as_secs()
        );
    }
    let _ = writeln!(
        out,
        "</head>\n<body bgcolor=\"#ffffff\" text=\"#222222\" link=\"#1a4d8f\" vlink=\"#1a4d8f\">\n<font face=\"{FONT}\">"
    );
}

/// `succeeded`, `failed (exit 1)`, or `running: 12/300 done`.
fn outcome(p: &Page) -> String {
    if p.live {
        let c = Counts::of(p.run);
        return format!("running: {}/{} done", c.done(), c.total);
    }
    let code = p.run.exit_code();
    let word = match code {
        0 => "succeeded",
        3 => "timed out",
        130 | 143 => "interrupted",
        _ => "failed",
    };
    format!("{word} (exit {code})")
}

/// The banner, the summary line, the counts, who and when, and the failed children by name.
fn header(out: &mut String, p: &Page) {
    let code = p.run.exit_code();
    let (fill, meaning) = match (p.live, code) {
        (true, _) => (
            Paint::Running.colour(),
            "the run goes on; this page is refreshed on each heartbeat".to_string(),
        ),
        (false, 0) => (
            Paint::Succeeded.colour(),
            format!("exit 0: {}", exit_meaning(0)),
        ),
        (false, c) => (
            Paint::Failed.colour(),
            format!("exit {c}: {}", exit_meaning(c)),
        ),
    };
    let _ = writeln!(
        out,
        r##"<svg id="banner" xmlns="http://www.w3.org/2000/svg" width="{}" height="62" font-family="{FONT}"><rect x="0" y="0" width="{}" height="62" rx="6" fill="{fill}"/><text x="16" y="30" font-size="22" font-weight="bold" fill="#ffffff">jobherd {}</text><text x="16" y="51" font-size="14" fill="#ffffff">{}</text></svg>"##,
        layout::WIDTH,
        layout::WIDTH,
        esc(&outcome(p)),
        esc(&meaning)
    );
    let line = if p.live {
        super::counts_line(p.run, "now")
    } else {
        summary(p.run, p.elapsed)
    };
    let _ = writeln!(out, "<p><b>{}</b></p>", esc(&line));
    counts(out, p.run);
    let a = p.about;
    let parent = a
        .parent
        .as_deref()
        .map(|x| format!(", parent {x}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "<p>Run <code>{}</code> in namespace <code>{}</code>{}; started {}, {} {}.</p>",
        esc(&a.run_id),
        esc(&a.namespace),
        esc(&parent),
        a.started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        if p.live { "running for" } else { "took" },
        human(p.elapsed)
    );
    failed_by_name(out, p.run);
}

/// One coloured cell per state that has children.
fn counts(out: &mut String, run: &Run) {
    let c = Counts::of(run);
    out.push_str("<table cellspacing=\"3\" cellpadding=\"4\"><tr>");
    for (state, n) in c.by_state() {
        if n == 0 {
            continue;
        }
        let (bg, ink) = match state {
            "succeeded" => (Paint::Succeeded.colour(), "#ffffff"),
            "failed" => (Paint::Failed.colour(), "#ffffff"),
            "running" => (Paint::Running.colour(), "#ffffff"),
            "pending" => (Paint::Pending.colour(), "#222222"),
            "queued" => (Paint::Queued.colour(), "#222222"),
            "cancelled" => (Paint::Cancelled.colour(), "#ffffff"),
            _ => ("#e8e8e8", "#222222"),
        };
        let _ = write!(
            out,
            "<td bgcolor=\"{bg}\"><font color=\"{ink}\"><b>{n}</b> {}</font></td>",
            state.replace('_', " ")
        );
    }
    let _ = writeln!(out, "<td>of <b>{}</b> children</td></tr></table>", c.total);
}

/// The first failed children, each a link to its row in the table.
fn failed_by_name(out: &mut String, run: &Run) {
    let failed: Vec<usize> = run
        .children()
        .in_step_order()
        .filter(|&i| run.state(i).phase.result() == Some(ChildResult::Failed))
        .collect();
    if failed.is_empty() {
        return;
    }
    out.push_str("<p><font color=\"#c62828\"><b>Failed:</b></font> ");
    for (k, &i) in failed.iter().take(FAILED_NAMED).enumerate() {
        let name = run.children().name(i);
        let state = run.state(i);
        let reason = match &state.phase {
            Phase::Done { reason, .. } => reason.as_deref().unwrap_or("Failed"),
            _ => "Failed",
        };
        let _ = write!(
            out,
            "{}<a href=\"#c-{}\">{}</a> ({}, {} attempts)",
            if k > 0 { ", " } else { "" },
            esc(name),
            esc(name),
            esc(reason),
            state.attempts
        );
    }
    if failed.len() > FAILED_NAMED {
        let _ = write!(out, ", and {} more", failed.len() - FAILED_NAMED);
    }
    out.push_str("</p>\n");
}

/// The table of the text report, every child, each row a link target; row by row, so a big
/// herd's cells are never all held at once.
fn table(out: &mut String, run: &Run) {
    let rows: Vec<usize> = run.children().in_step_order().collect();
    let columns = Columns::of(run, &rows);
    let header = columns.header();
    out.push_str("<table border=\"1\" cellspacing=\"0\" cellpadding=\"3\">\n<tr>");
    for h in &header {
        let _ = write!(
            out,
            "<th bgcolor=\"#eeeeee\" align=\"left\" nowrap>{}</th>",
            esc(h)
        );
    }
    out.push_str("</tr>\n");
    // Short cells stay on one line; a child's result and a reason wrap.
    let wraps: Vec<bool> = header
        .iter()
        .map(|h| h == "OUTPUT" || h == "REASON")
        .collect();
    for i in rows {
        let _ = write!(out, "<tr id=\"c-{}\">", esc(run.children().name(i)));
        for (k, cell) in columns.row(run, i).iter().enumerate() {
            // The RESULT column, tinted.
            let bg = match (k, run.state(i).phase.result()) {
                (2, Some(ChildResult::Failed)) => " bgcolor=\"#f8d4d4\"",
                (2, Some(ChildResult::Succeeded)) => " bgcolor=\"#d6f0dc\"",
                (2, Some(ChildResult::Cancelled)) => " bgcolor=\"#e4e4e4\"",
                _ => "",
            };
            let wrap = if wraps[k] { "" } else { " nowrap" };
            let _ = write!(out, "<td{bg}{wrap}>{}</td>", esc(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// The failed children's last log lines, each folded under its name.
fn tails(out: &mut String, p: &Page) {
    if p.tails.is_empty() {
        return;
    }
    out.push_str("<h2>Last log lines of failed children</h2>\n");
    for (k, (i, text)) in p.tails.iter().enumerate() {
        let name = p.run.children().name(*i);
        let _ = writeln!(
            out,
            "<details{}><summary><a href=\"#c-{}\">{}</a></summary><pre>{}</pre></details>",
            if k < 3 { " open" } else { "" },
            esc(name),
            esc(name),
            esc(text)
        );
    }
}

fn footer(out: &mut String, p: &Page) {
    let clock = match p.timeline.clock() {
        Clock::Local => "when jobherd saw each change, from the run's start",
        Clock::Cluster => {
            "the child Jobs' times as the cluster recorded them (whole seconds), from the parent Job's creation; attempts are not told apart"
        }
    };
    let _ = writeln!(
        out,
        "<p><small><font color=\"#666666\">Timeline: {clock}. DURATION in the table: each Job's start and end as the cluster recorded them. Written by jobherd {} at {}.</font></small></p>",
        env!("CARGO_PKG_VERSION"),
        Timestamp::now().strftime("%Y-%m-%d %H:%M:%S UTC")
    );
}

/// Per step: its children by state, from the run's phases (the same as every count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepCounts {
    pub total: usize,
    pub laid_out: bool,
    pub waiting: usize,
    pub pending: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub not_needed: usize,
    pub cancelled: usize,
}

impl StepCounts {
    /// The step's state, in a word: the first that applies of failed, running, pending, done.
    pub fn state(&self) -> &'static str {
        let done = self.succeeded + self.failed + self.skipped + self.not_needed + self.cancelled;
        if !self.laid_out {
            "waiting"
        } else if self.failed > 0 {
            "failed"
        } else if self.running > 0 {
            "running"
        } else if self.pending > 0 {
            "pending"
        } else if done < self.total {
            "waiting"
        } else if self.succeeded == self.total {
            "succeeded"
        } else if self.not_needed == self.total {
            "not needed"
        } else if self.cancelled > 0 {
            "cancelled"
        } else {
            "skipped"
        }
    }

    /// `3 succeeded, 1 failed`.
    pub fn text(&self) -> String {
        if !self.laid_out {
            return "waits for the result it fans out over".into();
        }
        if self.total == 0 {
            return "no children".into();
        }
        let parts: Vec<String> = [
            (self.succeeded, "succeeded"),
            (self.failed, "failed"),
            (self.running, "running"),
            (self.pending, "pending"),
            (self.waiting, "waiting"),
            (self.cancelled, "cancelled"),
            (self.skipped, "skipped"),
            (self.not_needed, "not needed"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        parts.join(", ")
    }
}

pub fn step_counts(run: &Run, step: usize) -> StepCounts {
    let spec = &run.children().steps()[step];
    let mut c = StepCounts {
        total: spec.children.len(),
        laid_out: spec.laid_out,
        ..StepCounts::default()
    };
    for i in spec.children.clone() {
        match &run.state(i).phase {
            Phase::Waiting => c.waiting += 1,
            Phase::Creating | Phase::Created | Phase::Queued => c.pending += 1,
            Phase::Running => c.running += 1,
            Phase::Done { result, reason, .. } => match result {
                ChildResult::Succeeded => c.succeeded += 1,
                ChildResult::Failed => c.failed += 1,
                ChildResult::Cancelled => c.cancelled += 1,
                ChildResult::Skipped if reason.as_deref() == Some(NOT_NEEDED) => c.not_needed += 1,
                ChildResult::Skipped => c.skipped += 1,
            },
        }
    }
    c
}

/// A step's heading: `process (when: failed) · 3 children: 2 succeeded, 1 failed`.
pub fn step_label(run: &Run, step: usize, counts: &StepCounts) -> String {
    let spec = &run.children().steps()[step];
    let name = spec.name.as_deref().unwrap_or("children");
    let when = match spec.when {
        crate::plan::When::Succeeded => "",
        crate::plan::When::Failed => " (when: failed)",
        crate::plan::When::Always => " (when: always)",
    };
    format!("{name}{when} · {}", counts.text())
}

/// Text made safe for HTML and XML, attributes included.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
