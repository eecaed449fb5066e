//! The JSON and JUnit reports (`JOBHERD_REPORT_FILE`, `JOBHERD_JUNIT_FILE`).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::{attempts, duration, queue_text, summary};
use crate::exit::Exit;
use crate::outputs;
use crate::run::{ChildResult, Phase, Run};

#[derive(Serialize)]
struct JsonReport<'a> {
    result: &'a str,
    exit_code: i32,
    run: &'a str,
    namespace: Option<&'a str>,
    summary: String,
    /// Each plan step's result, as the steps after it got it (SPEC §8): JSON when it is JSON.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    results: serde_json::Map<String, serde_json::Value>,
    children: Vec<JsonChild<'a>>,
}

#[derive(Serialize)]
struct JsonChild<'a> {
    name: &'a str,
    step: Cow<'a, str>,
    result: &'a str,
    reason: Option<&'a str>,
    message: Option<&'a str>,
    attempts: u32,
    started: Option<String>,
    finished: Option<String>,
    depends_on: &'a [String],
    /// The earlier run that succeeded with it (`JOBHERD_RETRY`).
    #[serde(skip_serializing_if = "Option::is_none")]
    earlier_run: Option<&'a str>,
    /// Seconds spent suspended in a queue (Kueue), before it ran and after preemptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    queued_seconds: Option<f64>,
    /// How often it was preempted (suspended again once admitted).
    #[serde(skip_serializing_if = "is_zero")]
    preemptions: u32,
    /// Its result (its termination message): JSON when it is JSON, else the text.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<serde_json::Value>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The JSON report of SPEC §6.
pub fn json(run: &Run, run_id: &str, namespace: Option<&str>, elapsed: Duration) -> String {
    let children = run.children();
    let rows = children
        .in_step_order()
        .map(|i| {
            let s = run.state(i);
            let (result, reason, message) = match &s.phase {
                Phase::Done {
                    result,
                    reason,
                    message,
                } => (result.as_str(), reason.as_deref(), message.as_deref()),
                _ => ("unknown", None, None),
            };
            JsonChild {
                name: children.name(i),
                step: children.step_name(i),
                result,
                reason,
                message,
                attempts: s.attempts,
                started: s.started().map(|t| t.to_string()),
                finished: s.finished().map(|t| t.to_string()),
                depends_on: &children.step_of(i).depends_on_names,
                earlier_run: s.earlier_run.as_deref(),
                queued_seconds: Some(run.time_queued(i).as_secs_f64()).filter(|q| *q > 0.0),
                preemptions: s.preemptions(),
                output: s.output.text().map(outputs::value),
            }
        })
        .collect();
    let results = children
        .steps()
        .iter()
        .enumerate()
        .filter_map(|(step, spec)| {
            let name = spec.name.clone()?;
            Some((name, outputs::value(&run.step_output(step)?)))
        })
        .collect();
    let report = JsonReport {
        result: match Exit::from_code(run.exit_code()) {
            Some(Exit::Succeeded) => "succeeded",
            Some(Exit::Timeout) => "timeout",
            Some(Exit::Interrupted | Exit::Terminated) => "interrupted",
            _ => "failed",
        },
        exit_code: run.exit_code(),
        run: run_id,
        namespace,
        summary: summary(run, elapsed),
        results,
        children: rows,
    };
    // Serializing plain strings and numbers cannot fail.
    serde_json::to_string_pretty(&report).unwrap_or_default()
}

/// A JUnit XML report: one testsuite for the run, one testcase per child.
pub fn junit(run: &Run, suite: &str, elapsed: Duration) -> String {
    let tally = run.tally();
    let failures = tally.failed + tally.cancelled;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites><testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">",
        xml(suite),
        run.total(),
        tally.skipped,
        elapsed.as_secs_f64()
    );
    for i in run.children().in_step_order() {
        testcase(&mut out, run, i, suite);
    }
    out.push_str("</testsuite></testsuites>\n");
    out
}

/// One child's `<testcase>`: failed and cancelled children are failures, skipped ones skipped.
fn testcase(out: &mut String, run: &Run, i: usize, suite: &str) {
    let s = run.state(i);
    let time = duration(s.started(), s.finished()).map_or(0.0, |d| d.as_secs_f64());
    let _ = write!(
        out,
        "  <testcase classname=\"{}\" name=\"{}\" time=\"{time:.3}\"",
        xml(suite),
        xml(run.children().name(i))
    );
    let queued = queue_text(run, i);
    match &s.phase {
        Phase::Done {
            result: ChildResult::Succeeded,
            ..
        } => {
            let said = match (&s.earlier_run, queued) {
                (Some(run), _) => Some(format!("succeeded in earlier run {run}")),
                (None, Some(q)) => Some(format!("succeeded ({q})")),
                (None, None) => None,
            };
            match said {
                Some(text) => {
                    let _ = writeln!(out, "><system-out>{}</system-out></testcase>", xml(&text));
                }
                None => out.push_str("/>\n"),
            }
        }
        Phase::Done {
            result: ChildResult::Skipped,
            message,
            ..
        } => {
            let _ = writeln!(
                out,
                "><skipped message=\"{}\"/></testcase>",
                xml(message.as_deref().unwrap_or(""))
            );
        }
        Phase::Done {
            result,
            reason,
            message,
        } => {
            let _ = writeln!(
                out,
                "><failure type=\"{}\" message=\"{}\">{} after {}</failure></testcase>",
                xml(reason.as_deref().unwrap_or(result.as_str())),
                xml(message.as_deref().unwrap_or("")),
                result.as_str(),
                attempts(s.attempts)
            );
        }
        _ => out.push_str("/>\n"),
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
