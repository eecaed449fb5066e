//! Disruption (SPEC §9): a SIGTERM that only moves jobherd's pod (an eviction, a preemption)
//! leaves every child to the next attempt; every other SIGTERM still stops the run. The parent is
//! the shipped `cronjob.yaml`'s Job, run by the fake cluster's kubelet as the real binary, as
//! `kubectl create job --from=cronjob/jobherd-pi` would start it.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{FakeCluster, Kind, Propagation, secs};

const NS: &str = "default";
const LONG: Duration = Duration::from_secs(60);
/// The parent's identity: `serviceAccountName: jobherd` in cronjob.yaml.
const PARENT_ACCOUNT: &str = "system:serviceaccount:default:jobherd";

fn read(file: &str) -> String {
    std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).expect(file)
}

/// A cluster (recording history) holding the shipped CronJob, with `edit` applied to its text.
fn cluster_with_cronjob(edit: impl Fn(String) -> String) -> FakeCluster {
    let cluster = FakeCluster::builder().record_history(true).start();
    cluster
        .kubectl_apply("rbac.yaml", &read("rbac.yaml"))
        .unwrap();
    cluster
        .kubectl_apply("cronjob.yaml", &edit(read("cronjob.yaml")))
        .unwrap();
    cluster
}

/// Starts the CronJob's Job now, as `kubectl create job --from=cronjob/jobherd-pi NAME` does,
/// with `env` set over the jobherd container's variables.
fn start_parent(cluster: &FakeCluster, name: &str, env: &[(&str, &str)]) {
    let cronjob = cluster
        .object(Kind::CronJob, NS, "jobherd-pi")
        .expect("the CronJob");
    let mut spec = cronjob["spec"]["jobTemplate"]["spec"].clone();
    let vars = spec["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .expect("env");
    for (k, v) in env {
        vars.retain(|e| e["name"] != *k);
        vars.push(json!({"name": k, "value": v}));
    }
    cluster.create_raw(
        Kind::Job,
        json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NS,
                "annotations": {"cronjob.kubernetes.io/instantiate": "manual"}},
            "spec": spec}),
    );
}

/// Children held running until `release("work")`, three of them, two at a time.
const HELD: &[(&str, &str)] = &[
    ("JOBHERD_IMAGE", "busybox"),
    ("JOBHERD_ENV", r#"{"FAKE_HOLD":"work"}"#),
    ("JOBHERD_PARAMS", "[{},{},{}]"),
];

/// The parent's pods, oldest first.
fn parent_pods(cluster: &FakeCluster, parent: &str) -> Vec<Value> {
    let mut seen = std::collections::BTreeSet::new();
    cluster
        .history(Kind::Pod)
        .into_iter()
        .filter(|r| r.object["metadata"]["labels"]["job-name"] == parent)
        .filter(|r| seen.insert(r.uid().to_string()))
        .map(|r| r.object)
        .collect()
}

fn pod_name(pod: &Value) -> String {
    pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The log of a pod, also once it is gone (found by its uid in the recorded history).
fn log(cluster: &FakeCluster, pod: &str) -> String {
    cluster
        .history_of(Kind::Pod, NS, pod)
        .first()
        .map(|r| cluster.log_lines_of_uid(r.uid()).join("\n"))
        .unwrap_or_default()
}

fn running_children(cluster: &FakeCluster, prefix: &str) -> usize {
    cluster.count(Kind::Pod, NS, |p| {
        p["metadata"]["labels"]["job-name"]
            .as_str()
            .is_some_and(|j| j.starts_with(&format!("{prefix}-")))
            && p["status"]["phase"] == "Running"
    })
}

/// Waits until the parent's first pod logged `text`; returns that pod's name.
fn wait_for_first_log(cluster: &FakeCluster, parent: &str, text: &str) -> String {
    first_log_with(cluster, parent, text).0
}

/// Waits until the parent's first pod logged `text`; returns the pod's name and its log then
/// (read by the pod's uid: the cluster keeps the log of a deleted pod, as it records history).
fn first_log_with(cluster: &FakeCluster, parent: &str, text: &str) -> (String, String) {
    let (mut first, mut said) = (String::new(), String::new());
    let seen = cluster.wait_until(LONG, |c| {
        let pods = parent_pods(c, parent);
        let Some(pod) = pods.first() else {
            return false;
        };
        first = pod_name(pod);
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        said = c.log_lines_of_uid(uid).join("\n");
        said.contains(text)
    });
    assert!(
        seen,
        "the parent's first pod never said {text:?}; it said:\n{said}"
    );
    (first, said)
}

/// Creates and deletes of child Jobs the parents made (jobs, by their ServiceAccount).
fn parent_requests(cluster: &FakeCluster, verbs: &[&str]) -> usize {
    cluster
        .requests()
        .iter()
        .filter(|r| r.user == PARENT_ACCOUNT && r.resource == "jobs" && r.subresource.is_empty())
        .filter(|r| verbs.contains(&r.verb))
        .count()
}

fn exit_code(pod: &Value) -> Option<i64> {
    pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"].as_i64()
}

/// The last version of a pod the history holds.
fn last_version(cluster: &FakeCluster, pod: &str) -> Value {
    cluster
        .history_of(Kind::Pod, NS, pod)
        .last()
        .expect("the pod's history")
        .object
        .clone()
}

fn job_finished(cluster: &FakeCluster, name: &str, condition: &str) -> bool {
    cluster.object(Kind::Job, NS, name).is_some_and(|j| {
        j["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == condition && c["status"] == "True")
        })
    })
}

#[test]
fn an_evicted_parent_leaves_its_children_and_the_next_attempt_adopts_them() {
    let cluster = cluster_with_cronjob(|y| y);
    start_parent(&cluster, "pi-manual", HELD);
    assert!(cluster.wait_until(LONG, |c| running_children(c, "pi-manual") == 2));
    let first = wait_for_first_log(&cluster, "pi-manual", "pi-manual-1 running");

    assert!(cluster.evict(NS, &first));
    let moved = wait_for_first_log(&cluster, "pi-manual", "jobherd moving");
    assert_eq!(moved, first);
    assert!(
        cluster.wait_until(LONG, |c| parent_pods(c, "pi-manual").len() == 2),
        "the Job starts another pod"
    );
    let second = pod_name(&parent_pods(&cluster, "pi-manual")[1]);
    assert!(cluster.wait_until(LONG, |c| log(c, &second).contains("pi-manual-1 adopted")));
    cluster.release("work");
    assert!(cluster.wait_until(LONG, |c| job_finished(c, "pi-manual", "Complete")));

    let first_log = last_version(&cluster, &first);
    assert_eq!(exit_code(&first_log), Some(143), "{first_log}");
    let said = first_log["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        said.contains("its pod was disrupted (EvictionByEvictionAPI); 2 active children left"),
        "the termination message: {said}"
    );
    // Each child Job was created once and never deleted until the run's own cleanup.
    assert_eq!(parent_requests(&cluster, &["create"]), 3);
    for child in ["pi-manual-0", "pi-manual-1"] {
        let history = cluster.history_of(Kind::Job, NS, child);
        let uids: std::collections::BTreeSet<&str> = history.iter().map(|r| r.uid()).collect();
        assert_eq!(uids.len(), 1, "{child} was created once");
        let pods = cluster
            .history(Kind::Pod)
            .into_iter()
            .filter(|r| r.object["metadata"]["labels"]["job-name"] == child)
            .map(|r| r.uid().to_string())
            .collect::<std::collections::BTreeSet<_>>();
        assert_eq!(pods.len(), 1, "{child}'s work was not restarted");
    }
    let job = cluster.object(Kind::Job, NS, "pi-manual").unwrap();
    assert!(
        job["status"]["failed"].is_null(),
        "the eviction is no failure: {}",
        job["status"]
    );
    let second_pod = last_version(&cluster, &second);
    assert_eq!(exit_code(&second_pod), Some(0));
}

#[test]
fn through_the_trigger_an_evicted_parent_is_one_uninterrupted_herd() {
    let cluster = cluster_with_cronjob(|y| y);
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_TRIGGER", "cronjob/jobherd-pi")
        .env("JOBHERD_TRIGGER_NAME", "build-7")
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_ENV", r#"{"FAKE_HOLD":"work"}"#)
        .env("JOBHERD_PARAMS", "[{},{},{}]")
        .timeout(secs(120))
        .spawn();
    h.wait_for_stdout("build-7-1 running", LONG);
    let first = pod_name(&parent_pods(&cluster, "build-7")[0]);
    assert!(cluster.evict(NS, &first));
    h.wait_for_stdout("the parent was retried", LONG);
    h.wait_for_stdout("build-7-1 adopted", LONG);
    cluster.release("work");
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("jobherd moving"), "{out}");
    assert!(
        out.stdout
            .contains("jobherd succeeded: 3 succeeded of 3 children"),
        "{out}"
    );
    assert_eq!(parent_requests(&cluster, &["create"]), 3, "{out}");
}

/// Runs a held herd, ends jobherd's first pod by `end`, and returns what that pod logged by the
/// time it stopped the run (it exits 143).
fn stopped_by(cluster: &FakeCluster, parent: &str, end: impl FnOnce(&FakeCluster, &str)) -> String {
    start_parent(cluster, parent, HELD);
    assert!(cluster.wait_until(LONG, |c| running_children(c, parent) == 2));
    let first = wait_for_first_log(cluster, parent, &format!("{parent}-1 running"));
    end(cluster, &first);
    let (_, said) = first_log_with(cluster, parent, "jobherd stopping: terminated (SIGTERM)");
    assert!(
        cluster.wait_until(LONG, |c| c.pod(NS, &first).is_none()),
        "the first pod ended"
    );
    let pod = last_version(cluster, &first);
    assert_eq!(exit_code(&pod), Some(143), "{pod}");
    assert!(!said.contains("jobherd moving"), "{said}");
    said
}

/// The children's Jobs jobherd deleted itself (by name or by label), as recorded requests.
fn deleted_children(cluster: &FakeCluster) -> usize {
    parent_requests(cluster, &["delete", "deletecollection"])
}

#[test]
fn a_plain_delete_of_the_parents_pod_still_deletes_the_active_children() {
    let cluster = cluster_with_cronjob(|y| y);
    stopped_by(&cluster, "plain", |c, pod| {
        assert!(c.delete(Kind::Pod, NS, pod, Propagation::Background));
    });
    assert!(deleted_children(&cluster) > 0);
}

#[test]
fn a_deleted_parent_job_still_deletes_the_active_children() {
    let cluster = cluster_with_cronjob(|y| y);
    // Foreground: the Job stays, being deleted, until its pod is gone; the pod gets SIGTERM.
    stopped_by(&cluster, "gone", |c, _| {
        assert!(c.delete(Kind::Job, NS, "gone", Propagation::Foreground));
    });
    assert!(deleted_children(&cluster) > 0);
}

#[test]
fn a_parent_past_its_deadline_still_deletes_the_active_children() {
    let cluster = cluster_with_cronjob(|y| {
        y.replace("activeDeadlineSeconds: 1800", "activeDeadlineSeconds: 10")
    });
    // Nothing to do but wait: the Job controller ends the pod at the deadline.
    stopped_by(&cluster, "late", |_, _| {});
    assert!(cluster.wait_until(LONG, |c| job_finished(c, "late", "Failed")));
    assert!(deleted_children(&cluster) > 0);
}

#[test]
fn an_eviction_of_a_parent_that_will_not_be_retried_deletes_the_active_children() {
    // Without the Ignore rule an eviction counts against backoffLimit, which is 0 here.
    let cluster = cluster_with_cronjob(|y| {
        y.replace("backoffLimit: 2", "backoffLimit: 0").replace(
            "          - action: Ignore\n            onPodConditions:\n              - type: DisruptionTarget\n                status: \"True\"\n",
            "",
        )
    });
    let said = stopped_by(&cluster, "last", |c, pod| assert!(c.evict(NS, pod)));
    assert!(
        said.contains(
            "jobherd: its pod is being disrupted (EvictionByEvictionAPI), but its parent Job has reached its backoffLimit"
        ),
        "{said}"
    );
    assert!(deleted_children(&cluster) > 0);
}

#[test]
fn a_sigterm_that_cannot_be_read_back_stops_the_run() {
    // RBAC refuses the read of jobherd's own pod: jobherd cannot tell a drain from a delete,
    // and a run that really ends must not leave its children behind.
    let cluster = cluster_with_cronjob(|y| y);
    let said = stopped_by(&cluster, "blind", |c, pod| {
        c.forbid("get", "pods");
        assert!(c.evict(NS, pod));
    });
    assert!(
        said.contains("could not read its own pod")
            && said.contains("stopping the run as if it ended"),
        "{said}"
    );
    assert!(deleted_children(&cluster) > 0);
}

#[test]
fn a_sigterm_while_the_api_is_down_exits_within_the_grace_period() {
    // The eviction comes while jobherd cannot reach the API: it says so, tries to stop the
    // run, and exits 143; the children, which no delete reached, are adopted by the next pod.
    let cluster = cluster_with_cronjob(|y| y);
    start_parent(&cluster, "cut", HELD);
    assert!(cluster.wait_until(LONG, |c| running_children(c, "cut") == 2));
    let first = wait_for_first_log(&cluster, "cut", "cut-1 running");
    cluster.stop();
    assert!(cluster.evict(NS, &first));
    let said = wait_for_first_log(
        &cluster,
        "cut",
        "could not read its pod and parent Job within 5s",
    );
    assert_eq!(said, first);
    assert!(cluster.wait_until(LONG, |c| c.pod(NS, &first).is_none()));
    assert_eq!(exit_code(&last_version(&cluster, &first)), Some(143));
    cluster.restart();
    assert!(cluster.wait_until(LONG, |c| parent_pods(c, "cut").len() == 2));
    let second = pod_name(&parent_pods(&cluster, "cut")[1]);
    assert!(cluster.wait_until(LONG, |c| log(c, &second).contains("cut-1 adopted")));
    cluster.release("work");
    assert!(cluster.wait_until(LONG, |c| job_finished(c, "cut", "Complete")));
}
