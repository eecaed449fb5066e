use super::*;
use crate::report::timeline::Mark;
use crate::run::testing::{RULES, run_of_plan};

/// list -> work (3 children) -> merge, with work-1 failed after 2 attempts and merge skipped.
fn etl() -> (Run, Timeline) {
    let mut run = run_of_plan(
        r#"{"steps":[{"name":"list"},{"name":"work","depends_on":["list"],"count":3},
                     {"name":"merge","depends_on":["work"]}]}"#,
        &RULES,
    );
    let mut t = Timeline::read_back();
    let ms = |n: u64| Duration::from_millis(n);
    let marks: &[(usize, &[(u64, Mark)])] = &[
        (
            0,
            &[
                (0, Mark::Created),
                (500, Mark::Running),
                (2000, Mark::Done(ChildResult::Succeeded)),
            ],
        ),
        (
            1,
            &[
                (2100, Mark::Created),
                (2300, Mark::Running),
                (6000, Mark::Done(ChildResult::Succeeded)),
            ],
        ),
        (
            2,
            &[
                (2100, Mark::Created),
                (2200, Mark::Running),
                (3000, Mark::Attempt(2)),
                (5000, Mark::Done(ChildResult::Failed)),
            ],
        ),
        (
            3,
            &[
                (2100, Mark::Created),
                (2400, Mark::Running),
                (4000, Mark::Done(ChildResult::Succeeded)),
            ],
        ),
        (4, &[(6000, Mark::Done(ChildResult::Skipped))]),
    ];
    for (child, marks) in marks {
        for (at, mark) in *marks {
            t.mark(*child, ms(*at), *mark);
        }
    }
    for (i, r, reason) in [
        (0, ChildResult::Succeeded, None),
        (1, ChildResult::Succeeded, None),
        (2, ChildResult::Failed, Some("<Backoff>")),
        (3, ChildResult::Succeeded, None),
        (4, ChildResult::Skipped, Some("DependencyFailed")),
    ] {
        run.force_done(i, r, reason, if r == ChildResult::Failed { 2 } else { 1 });
    }
    (run, t)
}

fn page_of(run: &Run, timeline: &Timeline, live: bool) -> String {
    let about = About {
        run_id: "uid-1".into(),
        namespace: "batch".into(),
        parent: Some("Job etl-1".into()),
        started: Timestamp::from_second(1_800_000_000).unwrap(),
    };
    render(&Page {
        run,
        timeline,
        about: &about,
        tails: &[(2, "Traceback\n<oops> & done".into())],
        elapsed: Duration::from_secs(6),
        now: 6000,
        live,
    })
}

#[test]
fn the_page_has_no_script_no_style_and_nothing_from_elsewhere() {
    let (run, t) = etl();
    let html = page_of(&run, &t, false);
    for banned in [
        "<script",
        "<style",
        " style=",
        "javascript:",
        "<link",
        "<img",
        "http://",
        "https://",
    ] {
        let allowed_ns = html.replace("http://www.w3.org/2000/svg", "");
        assert!(!allowed_ns.contains(banned), "{banned} in the page");
    }
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("jobherd failed (exit 1)"));
}

#[test]
fn the_page_shows_each_part_and_escapes_what_children_say() {
    let (run, t) = etl();
    let html = page_of(&run, &t, false);
    for part in [
        "id=\"timeline\"",
        "id=\"plan\"",
        "<h2>Children</h2>",
        "Last log lines",
    ] {
        assert!(html.contains(part), "{part} missing");
    }
    assert!(html.contains("&lt;oops&gt; &amp; done"));
    assert!(html.contains("&lt;Backoff&gt;"));
    assert!(!html.contains("<oops>") && !html.contains("<Backoff>"));
    assert!(html.contains("<a href=\"#c-r-work-1\">r-work-1</a> (&lt;Backoff&gt;, 2 attempts)"));
    // Two attempts of the failed child, each its own bar, placed by their times.
    assert!(
        html.contains("data-from=\"2200\" data-to=\"3000\" data-paint=\"failed attempt, retried\"")
    );
    assert!(html.contains("data-from=\"3000\" data-to=\"5000\" data-paint=\"failed\""));
    // The critical path: list, then the work child that ended last; merge never ran.
    assert!(
        html.contains("list · 1 succeeded · on the critical path"),
        "{html}"
    );
    assert!(html.contains("work · 2 succeeded, 1 failed · on the critical path"));
    assert!(!html.contains("merge · 1 skipped · on the critical path"));
    assert!(html.contains("data-step=\"merge\" data-state=\"skipped\""));
}

#[test]
fn a_live_page_says_the_run_goes_on_and_asks_to_be_read_again() {
    let (run, t) = etl();
    let html = page_of(&run, &t, true);
    assert!(html.contains("http-equiv=\"refresh\""));
    assert!(html.contains("jobherd running: 5/5 done"));
    assert!(!page_of(&run, &t, false).contains("http-equiv"));
}

#[test]
fn the_page_is_written_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reports/run.html");
    write(&path, "<p>one</p>").unwrap();
    write(&path, "<p>two</p>").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "<p>two</p>");
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(left.len(), 1, "no partial file left beside it");
    assert!(write(dir.path(), "x").is_err() || dir.path().is_dir());
}

#[test]
fn a_step_says_its_state_in_a_word() {
    let (run, _) = etl();
    assert_eq!(step_counts(&run, 0).state(), "succeeded");
    assert_eq!(step_counts(&run, 1).state(), "failed");
    assert_eq!(step_counts(&run, 1).text(), "2 succeeded, 1 failed");
    assert_eq!(step_counts(&run, 2).state(), "skipped");
}
