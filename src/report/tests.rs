use super::*;
use crate::config::LogsMode;
use crate::run::Rules;

/// A run of children `pi-0`, `pi-1`, ... already finished with these results.
fn run_with(results: &[(ChildResult, Option<&str>)]) -> Run {
    let rules = Rules {
        parallelism: None,
        fail_fast: false,
        stuck_timeout: Duration::from_secs(60),
        logs: LogsMode::Failed,
    };
    let mut run = Run::fanned_out("pi", results.len() as u32, &rules);
    for (i, (r, reason)) in results.iter().enumerate() {
        let attempts = if *r == ChildResult::Failed { 3 } else { 1 };
        run.force_done(i, *r, *reason, attempts);
    }
    run
}

fn all(run: &Run) -> Vec<usize> {
    (0..run.total()).collect()
}

#[test]
fn table_shows_which_child_failed_why_and_attempts() {
    let run = run_with(&[
        (ChildResult::Succeeded, None),
        (ChildResult::Failed, Some("BackoffLimitExceeded")),
    ]);
    let t = table(&run, &all(&run));
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
        (ChildResult::Succeeded, None),
        (ChildResult::Failed, Some("BackoffLimitExceeded")),
        (ChildResult::Skipped, None),
    ]);
    assert_eq!(
        summary(&run, Duration::from_secs(75)),
        "jobherd failed: 1 succeeded, 1 failed, 1 skipped of 3 children in 1m15s; first failure: pi-1 BackoffLimitExceeded"
    );
}

#[test]
fn json_report_has_the_spec_fields() {
    let run = run_with(&[(ChildResult::Failed, Some("BackoffLimitExceeded"))]);
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
        (ChildResult::Succeeded, None),
        (ChildResult::Failed, Some("Dead<line>")),
        (ChildResult::Skipped, None),
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

fn printed(reporter: Reporter<Vec<u8>>) -> String {
    String::from_utf8(reporter.out).unwrap()
}

fn done(index: usize, result: ChildResult) -> Transition {
    Transition::Child {
        index,
        change: Change::Done(result),
    }
}

#[test]
fn a_quiet_run_gets_a_heartbeat_with_counts() {
    let run = run_with(&[
        (ChildResult::Succeeded, None),
        (ChildResult::Failed, Some("X")),
    ]);
    let t0 = Instant::now();
    let beat = Some(Duration::from_secs(60));
    let mut reporter = Reporter::new(Vec::new(), Progress::Lines, beat, 2, t0);
    reporter.report(&run, &[], t0 + Duration::from_secs(59));
    assert_eq!(printed_len(&reporter), 0, "not quiet long enough");
    reporter.report(&run, &[], t0 + Duration::from_secs(60));
    reporter.report(&run, &[], t0 + Duration::from_secs(61));
    let text = printed(reporter);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("heartbeat: 2/2 done, 0 running, 0 pending, 0 waiting, 1 failed"),
        "{text}"
    );
}

fn printed_len(reporter: &Reporter<Vec<u8>>) -> usize {
    reporter.out.len()
}

#[test]
fn no_heartbeat_when_turned_off() {
    let run = run_with(&[(ChildResult::Succeeded, None)]);
    let t0 = Instant::now();
    let mut reporter = Reporter::new(Vec::new(), Progress::Lines, None, 1, t0);
    reporter.report(&run, &[], t0 + Duration::from_secs(3600));
    assert!(printed(reporter).is_empty());
}

#[test]
fn counts_mode_prints_failures_and_counts_not_every_child() {
    let mut results = vec![(ChildResult::Succeeded, None); 300];
    results[7] = (ChildResult::Failed, Some("BackoffLimitExceeded"));
    let run = run_with(&results);
    let t0 = Instant::now();
    let mut reporter = Reporter::new(Vec::new(), Progress::Auto, None, run.total(), t0);
    let transitions: Vec<Transition> = (0..300)
        .map(|i| done(i, run.state(i).phase.result().unwrap()))
        .collect();
    reporter.report(&run, &transitions, t0 + Duration::from_secs(1));
    reporter.report(&run, &[], t0 + Duration::from_secs(11));
    reporter.finish(&run, Duration::from_secs(20));
    let text = printed(reporter);
    let failure_lines = text
        .lines()
        .filter(|l| l.starts_with("pi-7 failed"))
        .count();
    assert_eq!(failure_lines, 1, "{text}");
    assert!(!text.contains("pi-8 succeeded"), "{text}");
    assert!(text.contains("progress: 300/300 done"), "{text}");
    let rows = text.lines().skip_while(|l| !l.starts_with("CHILD")).count();
    assert!(rows < 10, "the table lists failures, not 300 rows: {text}");
    assert!(text.contains("299 more children not listed"), "{text}");
}

#[test]
fn lines_mode_prints_every_change() {
    let run = run_with(&[
        (ChildResult::Succeeded, None),
        (ChildResult::Succeeded, None),
    ]);
    let t0 = Instant::now();
    let mut reporter = Reporter::new(Vec::new(), Progress::Auto, None, 2, t0);
    reporter.report(
        &run,
        &[
            done(0, ChildResult::Succeeded),
            done(1, ChildResult::Succeeded),
        ],
        t0,
    );
    let text = printed(reporter);
    assert!(
        text.contains("pi-0 succeeded after 1 attempt [2/2]"),
        "{text}"
    );
    assert!(text.contains("pi-1 succeeded"), "{text}");
}
