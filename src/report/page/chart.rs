//! The timeline chart: one inline SVG, time on the axis with readable ticks, a row per child
//! (or per big step, summed), each stretch of its time a bar placed and sized by its times,
//! failed and cancelled children marked, the critical path of a plan outlined. Presentation
//! attributes only: no style, no script (Jenkins' default CSP).

use std::collections::HashSet;
use std::fmt::Write as _;

use super::layout::{self, PAINTS, PLOT_W, PLOT_X, Paint, Row, Scale, WIDTH};
use super::{esc, step_counts, step_label};
use crate::report::human;
use crate::report::timeline::{Bar, Span};
use crate::run::{ChildResult, Phase, Run, Stop};

const AXIS_H: f64 = 28.0;
const ROW_H: f64 = 18.0;
const BAR_H: f64 = 12.0;
const STEP_H: f64 = 24.0;
const AGGREGATE_H: f64 = 44.0;
/// Characters of a child's name that fit the label column (monospace, 11 px).
const LABEL_CHARS: usize = 38;
pub const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";
pub const MONO: &str = "DejaVu Sans Mono, Menlo, Consolas, monospace";

/// What the chart draws.
pub struct Chart<'a> {
    pub run: &'a Run,
    pub bars: &'a [Bar],
    pub scale: Scale,
    /// Steps and children on the critical path.
    pub critical: &'a HashSet<usize>,
    pub critical_children: &'a HashSet<usize>,
    pub stopped: Option<(u32, Stop)>,
    /// The run goes on: a line marks now.
    pub now: Option<u32>,
}

fn height(row: &Row) -> f64 {
    match row {
        Row::Step(_) => STEP_H,
        Row::Aggregate(_) => AGGREGATE_H,
        Row::Child(_) | Row::More { .. } => ROW_H,
    }
}

/// The legend, then the chart.
pub fn draw(out: &mut String, c: &Chart) {
    legend(out);
    let rows = layout::rows(c.run);
    let total: f64 = AXIS_H + rows.iter().map(height).sum::<f64>() + 8.0;
    let _ = writeln!(
        out,
        r##"<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}" viewBox="0 0 {WIDTH} {total}" font-family="{FONT}" font-size="12" data-span="{}" data-plot-x="{PLOT_X}" data-plot-width="{PLOT_W}">"##,
        c.scale.span
    );
    axis(out, c.scale, total);
    let mut y = AXIS_H;
    for row in &rows {
        match *row {
            Row::Step(s) => step_row(out, c, s, y),
            Row::Child(i) => child_row(out, c, i, y),
            Row::Aggregate(s) => aggregate_row(out, c, s, y),
            Row::More { step, failed } => more_row(out, c.run, step, failed, y),
        }
        y += height(row);
    }
    marks(out, c, total);
    out.push_str("</svg>\n");
}

/// A swatch per paint, and the critical path's outline.
fn legend(out: &mut String) {
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="22" font-family="{FONT}" font-size="12">"##
    );
    let mut x = 4.0;
    for paint in PAINTS {
        let _ = write!(
            out,
            r##"<rect x="{x}" y="5" width="14" height="12" fill="{}"/><text x="{}" y="15" fill="#333">{}</text>"##,
            paint.colour(),
            x + 18.0,
            paint.name()
        );
        x += 30.0 + layout::text_width(paint.name(), 12.0);
    }
    let _ = writeln!(
        out,
        r##"<rect x="{x}" y="5" width="14" height="12" fill="#ffffff" stroke="#111111" stroke-width="2"/><text x="{}" y="15" fill="#333">critical path</text></svg>"##,
        x + 18.0
    );
}

/// Ticks with their labels on top, and a grid line under every tick.
fn axis(out: &mut String, scale: Scale, total: f64) {
    for tick in layout::ticks(scale.span) {
        let x = scale.x(tick.at);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{total}" stroke="#e3e3e3" stroke-width="1"/><text x="{x:.1}" y="16" text-anchor="middle" fill="#555">{}</text>"##,
            AXIS_H - 6.0,
            esc(&tick.label)
        );
    }
    let _ = writeln!(
        out,
        r##"<line x1="{PLOT_X}" y1="{}" x2="{}" y2="{}" stroke="#999999" stroke-width="1"/>"##,
        AXIS_H - 6.0,
        PLOT_X + PLOT_W,
        AXIS_H - 6.0
    );
}

/// A plan step's heading across the whole width.
fn step_row(out: &mut String, c: &Chart, step: usize, y: f64) {
    let on_path = if c.critical.contains(&step) {
        " · on the critical path"
    } else {
        ""
    };
    let text = format!(
        "{}{on_path}",
        step_label(c.run, step, &step_counts(c.run, step))
    );
    let _ = writeln!(
        out,
        r##"<rect x="0" y="{y}" width="{WIDTH}" height="{}" fill="#f1f3f6"/><text x="6" y="{}" font-weight="bold" fill="#222">{}</text>"##,
        STEP_H - 2.0,
        y + 16.0,
        esc(&text)
    );
}

/// A child: its name (a link to its row in the table), each segment of its time, how it ended.
fn child_row(out: &mut String, c: &Chart, i: usize, y: f64) {
    let name = c.run.children().name(i);
    let _ = write!(
        out,
        r##"<g id="t-{}" data-child="{}"><a href="#c-{}"><text x="8" y="{}" font-family="{MONO}" font-size="11" fill="#1a4d8f">{}<title>{}</title></text></a>"##,
        esc(name),
        esc(name),
        esc(name),
        y + 13.0,
        esc(&shortened(name)),
        esc(name)
    );
    let bar = &c.bars[i];
    let critical = c.critical_children.contains(&i);
    let outline = if critical {
        r##" stroke="#111111" stroke-width="2""##
    } else {
        ""
    };
    for (segment, paint) in bar.segments.iter().zip(layout::paints(bar)) {
        let x = c.scale.x(segment.from);
        // At least a pixel, so a short stretch still shows.
        let w = c.scale.width(segment.from, segment.to).max(1.0);
        let _ = write!(
            out,
            r##"<rect class="bar" x="{x:.2}" y="{}" width="{w:.2}" height="{BAR_H}" fill="{}"{outline} data-from="{}" data-to="{}" data-paint="{}"><title>{}</title></rect>"##,
            y + 3.0,
            paint.colour(),
            segment.from,
            segment.to,
            paint.name(),
            esc(&segment_title(name, segment, paint))
        );
    }
    ending(out, c, i, y);
    out.push_str("</g>\n");
}

fn segment_title(name: &str, segment: &crate::report::timeline::Segment, paint: Paint) -> String {
    let long = human(std::time::Duration::from_millis(
        (segment.to - segment.from).into(),
    ));
    match segment.span {
        Span::Running => format!(
            "{name}: attempt {} {} for {long}",
            segment.attempt,
            match paint {
                Paint::Running => "running",
                Paint::Retried => "failed, retried",
                Paint::Preempted => "ran until preempted",
                other => other.name(),
            }
        ),
        Span::Pending => format!("{name}: pending for {long}"),
        Span::Queued => format!("{name}: queued for {long}"),
    }
}

/// A mark after the bar of a failed or cancelled child; words for a skipped one or one done by
/// an earlier run.
fn ending(out: &mut String, c: &Chart, i: usize, y: f64) {
    let state = c.run.state(i);
    let bar = &c.bars[i];
    let (text, colour) = match (&state.phase, &state.earlier_run) {
        (_, Some(earlier)) => (format!("succeeded in earlier run {earlier}"), "#2e7d32"),
        (Phase::Done { result, reason, .. }, _) => {
            let reason = reason.as_deref().unwrap_or(result.as_str());
            match result {
                ChildResult::Failed => (format!("✗ {reason}"), "#c62828"),
                ChildResult::Cancelled => (format!("⊘ {reason}"), "#616161"),
                ChildResult::Skipped => (format!("skipped: {reason}"), "#757575"),
                // Read back after its Job was deleted (JOBHERD_CLEANUP): no times to draw.
                ChildResult::Succeeded if bar.segments.is_empty() => (
                    "succeeded; its Job was deleted, and its times with it".to_string(),
                    "#2e7d32",
                ),
                ChildResult::Succeeded => return,
            }
        }
        _ => return,
    };
    let from = c.scale.x(bar.first().unwrap_or(0));
    let to = c.scale.x(bar.last().unwrap_or(0));
    let (x, anchor) = layout::label_place(from, to, layout::text_width(&text, 11.0) * 1.1);
    let _ = write!(
        out,
        r##"<text x="{x:.1}" y="{}" font-size="11" text-anchor="{anchor}" fill="{colour}" font-weight="bold">{}</text>"##,
        y + 13.0,
        esc(&text)
    );
}

/// A step's children summed: stacked heights per slice of time, as many as were in each paint.
fn aggregate_row(out: &mut String, c: &Chart, step: usize, y: f64) {
    let spec = &c.run.children().steps()[step];
    let sums = layout::buckets(spec.children.clone().map(|i| &c.bars[i]), c.scale);
    let peak = sums
        .iter()
        .map(|b| b.iter().sum::<f64>())
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let critical = c.critical.contains(&step);
    let _ = write!(
        out,
        r##"<g data-aggregate="{}"><text x="8" y="{}" font-size="11" fill="#222"{}>{} children, summed{}</text><text x="8" y="{}" font-size="10" fill="#666">at most {:.0} at once</text>"##,
        step,
        y + 16.0,
        if critical {
            r#" font-weight="bold""#
        } else {
            ""
        },
        spec.children.len(),
        if critical { " ◆" } else { "" },
        y + 30.0,
        peak
    );
    let slice = PLOT_W / layout::BUCKETS as f64;
    let full = AGGREGATE_H - 6.0;
    for (b, sum) in sums.iter().enumerate() {
        let x = PLOT_X + b as f64 * slice;
        let mut bottom = y + AGGREGATE_H - 3.0;
        for (paint, n) in PAINTS.iter().zip(sum) {
            let h = n / peak * full;
            if h < 0.05 {
                continue;
            }
            bottom -= h;
            let _ = write!(
                out,
                r##"<rect x="{x:.2}" y="{bottom:.2}" width="{:.2}" height="{h:.2}" fill="{}"/>"##,
                slice + 0.3,
                paint.colour()
            );
        }
    }
    out.push_str("</g>\n");
}

fn more_row(out: &mut String, run: &Run, step: usize, failed: usize, y: f64) {
    let step_name = run.children().steps()[step]
        .name
        .as_deref()
        .unwrap_or("the run");
    let _ = writeln!(
        out,
        r##"<text x="8" y="{}" font-size="11" fill="#c62828">… and {failed} more failed children of {}: see the table</text>"##,
        y + 13.0,
        esc(step_name)
    );
}

/// When the run began to stop, and now while it goes on.
fn marks(out: &mut String, c: &Chart, total: f64) {
    if let Some((at, why)) = c.stopped {
        let x = c.scale.x(at);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{AXIS_H}" x2="{x:.1}" y2="{total}" stroke="#c62828" stroke-width="1.5" stroke-dasharray="5,3"><title>stopping: {}</title></line>"##,
            esc(why.as_str())
        );
    }
    if let Some(now) = c.now {
        let x = c.scale.x(now);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{AXIS_H}" x2="{x:.1}" y2="{total}" stroke="#1e7fd9" stroke-width="1" stroke-dasharray="2,2"><title>now</title></line>"##
        );
    }
}

/// A name cut to the label column, its end kept (where fan-outs differ).
fn shortened(name: &str) -> String {
    let n = name.chars().count();
    if n <= LABEL_CHARS {
        return name.to_string();
    }
    let tail: String = name.chars().skip(n - (LABEL_CHARS - 1)).collect();
    format!("…{tail}")
}
