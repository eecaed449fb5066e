use super::*;
use crate::report::timeline::{Mark, Timeline};
use crate::run::testing::{RULES, fan_out, run_of_plan};
use std::time::Duration;

#[test]
fn a_time_falls_on_the_axis_in_proportion_and_never_past_its_end() {
    let scale = Scale::new(90_000);
    assert_eq!(scale.x(0), PLOT_X);
    assert_eq!(scale.x(90_000), PLOT_X + PLOT_W);
    assert!((scale.x(45_000) - (PLOT_X + PLOT_W / 2.0)).abs() < 1e-9);
    assert!((scale.width(30_000, 60_000) - PLOT_W / 3.0).abs() < 1e-9);
    assert_eq!(scale.x(200_000), PLOT_X + PLOT_W, "clamped to the axis");
    assert_eq!(Scale::new(0).span, 1, "an empty run still has an axis");
}

fn labels(span: u32) -> Vec<String> {
    ticks(span).into_iter().map(|t| t.label).collect()
}

#[test]
fn ticks_fall_on_round_times_with_readable_labels() {
    assert_eq!(
        labels(90_000),
        [
            "0s", "10s", "20s", "30s", "40s", "50s", "1m", "1m10s", "1m20s", "1m30s"
        ]
    );
    assert_eq!(
        labels(3 * 3_600_000 + 60_000),
        ["0s", "30m", "1h", "1h30m", "2h", "2h30m", "3h"]
    );
    assert_eq!(
        labels(800),
        [
            "0s", "0.1s", "0.2s", "0.3s", "0.4s", "0.5s", "0.6s", "0.7s", "0.8s"
        ]
    );
    assert_eq!(labels(45)[1], "0.01s");
    for span in [1, 999, 61_000, 7_300_000, 400_000_000, u32::MAX] {
        let t = ticks(span);
        assert!(t.len() <= MOST_TICKS + 1, "{span}: {} ticks", t.len());
        assert!(t.len() >= 2 || span < 10, "{span}: {} ticks", t.len());
        assert!(t.iter().all(|t| t.at <= span));
    }
}

#[test]
fn a_small_run_shows_every_child_and_a_big_one_sums_steps_but_not_failures() {
    let run = fan_out(30, &RULES);
    assert_eq!(rows(&run), (0..30).map(Row::Child).collect::<Vec<_>>());
    let mut run = fan_out(100, &RULES);
    for i in 0..100 {
        let result = if i == 57 {
            ChildResult::Failed
        } else {
            ChildResult::Succeeded
        };
        run.force_done(i, result, None, 1);
    }
    assert_eq!(rows(&run), [Row::Aggregate(0), Row::Child(57)]);
}

#[test]
fn past_the_limit_failed_rows_stop_and_the_rest_are_counted() {
    let mut run = fan_out(MOST_FAILED_ROWS as u32 + 30, &RULES);
    for i in 0..run.total() {
        run.force_done(i, ChildResult::Failed, Some("BackoffLimitExceeded"), 2);
    }
    let r = rows(&run);
    assert_eq!(r.len(), 1 + MOST_FAILED_ROWS + 1);
    assert_eq!(
        r.last(),
        Some(&Row::More {
            step: 0,
            failed: 30
        })
    );
}

#[test]
fn a_plan_gets_a_heading_per_step() {
    let run = run_of_plan(
        r#"{"steps":[{"name":"a"},{"name":"b","depends_on":["a"],"count":3}]}"#,
        &RULES,
    );
    assert_eq!(
        rows(&run),
        [
            Row::Step(0),
            Row::Child(0),
            Row::Step(1),
            Row::Child(1),
            Row::Child(2),
            Row::Child(3)
        ]
    );
}

fn bar(marks: &[(u32, Mark)]) -> Bar {
    let mut t = Timeline::read_back();
    for (at, mark) in marks {
        t.mark(0, Duration::from_millis((*at).into()), *mark);
    }
    t.bars(1, 10_000).remove(0)
}

#[test]
fn attempts_before_the_last_are_retried_and_the_last_is_painted_as_the_child_ended() {
    let b = bar(&[
        (0, Mark::Created),
        (10, Mark::Running),
        (20, Mark::Attempt(2)),
        (30, Mark::Attempt(3)),
        (40, Mark::Done(ChildResult::Failed)),
    ]);
    assert_eq!(
        paints(&b),
        [
            Paint::Pending,
            Paint::Retried,
            Paint::Retried,
            Paint::Failed
        ]
    );
    let preempted = bar(&[
        (0, Mark::Queued),
        (10, Mark::Running),
        (20, Mark::Preempted),
        (20, Mark::Queued),
        (30, Mark::Running),
    ]);
    assert_eq!(
        paints(&preempted),
        [
            Paint::Queued,
            Paint::Preempted,
            Paint::Queued,
            Paint::Running
        ]
    );
}

#[test]
fn an_aggregate_row_counts_children_per_slice_of_time() {
    let scale = Scale::new(BUCKETS as u32 * 100);
    let whole = bar(&[
        (0, Mark::Running),
        (15_000, Mark::Done(ChildResult::Succeeded)),
    ]);
    let half = bar(&[
        (0, Mark::Running),
        (7_500, Mark::Done(ChildResult::Succeeded)),
    ]);
    let sums = buckets([&whole, &whole, &half].into_iter(), scale);
    let succeeded = |b: usize| sums[b][0];
    assert!((succeeded(0) - 3.0).abs() < 1e-9, "{:?}", sums[0]);
    assert!((succeeded(BUCKETS / 2 - 1) - 3.0).abs() < 1e-9);
    assert!((succeeded(BUCKETS / 2) - 2.0).abs() < 1e-9);
    assert!((succeeded(BUCKETS - 1) - 2.0).abs() < 1e-9);
    // A stretch over part of a slice counts for that part.
    let short = bar(&[(0, Mark::Running), (50, Mark::Done(ChildResult::Failed))]);
    let sums = buckets([&short].into_iter(), scale);
    assert!((sums[0][1] - 0.5).abs() < 1e-9, "{:?}", sums[0]);
}

#[test]
fn the_critical_path_follows_the_dependency_that_ended_last() {
    // a -> b -> d, a -> c -> d; e never reached.
    let deps: Vec<&[usize]> = vec![&[], &[0], &[0], &[1, 2], &[3]];
    let ran = |t| Some((t, true));
    let ends = [ran(10), ran(50), ran(30), ran(60), None];
    assert_eq!(critical_path(&deps, &ends), [0, 1, 3]);
    assert!(critical_path(&deps, &[None; 5]).is_empty());
}

#[test]
fn a_skipped_step_passes_the_time_on_and_loses_a_tie_to_one_that_ran() {
    // list -> process -> merge (skipped) -> revert -> notify (after merge and revert).
    let deps: Vec<&[usize]> = vec![&[], &[0], &[1], &[2], &[2, 3]];
    let ends = [
        Some((10, true)),
        Some((50, true)),
        Some((50, false)),
        Some((70, true)),
        Some((80, true)),
    ];
    assert_eq!(critical_path(&deps, &ends), [0, 1, 2, 3, 4]);
    // A good night: merge ran, revert was not needed (skipped when merge ended).
    let ends = [
        Some((10, true)),
        Some((50, true)),
        Some((60, true)),
        Some((60, false)),
        Some((65, true)),
    ];
    assert_eq!(critical_path(&deps, &ends), [0, 1, 2, 4]);
}

#[test]
fn graph_places_put_each_step_after_what_it_depends_on() {
    // a; b and c after a; d after both; e alone.
    let deps: Vec<&[usize]> = vec![&[], &[0], &[0], &[1, 2], &[]];
    let places = graph_places(&deps);
    assert_eq!(places[0], (0, 0));
    assert_eq!(places[4], (0, 1));
    assert_eq!((places[1].0, places[2].0, places[3].0), (1, 1, 2));
    assert_ne!(places[1].1, places[2].1);
}

#[test]
fn words_after_a_bar_stay_in_the_picture_and_off_the_labels() {
    let words = text_width("✗ BackoffLimitExceeded", 11.0);
    assert!(words > 100.0 && words < 200.0, "{words}");
    assert_eq!(label_place(300.0, 500.0, words), (504.0, "start"));
    let (x, anchor) = label_place(700.0, WIDTH - 10.0, words);
    assert_eq!((x, anchor), (696.0, "end"), "left of the bar");
    assert_eq!(
        label_place(PLOT_X, WIDTH - 10.0, words),
        (WIDTH - 2.0, "end")
    );
}
