//! End-to-end behaviour of a run (SPEC §1-3, §5, §6): the real binary against the fake cluster.
//! Each test arranges the cluster, runs jobherd as a user would, and asserts what the cluster
//! holds and what the user sees.

mod support;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use support::{FakeCluster, Kind, peak};

const NS: &str = "default";
const LONG: Duration = Duration::from_secs(30);

fn creates(cluster: &FakeCluster) -> Vec<String> {
    cluster
        .requests()
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "jobs" && r.status < 300)
        .filter(|r| !r.query.contains("dryRun"))
        .map(|r| r.path.clone())
        .collect()
}

fn label<'a>(job: &'a Job, key: &str) -> Option<&'a str> {
    job.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn active_jobs(cluster: &FakeCluster) -> Vec<String> {
    cluster
        .jobs(NS)
        .into_iter()
        .filter(|j| label(j, "app.kubernetes.io/managed-by") == Some("jobherd"))
        .filter(|j| jobherd::conditions::outcome(j).is_none())
        .map(|j| j.metadata.name.unwrap_or_default())
        .collect()
}

fn count_lines(out: &str, needle: &str) -> usize {
    out.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn all_children_succeed_with_spec_labels_and_owner() {
    let cluster = FakeCluster::start();
    let parent = cluster.create_parent(NS, "nightly-28434560");
    let report = tempfile::NamedTempFile::new().unwrap();
    let out = cluster
        .jobherd()
        .in_pod(&parent)
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COMMAND", r#"["sh","-c","echo hi"]"#)
        .env("JOBHERD_COUNT", "3")
        .env("JOBHERD_REPORT_FILE", report.path().to_str().unwrap())
        .run();
    assert_eq!(out.code, Some(0), "{out}");

    let jobs: Vec<Job> = cluster
        .jobs(NS)
        .into_iter()
        .filter(|j| label(j, "jobherd.io/run").is_some())
        .collect();
    let mut names: Vec<_> = jobs
        .iter()
        .map(|j| j.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "nightly-28434560-0",
            "nightly-28434560-1",
            "nightly-28434560-2"
        ]
    );
    for job in &jobs {
        assert_eq!(label(job, "app.kubernetes.io/managed-by"), Some("jobherd"));
        assert_eq!(label(job, "jobherd.io/run"), Some(parent.job_uid.as_str()));
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Job", parent.job_uid.as_str())
        );
        assert_eq!(owner.block_owner_deletion, None);
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
        let tmpl_labels = job
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert_eq!(
            tmpl_labels["jobherd.io/step"],
            label(job, "jobherd.io/step").unwrap()
        );
    }
    assert_eq!(creates(&cluster).len(), 3);

    assert_eq!(
        count_lines(&out.stdout, " succeeded after 1 attempt"),
        3,
        "{out}"
    );
    assert!(out.stdout.contains("[3/3]"), "{out}");
    assert!(
        out.stdout.lines().any(|l| l.starts_with("CHILD")),
        "final table: {out}"
    );
    assert!(
        out.stdout
            .contains("jobherd succeeded: 3 succeeded of 3 children"),
        "{out}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap()).unwrap();
    assert_eq!(report["result"], "succeeded");
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["children"].as_array().unwrap().len(), 3);

    let parent_job = cluster.job(NS, &parent.job_name).unwrap();
    let summary = &parent_job.metadata.annotations.unwrap()["jobherd.io/summary"];
    assert!(summary.starts_with("jobherd succeeded"), "{summary}");
    let events = cluster.events(NS);
    assert!(
        events
            .iter()
            .any(|e| e.to_string().contains("RunSucceeded")),
        "an Event on the parent: {events:?}"
    );
}

#[test]
fn failed_child_reports_reason_and_attempts_after_retries() {
    let cluster = FakeCluster::start();
    let report = tempfile::NamedTempFile::new().unwrap();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "pi")
        .env("JOBHERD_RESTART_POLICY", "Never")
        .env("JOBHERD_BACKOFF_LIMIT", "2")
        .env(
            "JOBHERD_PARAMS",
            r#"[{"FAKE_EXIT":"0"},{"FAKE_EXIT":"1","FAKE_LOG":"connection refused by db"}]"#,
        )
        .env("JOBHERD_REPORT_FILE", report.path().to_str().unwrap())
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    let failed_line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("pi-1 failed"))
        .unwrap_or_else(|| panic!("no failure line: {out}"));
    assert!(
        failed_line.contains("BackoffLimitExceeded"),
        "{failed_line}"
    );
    assert!(failed_line.contains("after 3 attempts"), "{failed_line}");
    assert!(
        out.stdout.contains("pi-1 | connection refused by db"),
        "log tail: {out}"
    );
    assert!(
        out.stdout
            .contains("first failure: pi-1 BackoffLimitExceeded"),
        "{out}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap()).unwrap();
    assert_eq!(report["exit_code"], 1);
    let child = report["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "pi-1")
        .unwrap();
    assert_eq!(child["result"], "failed");
    assert_eq!(child["reason"], "BackoffLimitExceeded");
    assert_eq!(child["attempts"], 3);
}

#[test]
fn on_failure_child_logs_survive_the_pod_being_deleted() {
    // With OnFailure the Job controller deletes the pod when it gives up; jobherd keeps the
    // tail of an earlier failed attempt, read while the container was restarting. A grace
    // period of 0 makes the pod go in the same step as the failure (instead of terminating for
    // a while, when its log could still be read).
    let cluster = FakeCluster::start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "etl")
        .env("JOBHERD_BACKOFF_LIMIT", "2")
        .env(
            "JOBHERD_JOB_TEMPLATE",
            r#"{"apiVersion":"batch/v1","kind":"Job","spec":{"template":{"spec":{"terminationGracePeriodSeconds":0}}}}"#,
        )
        .env(
            "JOBHERD_ENV",
            r#"{"FAKE_EXIT":"3","FAKE_LOG":"disk full","FAKE_RUN_MS":"300"}"#,
        )
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout.contains("etl-0 failed: BackoffLimitExceeded"),
        "{out}"
    );
    assert!(out.stdout.contains("etl-0 | disk full"), "{out}");
    assert!(out.stdout.contains("after 3 attempts"), "{out}");
    assert!(cluster.pods(NS).is_empty(), "the pod really is gone");
}

#[test]
fn parallelism_is_never_exceeded() {
    // Measured on the cluster's recorded history, not by sampling it. The children hold until
    // two of them exist, so a jobherd that ignored the limit would have created more by then.
    let cluster = FakeCluster::builder().record_history(true).start();
    let h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "6")
        .env("JOBHERD_PARALLELISM", "2")
        .env("JOBHERD_ENV", r#"{"FAKE_HOLD":"go"}"#)
        .spawn();
    assert!(cluster.wait_until(LONG, |c| c.jobs(NS).len() >= 2));
    cluster.release("go");
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(creates(&cluster).len(), 6);
    let active = |j: &serde_json::Value| {
        let job: Job = serde_json::from_value(j.clone()).expect("a Job");
        label(&job, "app.kubernetes.io/managed-by") == Some("jobherd")
            && jobherd::conditions::outcome(&job).is_none()
    };
    let most = peak(&cluster.history(Kind::Job), active);
    assert!(most <= 2, "{most} children were active at once");
    assert_eq!(most, 2, "parallelism 2 should be used");
}

#[test]
fn fail_fast_deletes_active_children_and_creates_no_more() {
    // The first child fails only once the second exists: both are active, as intended.
    let cluster = FakeCluster::builder().record_history(true).start();
    let h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "ff")
        .env("JOBHERD_FAIL_FAST", "true")
        .env("JOBHERD_PARALLELISM", "2")
        .env("JOBHERD_BACKOFF_LIMIT", "0")
        .env(
            "JOBHERD_PARAMS",
            r#"[{"FAKE_EXIT":"1","FAKE_HOLD":"fail"},{"FAKE_RUN_MS":"20000"},{},{}]"#,
        )
        .spawn();
    assert!(cluster.wait_until(LONG, |c| c.job(NS, "ff-1").is_some()));
    cluster.release("fail");
    let out = h.wait();
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(creates(&cluster).len(), 2, "{out}");
    assert!(out.stdout.contains("ff-1 cancelled"), "{out}");
    let skipped = out
        .stdout
        .lines()
        .filter(|l| l.contains(" skipped: NotStarted") && l.ends_with(']'))
        .count();
    assert_eq!(skipped, 2, "{out}");
    assert!(
        cluster.job(NS, "ff-1").is_none(),
        "the active child was deleted"
    );
    assert_eq!(support::herd::deleted_by(&cluster, "fake-token"), ["ff-1"]);
    // The fake orphans pods of a Job deleted without propagationPolicy, as the API does:
    // their disappearance shows the delete asked for Background propagation.
    assert!(cluster.wait_until(LONG, |c| c.pods(NS).iter().all(|p| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("job-name"))
            .map(String::as_str)
            != Some("ff-1")
    })));
}

#[test]
fn timeout_deletes_active_children_and_exits_3() {
    let cluster = FakeCluster::start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "2")
        .env("JOBHERD_TIMEOUT", "1s")
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"60000"}"#)
        .run();
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stdout.contains("JOBHERD_TIMEOUT passed"), "{out}");
    assert!(active_jobs(&cluster).is_empty(), "children deleted");
    assert!(
        cluster.wait_until(LONG, |c| c.pods(NS).is_empty()),
        "their pods go too"
    );
    assert!(out.stdout.contains("jobherd timed out"), "{out}");
}

#[test]
fn sigterm_deletes_children_and_exits_143() {
    let cluster = FakeCluster::start();
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "3")
        .env("JOBHERD_PARALLELISM", "2")
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"60000"}"#)
        .spawn();
    h.wait_for_stdout(" running", LONG);
    h.signal(libc::SIGTERM);
    let out = h.wait();
    assert_eq!(out.code, Some(143), "{out}");
    assert!(active_jobs(&cluster).is_empty(), "{out}");
    assert_eq!(
        creates(&cluster).len(),
        2,
        "the pending child is not created"
    );
    assert!(out.stdout.contains("terminated (SIGTERM)"), "{out}");
}

#[test]
fn sigint_exits_130() {
    let cluster = FakeCluster::start();
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"60000"}"#)
        .spawn();
    h.wait_for_stdout(" running", LONG);
    h.signal(libc::SIGINT);
    let out = h.wait();
    assert_eq!(out.code, Some(130), "{out}");
    assert!(active_jobs(&cluster).is_empty());
}

#[test]
fn restarted_parent_adopts_children_without_duplicates() {
    let cluster = FakeCluster::start();
    let parent = cluster.create_parent(NS, "nightly-7");
    // Children 1 and 2 run until the restarted parent has adopted them.
    let params = r#"[{"FAKE_RUN_MS":"50"},{"FAKE_HOLD":"rest"},{"FAKE_HOLD":"rest"}]"#;
    let mut first = cluster
        .jobherd()
        .in_pod(&parent)
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_PARAMS", params)
        .spawn();
    first.wait_for_stdout("nightly-7-0 succeeded", LONG);
    assert!(cluster.wait_until(LONG, |c| c.jobs(NS).len() == 4));
    first.kill();
    first.wait();
    assert_eq!(creates(&cluster).len(), 3);

    let mut second = cluster
        .jobherd()
        .in_pod(&parent)
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_PARAMS", params)
        .spawn();
    second.wait_for_stdout("nightly-7-2 adopted", LONG);
    cluster.release("rest");
    let out = second.wait();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(creates(&cluster).len(), 3, "no child created twice: {out}");
    assert!(out.stdout.contains("nightly-7-1 adopted"), "{out}");
    let pods_of_0 = cluster
        .pods(NS)
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("job-name"))
                .map(String::as_str)
                == Some("nightly-7-0")
        })
        .count();
    assert_eq!(pods_of_0, 1, "the succeeded child is not run again");
    assert!(out.stdout.contains("3 succeeded of 3"), "{out}");
}

#[test]
fn dropped_watches_lose_and_double_no_transition() {
    let cluster = FakeCluster::start();
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "3")
        .env("JOBHERD_ENV", r#"{"FAKE_HOLD":"go"}"#)
        .spawn();
    h.wait_for_stdout(" running", LONG);
    cluster.drop_watches();
    // The children end only after the drop: jobherd must learn of it through new watches.
    cluster.release("go");
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");
    for i in 0..3 {
        let name = format!("-{i} succeeded");
        assert_eq!(count_lines(&out.stdout, &name), 1, "{out}");
    }
    let watches = cluster
        .requests()
        .iter()
        .filter(|r| r.verb == "watch")
        .count();
    assert!(
        watches >= 4,
        "jobherd re-watched after the drop ({watches} watches)"
    );
}

#[test]
fn expired_watch_relists_and_finishes() {
    let cluster = FakeCluster::start();
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "3")
        .env("JOBHERD_ENV", r#"{"FAKE_HOLD":"go"}"#)
        .spawn();
    h.wait_for_stdout(" running", LONG);
    // Every resourceVersion handed out so far is now too old: resumed watches get 410 Expired.
    cluster.compact();
    let compacted = std::time::Instant::now();
    cluster.drop_watches();
    cluster.release("go");
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(count_lines(&out.stdout, " succeeded after"), 3, "{out}");
    let relisted = cluster.requests().iter().any(|r| {
        r.verb == "list" && r.resource == "jobs" && r.at > compacted && r.label_selector().is_some()
    });
    assert!(relisted, "jobherd re-listed its Jobs after the 410");
}

#[test]
fn config_errors_exit_2_and_create_nothing() {
    let cluster = FakeCluster::start();
    // (variables, what the message must say)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        (&[("JOBHERD_COUNT", "2")], &["JOBHERD_IMAGE is required"]),
        (
            &[("JOBHERD_IMAGE", "x"), ("JOBHERD_COUNT", "-1")],
            &["JOBHERD_COUNT", "\"-1\"", "whole number"],
        ),
        (
            &[
                ("JOBHERD_IMAGE", "x"),
                ("JOBHERD_COUNT", "2"),
                ("JOBHERD_PARAMS", "[{}]"),
            ],
            &["JOBHERD_COUNT", "JOBHERD_PARAMS"],
        ),
        (
            &[
                ("JOBHERD_IMAGE", "x"),
                ("JOBHERD_SHELL", "echo"),
                ("JOBHERD_COMMAND", r#"["a"]"#),
            ],
            &["JOBHERD_SHELL", "JOBHERD_COMMAND"],
        ),
        (
            &[("JOBHERD_IMAGE", "x"), ("JOBHERD_TIMOUT", "5m")],
            &["unknown variable JOBHERD_TIMOUT", "JOBHERD_TIMEOUT"],
        ),
        (
            &[("JOBHERD_IMAGE", "x"), ("JOBHERD_ENV", "A=1")],
            &["JOBHERD_ENV", "A=1", "JSON"],
        ),
        (
            &[
                ("JOBHERD_IMAGE", "x"),
                (
                    "JOBHERD_JOB_TEMPLATE",
                    r#"{"apiVersion":"apps/v1","kind":"Deployment"}"#,
                ),
            ],
            &["JOBHERD_JOB_TEMPLATE", "apps/v1 Deployment"],
        ),
        (
            &[
                (
                    "JOBHERD_PLAN",
                    r#"{"steps":[{"name":"a","depends_on":["b"]},{"name":"b","depends_on":["a"]}]}"#,
                ),
                ("JOBHERD_IMAGE", "x"),
            ],
            &["cycle", "a -> b -> a"],
        ),
    ];
    for (env, expected) in cases {
        let mut cmd = cluster.jobherd();
        for (k, v) in *env {
            cmd = cmd.env(k, v);
        }
        let out = cmd.run();
        assert_eq!(out.code, Some(2), "{env:?}: {out}");
        for e in *expected {
            assert!(out.stderr.contains(e), "{env:?}: expected {e:?} in: {out}");
        }
    }
    assert!(
        cluster.requests().iter().all(|r| r.verb != "create"),
        "nothing was created"
    );
}

#[test]
fn forbidden_create_exits_4_naming_verb_and_resource() {
    let cluster = FakeCluster::start();
    cluster.forbid("create", "jobs");
    let out = cluster.jobherd().env("JOBHERD_IMAGE", "busybox").run();
    assert_eq!(out.code, Some(4), "{out}");
    assert!(
        out.stderr.contains("forbidden: cannot create jobs"),
        "{out}"
    );
    assert!(cluster.jobs(NS).is_empty());
}

#[test]
fn unreachable_api_exits_4() {
    let cluster = FakeCluster::start();
    cluster.stop();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .timeout(Duration::from_secs(60))
        .run();
    assert_eq!(out.code, Some(4), "{out}");
    assert!(out.stderr.contains("list jobs"), "{out}");
}

#[test]
fn throttled_and_failing_api_is_retried() {
    let cluster = FakeCluster::start();
    cluster.fail_next(2, 429, Some(1), Some(("create", "jobs")));
    cluster.fail_next(1, 500, None, Some(("create", "jobs")));
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "2")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(creates(&cluster).len(), 2);
}

#[test]
fn server_restart_mid_run_is_survived() {
    let cluster = FakeCluster::start();
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "2")
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"1500"}"#)
        .spawn();
    h.wait_for_stdout(" running", LONG);
    cluster.stop();
    std::thread::sleep(Duration::from_millis(500));
    cluster.restart();
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(count_lines(&out.stdout, " succeeded after"), 2, "{out}");
}

#[test]
fn unpullable_image_fails_the_child_after_stuck_timeout() {
    let cluster = FakeCluster::start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "fake-missing/typo:1")
        .env("JOBHERD_NAME_PREFIX", "img")
        .env("JOBHERD_STUCK_TIMEOUT", "1s")
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.contains("img-0 pending: ErrImagePull"), "{out}");
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("img-0 failed"))
        .unwrap();
    assert!(
        line.contains("ErrImagePull") || line.contains("ImagePullBackOff"),
        "{line}"
    );
    assert!(
        cluster.job(NS, "img-0").is_none(),
        "the stuck child is deleted"
    );
}

#[test]
fn dry_run_client_needs_no_cluster() {
    let cluster = FakeCluster::start();
    cluster.stop();
    let out = cluster
        .jobherd()
        .env("JOBHERD_DRY_RUN", "client")
        .env("JOBHERD_IMAGE", "perl:5.40")
        .env("JOBHERD_NAME_PREFIX", "pi")
        .env("JOBHERD_PARAMS", r#"[{"DIGITS":"10"},{"DIGITS":"20"}]"#)
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["metadata"]["name"], "pi-1");
    assert_eq!(items[1]["kind"], "Job");
}

#[test]
fn dry_run_server_submits_with_dry_run_and_stores_nothing() {
    let cluster = FakeCluster::start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_DRY_RUN", "server")
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "2")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let dry: Vec<_> = cluster
        .requests()
        .into_iter()
        .filter(|r| r.verb == "create" && r.query.contains("dryRun=All"))
        .collect();
    assert_eq!(dry.len(), 2);
    assert!(cluster.jobs(NS).is_empty());
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        list["items"][0]["metadata"]["uid"].is_string(),
        "server-filled objects"
    );
}

#[test]
fn cleanup_always_deletes_finished_children_and_junit_is_written() {
    let cluster = FakeCluster::start();
    let junit = tempfile::NamedTempFile::new().unwrap();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "ci")
        .env("JOBHERD_BACKOFF_LIMIT", "0")
        .env("JOBHERD_PARAMS", r#"[{},{"FAKE_EXIT":"1"}]"#)
        .env("JOBHERD_CLEANUP", "always")
        .env("JOBHERD_JUNIT_FILE", junit.path().to_str().unwrap())
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(cluster.jobs(NS).is_empty(), "{:?}", cluster.jobs(NS));
    let xml = std::fs::read_to_string(junit.path()).unwrap();
    assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
    assert!(xml.contains("name=\"ci-1\""), "{xml}");
}

#[test]
fn logs_all_prefixes_every_line_with_the_child() {
    // The children run until their lines were followed, however slow the machine.
    let cluster = FakeCluster::start();
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "logs")
        .env("JOBHERD_LOGS", "all")
        .env(
            "JOBHERD_PARAMS",
            r#"[{"FAKE_LOG":"alpha","FAKE_HOLD":"go"},{"FAKE_LOG":"beta","FAKE_HOLD":"go"}]"#,
        )
        .spawn();
    h.wait_for_stdout("logs-0 | alpha", LONG);
    h.wait_for_stdout("logs-1 | beta", LONG);
    cluster.release("go");
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");
    // Followed once each, not again when the child ends.
    assert_eq!(count_lines(&out.stdout, "logs-0 | alpha"), 1, "{out}");
    assert_eq!(count_lines(&out.stdout, "logs-1 | beta"), 1, "{out}");
}

#[test]
fn logs_all_prints_the_log_of_a_child_done_before_it_was_seen_running_once() {
    // FAKE_INSTANT: the pod goes from Pending straight to its end and the Job ends with it,
    // so jobherd never sees the child running. Its log must still be printed, once; a failed
    // one's is not repeated as a tail.
    let cluster = FakeCluster::start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "out")
        .env("JOBHERD_LOGS", "all")
        .env("JOBHERD_BACKOFF_LIMIT", "0")
        .env("JOBHERD_RESTART_POLICY", "Never")
        .env(
            "JOBHERD_PARAMS",
            r#"[{"FAKE_INSTANT":"1","FAKE_LOG":"zero\nmore of zero"},
                {"FAKE_INSTANT":"1","FAKE_LOG":"one"},
                {"FAKE_INSTANT":"1","FAKE_LOG":"two","FAKE_EXIT":"1"},
                {"FAKE_LOG":"three"}]"#,
        )
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    for line in [
        "out-0 | zero",
        "out-0 | more of zero",
        "out-1 | one",
        "out-2 | two",
        "out-2 | exit code 1",
        "out-3 | three",
    ] {
        assert_eq!(count_lines(&out.stdout, line), 1, "{line}: {out}");
    }
    for fast in ["out-0", "out-1", "out-2"] {
        let running = format!("{fast} running");
        assert_eq!(
            count_lines(&out.stdout, &running),
            0,
            "never seen running: {out}"
        );
    }
}

#[test]
fn api_calls_stay_constant_per_child() {
    // Watching uses a fixed number of watches, not a request loop per child.
    let cluster = FakeCluster::start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "20")
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"300"}"#)
        .env("JOBHERD_LOGS", "none")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let requests = cluster.requests();
    let job_gets = requests
        .iter()
        .filter(|r| r.verb == "get" && r.resource == "jobs")
        .count();
    let watches = requests.iter().filter(|r| r.verb == "watch").count();
    assert_eq!(job_gets, 0, "no polling of children");
    assert!(watches <= 4, "{watches} watches for 20 children");
}

#[test]
fn clusters_before_1_31_are_read_from_complete_and_failed_only() {
    let cluster = FakeCluster::builder().pre_131_conditions(true).start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "old")
        .env("JOBHERD_BACKOFF_LIMIT", "0")
        .env("JOBHERD_RESTART_POLICY", "Never")
        .env("JOBHERD_PARAMS", r#"[{},{"FAKE_EXIT":"2"}]"#)
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stdout.contains("old-0 succeeded"), "{out}");
    assert!(
        out.stdout.contains("old-1 failed: BackoffLimitExceeded"),
        "{out}"
    );
    assert!(cluster.jobs(NS).iter().all(|j| {
        let conditions = j
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        conditions
            .iter()
            .all(|c| c.type_ != "SuccessCriteriaMet" && c.type_ != "FailureTarget")
    }));
}

#[test]
fn log_format_json_makes_jobherds_own_lines_json() {
    // A Jobernetes setting jobherd does not need is explained in an info line.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("jobermodel.yaml");
    let job = format!(
        "{}/tests/fixtures/jobernetes/simple/test-dir/0-prepare/phase-one-sleep-5.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::write(
        &model,
        format!("jobernetes_config:\n  refresh_time: 5\njobernetes:\n  - phase_name: one\n    jobs:\n      - name: a\n        job_path: {job}\n"),
    )
    .unwrap();
    let cluster = FakeCluster::start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_LOG_FORMAT", "json")
        .env("JOBHERD_DRY_RUN", "client")
        .env("JOBHERD_PLAN_FILE", model.to_str().unwrap())
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(!lines.is_empty(), "the plan note is logged: {out}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
}

#[test]
fn log_lines_in_a_pod_carry_no_terminal_colours() {
    // jobherd as a CronJob's pod (the fake's kubelet runs the real binary for its image):
    // stderr is no terminal there, and `kubectl logs` or Jenkins would show escape codes as is.
    // A child namespace other than the parent's makes jobherd log a warning line.
    let cluster = FakeCluster::start();
    let job: Job = serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "plain"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "jobherd", "image": "jobherd:test", "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "JOBHERD_IMAGE", "value": "busybox"},
                {"name": "JOBHERD_NAMESPACE", "value": "elsewhere"},
            ]}]}}},
    }))
    .unwrap();
    cluster.create_job(job);
    let pod_of = |c: &FakeCluster| c.pods(NS).into_iter().find_map(|p| p.metadata.name);
    let done = |c: &FakeCluster| {
        c.job(NS, "plain")
            .is_some_and(|j| jobherd::conditions::outcome(&j).is_some())
    };
    assert!(cluster.wait_until(LONG, done));
    let pod = pod_of(&cluster).expect("the herd's pod");
    let log = cluster.log_lines(NS, &pod).expect("its log").join("\n");
    assert!(
        log.contains("WARN") && log.contains("another namespace"),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'), "escape codes in the log: {log:?}");
}
