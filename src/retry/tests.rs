use super::*;
use crate::child::{self, Identity};
use crate::config::{FanOut, LogsMode, StepSettings};
use crate::run::Rules;
use std::time::{Duration, Instant};

fn fan_out(n: u32) -> Run {
    let settings = StepSettings {
        image: Some("busybox".into()),
        fan_out: FanOut::Count(n),
        ..Default::default()
    };
    let id = Identity {
        run_id: "r".into(),
        prefix: "nightly-2".into(),
        namespace: None,
        owner: None,
    };
    let children = child::children(&settings, None, &id).unwrap();
    let rules = Rules {
        parallelism: None,
        fail_fast: false,
        stuck_timeout: Duration::from_secs(60),
        logs: LogsMode::None,
    };
    Run::new(Arc::new(children), &rules, "r", Instant::now())
}

#[test]
fn the_record_says_which_run_did_each_succeeded_child() {
    let mut run = fan_out(10);
    for index in [0, 9] {
        run.inherit(&(index, Arc::from("nightly-1")));
    }
    for i in [1, 2, 3] {
        run.force_done(i, ChildResult::Succeeded, None, 1);
    }
    run.force_done(4, ChildResult::Failed, Some("BackoffLimitExceeded"), 3);
    let record = Outcome::of(&run, "nightly-2", "nightly-2");
    assert_eq!(record.steps, vec![(String::new(), 10)]);
    let text = record.to_annotation().unwrap();
    let back = Outcome::parse(&text).unwrap();
    assert_eq!(back, record);
    let mut done = back.succeeded().unwrap();
    done.sort();
    assert_eq!(
        done,
        [
            (0, "nightly-1".to_string()),
            (1, "nightly-2".into()),
            (2, "nightly-2".into()),
            (3, "nightly-2".into()),
            (9, "nightly-1".into()),
        ]
    );
}

#[test]
fn the_record_of_ten_thousand_children_is_small() {
    let mut run = fan_out(10_000);
    for i in (0..10_000).filter(|i| i % 3 != 0) {
        run.force_done(i, ChildResult::Succeeded, None, 1);
    }
    let text = Outcome::of(&run, "p", "p").to_annotation().unwrap();
    assert!(text.len() < 3_000, "{} bytes", text.len());
    assert_eq!(
        Outcome::parse(&text).unwrap().succeeded().unwrap().len(),
        6_666
    );
}

#[test]
fn differences_are_said_in_the_users_words() {
    let counts = |n| vec![(String::new(), n)];
    assert_eq!(differences(&counts(10), &counts(10)), None);
    assert_eq!(
        differences(&counts(10), &counts(12)).unwrap(),
        "the earlier run had 10 children, this configuration has 12 (JOBHERD_COUNT or JOBHERD_PARAMS differ)"
    );
    let plan = |steps: &[(&str, usize)]| -> Vec<(String, usize)> {
        steps.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    };
    let before = plan(&[("extract", 1), ("transform", 3), ("load", 1)]);
    let after = plan(&[("extract", 1), ("transform", 4), ("publish", 1)]);
    assert_eq!(
        differences(&before, &after).unwrap(),
        "steps no longer in the plan: load; steps new in the plan: publish; step transform had 3 children, now 4"
    );
    assert_eq!(
        differences(&counts(3), &before).unwrap(),
        "one of the runs has a plan and the other has none"
    );
}

#[test]
fn a_bad_record_is_reported_not_trusted() {
    let err = Outcome::parse("{not json").unwrap_err();
    assert!(err.contains(OUTCOME), "{err}");
    let record = Outcome {
        version: 1,
        exit_code: 1,
        prefix: "p".into(),
        steps: vec![],
        done_by: vec![DoneBy {
            run: "p".into(),
            children: "zz".into(),
        }],
    };
    assert!(record.succeeded().unwrap_err().contains("bitmap"));
}

#[test]
fn jobherd_parents_are_known_by_their_image_or_variables() {
    let job = |image: &str, env: &str| -> Job {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image,
                "env": [{"name": env, "value": "1"}]}]}}}
        }))
        .unwrap()
    };
    assert!(runs_jobherd(&job(
        "registry.example.com/platform/jobherd:0.1.0",
        "A"
    )));
    assert!(runs_jobherd(&job("jobherd@sha256:abc", "A")));
    assert!(runs_jobherd(&job("perl:5", "JOBHERD_IMAGE")));
    assert!(!runs_jobherd(&job("perl:5", "DIGITS")));
    assert!(!runs_jobherd(&job("jobherder:1", "A")));
}
