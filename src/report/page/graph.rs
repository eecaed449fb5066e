//! The plan's graph: each step a box coloured by its state, with its counts, an arrow from
//! each dependency (dashed into a step that runs on failure, dotted into one that always
//! runs), the critical path drawn thick. One inline SVG, presentation attributes only.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::chart::FONT;
use super::layout::{self, Paint};
use super::{StepCounts, esc, step_counts};
use crate::plan::When;
use crate::run::Run;

const BOX_W: f64 = 176.0;
const BOX_H: f64 = 46.0;
const GAP_X: f64 = 48.0;
const GAP_Y: f64 = 22.0;
const MARGIN: f64 = 12.0;
/// The lane under the boxes for arrows that pass a column.
const LANE: f64 = 44.0;
/// Characters of a step's name that fit its box.
const NAME_CHARS: usize = 24;

/// The graph of the run's plan steps.
pub fn draw(out: &mut String, run: &Run, critical: &HashSet<usize>) {
    let steps = run.children().steps();
    let deps: Vec<&[usize]> = steps.iter().map(|s| s.depends_on.as_slice()).collect();
    let places = layout::graph_places(&deps);
    let columns = places.iter().map(|p| p.0 + 1).max().unwrap_or(1);
    let rows = places.iter().map(|p| p.1 + 1).max().unwrap_or(1);
    let width = MARGIN * 2.0 + columns as f64 * (BOX_W + GAP_X) - GAP_X;
    let boxes_end = MARGIN + rows as f64 * (BOX_H + GAP_Y) - GAP_Y;
    // Arrows that pass a column go under every box, in a lane of their own.
    let long = steps.iter().enumerate().any(|(s, spec)| {
        spec.depends_on
            .iter()
            .any(|&d| places[s].0 > places[d].0 + 1)
    });
    let lane = boxes_end + LANE / 2.0;
    let height = boxes_end + MARGIN + if long { LANE } else { 0.0 };
    let corner = |s: usize| {
        let (c, r) = places[s];
        (
            MARGIN + c as f64 * (BOX_W + GAP_X),
            MARGIN + r as f64 * (BOX_H + GAP_Y),
        )
    };
    let _ = writeln!(
        out,
        r##"<svg id="plan" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="12">"##
    );
    out.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555555"/></marker></defs>"##);
    for (s, spec) in steps.iter().enumerate() {
        for &d in &spec.depends_on {
            let on_path = critical.contains(&s) && critical.contains(&d);
            let under = (places[s].0 > places[d].0 + 1).then_some(lane);
            edge(out, (corner(d), corner(s)), under, spec.when, on_path);
        }
    }
    for s in 0..steps.len() {
        node(out, run, s, corner(s), critical.contains(&s));
    }
    out.push_str("</svg>\n");
}

/// An arrow from a box's right side to the next column's left side; one that passes a column
/// leaves from the bottom of its box, runs in the lane under the boxes and comes up into its
/// target from below.
fn edge(
    out: &mut String,
    (from, to): ((f64, f64), (f64, f64)),
    under: Option<f64>,
    when: When,
    on_path: bool,
) {
    let d = match under {
        None => {
            let (x1, y1) = (from.0 + BOX_W, from.1 + BOX_H / 2.0);
            let (x2, y2) = (to.0 - 2.0, to.1 + BOX_H / 2.0);
            let bend = (x2 - x1) / 2.0;
            format!(
                "M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}",
                x1 + bend,
                x2 - bend
            )
        }
        Some(lane) => {
            let (x1, y1) = (from.0 + BOX_W * 0.6, from.1 + BOX_H);
            let (x2, y2) = (to.0 + BOX_W * 0.4, to.1 + BOX_H + 2.0);
            format!("M{x1:.1},{y1:.1} C{x1:.1},{lane:.1} {x2:.1},{lane:.1} {x2:.1},{y2:.1}")
        }
    };
    let dash = match when {
        When::Succeeded => "",
        When::Failed => r#" stroke-dasharray="6,4""#,
        When::Always => r#" stroke-dasharray="2,3""#,
    };
    let width = if on_path { 3.0 } else { 1.4 };
    let _ = writeln!(
        out,
        r##"<path d="{d}" fill="none" stroke="#555555" stroke-width="{width}"{dash} marker-end="url(#arrow)"/>"##
    );
}

fn node(out: &mut String, run: &Run, step: usize, (x, y): (f64, f64), on_path: bool) {
    let spec = &run.children().steps()[step];
    let counts = step_counts(run, step);
    let (fill, ink) = state_colours(&counts);
    let name = spec.name.as_deref().unwrap_or("run");
    let when = match spec.when {
        When::Succeeded => "",
        When::Failed => " (when: failed)",
        When::Always => " (when: always)",
    };
    let title = format!("{name}{when}: {}", counts.text());
    let stroke = if on_path {
        r##"stroke="#111111" stroke-width="3""##
    } else {
        r##"stroke="#777777" stroke-width="1""##
    };
    let _ = writeln!(
        out,
        r##"<g data-step="{}" data-state="{}"><rect x="{x:.1}" y="{y:.1}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" {stroke}/><text x="{:.1}" y="{:.1}" font-weight="bold" fill="{ink}">{}</text><text x="{:.1}" y="{:.1}" font-size="11" fill="{ink}">{}</text><title>{}</title></g>"##,
        esc(name),
        counts.state(),
        x + 8.0,
        y + 18.0,
        esc(&cut(&format!("{name}{when}"), NAME_CHARS + when.len())),
        x + 8.0,
        y + 36.0,
        esc(&cut(&counts.text(), 30)),
        esc(&title)
    );
}

/// A step's box colour and its text colour, from its state.
fn state_colours(counts: &StepCounts) -> (&'static str, &'static str) {
    match counts.state() {
        "failed" => (Paint::Failed.colour(), "#ffffff"),
        "succeeded" => (Paint::Succeeded.colour(), "#ffffff"),
        "running" => (Paint::Running.colour(), "#ffffff"),
        "pending" => (Paint::Pending.colour(), "#222222"),
        "cancelled" => (Paint::Cancelled.colour(), "#ffffff"),
        "skipped" => ("#e0e0e0", "#444444"),
        "not needed" => ("#f5f5f5", "#777777"),
        _ => ("#ffffff", "#333333"),
    }
}

fn cut(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        return text.to_string();
    }
    let head: String = text.chars().take(most - 1).collect();
    format!("{head}…")
}
