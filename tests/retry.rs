//! Re-running what failed (SPEC §7 `JOBHERD_RETRY`): a run records its outcome on its parent
//! Job, and a later run of the same configuration takes over the children that succeeded,
//! creating only the rest; an earlier run that cannot be used is refused with exit 2.

mod support;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use support::herd::{
    Children, attempts, cluster_with_cronjob, finished, start_parent, wait_for_end, wait_for_log,
    wait_until_finished,
};
use support::{FakeCluster, Kind, Parent};

const NS: &str = "default";

/// What the Job controller does when the parent's pod exits: the parent Job ends.
fn finish_parent(cluster: &FakeCluster, parent: &Parent, code: i32) {
    let (ty, reason) = if code == 0 {
        ("Complete", "")
    } else {
        ("Failed", "PodFailurePolicy")
    };
    let status = json!({"status": {"active": 0, "ready": 0,
        "succeeded": i32::from(code == 0), "failed": i32::from(code != 0),
        "conditions": [{"type": ty, "status": "True", "reason": reason, "message": ""}]}});
    let config = cluster.kube_config();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = kube::Client::try_from(config).unwrap();
        let jobs: Api<Job> = Api::namespaced(client, NS);
        jobs.patch_status(
            &parent.job_name,
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
    });
}

/// Paths of successful Job creates, as the fake recorded them since `from`.
fn created_names(cluster: &FakeCluster) -> Vec<String> {
    let mut names: Vec<String> = cluster
        .jobs(NS)
        .into_iter()
        .filter(|j| {
            j.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key("jobherd.io/run"))
        })
        .map(|j| j.metadata.name.unwrap_or_default())
        .collect();
    names.sort();
    names
}

/// Ten children; those at `failing` exit 1.
fn params(failing: &[usize]) -> String {
    let list: Vec<Value> = (0..10)
        .map(|i| {
            if failing.contains(&i) {
                json!({"FAKE_EXIT": "1"})
            } else {
                json!({})
            }
        })
        .collect();
    serde_json::to_string(&list).unwrap()
}

/// Runs jobherd as the parent `name` with `vars`; finishes the parent with its exit code.
fn run_parent(
    cluster: &FakeCluster,
    name: &str,
    vars: &[(&str, &str)],
) -> (Parent, support::Output) {
    let parent = cluster.create_parent(NS, name);
    let mut cmd = cluster
        .jobherd()
        .in_pod(&parent)
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_RESTART_POLICY", "Never")
        .env("JOBHERD_BACKOFF_LIMIT", "0");
    for (k, v) in vars {
        cmd = cmd.env(k, v);
    }
    let out = cmd.run();
    if let Some(code) = out.code.filter(|c| *c != 2) {
        finish_parent(cluster, &parent, code);
    }
    (parent, out)
}

fn report(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_retry_creates_only_the_children_that_failed() {
    let cluster = FakeCluster::start();
    let first_params = params(&[3, 7]);
    let (_, out) = run_parent(&cluster, "nightly-1", &[("JOBHERD_PARAMS", &first_params)]);
    assert_eq!(out.code, Some(1), "{out}");
    let record = cluster
        .job(NS, "nightly-1")
        .unwrap()
        .metadata
        .annotations
        .unwrap();
    assert!(record.contains_key("jobherd.io/outcome"), "{record:?}");

    let files = tempfile::tempdir().unwrap();
    let (json, junit) = (files.path().join("r.json"), files.path().join("j.xml"));
    let before = cluster.jobs_created();
    let (_, out) = run_parent(
        &cluster,
        "nightly-2",
        &[
            ("JOBHERD_PARAMS", &params(&[])),
            ("JOBHERD_RETRY", "nightly-1"),
            ("JOBHERD_REPORT_FILE", json.to_str().unwrap()),
            ("JOBHERD_JUNIT_FILE", junit.to_str().unwrap()),
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(cluster.jobs_created() - before, 2, "{out}");
    let second: Vec<String> = created_names(&cluster)
        .into_iter()
        .filter(|n| n.starts_with("nightly-2-"))
        .collect();
    assert_eq!(second, ["nightly-2-3", "nightly-2-7"]);
    assert!(
        out.stdout
            .contains("retrying run nightly-1: 8 of 10 children succeeded there"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("nightly-2-0 succeeded in earlier run nightly-1 [1/10]"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("jobherd succeeded: 10 succeeded (8 in earlier runs) of 10 children"),
        "{out}"
    );
    let table_row = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("CHILD"))
        .find(|l| l.starts_with("nightly-2-0 "))
        .unwrap();
    assert!(
        table_row.contains("done by earlier run nightly-1"),
        "{table_row}"
    );
    let report = report(&json);
    let children = report["children"].as_array().unwrap();
    let earlier = children
        .iter()
        .filter(|c| c["earlier_run"] == "nightly-1")
        .count();
    assert_eq!(earlier, 8);
    assert!(children.iter().all(|c| c["result"] == "succeeded"));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(
        xml.matches("succeeded in earlier run nightly-1").count(),
        8,
        "{xml}"
    );
    assert!(xml.contains("failures=\"0\""), "{xml}");
}

#[test]
fn a_retried_plan_runs_the_failed_step_and_its_dependants_only() {
    let cluster = FakeCluster::start();
    let plan = |b_exit: &str| {
        json!({"steps": [
            {"name": "a"},
            {"name": "b", "depends_on": ["a"], "env": {"FAKE_EXIT": b_exit}},
            {"name": "c", "depends_on": ["b"]},
            {"name": "d"},
        ]})
        .to_string()
    };
    let (_, out) = run_parent(&cluster, "etl-1", &[("JOBHERD_PLAN", &plan("1"))]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.contains("etl-1-c skipped"), "{out}");
    let before = cluster.jobs_created();
    let (_, out) = run_parent(
        &cluster,
        "etl-2",
        &[("JOBHERD_PLAN", &plan("0")), ("JOBHERD_RETRY", "etl-1")],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(cluster.jobs_created() - before, 2, "{out}");
    let second: Vec<String> = created_names(&cluster)
        .into_iter()
        .filter(|n| n.starts_with("etl-2-"))
        .collect();
    assert_eq!(second, ["etl-2-b", "etl-2-c"]);
    assert!(
        out.stdout
            .contains("etl-2-a succeeded in earlier run etl-1"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("etl-2-d succeeded in earlier run etl-1"),
        "{out}"
    );
}

#[test]
fn a_retry_works_after_cleanup_removed_the_succeeded_children() {
    let cluster = FakeCluster::start();
    let (_, out) = run_parent(
        &cluster,
        "clean-1",
        &[
            ("JOBHERD_PARAMS", &params(&[5])),
            ("JOBHERD_CLEANUP", "succeeded"),
        ],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(
        created_names(&cluster),
        ["clean-1-5"],
        "only the failed child is left"
    );
    let before = cluster.jobs_created();
    let (_, out) = run_parent(
        &cluster,
        "clean-2",
        &[
            ("JOBHERD_PARAMS", &params(&[])),
            ("JOBHERD_RETRY", "clean-1"),
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(cluster.jobs_created() - before, 1, "{out}");
}

#[test]
fn a_retry_of_a_retry_keeps_who_did_what() {
    let cluster = FakeCluster::start();
    let files = tempfile::tempdir().unwrap();
    let json = files.path().join("r.json");
    run_parent(&cluster, "r-1", &[("JOBHERD_PARAMS", &params(&[2, 6]))]);
    let (_, out) = run_parent(
        &cluster,
        "r-2",
        &[("JOBHERD_PARAMS", &params(&[6])), ("JOBHERD_RETRY", "r-1")],
    );
    assert_eq!(out.code, Some(1), "{out}");
    let before = cluster.jobs_created();
    let (_, out) = run_parent(
        &cluster,
        "r-3",
        &[
            ("JOBHERD_PARAMS", &params(&[])),
            ("JOBHERD_RETRY", "r-2"),
            ("JOBHERD_REPORT_FILE", json.to_str().unwrap()),
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(cluster.jobs_created() - before, 1, "{out}");
    let report = report(&json);
    let by = |run: &str| {
        report["children"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["earlier_run"] == run)
            .count()
    };
    assert_eq!((by("r-1"), by("r-2")), (8, 1));
}

#[test]
fn earlier_runs_that_cannot_be_used_are_refused_with_exit_2() {
    let cluster = FakeCluster::start();
    run_parent(&cluster, "ok-1", &[("JOBHERD_PARAMS", &params(&[1]))]);
    let plan_run =
        json!({"steps": [{"name": "a"}, {"name": "b", "depends_on": ["a"]}]}).to_string();
    run_parent(&cluster, "plan-1", &[("JOBHERD_PLAN", &plan_run)]);
    // A plain Job that is no jobherd parent.
    cluster.create_job(
        serde_json::from_value(json!({"metadata": {"name": "backup", "namespace": NS},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "postgres:16"}]}}}}))
        .unwrap(),
    );
    // A jobherd parent still running.
    cluster.create_parent(NS, "busy-1");
    // A jobherd parent that ran but left no record, and whose children are gone.
    let bare = cluster.create_parent(NS, "bare-1");
    finish_parent(&cluster, &bare, 1);
    let renamed = json!({"steps": [{"name": "a"}, {"name": "c", "depends_on": ["a"]}]}).to_string();
    let twelve = serde_json::to_string(&vec![json!({}); 12]).unwrap();
    let ten = params(&[]);
    // (JOBHERD_RETRY, other variables, what the message must say)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (
            "missing",
            &[("JOBHERD_PARAMS", "[{}]")],
            &["no Job named missing"],
        ),
        (
            "backup",
            &[("JOBHERD_PARAMS", "[{}]")],
            &["not a jobherd parent"],
        ),
        ("busy-1", &[("JOBHERD_PARAMS", "[{}]")], &["still running"]),
        (
            "bare-1",
            &[("JOBHERD_PARAMS", "[{}]")],
            &["none of its children are left"],
        ),
        (
            "ok-1",
            &[("JOBHERD_PARAMS", &twelve)],
            &["had 10 children", "has 12"],
        ),
        (
            "plan-1",
            &[("JOBHERD_PLAN", &renamed)],
            &["steps no longer in the plan: b", "steps new in the plan: c"],
        ),
        (
            "ok-1",
            &[("JOBHERD_PARAMS", &ten), ("JOBHERD_NAME_PREFIX", "ok-1")],
            &["same child name prefix"],
        ),
    ];
    for (n, (wanted, vars, expected)) in cases.iter().enumerate() {
        let before = cluster.jobs_created();
        let parent = cluster.create_parent(NS, &format!("again-{n}"));
        let mut cmd = cluster
            .jobherd()
            .in_pod(&parent)
            .env("JOBHERD_IMAGE", "busybox")
            .env("JOBHERD_RETRY", wanted);
        for (k, v) in *vars {
            cmd = cmd.env(k, v);
        }
        let out = cmd.run();
        assert_eq!(out.code, Some(2), "{wanted}: {out}");
        assert!(
            out.stderr.contains(&format!("JOBHERD_RETRY={wanted}")),
            "{out}"
        );
        for e in *expected {
            assert!(out.stderr.contains(e), "{wanted}: expected {e:?}: {out}");
        }
        assert_eq!(
            cluster.jobs_created(),
            before,
            "{wanted}: nothing created: {out}"
        );
        assert!(
            !out.stdout.contains("jobherd run"),
            "refused before the run starts: {out}"
        );
    }
}

/// A parent Job made from a CronJob, as `kubectl create job --from=cronjob/NAME` makes it.
fn parent_of_cronjob(cluster: &FakeCluster, cronjob: &Value, name: &str) -> Parent {
    let parent = cluster.create_parent(NS, name);
    let mut job = cluster.object(Kind::Job, NS, name).unwrap();
    job["metadata"]["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "CronJob",
        "name": cronjob["metadata"]["name"], "uid": cronjob["metadata"]["uid"], "controller": true}]);
    let config = cluster.kube_config();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = kube::Client::try_from(config).unwrap();
        let jobs: Api<Job> = Api::namespaced(client, NS);
        let patch = json!({"metadata": {"ownerReferences": job["metadata"]["ownerReferences"]}});
        jobs.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    });
    parent
}

#[test]
fn last_failed_finds_the_newest_failed_run_of_the_cronjob() {
    let cluster = FakeCluster::start();
    let cronjob = cluster.create_raw(
        Kind::CronJob,
        json!({"metadata": {"name": "nightly"}, "spec": {"schedule": "0 3 * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "jobherd", "image": "jobherd:test"}]}}}}}}),
    );
    for (name, failing) in [("nightly-1", vec![0, 1]), ("nightly-2", vec![4])] {
        let parent = parent_of_cronjob(&cluster, &cronjob, name);
        let out = cluster
            .jobherd()
            .in_pod(&parent)
            .env("JOBHERD_IMAGE", "busybox")
            .env("JOBHERD_RESTART_POLICY", "Never")
            .env("JOBHERD_BACKOFF_LIMIT", "0")
            .env("JOBHERD_PARAMS", params(&failing))
            .run();
        assert_eq!(out.code, Some(1), "{out}");
        finish_parent(&cluster, &parent, 1);
    }
    let before = cluster.jobs_created();
    let parent = parent_of_cronjob(&cluster, &cronjob, "nightly-retry");
    let out = cluster
        .jobherd()
        .in_pod(&parent)
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_PARAMS", params(&[]))
        .env("JOBHERD_RETRY", "last-failed")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains("retrying run nightly-2: 9 of 10"),
        "{out}"
    );
    assert_eq!(cluster.jobs_created() - before, 1);
}

#[test]
fn last_failed_without_a_cronjob_is_refused() {
    let cluster = FakeCluster::start();
    let parent = cluster.create_parent(NS, "adhoc");
    let out = cluster
        .jobherd()
        .in_pod(&parent)
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_RETRY", "last-failed")
        .run();
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("has no CronJob owner"), "{out}");
}

#[test]
fn a_retried_parent_repeats_its_recorded_outcome_instead_of_running_again() {
    // Without podFailurePolicy (clusters before 1.29) the Job controller retries a parent that
    // exited 1; the retry must not run the herd again.
    let cluster = FakeCluster::start();
    let parent = cluster.create_parent(NS, "legacy-1");
    let run = || {
        cluster
            .jobherd()
            .in_pod(&parent)
            .env("JOBHERD_IMAGE", "busybox")
            .env("JOBHERD_RESTART_POLICY", "Never")
            .env("JOBHERD_BACKOFF_LIMIT", "0")
            .env("JOBHERD_PARAMS", params(&[2]))
            .run()
    };
    let first = run();
    assert_eq!(first.code, Some(1), "{first}");
    let before = cluster.jobs_created();
    let again = run();
    assert_eq!(again.code, Some(1), "{again}");
    assert_eq!(
        cluster.jobs_created(),
        before,
        "nothing created again: {again}"
    );
    assert!(again.stdout.contains("already ran to its end"), "{again}");
    assert!(
        again
            .stdout
            .contains("jobherd failed: 9 succeeded, 1 failed"),
        "{again}"
    );
}

fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("JOBHERD_IMAGE".to_string(), "busybox".to_string()),
        ("JOBHERD_RESTART_POLICY".into(), "Never".into()),
        ("JOBHERD_BACKOFF_LIMIT".into(), "0".into()),
    ];
    env.extend(list.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

#[test]
fn a_moved_run_is_no_earlier_run_to_retry_while_its_job_goes_on() {
    // Time scale 20: the Job controller waits 200s before it replaces an evicted parent's pod.
    // Meanwhile the moved run's parent has no pod and no final condition; its record says
    // exit 143. It is not over: neither last-failed nor its name may pick it.
    let cluster = cluster_with_cronjob(FakeCluster::builder().time_scale(20.0), |y| y);
    start_parent(
        &cluster,
        "nightly-0",
        &vars(&[("JOBHERD_PARAMS", r#"[{"FAKE_EXIT":"1"},{}]"#)]),
    );
    assert_eq!(wait_until_finished(&cluster, "nightly-0"), "Failed");
    let held = r#"[{"FAKE_HOLD":"work"},{"FAKE_HOLD":"work"}]"#;
    start_parent(&cluster, "nightly-1", &vars(&[("JOBHERD_PARAMS", held)]));
    wait_for_log(&cluster, "nightly-1", 0, "nightly-1-1 running");
    assert!(cluster.evict(NS, &attempts(&cluster, "nightly-1")[0].pod));
    let moved = wait_for_end(&cluster, "nightly-1", 0);
    assert!(moved.log.contains("jobherd moving"), "{}", moved.log);

    let params = ("JOBHERD_PARAMS", "[{},{}]");
    start_parent(
        &cluster,
        "retry-last",
        &vars(&[params, ("JOBHERD_RETRY", "last-failed")]),
    );
    assert_eq!(wait_until_finished(&cluster, "retry-last"), "Complete");
    let retried = wait_for_end(&cluster, "retry-last", 0);
    assert!(
        retried
            .log
            .contains("retrying run nightly-0: 1 of 2 children succeeded there"),
        "{}",
        retried.log
    );
    let created = Children::of(&cluster).created;
    assert!(
        created.contains(&"retry-last-0".to_string())
            && !created.iter().any(|c| c == "retry-last-1"),
        "{created:?}"
    );

    start_parent(
        &cluster,
        "retry-moved",
        &vars(&[params, ("JOBHERD_RETRY", "nightly-1")]),
    );
    let refused = wait_for_end(&cluster, "retry-moved", 0);
    assert_eq!(refused.exit, Some(2), "{}", refused.log);
    assert!(
        refused
            .log
            .contains("JOBHERD_RETRY=nightly-1: Job nightly-1 is still running"),
        "{}",
        refused.log
    );
    // All of it happened while the moved run had no pod.
    assert_eq!(attempts(&cluster, "nightly-1").len(), 1);
    assert_eq!(finished(&cluster, "nightly-1"), None);
}
