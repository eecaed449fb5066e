//! Trigger mode (SPEC §7 `JOBHERD_TRIGGER`): the shipped `cronjob.yaml` applied to the fake
//! cluster, whose kubelet runs the real jobherd binary as the parent; the trigger runs from
//! outside, as a Jenkins step would, and the tests assert what the cluster holds and what the
//! caller sees.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use support::{FakeCluster, Kind, Propagation, secs};

const NS: &str = "default";
const LONG: Duration = Duration::from_secs(60);
/// The test's own kubeconfig: the caller outside the cluster.
const CALLER: &str = "fake-token";
/// The parent's identity: `serviceAccountName: jobherd` in cronjob.yaml.
const PARENT_ACCOUNT: &str = "system:serviceaccount:default:jobherd";

fn read(file: &str) -> String {
    std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).expect(file)
}

/// A cluster holding the shipped CronJob `jobherd-pi` (with `edit` applied to its text).
fn cluster_with_cronjob(
    builder: support::fake::Builder,
    edit: impl Fn(String) -> String,
) -> FakeCluster {
    let cluster = builder.start();
    cluster
        .kubectl_apply("rbac.yaml", &read("rbac.yaml"))
        .expect("rbac.yaml applies");
    cluster
        .kubectl_apply("cronjob.yaml", &edit(read("cronjob.yaml")))
        .expect("cronjob.yaml applies");
    cluster
}

fn trigger(cluster: &FakeCluster) -> support::Jobherd {
    cluster
        .jobherd()
        .env("JOBHERD_TRIGGER", "cronjob/jobherd-pi")
        .env("JOBHERD_TRIGGER_NAME", "build-42")
        .timeout(secs(120))
}

fn children(cluster: &FakeCluster) -> Vec<String> {
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

fn created_jobs(cluster: &FakeCluster, user: &str) -> usize {
    cluster
        .requests()
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "jobs" && r.status < 300 && r.user == user)
        .filter(|r| !r.query.contains("dryRun"))
        .count()
}

#[test]
fn a_triggered_run_streams_its_progress_and_exits_with_the_parents_code() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let files = tempfile::tempdir().unwrap();
    let (junit, json) = (
        files.path().join("junit.xml"),
        files.path().join("report.json"),
    );
    let out = trigger(&cluster)
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"200"}"#)
        .env("JOBHERD_JUNIT_FILE", junit.to_str().unwrap())
        .env("JOBHERD_REPORT_FILE", json.to_str().unwrap())
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    for line in [
        "jobherd trigger: created job/build-42 from cronjob/jobherd-pi in namespace default",
        "jobherd trigger: following pod build-42-",
        "build-42-0 succeeded after 1 attempt",
        "jobherd succeeded: 3 succeeded of 3 children",
        "jobherd trigger: job/build-42 ended: exit 0",
    ] {
        assert!(out.stdout.contains(line), "expected {line:?}: {out}");
    }
    // As `kubectl create job --from=cronjob/jobherd-pi build-42` makes it.
    let parent = cluster
        .object(Kind::Job, NS, "build-42")
        .expect("the parent");
    let meta = &parent["metadata"];
    assert_eq!(
        meta["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert_eq!(meta["labels"]["app.kubernetes.io/instance"], "jobherd-pi");
    let cronjob = cluster.object(Kind::CronJob, NS, "jobherd-pi").unwrap();
    let owner = &meta["ownerReferences"][0];
    assert_eq!(owner["kind"], "CronJob");
    assert_eq!(owner["uid"], cronjob["metadata"]["uid"]);
    assert_eq!(owner["controller"], true);
    let env = &parent["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "JOBHERD_ENV"),
        "the override reached the parent: {env}"
    );
    assert!(
        parent["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Complete"),
        "{parent}"
    );
    // The CronJob's JOBHERD_CLEANUP=succeeded deleted the children; the reports still have them.
    assert!(children(&cluster).is_empty());
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"<testsuite name="build-42" tests="3" failures="0""#),
        "{xml}"
    );
    for i in 0..3 {
        assert!(xml.contains(&format!(r#"name="build-42-{i}""#)), "{xml}");
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["children"].as_array().unwrap().len(), 3);
}

#[test]
fn a_failed_child_is_passed_through_as_exit_1_with_the_junit_failure() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let files = tempfile::tempdir().unwrap();
    let junit = files.path().join("junit.xml");
    let out = trigger(&cluster)
        .env(
            "JOBHERD_PARAMS",
            r#"[{"REGION":"eu"},{"REGION":"us","FAKE_EXIT":"1","FAKE_LOG":"us is down"}]"#,
        )
        .env("JOBHERD_BACKOFF_LIMIT", "0")
        .env("JOBHERD_RESTART_POLICY", "Never")
        .env("JOBHERD_JUNIT_FILE", junit.to_str().unwrap())
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout
            .contains("build-42-1 failed: BackoffLimitExceeded"),
        "{out}"
    );
    assert!(out.stdout.contains("build-42-1 | us is down"), "{out}");
    assert!(
        out.stdout.contains("2 children in namespace"),
        "the PARAMS override: {out}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"tests="2" failures="1""#), "{xml}");
    assert!(
        xml.contains(r#"<failure type="BackoffLimitExceeded""#),
        "{xml}"
    );
}

#[test]
fn a_bad_setting_in_the_cronjob_is_the_parents_exit_2() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| {
        y.replace("value: \"2\"", "value: \"two\"")
    });
    let out = trigger(&cluster).run();
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stdout
            .contains(r#"JOBHERD_PARALLELISM="two" is invalid"#),
        "the parent's message is streamed: {out}"
    );
    assert!(children(&cluster).is_empty());
}

#[test]
fn a_bad_override_or_a_missing_cronjob_is_refused_before_anything_is_created() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let out = trigger(&cluster).env("JOBHERD_COUNT", "three").run();
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains(r#"JOBHERD_COUNT="three" is invalid"#),
        "{out}"
    );
    let out = cluster
        .jobherd()
        .env("JOBHERD_TRIGGER", "cronjob/nightly")
        .run();
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr
            .contains("no CronJob named nightly in namespace default"),
        "{out}"
    );
    assert_eq!(created_jobs(&cluster, CALLER), 0);
    assert!(cluster.jobs(NS).is_empty());
}

#[test]
fn an_abort_deletes_the_parent_and_through_it_the_children() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let mut h = trigger(&cluster)
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"600000"}"#)
        .spawn();
    h.wait_for_stdout("build-42-1 running", LONG);
    h.signal(libc::SIGTERM);
    let out = h.wait();
    assert_eq!(out.code, Some(143), "{out}");
    assert!(
        out.stdout.contains(
            "jobherd trigger: terminated (SIGTERM): deleted job/build-42, and with it its children"
        ),
        "{out}"
    );
    assert!(cluster.job(NS, "build-42").is_none(), "the parent is gone");
    assert!(
        cluster.wait_until(LONG, |c| c.jobs(NS).is_empty() && c.pods(NS).is_empty()),
        "its children and every pod follow: {:?}",
        children(&cluster)
    );
    let deletes: Vec<_> = cluster
        .requests()
        .into_iter()
        .filter(|r| r.user == CALLER && r.verb == "delete" && r.resource == "jobs")
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].name, "build-42");
}

#[test]
fn a_retried_parent_is_followed_through_both_attempts() {
    // A slower clock gives the test time to lift the fault between the two attempts.
    let cluster = cluster_with_cronjob(FakeCluster::builder().time_scale(0.1), |y| y);
    // The first attempt cannot read its own pod: exit 4, which the Job retries.
    cluster.forbid("get", "pods");
    let h = trigger(&cluster).spawn();
    assert!(cluster.wait_until(LONG, |c| {
        c.pods(NS).iter().any(|p| {
            let status = serde_json::to_value(p).unwrap()["status"]["containerStatuses"][0]["state"]
                ["terminated"]["exitCode"]
                .clone();
            status == 4
        })
    }));
    cluster.allow("get", "pods");
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains("forbidden: cannot get pods"),
        "attempt 1's output: {out}"
    );
    assert!(
        out.stdout
            .contains("jobherd trigger: the parent was retried: following pod build-42-"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("jobherd succeeded: 3 succeeded of 3 children"),
        "{out}"
    );
}

#[test]
fn a_parent_pod_deleted_from_outside_is_retried_and_followed() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let mut h = trigger(&cluster)
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"2000"}"#)
        .spawn();
    h.wait_for_stdout("build-42-0 running", LONG);
    let first = cluster.pods_of(NS, "build-42")[0]
        .metadata
        .name
        .clone()
        .unwrap();
    assert!(cluster.delete(Kind::Pod, NS, &first, Propagation::Background));
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains("jobherd stopping: terminated (SIGTERM)"),
        "{out}"
    );
    assert!(out.stdout.contains("the parent was retried"), "{out}");
    assert!(
        out.stdout
            .contains("jobherd succeeded: 3 succeeded of 3 children"),
        "{out}"
    );
}

#[test]
fn a_parent_killed_without_a_last_word_ends_with_5_when_it_cannot_be_retried() {
    // The parent's process is SIGKILLed (the OOM killer, a lost node): no SIGTERM, so no exit
    // code of jobherd's own, and the Job (backoffLimit 0) does not try again. An eviction or a
    // delete with grace 0 would send SIGTERM first, and whether jobherd exits 143 before the
    // SIGKILL comes is a race (it lost it under load): this test must not depend on one.
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| {
        y.replace("backoffLimit: 2", "backoffLimit: 0")
    });
    let mut h = trigger(&cluster)
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"600000"}"#)
        .spawn();
    h.wait_for_stdout("build-42-0 running", LONG);
    let pids = cluster.process_ids();
    assert_eq!(pids.len(), 1, "the parent's process: {pids:?}");
    // SAFETY: kill(2) on a process the fake cluster started; no memory is touched.
    assert_eq!(
        unsafe { libc::kill(pids[0] as libc::pid_t, libc::SIGKILL) },
        0
    );
    let out = h.wait();
    assert_eq!(out.code, Some(5), "{out}");
    assert!(
        out.stdout
            .contains("jobherd trigger: job/build-42 ended without an exit code of jobherd's own"),
        "{out}"
    );
}

/// (API group, resource, verb) a Role of a shipped manifest grants.
fn granted(file: &str, role: &str) -> BTreeSet<(String, String, String)> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(&read(file)).expect(file);
    let role = docs
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == role)
        .expect(role);
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    let s = |v: &Value| v.as_str().unwrap().to_string();
                    out.insert((s(group), s(resource), s(verb)));
                }
            }
        }
    }
    out
}

/// What an identity asked the API for, as RBAC would check it.
fn used(cluster: &FakeCluster, user: &str) -> BTreeSet<(String, String, String)> {
    cluster
        .requests()
        .iter()
        .filter(|r| r.user == user && !r.resource.is_empty())
        .map(|r| {
            let resource = if r.subresource.is_empty() {
                r.resource.clone()
            } else {
                format!("{}/{}", r.resource, r.subresource)
            };
            (r.group.clone(), resource, r.verb.to_string())
        })
        .collect()
}

#[test]
fn the_shipped_roles_cover_what_the_trigger_and_the_parent_do() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let files = tempfile::tempdir().unwrap();
    let junit = files.path().join("junit.xml");
    let out = trigger(&cluster)
        .env("JOBHERD_JUNIT_FILE", junit.to_str().unwrap())
        .env("JOBHERD_PARAMS", r#"[{},{"FAKE_EXIT":"1"}]"#)
        .env("JOBHERD_BACKOFF_LIMIT", "0")
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    let trigger_uses = used(&cluster, CALLER);
    let trigger_role = granted("k8s/trigger-rbac.yaml", "jobherd-trigger");
    let missing: Vec<_> = trigger_uses.difference(&trigger_role).collect();
    assert!(
        missing.is_empty(),
        "k8s/trigger-rbac.yaml lacks {missing:?}"
    );
    let parent_uses = used(&cluster, PARENT_ACCOUNT);
    assert!(parent_uses.contains(&("batch".into(), "jobs".into(), "create".into())));
    let parent_role = granted("rbac.yaml", "jobherd");
    let missing: Vec<_> = parent_uses.difference(&parent_role).collect();
    assert!(missing.is_empty(), "rbac.yaml lacks {missing:?}");
}

#[test]
fn each_verb_the_trigger_role_grants_is_needed_and_named_when_missing() {
    // (verb, resource as forbid() takes it, settings that make the trigger use it)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        ("get", "cronjobs", &[]),
        ("create", "jobs", &[]),
        ("list", "jobs", &[]),
        ("watch", "jobs", &[]),
        ("list", "pods", &[]),
        ("watch", "pods", &[]),
        ("get", "pods/log", &[]),
        ("get", "jobs", &[("JOBHERD_JUNIT_FILE", "junit.xml")]),
    ];
    for (verb, resource, vars) in cases {
        let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
        cluster.forbid(verb, resource);
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = trigger(&cluster).home(dir.path());
        for (k, v) in *vars {
            cmd = cmd.env(k, dir.path().join(v));
        }
        let out = cmd.run();
        assert_eq!(out.code, Some(4), "without {verb} {resource}: {out}");
        assert!(
            out.stderr
                .contains(&format!("forbidden: cannot {verb} {resource}")),
            "without {verb} {resource}: {out}"
        );
        let running = |c: &FakeCluster| {
            c.job(NS, "build-42")
                .is_some_and(|j| jobherd::conditions::outcome(&j).is_none())
        };
        assert!(
            cluster.wait_until(LONG, |c| !running(c)),
            "without {verb} {resource}, no parent is left running"
        );
    }
}

#[test]
fn an_abort_without_delete_leaves_a_running_parent_and_says_so() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    cluster.forbid("delete", "jobs");
    let mut h = trigger(&cluster)
        .env("JOBHERD_ENV", r#"{"FAKE_RUN_MS":"600000"}"#)
        .spawn();
    h.wait_for_stdout("build-42-0 running", LONG);
    h.signal(libc::SIGINT);
    let out = h.wait();
    assert_eq!(out.code, Some(4), "{out}");
    assert!(
        out.stdout
            .contains("could not be deleted and is still running"),
        "{out}"
    );
    assert!(
        out.stderr.contains("forbidden: cannot delete jobs"),
        "{out}"
    );
}

#[test]
fn dry_run_prints_the_job_and_creates_nothing() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let out = trigger(&cluster)
        .env("JOBHERD_DRY_RUN", "client")
        .env("JOBHERD_FAIL_FAST", "true")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    let job: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(job["kind"], "Job");
    assert_eq!(job["metadata"]["name"], "build-42");
    let env = &job["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .contains(&json!({"name": "JOBHERD_FAIL_FAST", "value": "true"}))
    );
    assert_eq!(created_jobs(&cluster, CALLER), 0);
    let reads: Vec<_> = cluster
        .requests()
        .into_iter()
        .filter(|r| r.user == CALLER && r.verb != "get")
        .map(|r| format!("{} {}", r.verb, r.resource))
        .collect();
    assert!(reads.is_empty(), "only a read of the CronJob: {reads:?}");
}

#[test]
fn retry_last_failed_triggers_a_run_of_only_what_failed() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let params = r#"[{},{"FAKE_EXIT":"1"},{}]"#;
    let out = trigger(&cluster)
        .env("JOBHERD_PARAMS", params)
        .env("JOBHERD_BACKOFF_LIMIT", "0")
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    let before = created_jobs(&cluster, PARENT_ACCOUNT);
    let out = cluster
        .jobherd()
        .env("JOBHERD_TRIGGER", "cronjob/jobherd-pi")
        .env("JOBHERD_TRIGGER_NAME", "build-43")
        .env("JOBHERD_RETRY", "last-failed")
        .env("JOBHERD_PARAMS", "[{},{},{}]")
        .timeout(secs(120))
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains(
            "jobherd trigger: retrying the newest failed run of cronjob/jobherd-pi: job/build-42"
        ),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("build-43-0 succeeded in earlier run build-42"),
        "{out}"
    );
    assert_eq!(created_jobs(&cluster, PARENT_ACCOUNT) - before, 1, "{out}");
}
