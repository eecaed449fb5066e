//! Queues (SPEC §9): children whose Jobs a queue holds suspended (Kueue) are `queued`, wait
//! past `JOBHERD_STUCK_TIMEOUT` without being failed, count against `JOBHERD_PARALLELISM`, run
//! once admitted, and are `preempted` and queued again when suspended after admission.
//! `JOBHERD_QUEUE` (and a step's `queue`) puts the children in a LocalQueue. The fake's Kueue
//! is its webhook and the two spec updates: the test admits and preempts, so nothing here
//! waits for a clock.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::herd::{
    attempts, cluster_with_cronjob, deleted_by, records, start_parent, wait_for_end, wait_for_log,
    wait_until_finished,
};
use support::{FakeCluster, Kind, Revision, peak};

const NS: &str = "default";
const LONG: Duration = Duration::from_secs(30);
const QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";

/// A cluster with Kueue's webhook, recording every object version.
fn kueue_cluster() -> FakeCluster {
    FakeCluster::builder()
        .kueue(true)
        .record_history(true)
        .start()
}

/// Admits each of `jobs` once it exists, as Kueue's controller would with quota to spare.
fn admit_when_created(cluster: &FakeCluster, jobs: &[&str]) {
    for job in jobs {
        assert!(
            cluster.wait_until(LONG, |c| c.object(Kind::Job, NS, job).is_some()),
            "{job} was never created"
        );
        assert!(cluster.admit(NS, job));
    }
}

/// Lines of `out` that contain `needle`, in order.
fn lines_with<'a>(out: &'a str, needle: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.contains(needle)).collect()
}

/// Index of the first line of `out` containing `needle`.
fn line_of(out: &str, needle: &str) -> usize {
    out.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
}

/// The child Jobs jobherd created (by its managed-by label), as first stored.
fn created_children(cluster: &FakeCluster) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    cluster
        .history(Kind::Job)
        .into_iter()
        .filter(|r| r.object["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "jobherd")
        .filter(|r| seen.insert(r.uid().to_string()))
        .map(|r| r.object)
        .collect()
}

fn name(job: &Value) -> &str {
    job["metadata"]["name"].as_str().unwrap_or_default()
}

fn has_condition(job: &Value, kind: &str) -> bool {
    job["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

/// The resourceVersion of the first recorded version of `job` for which `holds` is true.
fn first_rv(history: &[Revision], job: &str, holds: impl Fn(&Value) -> bool) -> u64 {
    history
        .iter()
        .find(|r| r.name() == job && holds(&r.object))
        .unwrap_or_else(|| panic!("no version of {job} as expected"))
        .rv
}

fn job_creates(cluster: &FakeCluster) -> usize {
    cluster
        .requests()
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "jobs")
        .count()
}

#[test]
fn queued_children_wait_past_the_stuck_timeout_and_run_once_admitted() {
    let cluster = kueue_cluster();
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "q")
        .env("JOBHERD_COUNT", "2")
        .env("JOBHERD_QUEUE", "team-a")
        .env("JOBHERD_STUCK_TIMEOUT", "1s")
        .env("JOBHERD_HEARTBEAT", "2s")
        .spawn();
    // A heartbeat comes only after 2 s with nothing printed: both children have waited in
    // the queue longer than the stuck timeout by then.
    h.wait_for_stdout(
        "heartbeat: 0/2 done, 0 running, 0 pending, 2 queued, 0 waiting, 0 failed",
        LONG,
    );
    admit_when_created(&cluster, &["q-0", "q-1"]);
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");

    for child in ["q-0", "q-1"] {
        let queued = line_of(
            &out.stdout,
            &format!("{child} queued (suspended until queue team-a admits it)"),
        );
        let running = line_of(&out.stdout, &format!("{child} running"));
        let beat = line_of(&out.stdout, "heartbeat: ");
        assert!(queued < beat && beat < running, "{out}");
        let done = lines_with(&out.stdout, &format!("{child} succeeded after 1 attempt"));
        assert_eq!(done.len(), 1, "{out}");
        // At least the heartbeat's 2 s of quiet (whole seconds from here on: `2s`, `3s`).
        let queued_for = done[0]
            .split("(queued ")
            .nth(1)
            .and_then(|rest| rest.split('s').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        assert!(queued_for.is_some_and(|s| s >= 2), "{}", done[0]);
    }
    assert!(lines_with(&out.stdout, " failed:").is_empty(), "{out}");
    assert!(lines_with(&out.stdout, " pending:").is_empty(), "{out}");
    let header = out
        .stdout
        .lines()
        .find(|l| l.starts_with("CHILD"))
        .unwrap_or_else(|| panic!("no table: {out}"));
    assert!(header.contains("QUEUED"), "{header}");

    let children = created_children(&cluster);
    assert_eq!(children.len(), 2);
    for job in &children {
        assert_eq!(job["metadata"]["labels"][QUEUE_LABEL], "team-a", "{job}");
        assert_eq!(job["spec"]["suspend"], true, "created suspended: {job}");
    }
    assert_eq!(job_creates(&cluster), 2);
}

#[test]
fn a_preempted_child_is_queued_again_and_its_deleted_pod_is_no_attempt() {
    // Created outside a queue (no label: Kueue's webhook leaves it running), so the first
    // suspension the child sees is the preemption.
    let cluster = kueue_cluster();
    let report = tempfile::NamedTempFile::new().unwrap();
    let junit = tempfile::NamedTempFile::new().unwrap();
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "p")
        .env("JOBHERD_ENV", r#"{"FAKE_HOLD":"work"}"#)
        .env("JOBHERD_REPORT_FILE", report.path().to_str().unwrap())
        .env("JOBHERD_JUNIT_FILE", junit.path().to_str().unwrap())
        .spawn();
    h.wait_for_stdout("p-0 running", LONG);
    assert!(cluster.preempt(NS, "p-0"));
    h.wait_for_stdout("p-0 queued (suspended until it is admitted)", LONG);
    // Kueue admits it again once the preempted pod is gone and its quota free.
    assert!(cluster.wait_until(LONG, |c| c.pods_of(NS, "p-0").is_empty()));
    assert!(cluster.admit(NS, "p-0"));
    assert!(cluster.wait_until(LONG, |_| lines_with(&h.stdout(), "p-0 running").len() == 2));
    cluster.release("work");
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");

    let preempted = line_of(
        &out.stdout,
        "p-0 preempted (suspended again; its pod was deleted, which is not a failed attempt)",
    );
    assert!(line_of(&out.stdout, "p-0 running") < preempted, "{out}");
    assert_eq!(line_of(&out.stdout, "p-0 queued"), preempted + 1, "{out}");
    assert_eq!(lines_with(&out.stdout, "p-0 preempted").len(), 1, "{out}");
    let done = lines_with(&out.stdout, "p-0 succeeded");
    assert_eq!(done.len(), 1, "{out}");
    assert!(done[0].contains("after 1 attempt "), "{out}");
    assert!(done[0].contains("preempted once)"), "{out}");

    // Two pods ran: the preempted one and the one that did the work.
    let pods: BTreeSet<String> = cluster
        .history(Kind::Pod)
        .iter()
        .filter(|r| r.object["metadata"]["labels"]["job-name"] == "p-0")
        .map(|r| r.uid().to_string())
        .collect();
    assert_eq!(pods.len(), 2);

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap()).unwrap();
    let child = &report["children"][0];
    assert_eq!(child["result"], "succeeded", "{report}");
    assert_eq!(child["attempts"], 1, "{report}");
    assert_eq!(child["preemptions"], 1, "{report}");
    assert!(
        child["queued_seconds"].as_f64().is_some_and(|s| s > 0.0),
        "{report}"
    );
    let junit = std::fs::read_to_string(junit.path()).unwrap();
    assert!(
        junit.contains("<system-out>succeeded (") && junit.contains("preempted once)"),
        "{junit}"
    );
}

#[test]
fn a_queue_labels_every_child_job_but_not_its_pods_and_owners_are_no_controllers() {
    let cluster = kueue_cluster();
    let parent = cluster.create_parent(NS, "fan");
    let h = cluster
        .jobherd()
        .in_pod(&parent)
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "3")
        .env("JOBHERD_QUEUE", "team-a")
        .spawn();
    admit_when_created(&cluster, &["fan-0", "fan-1", "fan-2"]);
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");

    let children = created_children(&cluster);
    assert_eq!(children.len(), 3);
    for job in &children {
        assert_eq!(job["metadata"]["labels"][QUEUE_LABEL], "team-a", "{job}");
        let template = &job["spec"]["template"]["metadata"]["labels"];
        assert!(template[QUEUE_LABEL].is_null(), "{template}");
        let owners = job["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(owners.len(), 1, "{job}");
        assert_eq!(owners[0]["uid"], parent.job_uid.as_str());
        assert!(owners[0]["controller"].is_null(), "{job}");
    }
    // Neither do the pods the Job controller made from the template carry it.
    let pods = cluster.history(Kind::Pod);
    assert!(!pods.is_empty());
    assert!(
        pods.iter()
            .all(|r| r.object["metadata"]["labels"][QUEUE_LABEL].is_null())
    );
    // The parent itself has no queue label, so the webhook left it alone.
    let parent_job = cluster.object(Kind::Job, NS, "fan").unwrap();
    assert!(parent_job["spec"]["suspend"] != true, "{parent_job}");
}

#[test]
fn a_steps_queue_overrides_the_variable_and_other_steps_keep_it() {
    let cluster = kueue_cluster();
    let h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "plan")
        .env("JOBHERD_QUEUE", "team-a")
        .env(
            "JOBHERD_PLAN",
            r#"{"steps": [{"name": "a"}, {"name": "b", "queue": "team-b"}]}"#,
        )
        .spawn();
    admit_when_created(&cluster, &["plan-a", "plan-b"]);
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains("plan-a queued (suspended until queue team-a admits it)"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("plan-b queued (suspended until queue team-b admits it)"),
        "{out}"
    );
    let queues: Vec<(String, Value)> = created_children(&cluster)
        .iter()
        .map(|j| {
            (
                name(j).to_string(),
                j["metadata"]["labels"][QUEUE_LABEL].clone(),
            )
        })
        .collect();
    assert_eq!(queues.len(), 2);
    for (job, queue) in queues {
        let expected = if job == "plan-b" { "team-b" } else { "team-a" };
        assert_eq!(queue, expected, "{job}");
    }
}

#[test]
fn queued_children_count_against_parallelism() {
    let cluster = kueue_cluster();
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "s")
        .env("JOBHERD_COUNT", "2")
        .env("JOBHERD_PARALLELISM", "1")
        .env("JOBHERD_QUEUE", "team-a")
        .env("JOBHERD_HEARTBEAT", "1s")
        .spawn();
    // A second of quiet with the first child queued: the second is still waiting.
    h.wait_for_stdout(
        "heartbeat: 0/2 done, 0 running, 0 pending, 1 queued, 1 waiting, 0 failed",
        LONG,
    );
    admit_when_created(&cluster, &["s-0", "s-1"]);
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");

    let history = cluster.history(Kind::Job);
    let first_admitted = first_rv(&history, "s-0", |j| j["spec"]["suspend"] == false);
    let first_done = first_rv(&history, "s-0", |j| {
        has_condition(j, "Complete") || has_condition(j, "SuccessCriteriaMet")
    });
    let second_created = first_rv(&history, "s-1", |_| true);
    assert!(
        first_admitted < first_done && first_done < second_created,
        "s-1 was created at rv {second_created}, s-0 admitted at {first_admitted} and done at {first_done}"
    );
    let child = |j: &Value| {
        j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "jobherd"
            && !has_condition(j, "Complete")
            && !has_condition(j, "SuccessCriteriaMet")
    };
    assert_eq!(peak(&history, child), 1);
}

#[test]
fn the_run_timeout_applies_to_a_child_that_is_never_admitted() {
    let cluster = kueue_cluster();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "late")
        .env("JOBHERD_QUEUE", "team-a")
        .env("JOBHERD_TIMEOUT", "2s")
        .run();
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stdout.contains("late-0 queued"), "{out}");
    assert!(out.stdout.contains("late-0 cancelled"), "{out}");
    assert!(out.stdout.contains("JOBHERD_TIMEOUT passed"), "{out}");
    assert!(
        cluster.wait_until(LONG, |c| c.object(Kind::Job, NS, "late-0").is_none()),
        "the queued child was deleted"
    );
}

#[test]
fn a_bad_queue_name_exits_2_and_creates_nothing() {
    let cluster = FakeCluster::builder().kueue(true).start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_QUEUE", "Team A")
        .run();
    assert_eq!(out.code, Some(2), "{out}");
    for needle in ["JOBHERD_QUEUE", "Team A", "LocalQueue"] {
        assert!(out.stderr.contains(needle), "{needle}: {out}");
    }
    assert_eq!(job_creates(&cluster), 0);
}

#[test]
fn a_bad_queue_on_a_step_exits_2_naming_the_step_and_creates_nothing() {
    let cluster = FakeCluster::builder().kueue(true).start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env(
            "JOBHERD_PLAN",
            r#"{"steps": [{"name": "a"}, {"name": "b", "queue": "team_b"}]}"#,
        )
        .run();
    assert_eq!(out.code, Some(2), "{out}");
    for needle in ["step \"b\"", "queue", "team_b"] {
        assert!(out.stderr.contains(needle), "{needle}: {out}");
    }
    assert_eq!(job_creates(&cluster), 0);
}

#[test]
fn a_sigterm_deletes_children_still_queued() {
    let cluster = FakeCluster::builder()
        .kueue(true)
        .record_history(true)
        .start();
    let report = cluster.temp_dir().join("report.json");
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "wait")
        .env("JOBHERD_COUNT", "2")
        .env("JOBHERD_QUEUE", "team-a")
        .env("JOBHERD_REPORT_FILE", &report)
        .spawn();
    h.wait_for_stdout("wait-0 queued", LONG);
    h.wait_for_stdout("wait-1 queued", LONG);
    h.signal(libc::SIGTERM);
    let out = h.wait();
    assert_eq!(out.code, Some(143), "{out}");
    assert_eq!(deleted_by(&cluster, "fake-token"), ["wait-0", "wait-1"]);
    for child in ["wait-0", "wait-1"] {
        let line = format!("{child} cancelled: Cancelled (terminated (SIGTERM))");
        assert_eq!(lines_with(&out.stdout, &line).len(), 1, "{out}");
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(report["exit_code"], 143);
}

#[test]
fn a_moved_run_keeps_its_childrens_queue_time_and_preemptions() {
    // The first attempt sees its child queued, admitted, preempted and admitted again, then
    // its pod is evicted. The next attempt finds the child running: what it knows of the
    // queue comes from the first attempt's record.
    let cluster = cluster_with_cronjob(FakeCluster::builder().kueue(true), |y| y);
    let report = cluster.temp_dir().join("report.json");
    let env: Vec<(String, String)> = [
        ("JOBHERD_IMAGE", "busybox"),
        ("JOBHERD_QUEUE", "team-a"),
        ("JOBHERD_ENV", r#"{"FAKE_HOLD":"work"}"#),
        ("JOBHERD_REPORT_FILE", report.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    start_parent(&cluster, "kq", &env);
    wait_for_log(&cluster, "kq", 0, "kq-0 queued");
    assert!(cluster.admit(NS, "kq-0"));
    wait_for_log(&cluster, "kq", 0, "kq-0 running");
    assert!(cluster.preempt(NS, "kq-0"));
    wait_for_log(&cluster, "kq", 0, "kq-0 preempted");
    assert!(cluster.wait_until(LONG, |c| c.pods_of(NS, "kq-0").is_empty()));
    assert!(cluster.admit(NS, "kq-0"));
    assert!(cluster.wait_until(LONG, |_| {
        attempts(&cluster, "kq")[0]
            .log
            .matches("kq-0 running")
            .count()
            == 2
    }));
    assert!(cluster.evict(NS, &attempts(&cluster, "kq")[0].pod));
    let moved = wait_for_end(&cluster, "kq", 0);
    assert!(moved.log.contains("jobherd moving"), "{}", moved.log);
    // [index, attempts, queued ms, preemptions]
    let details = records(&cluster, "kq")[0]["details"][0].clone();
    assert_eq!(details[3], 1, "{details}");
    let queued_ms = details[2].as_u64().unwrap();
    assert!(queued_ms > 0, "{details}");

    wait_for_log(&cluster, "kq", 1, "kq-0 adopted");
    cluster.release("work");
    assert_eq!(wait_until_finished(&cluster, "kq"), "Complete");
    let second = wait_for_end(&cluster, "kq", 1);
    assert!(
        second.log.contains("preempted once)"),
        "the second attempt knows: {}",
        second.log
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let child = &report["children"][0];
    assert_eq!(child["preemptions"], 1, "{report}");
    assert_eq!(child["attempts"], 1, "{report}");
    let queued = child["queued_seconds"].as_f64().unwrap();
    assert!(
        queued * 1000.0 >= queued_ms as f64 - 1.0,
        "{queued}s < {queued_ms}ms: {report}"
    );
}
