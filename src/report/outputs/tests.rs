use super::*;
use crate::config::Progress;
use crate::report::{Ending, Reporter};
use crate::run::testing::{RULES, fan_out};

fn about() -> About {
    About {
        run_id: "uid-1".into(),
        namespace: "batch".into(),
        parent: None,
        started: Timestamp::now(),
    }
}

#[test]
fn the_page_is_rewritten_on_each_heartbeat_and_said_to_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.html");
    let t0 = Instant::now();
    let beat = Duration::from_secs(60);
    let outputs = Outputs::new(Some((path.clone(), about())), None, Some(beat), t0);
    let mut reporter = Reporter::new(Vec::new(), Progress::Lines, Some(beat), 2, t0);
    reporter.show(outputs);
    let run = fan_out(2, &RULES);
    reporter.report(&run, &[], t0);
    let first = std::fs::read_to_string(&path).expect("written at the first event");
    assert!(first.contains("jobherd running: 0/2 done"), "{first}");
    std::fs::remove_file(&path).unwrap();
    reporter.report(&run, &[], t0 + Duration::from_secs(59));
    assert!(!path.exists(), "not before the next heartbeat");
    reporter.report(&run, &[], t0 + beat);
    assert!(path.exists(), "rewritten on the heartbeat");
}

#[test]
fn without_a_heartbeat_the_page_is_written_at_the_end_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.html");
    let t0 = Instant::now();
    let outputs = Outputs::new(Some((path.clone(), about())), None, None, t0);
    let mut reporter = Reporter::new(Vec::new(), Progress::Lines, None, 2, t0);
    reporter.show(outputs);
    let mut run = fan_out(2, &RULES);
    reporter.report(&run, &[], t0 + Duration::from_secs(3600));
    assert!(!path.exists());
    for i in 0..2 {
        run.force_done(i, crate::run::ChildResult::Succeeded, None, 1);
    }
    let end = Ending {
        elapsed: Duration::from_secs(5),
        run_id: "uid-1",
        namespace: "batch",
        parent: None,
        prefix: "r",
        report_file: None,
        junit_file: None,
        termination_log: &dir.path().join("absent"),
    };
    let summary = reporter.finish(&run, end.elapsed);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(reporter.publish(&run, &summary, None, &end, false));
    let last = std::fs::read_to_string(&path).expect("written at the end");
    assert!(last.contains("jobherd succeeded (exit 0)"), "{last}");
    assert!(
        !last.contains("http-equiv"),
        "a finished run's page is not read again"
    );
}

#[test]
fn a_log_tail_keeps_its_end_from_a_whole_line() {
    let text = "first line\nsecond line\nthird line";
    assert_eq!(last_bytes(text, 100), text);
    assert_eq!(last_bytes(text, 15), "third line");
    assert_eq!(last_bytes("ééé\nok", 4), "ok");
}
