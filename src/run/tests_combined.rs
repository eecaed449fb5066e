//! Features together: stops, moves, the deadline, lists, outputs, records and logs, in the
//! orders a user's run meets them (issue 18's findings, each as a test).

use std::time::Duration;

use kube::runtime::watcher;

use super::testing::*;
use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn created(run: &mut Run, index: usize, name: &str) -> Reaction {
    let outcome = Created::Created(Box::new(job(name, &[], 1)));
    apply(run, Event::Created { index, outcome })
}

fn not_started(run: &mut Run, index: usize) -> Reaction {
    let outcome = Created::NotStarted;
    apply(run, Event::Created { index, outcome })
}

fn moving(restart_in: u64) -> Event {
    Event::Disruption(Verdict::Moving {
        reason: "EvictionByEvictionAPI".into(),
        restart_in: S(restart_in),
    })
}

fn notes(r: &Reaction) -> Vec<String> {
    r.transitions
        .iter()
        .filter_map(|t| match t {
            Transition::Note(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

const ALWAYS: &str = r#"{"steps": [{"name": "a"}, {"name": "b"},
    {"name": "notify", "depends_on": ["a", "b"], "when": "always"}]}"#;

#[test]
fn a_signal_after_fail_fast_ends_the_steps_that_run_on_failure_too() {
    let rules = Rules {
        fail_fast: true,
        ..RULES
    };
    let mut run = run_of_plan(ALWAYS, &rules);
    listed(&mut run, vec![]);
    created(&mut run, 0, "r-a");
    created(&mut run, 1, "r-b");
    let r = seen(
        &mut run,
        job("r-a", &[("Failed", "BackoffLimitExceeded")], 0),
    );
    assert_eq!(deleted(&r), vec![1]);
    assert_eq!(creates(&r), Vec::<usize>::new(), "b is still out");
    let r = apply(&mut run, Event::Deleted { indices: vec![1] });
    assert_eq!(creates(&r), vec![2], "notify runs after fail fast");
    created(&mut run, 2, "r-notify");
    assert!(!run.is_over());
    let r = apply(&mut run, Event::Signal(Signal::Terminate));
    assert!(
        r.transitions
            .contains(&Transition::Stopping(Stop::Terminate))
    );
    assert_eq!(deleted(&r), vec![2], "a hard stop ends notify too");
    apply(&mut run, Event::Deleted { indices: vec![2] });
    // a's log tail is waited for a moment (none comes here).
    run.apply(Event::Tick, At::now().after(S(4)));
    assert!(run.is_over());
    assert_eq!(run.exit_code(), 143);
}

#[test]
fn a_sigterm_in_a_pod_pauses_creates_until_it_is_known_what_it_means() {
    let mut run = fan_out(
        3,
        &Rules {
            parallelism: Some(1),
            ..RULES
        },
    )
    .with_limits(None, true);
    assert_eq!(creates(&listed(&mut run, vec![])), vec![0]);
    let r = apply(&mut run, Event::Signal(Signal::Terminate));
    assert!(r.effects.contains(&Effect::CheckDisruption));
    assert!(r.effects.contains(&Effect::StopCreating));
    assert!(
        deleted(&r).is_empty(),
        "nothing is deleted before the verdict"
    );
    // The create handed out before comes back not sent: the child waits again.
    let r = not_started(&mut run, 0);
    assert!(changes(&r).is_empty());
    assert_eq!(run.state(0).phase, Phase::Waiting);
    let r = seen(&mut run, job("r-9", &[], 1));
    assert!(
        creates(&r).is_empty(),
        "no create while the SIGTERM is looked into"
    );
    assert!(!run.is_over());
    let r = apply(&mut run, moving(10));
    assert!(matches!(
        r.transitions[..],
        [Transition::Moving {
            active: 0,
            waiting: 3,
            ..
        }]
    ));
    assert!(run.is_over());
    assert_eq!(run.exit_code(), 143);
    assert_eq!(run.moving(), Some("EvictionByEvictionAPI"));
}

#[test]
fn a_hard_stop_during_the_check_wins_over_its_verdict() {
    let mut run = fan_out(2, &RULES).with_limits(None, true);
    listed(&mut run, vec![]);
    created(&mut run, 0, "r-0");
    apply(&mut run, Event::Signal(Signal::Terminate));
    let r = apply(&mut run, Event::Signal(Signal::Interrupt));
    assert_eq!(deleted(&r), vec![0]);
    let r = apply(&mut run, moving(10));
    assert!(r.transitions.is_empty(), "the verdict comes too late");
    assert!(run.moving().is_none());
    assert_eq!(run.exit_code(), 130);
}

#[test]
fn a_verdict_that_ends_the_run_says_why_and_stops_it() {
    let mut run = fan_out(1, &RULES).with_limits(None, true);
    listed(&mut run, vec![]);
    created(&mut run, 0, "r-0");
    apply(&mut run, Event::Signal(Signal::Terminate));
    let why = "its pod is being disrupted (X), but its parent Job is being deleted".to_string();
    let r = apply(
        &mut run,
        Event::Disruption(Verdict::Ending { why: Some(why) }),
    );
    assert_eq!(
        notes(&r),
        vec!["jobherd: its pod is being disrupted (X), but its parent Job is being deleted"]
    );
    assert_eq!(deleted(&r), vec![0]);
    assert_eq!(run.exit_code(), 143);
}

#[test]
fn a_move_that_cannot_start_before_the_timeout_ends_the_run() {
    let t0 = At::now();
    let mut run = fan_out(1, &RULES).with_limits(Some(t0.instant + S(8)), true);
    run.apply(list_event(watcher::Event::Init), t0);
    run.apply(list_event(watcher::Event::InitDone), t0);
    created(&mut run, 0, "r-0");
    run.apply(Event::Signal(Signal::Terminate), t0);
    let r = run.apply(moving(10), t0.after(S(1)));
    assert!(
        notes(&r)[0].contains("JOBHERD_TIMEOUT passes in 7s"),
        "{r:?}"
    );
    assert_eq!(deleted(&r), vec![0]);
    assert_eq!(run.exit_code(), 143);
}

fn list_event(e: watcher::Event<k8s_openapi::api::batch::v1::Job>) -> Event {
    Event::Jobs(Box::new(e))
}

#[test]
fn the_deadline_ends_the_run_whatever_else_goes_on() {
    // A source's output is being read (the dependant is not laid out yet): the deadline still
    // stops the run; it is over once the fan-out is laid out (and what a restarted parent
    // found of it could be deleted), and creates nothing.
    let t0 = At::now();
    let mut run = run_of_plan(ETL, &RULES).with_limits(Some(t0.instant + S(30)), false);
    run.apply(list_event(watcher::Event::Init), t0);
    run.apply(list_event(watcher::Event::InitDone), t0);
    run.apply(
        list_event(watcher::Event::Apply(job("r-list", &[("Complete", "")], 0))),
        t0,
    );
    assert!(!run.is_over(), "list's output is awaited");
    let r = run.apply(Event::Tick, t0.after(S(30)));
    assert!(r.transitions.contains(&Transition::Stopping(Stop::Timeout)));
    let read = OutputRead::Found(Some(r#"["a","b"]"#.into()));
    let r = run.apply(Event::Output { index: 0, read }, t0.after(S(31)));
    assert!(creates(&r).is_empty());
    assert!(run.is_over());
    assert_eq!(run.exit_code(), 3);
    assert_eq!(
        run.tally().done(),
        run.total(),
        "process and merge are skipped"
    );
}

#[test]
fn a_run_past_its_deadline_at_start_deletes_what_its_first_list_shows() {
    let t0 = At::now();
    let mut run = fan_out(2, &RULES).with_limits(Some(t0.instant), false);
    let r = run.apply(Event::Tick, t0);
    assert!(r.transitions.contains(&Transition::Stopping(Stop::Timeout)));
    assert!(
        deleted(&r).is_empty(),
        "which children exist is not known yet"
    );
    assert!(!run.is_over());
    let r = listed(&mut run, vec![job("r-1", &[], 1)]);
    assert_eq!(deleted(&r), vec![1], "the adopted child goes");
    assert_eq!(run.state(0).phase.result(), Some(ChildResult::Skipped));
    assert!(creates(&r).is_empty());
    apply(&mut run, Event::Deleted { indices: vec![1] });
    assert!(run.is_over());
    assert_eq!(run.exit_code(), 3);
}

#[test]
fn a_stop_whose_deletes_do_not_answer_gives_up_on_them_in_time() {
    let t0 = At::now();
    let mut run = fan_out(2, &RULES);
    run.apply(list_event(watcher::Event::Init), t0);
    run.apply(list_event(watcher::Event::InitDone), t0);
    created(&mut run, 0, "r-0");
    created(&mut run, 1, "r-1");
    run.apply(Event::Signal(Signal::Interrupt), t0);
    run.apply(Event::Tick, t0.after(S(17)));
    assert!(!run.is_over());
    let r = run.apply(Event::Tick, t0.after(S(18)));
    assert_eq!(
        changes(&r),
        vec![
            (0, Change::Done(ChildResult::Cancelled)),
            (1, Change::Done(ChildResult::Cancelled))
        ]
    );
    assert!(run.is_over());
    match &run.state(0).phase {
        Phase::Done { message, .. } => {
            assert!(message.as_deref().unwrap().contains("not confirmed"))
        }
        other => panic!("{other:?}"),
    }
}

const ETL: &str = r#"{"steps": [
    {"name": "list"},
    {"name": "process", "depends_on": ["list"], "params_from": "list"},
    {"name": "merge", "depends_on": ["process"]}]}"#;

#[test]
fn a_fan_out_laid_out_during_a_relist_is_adopted_whole_without_creates() {
    let mut run = run_of_plan(ETL, &RULES);
    let list = |e| Event::Jobs(Box::new(e));
    apply(&mut run, list(watcher::Event::Init));
    // A child of the fan-out, listed before its step is laid out: kept.
    let r = apply(
        &mut run,
        list(watcher::Event::InitApply(job("r-process-0", &[], 1))),
    );
    assert!(r.transitions.is_empty());
    // The source succeeded; its output is on the pod watch, read during the list.
    apply(
        &mut run,
        Event::Pods(Box::new(watcher::Event::Apply(succeeded_pod(
            "r-list",
            Some(r#"["a","b","c"]"#),
        )))),
    );
    let r = apply(
        &mut run,
        list(watcher::Event::InitApply(job(
            "r-list",
            &[("Complete", "")],
            0,
        ))),
    );
    assert_eq!(run.total(), 5, "list, merge and the three of process");
    assert!(
        changes(&r).contains(&(2, Change::Adopted)),
        "the kept Job is applied at lay-out: {r:?}"
    );
    // The rest of the fan-out comes after the lay-out (this indexed past the end before).
    apply(
        &mut run,
        list(watcher::Event::InitApply(job("r-process-1", &[], 1))),
    );
    apply(
        &mut run,
        list(watcher::Event::InitApply(job(
            "r-process-2",
            &[("Complete", "")],
            0,
        ))),
    );
    let r = apply(&mut run, list(watcher::Event::InitDone));
    assert_eq!(
        creates(&r),
        Vec::<usize>::new(),
        "every child of the fan-out exists"
    );
    assert!(run.state(3).phase.is_active());
    assert_eq!(run.state(4).phase.result(), Some(ChildResult::Succeeded));
}

#[test]
fn a_relist_finds_what_vanished_also_among_children_laid_out_meanwhile() {
    let mut run = run_of_plan(ETL, &RULES);
    listed(&mut run, vec![]);
    succeed(&mut run, "r-list", Some(r#"["a","b"]"#));
    created(&mut run, 2, "r-process-0");
    created(&mut run, 3, "r-process-1");
    let list = |e| Event::Jobs(Box::new(e));
    apply(&mut run, list(watcher::Event::Init));
    apply(
        &mut run,
        list(watcher::Event::InitApply(job(
            "r-list",
            &[("Complete", "")],
            0,
        ))),
    );
    apply(
        &mut run,
        list(watcher::Event::InitApply(job("r-process-1", &[], 1))),
    );
    let r = apply(&mut run, list(watcher::Event::InitDone));
    assert_eq!(changes(&r)[0], (2, Change::Done(ChildResult::Failed)));
    assert_eq!(run.state(3).phase, Phase::Running, "still there");
}

fn resumed(step: usize, position: usize, result: ChildResult, output: Output) -> ResumedChild {
    ResumedChild {
        step,
        position,
        result: Some(result),
        output,
        attempts: 1,
        ..ResumedChild::default()
    }
}

#[test]
fn a_resumed_run_keeps_what_its_earlier_attempt_read_and_does_not_rerun_it() {
    let mut run = run_of_plan(ETL, &RULES);
    let list_output = Output::Text(r#"["a","b"]"#.into());
    run.resume(vec![
        resumed(0, 0, ChildResult::Succeeded, list_output),
        // process-0 succeeded with an output; its Job is gone (a TTL) by now.
        resumed(1, 0, ChildResult::Succeeded, Output::Text("1".into())),
    ]);
    // The first list shows no Job of list or process-0: a TTL removed them.
    let r = listed(&mut run, vec![]);
    assert_eq!(run.state(0).phase.result(), Some(ChildResult::Succeeded));
    assert_eq!(run.total(), 4, "process laid out from the recorded output");
    assert_eq!(run.state(2).phase.result(), Some(ChildResult::Succeeded));
    assert_eq!(creates(&r), vec![3], "only process-1 is created");
    let r = succeed(&mut run, "r-process-1", Some("2"));
    assert_eq!(creates(&r), vec![1], "merge");
    let merge = run.children().job(1);
    let env = &merge.spec.unwrap().template.spec.unwrap().containers[0].env;
    let value = env
        .iter()
        .flatten()
        .find(|e| e.name == "JOBHERD_RESULT_PROCESS");
    assert_eq!(value.and_then(|e| e.value.as_deref()), Some("[1,2]"));
}

#[test]
fn a_resumed_child_whose_job_still_exists_follows_its_job() {
    let mut run = fan_out(1, &RULES);
    run.resume(vec![ResumedChild {
        queued: S(30),
        preemptions: 1,
        attempts: 2,
        ..ResumedChild::default()
    }]);
    listed(&mut run, vec![job("r-0", &[], 1)]);
    assert_eq!(run.state(0).phase, Phase::Running);
    assert_eq!(run.state(0).attempts, 2);
    assert_eq!(run.state(0).preemptions(), 1);
    assert_eq!(run.time_queued(0), S(30));
}

#[test]
fn an_output_that_cannot_be_read_fails_the_dependant_with_its_cause() {
    let mut run = run_of_plan(ETL, &RULES);
    listed(&mut run, vec![]);
    let t0 = At::now();
    run.apply(
        list_event(watcher::Event::Apply(job("r-list", &[("Complete", "")], 0))),
        t0,
    );
    let r = run.apply(Event::Tick, t0.after(S(2)));
    assert!(reads_output(&r, 0));
    let read = OutputRead::Lost("its succeeded pod is gone (removed by a TTL)".into());
    run.apply(Event::Output { index: 0, read }, t0.after(S(3)));
    match &run.state(2).phase {
        Phase::Done {
            reason, message, ..
        } => {
            assert_eq!(reason.as_deref(), Some(BAD_RESULT));
            let m = message.as_deref().unwrap();
            assert!(
                m.contains("child r-list succeeded, but its succeeded pod is gone"),
                "{m}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_message_the_kubelet_cut_is_no_result_to_pass_on() {
    let mut run = run_of_plan(ETL, &RULES);
    listed(&mut run, vec![]);
    let cut = "x".repeat(4096);
    succeed(&mut run, "r-list", Some(&cut));
    match &run.state(2).phase {
        Phase::Done { message, .. } => {
            assert!(message.as_deref().unwrap().contains("cut by the kubelet"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_params_from_step_whose_source_failed_says_so() {
    let plan = r#"{"steps": [{"name": "list"},
        {"name": "process", "depends_on": ["list"], "params_from": "list", "when": "always"}]}"#;
    let mut run = run_of_plan(plan, &RULES);
    listed(&mut run, vec![]);
    seen(
        &mut run,
        job("r-list", &[("Failed", "BackoffLimitExceeded")], 0),
    );
    match &run.state(1).phase {
        Phase::Done {
            reason, message, ..
        } => {
            assert_eq!(reason.as_deref(), Some(BAD_RESULT));
            assert!(message.as_deref().unwrap().contains("step list failed"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_child_too_large_to_create_fails_alone() {
    let big = "x".repeat(120 * 1024);
    let params: Vec<serde_json::Value> = (0..3)
        .map(|i| {
            if i == 1 {
                serde_json::json!({ "A": big, "B": big, "C": big, "D": big, "E": big,
                    "F": big, "G": big, "H": big, "I": big })
            } else {
                serde_json::json!({ "N": i.to_string() })
            }
        })
        .collect();
    let text = serde_json::json!({"steps": [{"name": "w", "params": params}]}).to_string();
    let mut run = run_of_plan(&text, &RULES);
    let r = listed(&mut run, vec![]);
    assert_eq!(creates(&r), vec![0, 2]);
    match &run.state(1).phase {
        Phase::Done {
            result,
            reason,
            message,
        } => {
            assert_eq!(*result, ChildResult::Failed);
            assert_eq!(reason.as_deref(), Some("TooLarge"));
            let m = message.as_deref().unwrap();
            assert!(m.contains("1081 KiB") && m.contains("1024 KiB"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_childs_log_is_followed_once_however_fast_it_ran() {
    let rules = Rules {
        logs: LogsMode::All,
        ..RULES
    };
    let mut run = fan_out(2, &rules);
    listed(&mut run, vec![]);
    let t0 = At::now();
    // r-0's Job completes before its pod was seen running; the pod comes after.
    run.apply(
        list_event(watcher::Event::Apply(job("r-0", &[("Complete", "")], 0))),
        t0,
    );
    let pod = Event::Pods(Box::new(watcher::Event::Apply(succeeded_pod("r-0", None))));
    let r = run.apply(pod, t0);
    let follows = |r: &Reaction| {
        r.effects
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Effect::FollowLogs { .. } | Effect::FollowNewestLogs { .. }
                )
            })
            .count()
    };
    assert_eq!(follows(&r), 1);
    let pod = Event::Pods(Box::new(watcher::Event::Apply(succeeded_pod("r-0", None))));
    assert_eq!(follows(&run.apply(pod, t0)), 0, "once");
    // r-1's pod is never seen: its newest pod's log is followed after a short wait.
    run.apply(
        list_event(watcher::Event::Apply(job("r-1", &[("Complete", "")], 0))),
        t0,
    );
    assert_eq!(follows(&run.apply(Event::Tick, t0.after(S(1)))), 0);
    let r = run.apply(Event::Tick, t0.after(S(3)));
    assert!(r.effects.contains(&Effect::FollowNewestLogs {
        index: 1,
        pods: "job-name=r-1".into()
    }));
    let read = OutputRead::Found(None);
    run.apply(Event::Output { index: 1, read }, t0.after(S(3)));
    assert!(!run.is_over(), "its log is still streaming");
    run.apply(Event::LogEnded, t0.after(S(4)));
    run.apply(Event::LogEnded, t0.after(S(4)));
    run.apply(Event::Tick, t0.after(S(4)));
    assert!(run.is_over());
}

#[test]
fn a_failed_childs_log_is_not_repeated_as_a_tail_when_all_logs_are_followed() {
    let rules = Rules {
        logs: LogsMode::All,
        ..RULES
    };
    let mut run = fan_out(1, &rules);
    listed(&mut run, vec![]);
    let r = seen(
        &mut run,
        job("r-0", &[("Failed", "BackoffLimitExceeded")], 0),
    );
    assert!(
        !r.effects
            .iter()
            .any(|e| matches!(e, Effect::FetchNewestLogs { .. })),
        "{r:?}"
    );
}
