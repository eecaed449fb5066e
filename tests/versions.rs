//! The core scenarios of a run (SPEC §1: "works against any Kubernetes from 1.21 on") against
//! the oldest version jobherd supports and a current one. 1.21 writes only `Complete`/`Failed`,
//! has no job-tracking finalizers and no Job `status.ready`; 1.33 writes `SuccessCriteriaMet`/
//! `FailureTarget` first, keeps pods with finalizers and waits for terminating pods. The same
//! assertions hold in both; each scenario also checks that it really met that version.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{FakeCluster, Kind, Revision, TRACKING};

const NS: &str = "default";
const LONG: Duration = Duration::from_secs(30);

/// One test per scenario and version: `v1_21::name`, `v1_33::name`.
macro_rules! in_versions {
    ($($scenario:ident),* $(,)?) => {
        mod v1_21 {
            $( #[test] fn $scenario() { super::$scenario(21) } )*
        }
        mod v1_33 {
            $( #[test] fn $scenario() { super::$scenario(33) } )*
        }
    };
}

in_versions!(
    children_succeed,
    failed_child_reports_reason_and_attempts,
    timeout_deletes_children_and_their_pods_go_gracefully,
    sigterm_deletes_children_and_exits_143,
    restarted_parent_adopts_children,
    plan_skips_the_dependants_of_a_failed_step,
);

fn cluster(version: u32) -> FakeCluster {
    FakeCluster::builder()
        .version(version)
        .record_history(true)
        .start()
}

/// The condition types a finished Job ends with in this version.
fn final_conditions(version: u32, succeeded: bool) -> Vec<&'static str> {
    match (version >= 31, succeeded) {
        (true, true) => vec!["SuccessCriteriaMet", "Complete"],
        (true, false) => vec!["FailureTarget", "Failed"],
        (false, true) => vec!["Complete"],
        (false, false) => vec!["Failed"],
    }
}

fn condition_types(job: &Value) -> Vec<String> {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "True")
        .filter_map(|c| c["type"].as_str().map(String::from))
        .collect()
}

/// Child Jobs (not the parent), as they are now.
fn children(cluster: &FakeCluster) -> Vec<Value> {
    cluster
        .objects(Kind::Job, NS)
        .into_iter()
        .filter(|j| j["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "jobherd")
        .collect()
}

fn creates(cluster: &FakeCluster) -> usize {
    cluster
        .requests()
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "jobs" && r.status < 300)
        .count()
}

/// Every pod of the run ran with the job-tracking finalizer in 1.26+, never before.
fn assert_tracking(version: u32, pods: &[Revision]) {
    let tracked = pods.iter().any(|r| {
        r.object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == TRACKING))
    });
    assert_eq!(
        tracked,
        version >= 26,
        "job-tracking finalizers in 1.{version}"
    );
}

/// Each pod deleted before it ended stayed until it stopped, then went. Returns how many were
/// deleted while running.
fn assert_graceful(pods: &[Revision]) -> usize {
    let uids: std::collections::BTreeSet<&str> = pods.iter().map(Revision::uid).collect();
    let mut running = 0;
    for uid in uids {
        let h: Vec<&Revision> = pods.iter().filter(|r| r.uid() == uid).collect();
        let Some(marked) = h
            .iter()
            .position(|r| !r.object["metadata"]["deletionTimestamp"].is_null())
        else {
            continue;
        };
        let phase = h[marked].object["status"]["phase"].as_str().unwrap_or("");
        assert!(
            phase == "Running" || phase == "Pending",
            "deleted before it ended: {phase}"
        );
        running += usize::from(phase == "Running");
        let stopped = h[marked..]
            .iter()
            .any(|r| r.object["status"]["phase"] == "Failed");
        assert!(stopped, "the pod stopped before it went");
        assert_eq!(h.last().map(|r| r.event), Some("DELETED"));
    }
    running
}

fn children_succeed(version: u32) {
    let cluster = cluster(version);
    let parent = cluster.create_parent(NS, "nightly-1");
    let out = cluster
        .jobherd()
        .in_pod(&parent)
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "3")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains("jobherd succeeded: 3 succeeded of 3 children"),
        "{out}"
    );
    let jobs = children(&cluster);
    assert_eq!(jobs.len(), 3);
    for job in &jobs {
        assert_eq!(condition_types(job), final_conditions(version, true));
        assert_eq!(
            job["metadata"]["ownerReferences"][0]["uid"].as_str(),
            Some(parent.job_uid.as_str())
        );
    }
    assert_tracking(version, &cluster.history(Kind::Pod));
    let ready = cluster
        .history(Kind::Job)
        .iter()
        .filter(|r| r.object["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "jobherd")
        .any(|r| !r.object["status"]["ready"].is_null());
    assert_eq!(ready, version >= 24, "Job status.ready in 1.{version}");
}

fn failed_child_reports_reason_and_attempts(version: u32) {
    let cluster = cluster(version);
    let report = tempfile::NamedTempFile::new().expect("temp file");
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "pi")
        .env("JOBHERD_RESTART_POLICY", "Never")
        .env("JOBHERD_BACKOFF_LIMIT", "2")
        .env(
            "JOBHERD_PARAMS",
            r#"[{},{"FAKE_EXIT":"1","FAKE_LOG":"connection refused by db"}]"#,
        )
        .env("JOBHERD_REPORT_FILE", report.path())
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("pi-1 failed"))
        .unwrap_or_else(|| panic!("no failure line: {out}"));
    assert!(
        line.contains("BackoffLimitExceeded") && line.contains("after 3 attempts"),
        "{line}"
    );
    assert!(
        out.stdout.contains("pi-1 | connection refused by db"),
        "{out}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(report.path()).expect("report"))
            .expect("json");
    let child = report["children"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "pi-1"))
        .expect("pi-1 in the report");
    assert_eq!(
        (&child["result"], &child["reason"], &child["attempts"]),
        (
            &Value::from("failed"),
            &Value::from("BackoffLimitExceeded"),
            &Value::from(3)
        )
    );
    // jobherd may be done before the Job is (its last pod still terminating).
    assert!(cluster.wait_until(LONG, |c| {
        c.object(Kind::Job, NS, "pi-1")
            .is_some_and(|j| condition_types(&j) == final_conditions(version, false))
    }));
    let failed = cluster.object(Kind::Job, NS, "pi-1").expect("pi-1");
    assert_eq!(
        failed["status"]["failed"], 3,
        "backoffLimit + 1 failed pods"
    );
    assert_tracking(version, &cluster.history(Kind::Pod));
}

fn timeout_deletes_children_and_their_pods_go_gracefully(version: u32) {
    let cluster = cluster(version);
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "2")
        .env("JOBHERD_TIMEOUT", "1s")
        .env(
            "JOBHERD_ENV",
            r#"{"FAKE_HOLD":"never","FAKE_TERM_MS":"200"}"#,
        )
        .run();
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stdout.contains("JOBHERD_TIMEOUT passed"), "{out}");
    assert!(children(&cluster).is_empty(), "children deleted: {out}");
    assert!(cluster.wait_until(LONG, |c| c.pods(NS).is_empty()));
    let pods = cluster.history(Kind::Pod);
    assert_eq!(pods.iter().filter(|r| r.event == "ADDED").count(), 2);
    assert_graceful(&pods);
    assert_tracking(version, &pods);
}

fn sigterm_deletes_children_and_exits_143(version: u32) {
    let cluster = cluster(version);
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "3")
        .env("JOBHERD_PARALLELISM", "2")
        .env("JOBHERD_ENV", r#"{"FAKE_HOLD":"never"}"#)
        .spawn();
    let running = |c: &FakeCluster| {
        c.pods(NS)
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count()
    };
    assert!(cluster.wait_until(LONG, |c| running(c) == 2));
    h.signal(libc::SIGTERM);
    let out = h.wait();
    assert_eq!(out.code, Some(143), "{out}");
    assert!(out.stdout.contains("terminated (SIGTERM)"), "{out}");
    assert_eq!(creates(&cluster), 2, "the pending child is not created");
    assert!(children(&cluster).is_empty(), "{out}");
    assert!(cluster.wait_until(LONG, |c| c.pods(NS).is_empty()));
    assert_eq!(assert_graceful(&cluster.history(Kind::Pod)), 2);
}

fn restarted_parent_adopts_children(version: u32) {
    let cluster = cluster(version);
    let parent = cluster.create_parent(NS, "nightly-7");
    let params = r#"[{"FAKE_RUN_MS":"50"},{"FAKE_HOLD":"rest"},{"FAKE_HOLD":"rest"}]"#;
    let mut first = cluster
        .jobherd()
        .in_pod(&parent)
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_PARAMS", params)
        .spawn();
    first.wait_for_stdout("nightly-7-0 succeeded", LONG);
    assert!(cluster.wait_until(LONG, |c| children(c).len() == 3));
    first.kill();
    first.wait();
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
    assert_eq!(creates(&cluster), 3, "no child created twice: {out}");
    assert!(out.stdout.contains("nightly-7-1 adopted"), "{out}");
    assert!(out.stdout.contains("3 succeeded of 3"), "{out}");
    for job in children(&cluster) {
        assert_eq!(condition_types(&job), final_conditions(version, true));
    }
}

fn plan_skips_the_dependants_of_a_failed_step(version: u32) {
    let cluster = cluster(version);
    let plan = r#"{"steps": [
        {"name": "extract", "env": {"FAKE_EXIT": "1"}, "backoff_limit": 0},
        {"name": "transform", "depends_on": ["extract"]},
        {"name": "audit"}
    ]}"#;
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "etl")
        .env("JOBHERD_PLAN", plan)
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stdout
            .contains("etl-transform skipped: DependencyFailed (dependency etl-extract failed)"),
        "{out}"
    );
    assert!(out.stdout.contains("etl-audit succeeded"), "{out}");
    assert_eq!(creates(&cluster), 2, "a skipped step is never created");
    assert!(cluster.wait_until(LONG, |c| {
        c.object(Kind::Job, NS, "etl-extract")
            .is_some_and(|j| condition_types(&j) == final_conditions(version, false))
    }));
}
