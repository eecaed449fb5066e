use super::testing::*;
use super::*;
use crate::child;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::Pod;
use std::time::Instant;

fn results(run: &Run) -> Vec<Option<ChildResult>> {
    run.states().iter().map(|s| s.phase.result()).collect()
}

/// The tally must always equal a recount of the phases.
fn assert_tally(run: &Run) {
    let mut recount = Tally::default();
    for s in run.states() {
        match &s.phase {
            Phase::Waiting => recount.waiting += 1,
            Phase::Creating => recount.creating += 1,
            Phase::Created => recount.created += 1,
            Phase::Queued => recount.queued += 1,
            Phase::Running => recount.running += 1,
            Phase::Done { result, .. } => match result {
                ChildResult::Succeeded => recount.succeeded += 1,
                ChildResult::Failed => recount.failed += 1,
                ChildResult::Skipped => recount.skipped += 1,
                ChildResult::Cancelled => recount.cancelled += 1,
            },
        }
    }
    assert_eq!(run.tally(), recount);
}

#[test]
fn nothing_is_created_before_the_first_list() {
    let mut run = fan_out(2, &RULES);
    assert!(creates(&apply(&mut run, Event::Tick)).is_empty());
    assert_eq!(creates(&listed(&mut run, vec![])), vec![0, 1]);
}

#[test]
fn parallelism_limits_what_is_created() {
    let rules = Rules {
        parallelism: Some(2),
        ..RULES
    };
    let mut run = fan_out(5, &rules);
    assert_eq!(creates(&listed(&mut run, vec![])), vec![0, 1]);
    assert!(creates(&apply(&mut run, Event::Tick)).is_empty());
    let created = Created::Created(Box::new(job("r-0", &[], 0)));
    apply(
        &mut run,
        Event::Created {
            index: 0,
            outcome: created,
        },
    );
    let r = seen(&mut run, job("r-0", &[("Complete", "")], 0));
    assert_eq!(creates(&r), vec![2]);
    assert_tally(&run);
}

#[test]
fn success_and_failure_are_read_from_conditions() {
    let mut run = plan_run(&[("a", &[]), ("b", &[])], &RULES);
    listed(&mut run, vec![]);
    let r = seen(
        &mut run,
        job("r-a", &[("SuccessCriteriaMet", "CompletionsReached")], 0),
    );
    assert!(changes(&r).contains(&(0, Change::Done(ChildResult::Succeeded))));
    seen(
        &mut run,
        job(
            "r-b",
            &[
                ("FailureTarget", "BackoffLimitExceeded"),
                ("Failed", "BackoffLimitExceeded"),
            ],
            0,
        ),
    );
    match &run.state(1).phase {
        Phase::Done { result, reason, .. } => {
            assert_eq!(*result, ChildResult::Failed);
            assert_eq!(reason.as_deref(), Some("BackoffLimitExceeded"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(run.tally().done(), 2);
    assert_eq!(run.exit_code(), 1);
}

#[test]
fn transitions_are_not_doubled_on_relist() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    listed(&mut run, vec![]);
    let done = job("r-a", &[("Complete", "")], 0);
    assert_eq!(
        changes(&seen(&mut run, done.clone())).len(),
        2,
        "created + succeeded"
    );
    assert!(changes(&seen(&mut run, done.clone())).is_empty());
    let gone = apply(
        &mut run,
        Event::Jobs(Box::new(watcher::Event::Delete(done))),
    );
    assert!(
        changes(&gone).is_empty(),
        "TTL deleting a finished child is fine"
    );
}

#[test]
fn existing_jobs_are_adopted_not_recreated() {
    let mut run = plan_run(&[("a", &[]), ("b", &[])], &RULES);
    let r = listed(&mut run, vec![job("r-a", &[("Complete", "")], 0)]);
    assert_eq!(changes(&r)[0], (0, Change::Adopted));
    assert_eq!(creates(&r), vec![1], "only the missing child is created");
    assert_tally(&run);
}

#[test]
fn jobs_of_other_runs_are_ignored() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    run.run_id = "other-run".into();
    listed(&mut run, vec![]);
    assert!(changes(&seen(&mut run, job("r-a", &[("Complete", "")], 0))).is_empty());
}

#[test]
fn failure_skips_dependants_transitively_and_independent_branches_go_on() {
    // a -> b -> c ; d independent
    let mut run = plan_run(
        &[("a", &[]), ("b", &["a"]), ("c", &["b"]), ("d", &[])],
        &RULES,
    );
    // The plan puts steps in file order where dependencies allow: a, b, c, d.
    assert_eq!(creates(&listed(&mut run, vec![])), vec![0, 3]);
    let r = seen(
        &mut run,
        job("r-a", &[("Failed", "BackoffLimitExceeded")], 0),
    );
    assert_eq!(
        results(&run)[..3],
        [
            Some(ChildResult::Failed),
            Some(ChildResult::Skipped),
            Some(ChildResult::Skipped)
        ]
    );
    let skipped = |i: usize| match &run.state(i).phase {
        Phase::Done { message, .. } => message.as_deref().unwrap_or_default().to_string(),
        _ => String::new(),
    };
    assert_eq!(skipped(1), "dependency r-a failed");
    assert_eq!(skipped(2), "dependency r-b skipped");
    assert_eq!(changes(&r).len(), 4, "created, failed and two skipped");
    assert_eq!(run.state(3).phase, Phase::Creating, "d goes on");
    seen(&mut run, job("r-d", &[("Complete", "")], 0));
    assert_eq!(run.tally().done(), 4);
    assert_eq!(run.exit_code(), 1);
    assert_tally(&run);
}

#[test]
fn dependants_start_as_soon_as_their_dependencies_succeed() {
    // a -> c, b (slow) -> d
    let mut run = plan_run(
        &[("a", &[]), ("b", &[]), ("c", &["a"]), ("d", &["b"])],
        &RULES,
    );
    assert_eq!(creates(&listed(&mut run, vec![])), vec![0, 1]);
    // Its pod succeeds first, then the Job controller says so (its result is read from the pod).
    pod_event(&mut run, succeeded_pod("r-a", None), At::now());
    let r = seen(&mut run, job("r-a", &[("Complete", "")], 0));
    assert_eq!(creates(&r), vec![2], "c does not wait for b");
}

#[test]
fn a_fanned_out_step_is_done_when_all_its_children_succeeded() {
    let text = r#"{"steps": [{"name": "a", "count": 3}, {"name": "b", "depends_on": ["a"]}]}"#;
    let plan = crate::plan::parse(text, "test", std::path::Path::new("")).unwrap();
    let children = child::children(&defaults(), Some(&plan), &identity()).unwrap();
    let mut run = Run::new(children, &RULES, "r", At::now());
    assert_eq!(creates(&listed(&mut run, vec![])), vec![0, 1, 2]);
    for i in 0..2 {
        pod_event(
            &mut run,
            succeeded_pod(&format!("r-a-{i}"), None),
            At::now(),
        );
        let r = seen(&mut run, job(&format!("r-a-{i}"), &[("Complete", "")], 0));
        assert!(creates(&r).is_empty(), "b waits for every child of a");
    }
    pod_event(&mut run, succeeded_pod("r-a-2", None), At::now());
    let r = seen(&mut run, job("r-a-2", &[("Complete", "")], 0));
    assert_eq!(creates(&r), vec![3]);
}

#[test]
fn fail_fast_stops_and_deletes_active_children() {
    let rules = Rules {
        parallelism: Some(2),
        fail_fast: true,
        ..RULES
    };
    let mut run = fan_out(4, &rules);
    listed(&mut run, vec![]);
    seen(&mut run, job("r-1", &[], 1));
    let r = seen(
        &mut run,
        job("r-0", &[("Failed", "BackoffLimitExceeded")], 0),
    );
    assert_eq!(run.stop_reason(), Some(Stop::FailFast));
    assert!(
        r.transitions
            .contains(&Transition::Stopping(Stop::FailFast))
    );
    assert!(creates(&r).is_empty());
    assert!(r.effects.contains(&Effect::StopCreating));
    assert_eq!(deleted(&r), vec![1]);
    let skipped = changes(&r)
        .iter()
        .filter(|(_, c)| *c == Change::Done(ChildResult::Skipped))
        .count();
    assert_eq!(skipped, 2);
    let r = apply(&mut run, Event::Deleted { indices: vec![1] });
    assert_eq!(changes(&r), vec![(1, Change::Done(ChildResult::Cancelled))]);
    assert_eq!(run.tally().done(), 4);
    assert_eq!(run.tally().cancelled, 1);
    assert_eq!(run.exit_code(), 1);
    assert_tally(&run);
}

#[test]
fn a_child_created_while_stopping_is_deleted_and_queued_ones_never_start() {
    let mut run = fan_out(3, &RULES);
    assert_eq!(creates(&listed(&mut run, vec![])), vec![0, 1, 2]);
    let r = apply(&mut run, Event::Signal(Signal::Terminate));
    assert!(r.effects.contains(&Effect::StopCreating));
    let created = Created::Created(Box::new(job("r-0", &[], 0)));
    let r = apply(
        &mut run,
        Event::Created {
            index: 0,
            outcome: created,
        },
    );
    assert_eq!(deleted(&r), vec![0]);
    let r = apply(
        &mut run,
        Event::Created {
            index: 1,
            outcome: Created::NotStarted,
        },
    );
    assert_eq!(changes(&r), vec![(1, Change::Done(ChildResult::Skipped))]);
    apply(
        &mut run,
        Event::Created {
            index: 2,
            outcome: Created::NotStarted,
        },
    );
    apply(&mut run, Event::Deleted { indices: vec![0] });
    assert!(run.is_over());
    assert_eq!(run.exit_code(), 143);
    assert_tally(&run);
}

#[test]
fn exit_codes_follow_the_spec() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, job("r-a", &[("Complete", "")], 0));
    assert_eq!(run.exit_code(), 0);
    for (event, deadline, code) in [
        // JOBHERD_TIMEOUT passed already: the first event stops the run.
        (Event::Tick, Some(Instant::now()), 3),
        (Event::Signal(Signal::Interrupt), None, 130),
        (Event::Signal(Signal::Terminate), None, 143),
    ] {
        let mut run = plan_run(&[("a", &[])], &RULES).with_limits(deadline, false);
        apply(&mut run, event);
        assert_eq!(run.exit_code(), code);
    }
}

#[test]
fn an_attempt_that_starts_past_its_deadline_creates_nothing() {
    // No tick comes before the first list: the list's own events see the deadline.
    let mut run = fan_out(2, &RULES).with_limits(Some(Instant::now()), true);
    let r = listed(&mut run, vec![job("r-0", &[], 1)]);
    assert!(creates(&r).is_empty());
    assert_eq!(deleted(&r), vec![0]);
    assert_eq!(run.stop_reason(), Some(Stop::Timeout));
}

#[test]
fn a_signal_after_every_child_finished_changes_nothing() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, job("r-a", &[("Complete", "")], 0));
    apply(&mut run, Event::Signal(Signal::Terminate));
    assert_eq!(run.exit_code(), 0);
}

#[test]
fn a_child_deleted_by_someone_else_fails() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, job("r-a", &[], 1));
    let r = apply(
        &mut run,
        Event::Jobs(Box::new(watcher::Event::Delete(job("r-a", &[], 1)))),
    );
    assert_eq!(changes(&r)[0], (0, Change::Done(ChildResult::Failed)));
}

#[test]
fn a_child_missing_from_a_relist_fails() {
    let mut run = plan_run(&[("a", &[]), ("b", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, job("r-a", &[], 1));
    seen(&mut run, job("r-b", &[], 1));
    let r = listed(&mut run, vec![job("r-b", &[], 1)]);
    assert_eq!(changes(&r), vec![(0, Change::Done(ChildResult::Failed))]);
}

fn pod(job: &str, waiting: Option<&str>, restarts: i32) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{job}-x"), "uid": format!("p-{job}"), "labels": {"job-name": job}},
        "status": {"phase": if waiting.is_some() {"Pending"} else {"Running"},
          "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": waiting.is_none(),
            "restartCount": restarts,
            "state": match waiting { Some(r) => serde_json::json!({"waiting": {"reason": r, "message": "no such image"}}),
                                     None => serde_json::json!({"running": {}}) }}]}
    }))
    .unwrap()
}

fn pod_event(run: &mut Run, pod: Pod, at: At) -> Reaction {
    run.apply(Event::Pods(Box::new(watcher::Event::Apply(pod))), at)
}

#[test]
fn stuck_pods_are_detected_after_the_limit() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, job("r-a", &[], 1));
    let t0 = At::now();
    let r = pod_event(&mut run, pod("r-a", Some("ErrImagePull"), 0), t0);
    assert!(
        matches!(&changes(&r)[0].1, Change::Pending { reason, .. } if reason == "ErrImagePull")
    );
    // ErrImagePull alternating with ImagePullBackOff is one stuck period.
    pod_event(
        &mut run,
        pod("r-a", Some("ImagePullBackOff"), 0),
        t0.after(Duration::from_secs(5)),
    );
    let r = run.apply(Event::Tick, t0.after(Duration::from_secs(9)));
    assert!(changes(&r).is_empty());
    let r = run.apply(Event::Tick, t0.after(Duration::from_secs(10)));
    assert_eq!(changes(&r)[0], (0, Change::Done(ChildResult::Failed)));
    assert_eq!(deleted(&r), vec![0]);
}

#[test]
fn attempts_count_restarts_and_pods() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, job("r-a", &[], 1));
    pod_event(&mut run, pod("r-a", None, 2), At::now());
    assert_eq!(run.state(0).attempts, 3);
    let mut failed = job("r-a", &[("Failed", "BackoffLimitExceeded")], 0);
    failed.status.as_mut().unwrap().failed = Some(1);
    failed.spec = Some(JobSpec {
        backoff_limit: Some(2),
        ..Default::default()
    });
    seen(&mut run, failed);
    assert_eq!(
        run.state(0).attempts,
        3,
        "backoffLimit + 1, though the last pod is gone"
    );
}

#[test]
fn the_longest_running_child_is_the_one_seen_running_first() {
    let mut run = fan_out(2, &RULES);
    listed(&mut run, vec![]);
    let t0 = At::now();
    let running = |name: &str| Event::Jobs(Box::new(watcher::Event::Apply(job(name, &[], 1))));
    run.apply(running("r-1"), t0);
    run.apply(running("r-0"), t0.after(Duration::from_secs(1)));
    run.apply(Event::Tick, t0.after(Duration::from_secs(5)));
    assert_eq!(
        run.longest_running(),
        Some((1, Duration::from_secs(5))),
        "by this run's clock, from the event that showed it running"
    );
    seen(&mut run, job("r-1", &[("Complete", "")], 0));
    assert_eq!(run.longest_running().map(|(i, _)| i), Some(0));
    assert_eq!(run.tally().running, 1);
    assert_tally(&run);
}

#[test]
fn a_failed_childs_newest_log_wins_and_a_kept_attempt_is_the_fallback() {
    let mut run = plan_run(&[("a", &[]), ("b", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, job("r-a", &[], 1));
    seen(&mut run, job("r-b", &[], 1));
    // An attempt of b failed: its tail is kept.
    apply(
        &mut run,
        Event::Logs {
            index: 1,
            from: LogSource::Attempt,
            text: Some("disk full".into()),
        },
    );
    for name in ["r-a", "r-b"] {
        let r = seen(
            &mut run,
            job(name, &[("Failed", "BackoffLimitExceeded")], 0),
        );
        assert!(
            r.effects
                .iter()
                .any(|e| matches!(e, Effect::FetchNewestLogs { .. }))
        );
    }
    assert!(!run.is_over(), "logs are awaited");
    let newest = |index, text: Option<&str>| Event::Logs {
        index,
        from: LogSource::Newest,
        text: text.map(String::from),
    };
    let r = apply(&mut run, newest(0, Some("oops")));
    assert_eq!(changes(&r), vec![(0, Change::Logs("oops".into()))]);
    let r = apply(&mut run, newest(1, None));
    assert_eq!(changes(&r), vec![(1, Change::Logs("disk full".into()))]);
    assert!(run.is_over());
}

#[test]
fn a_failed_child_without_logs_is_given_up_on_after_a_while() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    listed(&mut run, vec![]);
    let t0 = At::now();
    run.apply(
        Event::Jobs(Box::new(watcher::Event::Apply(job(
            "r-a",
            &[("Failed", "BackoffLimitExceeded")],
            0,
        )))),
        t0,
    );
    run.apply(
        Event::Logs {
            index: 0,
            from: LogSource::Newest,
            text: None,
        },
        t0,
    );
    assert!(!run.is_over());
    let r = run.apply(Event::Tick, t0.after(Duration::from_secs(3)));
    assert_eq!(changes(&r), vec![(0, Change::NoLogs)]);
    assert!(run.is_over());
}

#[test]
fn cleanup_picks_finished_children_by_policy() {
    let mut run = plan_run(&[("a", &[]), ("b", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, job("r-a", &[("Complete", "")], 0));
    seen(&mut run, job("r-b", &[("Failed", "DeadlineExceeded")], 0));
    let indices = |p| -> Vec<usize> { run.to_clean_up(p).iter().map(|t| t.index).collect() };
    assert_eq!(indices(Cleanup::Never), Vec::<usize>::new());
    assert_eq!(indices(Cleanup::Succeeded), vec![0]);
    assert_eq!(indices(Cleanup::Always), vec![0, 1]);
}

#[test]
fn inherited_children_are_never_created_and_their_dependants_start() {
    let mut run = plan_run(&[("a", &[]), ("b", &["a"]), ("c", &["b"])], &RULES);
    let t = run.inherit(EarlierChild::of(&run, 0, "nightly-1"));
    assert_eq!(
        t,
        vec![Transition::Child {
            index: 0,
            change: Change::Done(ChildResult::Succeeded)
        }]
    );
    assert_eq!(run.state(0).earlier_run.as_deref(), Some("nightly-1"));
    assert_eq!(
        creates(&listed(&mut run, vec![])),
        vec![1],
        "b runs as if a had just succeeded"
    );
    assert_eq!(run.inherited(), 1);
    assert_tally(&run);
}

#[test]
fn a_childs_end_is_read_from_the_server_clock_like_its_start() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    listed(&mut run, vec![]);
    let mut done = job("r-a", &[("SuccessCriteriaMet", "CompletionsReached")], 0);
    let time = |s: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(s.parse().unwrap());
    let status = done.status.as_mut().unwrap();
    status.start_time = Some(time("2026-11-24T03:17:00Z"));
    status.conditions.as_mut().unwrap()[0].last_transition_time =
        Some(time("2026-11-24T03:17:04Z"));
    seen(&mut run, done);
    let s = run.state(0);
    assert_eq!(
        s.finished()
            .unwrap()
            .duration_since(s.started().unwrap())
            .as_secs(),
        4
    );
}

/// A Job as a queue shows it: `spec.suspend` set, and what its status says.
fn suspended(mut j: Job, suspend: bool) -> Job {
    j.spec.get_or_insert_with(Default::default).suspend = Some(suspend);
    j
}

#[test]
fn a_child_created_suspended_is_queued_counts_against_parallelism_and_is_never_stuck() {
    let rules = Rules {
        parallelism: Some(1),
        ..RULES
    };
    let mut run = fan_out(2, &rules);
    assert_eq!(creates(&listed(&mut run, vec![])), vec![0]);
    let mut queued = suspended(job("r-0", &[], 0), true);
    queued
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("kueue.x-k8s.io/queue-name".into(), "team-a".into());
    let r = apply(
        &mut run,
        Event::Created {
            index: 0,
            outcome: Created::Created(Box::new(queued)),
        },
    );
    assert_eq!(
        changes(&r),
        vec![
            (0, Change::Created),
            (
                0,
                Change::Queued {
                    queue: Some("team-a".into())
                }
            )
        ]
    );
    assert_eq!((run.tally().queued, run.tally().pending()), (1, 0));
    assert!(creates(&r).is_empty(), "a queued child holds its slot");
    let t0 = At::now();
    let r = run.apply(Event::Tick, t0.after(Duration::from_secs(3600)));
    assert!(changes(&r).is_empty(), "no pod, nothing stuck: {r:?}");
    // Admitted: it goes on as usual, and its time in the queue is kept.
    let r = seen(&mut run, suspended(job("r-0", &[], 1), false));
    assert_eq!(changes(&r), vec![(0, Change::Running)]);
    assert_eq!(run.state(0).phase, Phase::Running);
    assert!(run.time_queued(0) > Duration::ZERO);
    assert_tally(&run);
}

#[test]
fn a_preempted_child_is_queued_again_and_its_deleted_pod_is_no_attempt() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, suspended(job("r-a", &[], 1), false));
    pod_event(&mut run, pod("r-a", None, 0), At::now());
    assert_eq!(run.state(0).attempts, 1);
    // Kueue suspends it; the Job controller deletes its pod, which ends Failed.
    let r = seen(&mut run, suspended(job("r-a", &[], 1), true));
    assert_eq!(
        changes(&r),
        vec![(0, Change::Preempted), (0, Change::Queued { queue: None })]
    );
    assert_eq!(run.state(0).attempts, 0);
    let mut gone = pod("r-a", None, 0);
    gone.status.as_mut().unwrap().phase = Some("Failed".into());
    let r = pod_event(&mut run, gone, At::now());
    assert!(changes(&r).is_empty(), "{r:?}");
    // Admitted again: a new pod runs and succeeds.
    seen(&mut run, suspended(job("r-a", &[], 1), false));
    let mut second = pod("r-a", None, 0);
    second.metadata.uid = Some("p-second".into());
    pod_event(&mut run, second, At::now());
    let mut done = suspended(job("r-a", &[("Complete", "")], 0), false);
    done.status.as_mut().unwrap().succeeded = Some(1);
    seen(&mut run, done);
    assert_eq!(run.state(0).phase.result(), Some(ChildResult::Succeeded));
    assert_eq!(run.state(0).attempts, 1);
    assert_eq!(run.state(0).preemptions(), 1);
    assert_tally(&run);
}

/// A Job at a resourceVersion.
fn at_version(mut j: Job, rv: u64) -> Job {
    j.metadata.resource_version = Some(rv.to_string());
    j
}

#[test]
fn a_create_response_older_than_the_watch_is_no_preemption() {
    let mut run = fan_out(1, &RULES);
    listed(&mut run, vec![]);
    // The watch shows the Job queued, then admitted, before the create's answer comes back.
    seen(&mut run, at_version(suspended(job("r-0", &[], 0), true), 5));
    seen(
        &mut run,
        at_version(suspended(job("r-0", &[], 1), false), 7),
    );
    let r = apply(
        &mut run,
        Event::Created {
            index: 0,
            outcome: Created::Created(Box::new(at_version(suspended(job("r-0", &[], 0), true), 5))),
        },
    );
    assert!(changes(&r).is_empty(), "{r:?}");
    assert_eq!(run.state(0).preemptions(), 0);
    assert_ne!(run.state(0).phase, Phase::Queued);
}

#[test]
fn a_pod_first_seen_while_queued_is_no_attempt() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, suspended(job("r-a", &[], 1), false));
    seen(&mut run, suspended(job("r-a", &[], 1), true));
    // The preempted pod's first event comes while the child is queued again.
    pod_event(&mut run, pod("r-a", None, 0), At::now());
    seen(&mut run, suspended(job("r-a", &[], 1), false));
    let mut gone = pod("r-a", None, 0);
    gone.status.as_mut().unwrap().phase = Some("Failed".into());
    pod_event(&mut run, gone, At::now());
    let mut second = pod("r-a", None, 0);
    second.metadata.uid = Some("p-second".into());
    pod_event(&mut run, second, At::now());
    let mut done = suspended(job("r-a", &[("Complete", "")], 0), false);
    done.status.as_mut().unwrap().succeeded = Some(1);
    seen(&mut run, done);
    assert_eq!(run.state(0).attempts, 1);
}

const ETL: &str = r#"{"steps": [
    {"name": "list"},
    {"name": "process", "depends_on": ["list"], "params_from": "list"},
    {"name": "merge", "depends_on": ["process"]}]}"#;

#[test]
fn a_params_from_step_is_laid_out_from_its_sources_result_after_the_others() {
    let mut run = run_of_plan(ETL, &RULES);
    assert_eq!(run.total(), 2, "list and merge; process is not known yet");
    assert_eq!(creates(&listed(&mut run, vec![])), vec![0]);
    let r = succeed(&mut run, "r-list", Some(r#"["a",{"P":"b"}]"#));
    assert_eq!(run.total(), 4);
    assert_eq!(creates(&r), vec![2, 3]);
    assert_eq!(run.children().name(3), "r-process-1");
    let job = run.children().job(3);
    let env: Vec<(String, String)> = job.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    assert!(env.contains(&("P".into(), "b".into())), "{env:?}");
    assert!(
        env.contains(&("JOBHERD_CHILD_COUNT".into(), "2".into())),
        "{env:?}"
    );
    assert!(
        !env.iter().any(|(k, _)| k == "JOBHERD_RESULT_LIST"),
        "its element, not the whole list: {env:?}"
    );
    succeed(&mut run, "r-process-0", Some("1"));
    let r = succeed(&mut run, "r-process-1", Some("two"));
    assert_eq!(creates(&r), vec![1], "merge");
    assert_eq!(run.step_output(1).as_deref(), Some(r#"[1,"two"]"#));
    succeed(&mut run, "r-merge", None);
    assert_eq!(run.exit_code(), 0);
    assert!(run.is_over());
    assert_tally(&run);
}

#[test]
fn a_dependant_waits_for_a_result_the_pod_watch_has_not_shown() {
    let mut run = run_of_plan(ETL, &RULES);
    listed(&mut run, vec![]);
    let t0 = At::now();
    let r = run.apply(
        Event::Jobs(Box::new(watcher::Event::Apply(job(
            "r-list",
            &[("Complete", "")],
            0,
        )))),
        t0,
    );
    assert!(creates(&r).is_empty(), "process waits for list's result");
    let r = run.apply(Event::Tick, t0.after(Duration::from_secs(1)));
    assert!(!reads_output(&r, 0));
    let r = run.apply(Event::Tick, t0.after(Duration::from_secs(2)));
    assert!(reads_output(&r, 0), "{r:?}");
    let read = OutputRead::Found(Some(r#"["x"]"#.to_string()));
    let r = run.apply(
        Event::Output { index: 0, read },
        t0.after(Duration::from_secs(3)),
    );
    assert_eq!(creates(&r), vec![2]);
}

#[test]
fn a_stop_before_a_fan_out_is_laid_out_deletes_the_children_a_restart_found_of_it() {
    // A restarted parent past its deadline lists list (done, its result not read yet) and
    // process's two children, which it cannot place until the result comes.
    let mut run = run_of_plan(ETL, &RULES).with_limits(Some(Instant::now()), true);
    let found = vec![
        job("r-list", &[("Complete", "")], 0),
        job("r-process-0", &[], 1),
        job("r-process-1", &[], 1),
    ];
    let r = listed(&mut run, found);
    assert!(deleted(&r).is_empty() && creates(&r).is_empty());
    assert!(!run.is_over(), "process's children are out there");
    let read = OutputRead::Found(Some(r#"["a","b"]"#.to_string()));
    let r = apply(&mut run, Event::Output { index: 0, read });
    assert_eq!(deleted(&r), vec![2, 3]);
    assert!(creates(&r).is_empty());
    apply(
        &mut run,
        Event::Deleted {
            indices: vec![2, 3],
        },
    );
    assert!(run.is_over());
    let merge = run.state(1).phase.result();
    assert_eq!(merge, Some(ChildResult::Skipped));
    assert_eq!(run.tally().cancelled, 2);
    assert_eq!(run.exit_code(), 3);
    assert_tally(&run);
}

#[test]
fn a_stop_before_the_first_list_deletes_a_fan_out_laid_out_during_it() {
    // The pod watch told list's result first; the list shows list before process's children.
    let mut run = run_of_plan(ETL, &RULES).with_limits(Some(Instant::now()), true);
    let pod = succeeded_pod("r-list", Some(r#"["a","b"]"#));
    apply(&mut run, Event::Pods(Box::new(watcher::Event::Apply(pod))));
    let found = vec![
        job("r-list", &[("Complete", "")], 0),
        job("r-process-0", &[], 1),
        job("r-process-1", &[], 1),
    ];
    let r = listed(&mut run, found);
    assert_eq!(deleted(&r), vec![2, 3]);
    assert!(creates(&r).is_empty());
    apply(
        &mut run,
        Event::Deleted {
            indices: vec![2, 3],
        },
    );
    assert!(run.is_over());
    assert_eq!(run.tally().cancelled, 2);
    assert_tally(&run);
}

#[test]
fn a_list_that_is_not_one_fails_its_step_without_creating_it() {
    let mut run = run_of_plan(ETL, &RULES);
    listed(&mut run, vec![]);
    let r = succeed(&mut run, "r-list", Some("a b c"));
    assert!(creates(&r).is_empty());
    assert_eq!(run.children().name(2), "r-process");
    match &run.state(2).phase {
        Phase::Done {
            result: ChildResult::Failed,
            reason,
            message,
        } => {
            assert_eq!(reason.as_deref(), Some(BAD_RESULT));
            assert_eq!(
                message.as_deref(),
                Some("step process: the result of step list is not JSON: \"a b c\"")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(run.state(1).phase.result(), Some(ChildResult::Skipped));
    assert!(
        !r.effects
            .iter()
            .any(|e| matches!(e, Effect::FetchNewestLogs { .. })),
        "a child never created has no logs to fetch"
    );
    assert!(run.is_over());
    assert_eq!(run.exit_code(), 1);
}

#[test]
fn when_failed_runs_after_a_failure_and_is_not_needed_after_success() {
    let plan = r#"{"steps": [{"name": "load"},
        {"name": "revert", "depends_on": ["load"], "when": "failed"},
        {"name": "notify", "depends_on": ["load", "revert"], "when": "always"}]}"#;
    let mut run = run_of_plan(plan, &RULES);
    listed(&mut run, vec![]);
    let r = seen(
        &mut run,
        job("r-load", &[("Failed", "BackoffLimitExceeded")], 0),
    );
    assert_eq!(creates(&r), vec![1], "revert");
    let r = succeed(&mut run, "r-revert", None);
    assert_eq!(creates(&r), vec![2], "notify");
    succeed(&mut run, "r-notify", None);
    assert_eq!(run.exit_code(), 1, "load had to succeed");

    let mut run = run_of_plan(plan, &RULES);
    listed(&mut run, vec![]);
    let r = succeed(&mut run, "r-load", None);
    assert_eq!(creates(&r), vec![2], "notify; revert is not needed");
    match &run.state(1).phase {
        Phase::Done { result, reason, .. } => {
            assert_eq!(*result, ChildResult::Skipped);
            assert_eq!(reason.as_deref(), Some(NOT_NEEDED));
        }
        other => panic!("{other:?}"),
    }
    succeed(&mut run, "r-notify", None);
    assert_eq!(run.exit_code(), 0, "a step not needed harms nothing");
    assert_eq!(run.not_needed(), 1);
}

#[test]
fn fail_fast_still_runs_the_steps_for_failure_and_always() {
    let rules = Rules {
        fail_fast: true,
        ..RULES
    };
    let plan = r#"{"steps": [{"name": "a"}, {"name": "b"}, {"name": "c", "depends_on": ["b"]},
        {"name": "notify", "depends_on": ["a", "c"], "when": "always"}]}"#;
    let mut run = run_of_plan(plan, &rules);
    listed(&mut run, vec![]);
    for (i, name) in [(0, "r-a"), (1, "r-b")] {
        let created = Created::Created(Box::new(job(name, &[], 1)));
        apply(
            &mut run,
            Event::Created {
                index: i,
                outcome: created,
            },
        );
    }
    let r = seen(
        &mut run,
        job("r-a", &[("Failed", "BackoffLimitExceeded")], 0),
    );
    assert_eq!(deleted(&r), vec![1], "{r:?}");
    assert_eq!(run.state(2).phase.result(), Some(ChildResult::Skipped));
    // Its dependencies have ended: a failed, c was skipped by the stop.
    assert_eq!(creates(&r), vec![3], "notify runs after the stop");
    apply(&mut run, Event::Deleted { indices: vec![1] });
    assert_eq!(run.state(1).phase.result(), Some(ChildResult::Cancelled));
    let created = Created::Created(Box::new(job("r-notify", &[], 1)));
    let r = apply(
        &mut run,
        Event::Created {
            index: 3,
            outcome: created,
        },
    );
    assert!(
        !r.effects.iter().any(|e| matches!(e, Effect::Delete(_))),
        "not deleted as a child created while stopping"
    );
    succeed(&mut run, "r-notify", None);
    assert_eq!(run.tally().done(), run.total());
    assert_eq!(run.exit_code(), 1);
}
