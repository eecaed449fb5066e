use super::*;
use crate::child::{self, Identity};
use crate::config::StepSettings;
use crate::run::EarlierChild;
use k8s_openapi::api::batch::v1::JobStatus;

const RULES: Rules = Rules {
    parallelism: None,
    fail_fast: false,
    stuck_timeout: Duration::from_secs(60),
    logs: LogsMode::None,
};

fn fan_out(n: u32) -> Run {
    Run::fanned_out("nightly-2", n, &RULES)
}

#[test]
fn the_record_says_which_run_did_each_succeeded_child() {
    let mut run = fan_out(10);
    for index in [0, 9] {
        run.inherit(EarlierChild::of(&run, index, "nightly-1"));
    }
    for i in [1, 2, 3] {
        run.force_done(i, ChildResult::Succeeded, None, 1);
    }
    run.force_done(4, ChildResult::Failed, Some("BackoffLimitExceeded"), 3);
    run.force_done(5, ChildResult::Cancelled, Some("Cancelled"), 1);
    let mut record = Record::of(&run, "nightly-2", "nightly-2");
    assert_eq!(record.shape(), run.children().shape());
    let text = record.to_annotation().unwrap();
    let back = Record::parse(&text).unwrap();
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
    let results: Vec<ChildResult> = back.results().unwrap().into_iter().map(|r| r.0).collect();
    assert_eq!(results[4], ChildResult::Failed);
    assert_eq!(results[5], ChildResult::Cancelled);
    assert_eq!(results[6], ChildResult::Skipped);
}

#[test]
fn the_record_of_ten_thousand_children_is_small() {
    let mut run = fan_out(10_000);
    for i in 0..10_000 {
        let result = if i % 3 == 0 {
            ChildResult::Failed
        } else {
            ChildResult::Succeeded
        };
        run.force_done(i, result, None, 1);
    }
    let text = Record::of(&run, "p", "p").to_annotation().unwrap();
    assert!(text.len() < 6_000, "{} bytes", text.len());
    assert_eq!(
        Record::parse(&text).unwrap().succeeded().unwrap().len(),
        6_666
    );
}

#[test]
fn a_bad_record_is_reported_not_trusted() {
    let err = Record::parse("{not json").unwrap_err();
    assert!(err.contains(RECORD), "{err}");
    let record = Record {
        version: 1,
        exit_code: 1,
        prefix: "p".into(),
        steps: vec![],
        done_by: vec![DoneBy {
            run: "p".into(),
            children: "zz".into(),
        }],
        failed: String::new(),
        cancelled: String::new(),
        step_outputs: Default::default(),
        outputs_left_out: false,
        moved: None,
        details: Vec::new(),
    };
    assert!(record.succeeded().unwrap_err().contains("bitmap"));
}

fn finished_job(name: &str, condition: &str, reason: &str) -> Job {
    let mut j = Job::default();
    j.metadata.name = Some(name.into());
    j.status = Some(JobStatus {
        failed: Some(3),
        conditions: Some(vec![k8s_openapi::api::batch::v1::JobCondition {
            type_: condition.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some("Job has reached the specified backoff limit".into()),
            ..Default::default()
        }]),
        ..Default::default()
    });
    j
}

#[test]
fn a_run_is_rebuilt_from_its_record_and_the_children_left() {
    let plan = crate::plan::parse(
        r#"{"steps": [{"name": "a", "count": 2}, {"name": "b", "depends_on": ["a"]}, {"name": "c", "depends_on": ["b"]}]}"#,
        "test",
        std::path::Path::new(""),
    )
    .unwrap();
    let settings = StepSettings {
        image: Some("busybox".into()),
        ..Default::default()
    };
    let id = Identity {
        run_id: "r".into(),
        prefix: "etl-2".into(),
        namespace: None,
        owner: None,
    };
    let children = child::children(&settings, Some(&plan), &id).unwrap();
    let rules = Rules {
        parallelism: None,
        fail_fast: false,
        stuck_timeout: Duration::from_secs(60),
        logs: LogsMode::None,
    };
    let mut run = Run::new(children, &rules, "r", crate::run::At::now());
    run.inherit(EarlierChild::of(&run, 0, "etl-1"));
    run.force_done(1, ChildResult::Succeeded, None, 1);
    run.force_done(2, ChildResult::Failed, Some("BackoffLimitExceeded"), 3);
    run.force_done(3, ChildResult::Skipped, Some("DependencyFailed"), 0);
    let record = Record::of(&run, "etl-2", "etl-2");
    // Cleanup deleted the succeeded children; the failed one is still there.
    let jobs = [finished_job("etl-2-b", "Failed", "BackoffLimitExceeded")];
    let rebuilt = rebuild(Some(&record), &jobs, ("r", "etl-2"), 1);
    let names: Vec<&str> = (0..rebuilt.total())
        .map(|i| rebuilt.children().name(i))
        .collect();
    assert_eq!(names, ["etl-2-a-0", "etl-2-a-1", "etl-2-b", "etl-2-c"]);
    let results: Vec<_> = rebuilt.states().iter().map(|s| s.phase.result()).collect();
    assert_eq!(
        results,
        [
            Some(ChildResult::Succeeded),
            Some(ChildResult::Succeeded),
            Some(ChildResult::Failed),
            Some(ChildResult::Skipped)
        ]
    );
    assert_eq!(rebuilt.state(0).earlier_run.as_deref(), Some("etl-1"));
    assert_eq!(rebuilt.state(1).earlier_run, None);
    assert_eq!(rebuilt.state(2).attempts, 3);
    assert_eq!(rebuilt.exit_code(), 1);
    assert_eq!(
        rebuilt.children().step_of(3).depends_on_names,
        ["b"],
        "dependencies come back too"
    );
}

#[test]
fn without_a_record_the_children_left_are_the_run() {
    let jobs = [
        finished_job("x-1", "Failed", "DeadlineExceeded"),
        finished_job("x-0", "Complete", ""),
    ];
    let rebuilt = rebuild(None, &jobs, ("r", "x"), 5);
    assert_eq!(rebuilt.children().name(0), "x-0");
    assert_eq!(
        rebuilt.state(0).phase.result(),
        Some(ChildResult::Succeeded)
    );
    assert_eq!(rebuilt.state(1).phase.result(), Some(ChildResult::Failed));
    assert_eq!(rebuilt.exit_code(), 5);
}

#[test]
fn results_that_do_not_fit_are_left_out_and_the_record_says_so() {
    use crate::run::testing::{RULES as QUIET, listed, run_of_plan, succeed};
    // Two steps of 28 children of 4,000 bytes each: each fits in a variable, not both in the
    // record.
    let plan = r#"{"steps": [{"name": "a", "count": 28}, {"name": "b", "count": 28},
        {"name": "merge-a", "depends_on": ["a"]}, {"name": "merge-b", "depends_on": ["b"]},
        {"name": "leaf", "depends_on": ["merge-a"]}]}"#;
    let mut run = run_of_plan(plan, &QUIET);
    listed(&mut run, vec![]);
    let large = "x".repeat(4000);
    for i in 0..28 {
        succeed(&mut run, &format!("r-a-{i}"), Some(&large));
        succeed(&mut run, &format!("r-b-{i}"), Some(&large));
    }
    succeed(&mut run, "r-merge-a", Some("merged"));
    succeed(&mut run, "r-merge-b", Some("merged"));
    let mut record = Record::of(&run, "r", "r");
    assert_eq!(
        record.outputs_of(2),
        Some(&[Some("merged".to_string())][..])
    );
    assert!(record.outputs_of(3).is_none(), "no step depends on merge-b");
    let text = record
        .to_annotation()
        .expect("the record without its results fits");
    assert!(text.len() <= MAX_RECORD);
    let back = Record::parse(&text).unwrap();
    assert!(back.outputs_left_out);
    assert!(back.step_outputs.is_empty());
    assert_eq!(back.succeeded().unwrap().len(), 58);
}
