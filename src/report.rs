//! What the user sees: a line per child state change, the final table, the summary line, and
//! the JSON and JUnit reports. Only reads the run; never decides anything.

use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::run::{Change, ChildResult, Phase, Run, Transition};

/// One progress line, the child's name first, with done/total counts.
pub fn progress_line(run: &Run, t: &Transition) -> String {
    let spec = &run.specs[t.index];
    let state = &run.states[t.index];
    let counts = format!("[{}/{}]", run.done_count(), run.total());
    let what = match &t.change {
        Change::Created => "created".to_string(),
        Change::Adopted => "adopted (created by an earlier attempt of this run)".to_string(),
        Change::Running => "running".to_string(),
        Change::Pending { reason, message } => format!("pending: {reason}: {message}"),
        Change::Done(result) => {
            let mut s = result.as_str().to_string();
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
            if matches!(result, ChildResult::Succeeded | ChildResult::Failed) {
                let _ = write!(s, " after {}", attempts(state.attempts));
                if let Some(d) = duration(state.started, state.finished) {
                    let _ = write!(s, " in {}", human(d));
                }
            }
            s
        }
    };
    format!("{} {what} {counts}", spec.name)
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

/// `1h2m3s`, `4m0s`, `12s`, `0.4s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// The final table: one row per child.
pub fn table(run: &Run) -> String {
    let with_deps = run.specs.iter().any(|s| !s.depends_on_steps.is_empty());
    let mut rows = vec![{
        let mut h = vec!["CHILD", "STEP", "RESULT", "ATTEMPTS", "DURATION"];
        if with_deps {
            h.push("DEPENDS ON");
        }
        h.push("REASON");
        h.into_iter().map(String::from).collect::<Vec<_>>()
    }];
    for (spec, state) in run.specs.iter().zip(&run.states) {
        let (result, reason) = match &state.phase {
            Phase::Done {
                result,
                reason,
                message,
            } => (
                result.as_str().to_string(),
                match (reason, message.as_deref().filter(|m| !m.is_empty())) {
                    (Some(r), Some(m)) if *result != ChildResult::Succeeded => format!("{r}: {m}"),
                    (Some(r), None) if *result != ChildResult::Succeeded => r.clone(),
                    _ => String::new(),
                },
            ),
            other => (format!("{other:?}").to_lowercase(), String::new()),
        };
        let mut row = vec![
            spec.name.clone(),
            spec.plan_step.clone().unwrap_or_else(|| spec.step.clone()),
            result,
            if state.attempts == 0 {
                "-".into()
            } else {
                state.attempts.to_string()
            },
            duration(state.started, state.finished).map_or("-".into(), human),
        ];
        if with_deps {
            row.push(if spec.depends_on_steps.is_empty() {
                "-".into()
            } else {
                spec.depends_on_steps.join(",")
            });
        }
        row.push(reason);
        rows.push(row);
    }
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
    let outcome = match run.exit_code() {
        0 => "succeeded",
        3 => "timed out",
        130 | 143 => "interrupted",
        _ => "failed",
    };
    let mut parts = Vec::new();
    for r in [
        ChildResult::Succeeded,
        ChildResult::Failed,
        ChildResult::Skipped,
        ChildResult::Cancelled,
    ] {
        let n = run.count(r);
        if n > 0 || r == ChildResult::Succeeded {
            parts.push(format!("{n} {}", r.as_str()));
        }
    }
    let mut line = format!(
        "jobherd {outcome}: {} of {} children in {}",
        parts.join(", "),
        run.total(),
        human(elapsed)
    );
    let first_failure = run
        .specs
        .iter()
        .zip(&run.states)
        .find_map(|(spec, s)| match &s.phase {
            Phase::Done {
                result: ChildResult::Failed,
                reason,
                ..
            } => Some(format!(
                "{} {}",
                spec.name,
                reason.as_deref().unwrap_or("Failed")
            )),
            _ => None,
        });
    if let Some(f) = first_failure {
        let _ = write!(line, "; first failure: {f}");
    }
    line
}

#[derive(Serialize)]
struct JsonReport<'a> {
    result: &'a str,
    exit_code: i32,
    run: &'a str,
    namespace: Option<&'a str>,
    summary: String,
    children: Vec<JsonChild<'a>>,
}

#[derive(Serialize)]
struct JsonChild<'a> {
    name: &'a str,
    step: &'a str,
    result: &'a str,
    reason: Option<&'a str>,
    message: Option<&'a str>,
    attempts: u32,
    started: Option<String>,
    finished: Option<String>,
    depends_on: &'a [String],
}

/// The JSON report of SPEC §6.
pub fn json(run: &Run, run_id: &str, namespace: Option<&str>, elapsed: Duration) -> String {
    let result = match run.exit_code() {
        0 => "succeeded",
        3 => "timeout",
        130 | 143 => "interrupted",
        _ => "failed",
    };
    let children = run
        .specs
        .iter()
        .zip(&run.states)
        .map(|(spec, s)| {
            let (result, reason, message) = match &s.phase {
                Phase::Done {
                    result,
                    reason,
                    message,
                } => (result.as_str(), reason.as_deref(), message.as_deref()),
                _ => ("unknown", None, None),
            };
            JsonChild {
                name: &spec.name,
                step: spec.plan_step.as_deref().unwrap_or(&spec.step),
                result,
                reason,
                message,
                attempts: s.attempts,
                started: s.started.map(|t| t.to_string()),
                finished: s.finished.map(|t| t.to_string()),
                depends_on: &spec.depends_on_steps,
            }
        })
        .collect();
    let report = JsonReport {
        result,
        exit_code: run.exit_code(),
        run: run_id,
        namespace,
        summary: summary(run, elapsed),
        children,
    };
    // Serializing plain strings and numbers cannot fail.
    serde_json::to_string_pretty(&report).unwrap_or_default()
}

/// A JUnit XML report: one testsuite for the run, one testcase per child.
pub fn junit(run: &Run, suite: &str, elapsed: Duration) -> String {
    let failures = run.count(ChildResult::Failed) + run.count(ChildResult::Cancelled);
    let skipped = run.count(ChildResult::Skipped);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites><testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\">",
        xml(suite),
        run.total(),
        elapsed.as_secs_f64()
    );
    for (spec, s) in run.specs.iter().zip(&run.states) {
        let time = duration(s.started, s.finished).map_or(0.0, |d| d.as_secs_f64());
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{time:.3}\"",
            xml(suite),
            xml(&spec.name)
        );
        match &s.phase {
            Phase::Done {
                result: ChildResult::Succeeded,
                ..
            } => out.push_str("/>\n"),
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
    out.push_str("</testsuite></testsuites>\n");
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child::ChildSpec;
    use k8s_openapi::api::batch::v1::Job;

    fn run_with(results: &[(&str, ChildResult, Option<&str>)]) -> Run {
        let specs = results
            .iter()
            .map(|(n, _, _)| ChildSpec {
                name: n.to_string(),
                step: n.to_string(),
                plan_step: None,
                depends_on: vec![],
                depends_on_steps: vec![],
                job: Job::default(),
            })
            .collect();
        let mut run = Run::new(specs, None, false, "r");
        for (i, (_, r, reason)) in results.iter().enumerate() {
            run.states[i].phase = Phase::Done {
                result: *r,
                reason: reason.map(String::from),
                message: reason.map(|_| "Job has reached the specified backoff limit".into()),
            };
            run.states[i].attempts = if *r == ChildResult::Failed { 3 } else { 1 };
        }
        run
    }

    #[test]
    fn table_shows_which_child_failed_why_and_attempts() {
        let run = run_with(&[
            ("pi-0", ChildResult::Succeeded, None),
            ("pi-1", ChildResult::Failed, Some("BackoffLimitExceeded")),
        ]);
        let t = table(&run);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("CHILD"));
        assert!(lines[2].starts_with("pi-1"));
        assert!(lines[2].contains("failed"));
        assert!(lines[2].contains("3"));
        assert!(lines[2].contains("BackoffLimitExceeded: Job has reached"));
    }

    #[test]
    fn summary_counts_and_names_first_failure() {
        let run = run_with(&[
            ("pi-0", ChildResult::Succeeded, None),
            ("pi-1", ChildResult::Failed, Some("BackoffLimitExceeded")),
            ("pi-2", ChildResult::Skipped, None),
        ]);
        assert_eq!(
            summary(&run, Duration::from_secs(75)),
            "jobherd failed: 1 succeeded, 1 failed, 1 skipped of 3 children in 1m15s; first failure: pi-1 BackoffLimitExceeded"
        );
    }

    #[test]
    fn json_report_has_the_spec_fields() {
        let run = run_with(&[("pi-1", ChildResult::Failed, Some("BackoffLimitExceeded"))]);
        let v: serde_json::Value =
            serde_json::from_str(&json(&run, "uid", Some("ns"), Duration::ZERO)).unwrap();
        assert_eq!(v["result"], "failed");
        assert_eq!(v["exit_code"], 1);
        let c = &v["children"][0];
        for key in [
            "name", "step", "result", "reason", "attempts", "started", "finished",
        ] {
            assert!(c.get(key).is_some(), "missing {key}");
        }
        assert_eq!(c["reason"], "BackoffLimitExceeded");
        assert_eq!(c["attempts"], 3);
    }

    #[test]
    fn junit_marks_failures_and_escapes() {
        let run = run_with(&[
            ("a", ChildResult::Succeeded, None),
            ("b", ChildResult::Failed, Some("Dead<line>")),
            ("c", ChildResult::Skipped, None),
        ]);
        let x = junit(&run, "nightly", Duration::from_secs(3));
        assert!(x.contains("tests=\"3\" failures=\"1\""));
        assert!(x.contains("<failure type=\"Dead&lt;line&gt;\""));
        assert!(x.contains("<skipped"));
    }

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human(Duration::from_secs(12)), "12s");
        assert_eq!(human(Duration::from_secs(240)), "4m0s");
        assert_eq!(human(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(human(Duration::from_millis(400)), "0.4s");
    }
}
