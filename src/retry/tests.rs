use super::*;

fn count(n: usize) -> Vec<StepShape> {
    vec![StepShape {
        name: None,
        children: n,
        fanned_out: true,
        depends_on: vec![],
        dynamic: false,
        first: None,
    }]
}

fn plan(steps: &[(&str, usize)]) -> Vec<StepShape> {
    steps
        .iter()
        .map(|(n, c)| StepShape {
            name: Some(n.to_string()),
            children: *c,
            fanned_out: *c > 1,
            depends_on: vec![],
            dynamic: false,
            first: None,
        })
        .collect()
}

#[test]
fn differences_are_said_in_the_users_words() {
    assert_eq!(differences(&count(10), &count(10)), None);
    assert_eq!(
        differences(&count(10), &count(12)).unwrap(),
        "the earlier run had 10 children, this configuration has 12 (JOBHERD_COUNT or JOBHERD_PARAMS differ)"
    );
    let before = plan(&[("extract", 1), ("transform", 3), ("load", 1)]);
    let after = plan(&[("extract", 1), ("transform", 4), ("publish", 1)]);
    assert_eq!(
        differences(&before, &after).unwrap(),
        "steps no longer in the plan: load; steps new in the plan: publish; step transform had 3 children, now 4"
    );
    assert_eq!(
        differences(&count(3), &before).unwrap(),
        "one of the runs has a plan and the other has none"
    );
}

#[test]
fn changed_dependencies_do_not_matter_but_fanning_out_does() {
    let before = plan(&[("a", 1), ("b", 1)]);
    let mut after = before.clone();
    after[1].depends_on = vec![0];
    assert_eq!(differences(&before, &after), None);
    after[1].fanned_out = true;
    assert_eq!(
        differences(&before, &after).unwrap(),
        "step b fans out in one run and not in the other"
    );
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

mod results {
    use super::super::from_record;
    use crate::outputs::Output;
    use crate::record::Record;
    use crate::run::testing::*;
    use crate::run::{Event, Run};

    const ETL: &str = r#"{"steps": [
        {"name": "list"},
        {"name": "process", "depends_on": ["list"], "params_from": "list"},
        {"name": "merge", "depends_on": ["process"]}]}"#;

    /// An earlier run whose list gave three partitions, of which the second failed.
    fn earlier() -> Run {
        let mut run = run_of_plan(ETL, &RULES);
        listed(&mut run, vec![]);
        succeed(&mut run, "r-list", Some(r#"["a","b","c"]"#));
        succeed(&mut run, "r-process-0", Some("A"));
        seen(
            &mut run,
            job("r-process-1", &[("Failed", "BackoffLimitExceeded")], 0),
        );
        succeed(&mut run, "r-process-2", Some("C"));
        let _ = apply(&mut run, Event::Tick);
        run
    }

    fn places(done: &[super::super::Done]) -> Vec<(usize, usize, Option<&str>)> {
        done.iter()
            .map(|d| (d.step, d.position, d.output.text()))
            .collect()
    }

    #[test]
    fn a_retry_finds_a_fan_out_over_a_result_where_it_was_with_its_results() {
        let mut record = Record::of(&earlier(), "r", "etl-1");
        let text = record.to_annotation().unwrap();
        let fresh = run_of_plan(ETL, &RULES);
        let done = from_record(&text, fresh.children(), "etl-2").unwrap();
        // The process children came after merge in the earlier run's layout.
        assert_eq!(
            places(&done),
            [
                (0, 0, Some(r#"["a","b","c"]"#)),
                (1, 0, Some("A")),
                (1, 2, Some("C"))
            ]
        );
        assert!(done.iter().all(|d| d.run == "etl-1"));
        assert_eq!(done[0].output, Output::Text(r#"["a","b","c"]"#.into()));
    }

    #[test]
    fn results_left_out_of_a_record_make_the_steps_that_pass_them_on_run_again() {
        let mut record = Record::of(&earlier(), "r", "etl-1");
        record.step_outputs.clear();
        record.outputs_left_out = true;
        let text = serde_json::to_string(&record).unwrap();
        let fresh = run_of_plan(ETL, &RULES);
        let done = from_record(&text, fresh.children(), "etl-2").unwrap();
        assert!(done.is_empty(), "list and process feed later steps");
    }
}
