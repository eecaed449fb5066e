use super::*;
use crate::child::RUN_LABEL;
use crate::child::{self, Identity};
use crate::config::StepSettings;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::Pod;

const RULES: Rules = Rules {
    parallelism: None,
    fail_fast: false,
    stuck_timeout: Duration::from_secs(10),
    logs: LogsMode::Failed,
};

fn identity() -> Identity {
    Identity {
        run_id: "r".into(),
        prefix: "r".into(),
        namespace: Some("ns".into()),
        owner: None,
    }
}

fn defaults() -> StepSettings {
    StepSettings {
        image: Some("busybox".into()),
        ..Default::default()
    }
}

/// A run of plan steps `(name, depends_on)`; child `i` is step `i`, named `r-<step>`.
fn plan_run(steps: &[(&str, &[&str])], rules: &Rules) -> Run {
    let steps: Vec<serde_json::Value> = steps
        .iter()
        .map(|(name, deps)| serde_json::json!({"name": name, "depends_on": deps}))
        .collect();
    let text = serde_json::json!({ "steps": steps }).to_string();
    let plan = crate::plan::parse(&text, "test", std::path::Path::new("")).unwrap();
    let children = child::children(&defaults(), Some(&plan), &identity()).unwrap();
    Run::new(Arc::new(children), rules, "r", Instant::now())
}

/// A run of `n` children without a plan, named `r-0` .. `r-<n-1>`.
fn fan_out(n: u32, rules: &Rules) -> Run {
    Run::fanned_out("r", n, rules)
}

fn job(name: &str, conditions: &[(&str, &str)], active: i32) -> Job {
    let mut j = Job::default();
    j.metadata.name = Some(name.into());
    j.metadata.uid = Some(format!("uid-{name}"));
    j.metadata.labels = Some([(RUN_LABEL.to_string(), "r".to_string())].into());
    j.status = Some(JobStatus {
        active: Some(active),
        ready: Some(active),
        conditions: Some(
            conditions
                .iter()
                .map(|(t, r)| JobCondition {
                    type_: t.to_string(),
                    status: "True".into(),
                    reason: Some(r.to_string()),
                    message: Some(format!("{r} happened")),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    });
    j
}

fn apply(run: &mut Run, event: Event) -> Reaction {
    run.apply(event, Instant::now())
}

fn seen(run: &mut Run, job: Job) -> Reaction {
    apply(run, Event::Jobs(Box::new(watcher::Event::Apply(job))))
}

/// The first list of the Job watch, showing `existing`; returns what it started.
fn listed(run: &mut Run, existing: Vec<Job>) -> Reaction {
    let mut out = apply(run, Event::Jobs(Box::new(watcher::Event::Init)));
    for job in existing {
        out.transitions
            .extend(apply(run, Event::Jobs(Box::new(watcher::Event::InitApply(job)))).transitions);
    }
    let done = apply(run, Event::Jobs(Box::new(watcher::Event::InitDone)));
    out.transitions.extend(done.transitions);
    out.effects.extend(done.effects);
    out
}

fn creates(r: &Reaction) -> Vec<usize> {
    r.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Create(i) => Some(*i),
            _ => None,
        })
        .collect()
}

fn changes(r: &Reaction) -> Vec<(usize, Change)> {
    r.transitions
        .iter()
        .filter_map(|t| match t {
            Transition::Child { index, change } => Some((*index, change.clone())),
            Transition::Stopping(_) | Transition::Moving { .. } => None,
        })
        .collect()
}

fn results(run: &Run) -> Vec<Option<ChildResult>> {
    run.states().iter().map(|s| s.phase.result()).collect()
}

/// The tally must always equal a recount of the phases.
fn assert_tally(run: &Run) {
    let mut recount = Tally::default();
    for s in run.states() {
        *recount.slot(&s.phase) += 1;
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
        Phase::Done { message, .. } => message.clone().unwrap_or_default(),
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
    pod_event(&mut run, succeeded_pod("r-a", None), Instant::now());
    let r = seen(&mut run, job("r-a", &[("Complete", "")], 0));
    assert_eq!(creates(&r), vec![2], "c does not wait for b");
}

#[test]
fn a_fanned_out_step_is_done_when_all_its_children_succeeded() {
    let text = r#"{"steps": [{"name": "a", "count": 3}, {"name": "b", "depends_on": ["a"]}]}"#;
    let plan = crate::plan::parse(text, "test", std::path::Path::new("")).unwrap();
    let children = child::children(&defaults(), Some(&plan), &identity()).unwrap();
    let mut run = Run::new(Arc::new(children), &RULES, "r", Instant::now());
    assert_eq!(creates(&listed(&mut run, vec![])), vec![0, 1, 2]);
    for i in 0..2 {
        pod_event(
            &mut run,
            succeeded_pod(&format!("r-a-{i}"), None),
            Instant::now(),
        );
        let r = seen(&mut run, job(&format!("r-a-{i}"), &[("Complete", "")], 0));
        assert!(creates(&r).is_empty(), "b waits for every child of a");
    }
    pod_event(&mut run, succeeded_pod("r-a-2", None), Instant::now());
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
    assert!(r.effects.contains(&Effect::Delete(vec![1])));
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
    let r = apply(&mut run, Event::Signal(Stop::Terminate));
    assert!(r.effects.contains(&Effect::StopCreating));
    let created = Created::Created(Box::new(job("r-0", &[], 0)));
    let r = apply(
        &mut run,
        Event::Created {
            index: 0,
            outcome: created,
        },
    );
    assert!(r.effects.contains(&Effect::Delete(vec![0])));
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
    for (event, code) in [
        (Event::Deadline, 3),
        (Event::Signal(Stop::Interrupt), 130),
        (Event::Signal(Stop::Terminate), 143),
    ] {
        let mut run = plan_run(&[("a", &[])], &RULES);
        apply(&mut run, event);
        assert_eq!(run.exit_code(), code);
    }
}

#[test]
fn a_signal_after_every_child_finished_changes_nothing() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, job("r-a", &[("Complete", "")], 0));
    apply(&mut run, Event::Signal(Stop::Terminate));
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

/// A child's pod that succeeded, its container having written `message`.
fn succeeded_pod(job: &str, message: Option<&str>) -> Pod {
    let mut terminated = serde_json::json!({"exitCode": 0, "reason": "Completed"});
    if let Some(m) = message {
        terminated["message"] = m.into();
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{job}-ok"), "uid": format!("p-ok-{job}"), "labels": {"job-name": job}},
        "spec": {"containers": [{"name": job, "image": "i"}]},
        "status": {"phase": "Succeeded",
          "containerStatuses": [{"name": job, "image": "i", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"terminated": terminated}}]}
    }))
    .unwrap()
}

fn pod_event(run: &mut Run, pod: Pod, at: Instant) -> Reaction {
    run.apply(Event::Pods(Box::new(watcher::Event::Apply(pod))), at)
}

#[test]
fn stuck_pods_are_detected_after_the_limit() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, job("r-a", &[], 1));
    let t0 = Instant::now();
    let r = pod_event(&mut run, pod("r-a", Some("ErrImagePull"), 0), t0);
    assert!(
        matches!(&changes(&r)[0].1, Change::Pending { reason, .. } if reason == "ErrImagePull")
    );
    // ErrImagePull alternating with ImagePullBackOff is one stuck period.
    pod_event(
        &mut run,
        pod("r-a", Some("ImagePullBackOff"), 0),
        t0 + Duration::from_secs(5),
    );
    let r = run.apply(Event::Tick, t0 + Duration::from_secs(9));
    assert!(changes(&r).is_empty());
    let r = run.apply(Event::Tick, t0 + Duration::from_secs(10));
    assert_eq!(changes(&r)[0], (0, Change::Done(ChildResult::Failed)));
    assert!(r.effects.contains(&Effect::Delete(vec![0])));
}

#[test]
fn attempts_count_restarts_and_pods() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, job("r-a", &[], 1));
    pod_event(&mut run, pod("r-a", None, 2), Instant::now());
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
fn the_longest_running_child_is_the_one_started_first() {
    let mut run = fan_out(2, &RULES);
    listed(&mut run, vec![]);
    let mut second = job("r-1", &[], 1);
    second.status.as_mut().unwrap().start_time =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:10Z".parse().unwrap(),
        ));
    let mut first = job("r-0", &[], 1);
    first.status.as_mut().unwrap().start_time =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().unwrap(),
        ));
    seen(&mut run, second);
    seen(&mut run, first);
    assert_eq!(run.longest_running().map(|(i, _)| i), Some(0));
    seen(&mut run, job("r-0", &[("Complete", "")], 0));
    assert_eq!(run.longest_running().map(|(i, _)| i), Some(1));
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
                .any(|e| matches!(e, Effect::FetchNewestLogs(_)))
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
    let t0 = Instant::now();
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
    let r = run.apply(Event::Tick, t0 + Duration::from_secs(3));
    assert_eq!(changes(&r), vec![(0, Change::NoLogs)]);
    assert!(run.is_over());
}

#[test]
fn cleanup_picks_finished_children_by_policy() {
    let mut run = plan_run(&[("a", &[]), ("b", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, job("r-a", &[("Complete", "")], 0));
    seen(&mut run, job("r-b", &[("Failed", "DeadlineExceeded")], 0));
    assert_eq!(run.to_clean_up(Cleanup::Never), Vec::<usize>::new());
    assert_eq!(run.to_clean_up(Cleanup::Succeeded), vec![0]);
    assert_eq!(run.to_clean_up(Cleanup::Always), vec![0, 1]);
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
        s.finished
            .unwrap()
            .duration_since(s.started.unwrap())
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
    let t0 = Instant::now();
    let r = run.apply(Event::Tick, t0 + Duration::from_secs(3600));
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
    pod_event(&mut run, pod("r-a", None, 0), Instant::now());
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
    let r = pod_event(&mut run, gone, Instant::now());
    assert!(changes(&r).is_empty(), "{r:?}");
    // Admitted again: a new pod runs and succeeds.
    seen(&mut run, suspended(job("r-a", &[], 1), false));
    let mut second = pod("r-a", None, 0);
    second.metadata.uid = Some("p-second".into());
    pod_event(&mut run, second, Instant::now());
    let mut done = suspended(job("r-a", &[("Complete", "")], 0), false);
    done.status.as_mut().unwrap().succeeded = Some(1);
    seen(&mut run, done);
    assert_eq!(run.state(0).phase.result(), Some(ChildResult::Succeeded));
    assert_eq!(run.state(0).attempts, 1);
    assert_eq!(run.state(0).preemptions, 1);
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
    assert_eq!(run.state(0).preemptions, 0);
    assert_ne!(run.state(0).phase, Phase::Queued);
}

#[test]
fn a_pod_first_seen_while_queued_is_no_attempt() {
    let mut run = plan_run(&[("a", &[])], &RULES);
    listed(&mut run, vec![]);
    seen(&mut run, suspended(job("r-a", &[], 1), false));
    seen(&mut run, suspended(job("r-a", &[], 1), true));
    // The preempted pod's first event comes while the child is queued again.
    pod_event(&mut run, pod("r-a", None, 0), Instant::now());
    seen(&mut run, suspended(job("r-a", &[], 1), false));
    let mut gone = pod("r-a", None, 0);
    gone.status.as_mut().unwrap().phase = Some("Failed".into());
    pod_event(&mut run, gone, Instant::now());
    let mut second = pod("r-a", None, 0);
    second.metadata.uid = Some("p-second".into());
    pod_event(&mut run, second, Instant::now());
    let mut done = suspended(job("r-a", &[("Complete", "")], 0), false);
    done.status.as_mut().unwrap().succeeded = Some(1);
    seen(&mut run, done);
    assert_eq!(run.state(0).attempts, 1);
}
