use super::*;
use crate::outputs::Output;
use crate::run::testing::{RULES, fan_out};
use crate::run::{ChildResult, Restored};

/// Three children: two succeeded in 10 s and 100 s (the second after 3 attempts), one failed.
fn finished_run() -> Run {
    let mut run = fan_out(3, &RULES);
    let at = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
    for (i, result, attempts, secs) in [
        (0, ChildResult::Succeeded, 1, 10),
        (1, ChildResult::Succeeded, 3, 100),
        (2, ChildResult::Failed, 2, 40),
    ] {
        run.restore(
            i,
            Restored {
                result,
                reason: None,
                message: None,
                attempts,
                started: Some(at(0)),
                finished: Some(at(secs)),
                earlier_run: None,
                output: Output::Absent,
            },
        );
    }
    run
}

fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .map(|l| l[series.len()..].trim())
}

#[test]
fn a_heartbeat_carries_the_counts_and_durations_but_no_outcome() {
    let text = exposition(&finished_run(), Duration::from_secs(120), None);
    assert_eq!(
        sample(&text, r#"jobherd_children{state="succeeded"}"#),
        Some("2")
    );
    assert_eq!(
        sample(&text, r#"jobherd_children{state="failed"}"#),
        Some("1")
    );
    assert_eq!(
        sample(&text, r#"jobherd_children{state="running"}"#),
        Some("0")
    );
    assert_eq!(sample(&text, "jobherd_run_duration_seconds"), Some("120.0"));
    assert_eq!(sample(&text, "jobherd_child_retries"), Some("3"));
    assert_eq!(sample(&text, "jobherd_child_preemptions"), Some("0"));
    assert_eq!(
        sample(&text, r#"jobherd_child_duration_seconds_bucket{le="15"}"#),
        Some("1")
    );
    assert_eq!(
        sample(&text, r#"jobherd_child_duration_seconds_bucket{le="60"}"#),
        Some("2")
    );
    assert_eq!(
        sample(&text, "jobherd_child_duration_seconds_count"),
        Some("3")
    );
    assert_eq!(
        sample(&text, "jobherd_child_duration_seconds_sum"),
        Some("150.0")
    );
    assert!(text.contains("# TYPE jobherd_children gauge"), "{text}");
    for absent in [
        "jobherd_exit_code",
        "jobherd_last_completion",
        "jobherd_last_success",
    ] {
        assert!(!text.contains(absent), "{absent} in a heartbeat: {text}");
    }
}

#[test]
fn a_failed_end_says_when_but_not_that_it_succeeded() {
    let ended = Ended {
        exit_code: 1,
        at: Timestamp::from_second(1_800_000_500).unwrap(),
    };
    let text = exposition(&finished_run(), Duration::from_secs(120), Some(ended));
    assert_eq!(sample(&text, "jobherd_exit_code"), Some("1"));
    assert_eq!(
        sample(&text, "jobherd_last_completion_timestamp_seconds"),
        Some("1800000500.0")
    );
    assert!(
        !text.contains("jobherd_last_success_timestamp_seconds"),
        "{text}"
    );
    let succeeded = Ended {
        exit_code: 0,
        ..ended
    };
    let text = exposition(&finished_run(), Duration::from_secs(120), Some(succeeded));
    assert_eq!(
        sample(&text, "jobherd_last_success_timestamp_seconds"),
        Some("1800000500.0")
    );
}

#[test]
fn the_group_is_the_job_then_the_namespace() {
    assert_eq!(
        group_url("http://pg.monitoring:9091/", "nightly", "batch"),
        "http://pg.monitoring:9091/metrics/job/nightly/namespace/batch"
    );
}
