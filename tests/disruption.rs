//! Disruption (SPEC §9): a SIGTERM that only moves jobherd's pod (an eviction, a preemption)
//! leaves every child to the next attempt; every other SIGTERM still stops the run; and
//! `JOBHERD_TIMEOUT` is the deadline of the run across its attempts. The parent is the shipped
//! `cronjob.yaml`'s Job, run by the fake cluster's kubelet as the real binary, as `kubectl
//! create job --from=cronjob/jobherd-pi` would start it (`support::herd`).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use support::herd::{
    Children, PARENT_ACCOUNT, attempts, cluster_with_cronjob, deleted_by, env_of, parent_pid,
    records, start_parent, wait_for_end, wait_for_log, wait_until_finished,
};
use support::{FakeCluster, Kind, Propagation, secs};

const NS: &str = "default";
const LONG: Duration = Duration::from_secs(60);

fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Children held running until `release("work")`, three of them, two at a time.
fn held() -> Vec<(String, String)> {
    vars(&[
        ("JOBHERD_IMAGE", "busybox"),
        ("JOBHERD_ENV", r#"{"FAKE_HOLD":"work"}"#),
        ("JOBHERD_PARAMS", "[{},{},{}]"),
        ("JOBHERD_PARALLELISM", "2"),
    ])
}

fn names(parent: &str, suffixes: &[&str]) -> Vec<String> {
    let set: BTreeSet<String> = suffixes.iter().map(|s| format!("{parent}-{s}")).collect();
    set.into_iter().collect()
}

/// SIGKILL of the parent's process, as the OOM killer or a lost node: no SIGTERM.
fn kill_parent(cluster: &FakeCluster) {
    // SAFETY: kill(2) on a process the fake cluster started; no memory is touched.
    let rc = unsafe { libc::kill(parent_pid(cluster) as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0);
}

/// The pods of a child Job, over the history (by uid).
fn pods_of(cluster: &FakeCluster, job: &str) -> BTreeSet<String> {
    cluster
        .history(Kind::Pod)
        .into_iter()
        .filter(|r| r.object["metadata"]["labels"]["job-name"] == job)
        .map(|r| r.uid().to_string())
        .collect()
}

#[test]
fn an_evicted_parent_leaves_its_children_and_the_next_attempt_adopts_them() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let mut env = held();
    env.push(("JOBHERD_CLEANUP".into(), "succeeded".into()));
    start_parent(&cluster, "pi-manual", &env);
    wait_for_log(&cluster, "pi-manual", 0, "pi-manual-0 running");
    wait_for_log(&cluster, "pi-manual", 0, "pi-manual-1 running");

    assert!(cluster.evict(NS, &attempts(&cluster, "pi-manual")[0].pod));
    let first = wait_for_end(&cluster, "pi-manual", 0);
    assert_eq!(first.exit, Some(143), "{}", first.log);
    assert!(
        first
            .message
            .contains("its pod was disrupted (EvictionByEvictionAPI); 2 active children left"),
        "the termination message: {}",
        first.message
    );
    wait_for_log(&cluster, "pi-manual", 1, "pi-manual-1 adopted");
    cluster.release("work");
    assert_eq!(wait_until_finished(&cluster, "pi-manual"), "Complete");

    // Each child Job was created once; the first attempt deleted none (the second's cleanup
    // of succeeded children did, at the end), and none's work was restarted.
    let all = names("pi-manual", &["0", "1", "2"]);
    assert_eq!(Children::of(&cluster).created, all);
    assert_eq!(deleted_by(&cluster, PARENT_ACCOUNT), all);
    assert!(!first.log.contains("deleting"), "{}", first.log);
    let creates = cluster
        .requests()
        .iter()
        .filter(|r| r.user == PARENT_ACCOUNT && r.verb == "create" && r.resource == "jobs")
        .count();
    assert_eq!(creates, 3);
    for child in &all[..2] {
        assert_eq!(pods_of(&cluster, child).len(), 1, "{child}'s work ran once");
    }
    let job = cluster.object(Kind::Job, NS, "pi-manual").unwrap();
    assert!(
        job["status"]["failed"].is_null(),
        "the eviction is no failure: {}",
        job["status"]
    );
    let attempts = attempts(&cluster, "pi-manual");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1].exit, Some(0), "{}", attempts[1].log);
}

#[test]
fn through_the_trigger_an_evicted_parent_is_one_uninterrupted_herd() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
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
    let first = attempts(&cluster, "build-7")[0].pod.clone();
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
    assert_eq!(
        Children::of(&cluster).created,
        names("build-7", &["0", "1", "2"]),
        "{out}"
    );
}

/// Runs a held herd, ends jobherd's first pod by `end`, and returns what that pod printed by
/// the time it stopped the run; it exited 143 itself, having deleted the two running children
/// by name (the third was never created), and the Job controller started no other pod.
fn stopped_by(cluster: &FakeCluster, parent: &str, end: impl FnOnce(&FakeCluster, &str)) -> String {
    start_parent(cluster, parent, &held());
    wait_for_log(cluster, parent, 0, &format!("{parent}-0 running"));
    wait_for_log(cluster, parent, 0, &format!("{parent}-1 running"));
    end(cluster, &attempts(cluster, parent)[0].pod);
    let first = wait_for_end(cluster, parent, 0);
    assert_eq!(first.exit, Some(143), "{}", first.log);
    assert!(
        first.log.contains("jobherd stopping: terminated (SIGTERM)"),
        "{}",
        first.log
    );
    assert!(!first.log.contains("jobherd moving"), "{}", first.log);
    let running = names(parent, &["0", "1"]);
    assert_eq!(
        deleted_by(cluster, PARENT_ACCOUNT),
        running,
        "{}",
        first.log
    );
    assert_eq!(Children::of(cluster).created, running);
    for child in &running {
        let line = format!("{child} cancelled: Cancelled (terminated (SIGTERM))");
        assert!(first.log.contains(&line), "{line}: {}", first.log);
    }
    first.log
}

/// The CronJob without its `Ignore` rule for disruptions, and `backoffLimit: 0`.
fn not_retried(y: String) -> String {
    y.replace("backoffLimit: 2", "backoffLimit: 0").replace(
        "          - action: Ignore\n            onPodConditions:\n              - type: DisruptionTarget\n                status: \"True\"\n",
        "",
    )
}

#[test]
fn a_plain_delete_of_the_parents_pod_still_deletes_the_active_children() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| {
        y.replace("backoffLimit: 2", "backoffLimit: 0")
    });
    stopped_by(&cluster, "plain", |c, pod| {
        assert!(c.delete(Kind::Pod, NS, pod, Propagation::Background));
    });
    assert_eq!(wait_until_finished(&cluster, "plain"), "Failed");
    assert_eq!(attempts(&cluster, "plain").len(), 1);
}

#[test]
fn a_deleted_parent_job_still_deletes_the_active_children() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    // Foreground: the Job stays, being deleted, until its pod is gone; the pod gets SIGTERM.
    stopped_by(&cluster, "gone", |c, _| {
        assert!(c.delete(Kind::Job, NS, "gone", Propagation::Foreground));
    });
}

#[test]
fn a_parent_past_its_deadline_still_deletes_the_active_children() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| {
        y.replace("activeDeadlineSeconds: 1800", "activeDeadlineSeconds: 10")
    });
    // Nothing to do but wait: the Job controller ends the pod at the deadline.
    stopped_by(&cluster, "late", |_, _| {});
    assert_eq!(wait_until_finished(&cluster, "late"), "Failed");
}

#[test]
fn an_eviction_of_a_parent_that_will_not_be_retried_deletes_the_active_children() {
    // Without the Ignore rule an eviction counts against backoffLimit, which is 0 here.
    let cluster = cluster_with_cronjob(FakeCluster::builder(), not_retried);
    let said = stopped_by(&cluster, "last", |c, pod| assert!(c.evict(NS, pod)));
    assert!(
        said.contains(
            "jobherd: its pod is being disrupted (EvictionByEvictionAPI), but its parent Job has reached its backoffLimit"
        ),
        "{said}"
    );
}

#[test]
fn a_sigterm_that_cannot_be_read_back_stops_the_run() {
    // RBAC refuses the read of jobherd's own pod: jobherd cannot tell a drain from a delete,
    // and a run that really ends must not leave its children behind.
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let said = stopped_by(&cluster, "blind", |c, pod| {
        c.forbid("get", "pods");
        assert!(c.evict(NS, pod));
    });
    assert!(
        said.contains("could not read its own pod")
            && said.contains("stopping the run as if it ended"),
        "{said}"
    );
}

#[test]
fn a_sigterm_while_the_api_is_down_ends_the_attempt_with_its_summary_and_the_next_adopts() {
    // The eviction comes while jobherd cannot reach the API: it says so, tries to stop the
    // run, and exits 143 itself (the kubelet's SIGKILL at the end of the grace period would
    // have made it 137) with its summary printed and in its termination message. No delete
    // reached the children: the next attempt adopts them.
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    start_parent(&cluster, "cut", &held());
    wait_for_log(&cluster, "cut", 0, "cut-1 running");
    cluster.stop();
    assert!(cluster.evict(NS, &attempts(&cluster, "cut")[0].pod));
    wait_for_log(
        &cluster,
        "cut",
        0,
        "could not read its pod and parent Job within 5s",
    );
    let first = wait_for_end(&cluster, "cut", 0);
    assert_eq!(first.exit, Some(143), "{}", first.log);
    assert!(
        first.message.starts_with("jobherd interrupted: "),
        "{}",
        first.message
    );
    assert!(
        first.log.lines().any(|l| l == first.message.trim()),
        "the summary printed: {}",
        first.log
    );
    cluster.restart();
    wait_for_log(&cluster, "cut", 1, "cut-1 adopted");
    cluster.release("work");
    assert_eq!(wait_until_finished(&cluster, "cut"), "Complete");
    assert_eq!(
        Children::of(&cluster).created,
        names("cut", &["0", "1", "2"])
    );
}

#[test]
fn a_disruption_check_tries_again_on_errors_that_pass_and_the_run_still_moves() {
    // Two 500s on the read of its own pod (kube's client retries 429, 503 and 504 by itself,
    // not these): one try would have ended the run and deleted the children's work.
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    start_parent(&cluster, "flaky", &held());
    wait_for_log(&cluster, "flaky", 0, "flaky-1 running");
    cluster.fail_next(2, 500, None, Some(("get", "pods")));
    assert!(cluster.evict(NS, &attempts(&cluster, "flaky")[0].pod));
    let first = wait_for_end(&cluster, "flaky", 0);
    assert_eq!(first.exit, Some(143), "{}", first.log);
    assert!(first.log.contains("jobherd moving"), "{}", first.log);
    let failed_reads = cluster
        .requests()
        .iter()
        .filter(|r| r.user == PARENT_ACCOUNT && r.verb == "get" && r.status == 500)
        .count();
    assert_eq!(failed_reads, 2);
    wait_for_log(&cluster, "flaky", 1, "flaky-1 adopted");
    cluster.release("work");
    assert_eq!(wait_until_finished(&cluster, "flaky"), "Complete");
    assert!(deleted_by(&cluster, PARENT_ACCOUNT).is_empty());
    assert_eq!(
        Children::of(&cluster).created,
        names("flaky", &["0", "1", "2"])
    );
}

#[test]
fn nothing_is_created_while_a_sigterm_is_looked_into() {
    // The read of its own pod takes 3s; meanwhile a child ends and frees a slot. The run
    // moves: the third child is the next attempt's to create.
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let env = vars(&[
        ("JOBHERD_IMAGE", "busybox"),
        (
            "JOBHERD_PARAMS",
            r#"[{"FAKE_HOLD":"first"},{"FAKE_HOLD":"work"},{"FAKE_HOLD":"work"}]"#,
        ),
        ("JOBHERD_PARALLELISM", "2"),
    ]);
    start_parent(&cluster, "pause", &env);
    wait_for_log(&cluster, "pause", 0, "pause-0 running");
    wait_for_log(&cluster, "pause", 0, "pause-1 running");
    cluster.stall_only(secs(3), 1, ("get", "pods"));
    assert!(cluster.evict(NS, &attempts(&cluster, "pause")[0].pod));
    // The child ends while the check's read is held, not before the SIGTERM has come.
    assert!(cluster.wait_until(secs(60), |c| c.stalls_left() == 0));
    cluster.release("first");
    let first = wait_for_end(&cluster, "pause", 0);
    assert!(first.log.contains("jobherd moving"), "{}", first.log);
    assert!(!first.log.contains("pause-2 created"), "{}", first.log);
    wait_for_log(&cluster, "pause", 1, "pause-2 created");
    cluster.release("work");
    assert_eq!(wait_until_finished(&cluster, "pause"), "Complete");
    assert_eq!(
        Children::of(&cluster).created,
        names("pause", &["0", "1", "2"])
    );
}

/// A plan whose `work` step fans out over `list`'s result, held, and a `merge` after it.
fn fan_out_over_a_result(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let plan = json!({"steps": [
        {"name": "list", "env": {"FAKE_MESSAGE": r#"["x","y","z"]"#}},
        {"name": "work", "depends_on": ["list"], "params_from": "list",
         "env": {"FAKE_HOLD": "work", "FAKE_MESSAGE": "did ${JOBHERD_ITEM}"}},
        {"name": "merge", "depends_on": ["work"]},
    ]});
    let mut env = vars(&[("JOBHERD_IMAGE", "busybox")]);
    env.push(("JOBHERD_PLAN".into(), plan.to_string()));
    env.extend(vars(extra));
    env
}

#[test]
fn an_eviction_while_a_result_is_read_moves_the_run_before_its_fan_out_is_created() {
    // The parent cannot watch pods: `list`'s result is read by listing its pods, which hangs
    // (the API's 10s, then a try that answers). The eviction comes meanwhile: the run moves
    // with the fan-out not laid out, and the next attempt lays it out and creates it.
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    cluster.forbid("watch", "pods");
    start_parent(&cluster, "read", &fan_out_over_a_result(&[]));
    wait_for_log(&cluster, "read", 0, "read-list succeeded");
    cluster.stall_only(secs(60), 1, ("list", "pods"));
    assert!(cluster.evict(NS, &attempts(&cluster, "read")[0].pod));
    let first = wait_for_end(&cluster, "read", 0);
    assert_eq!(first.exit, Some(143), "{}", first.log);
    assert!(first.log.contains("jobherd moving"), "{}", first.log);
    assert!(!first.log.contains("read-work-0"), "{}", first.log);
    wait_for_log(&cluster, "read", 1, "read-work-2 running");
    cluster.release("work");
    assert_eq!(wait_until_finished(&cluster, "read"), "Complete");
    assert_eq!(
        Children::of(&cluster).created,
        names("read", &["list", "merge", "work-0", "work-1", "work-2"])
    );
    assert_eq!(
        env_of(&cluster, "read-merge")["JOBHERD_RESULT_WORK"],
        r#"["did x","did y","did z"]"#
    );
}

#[test]
fn a_move_with_less_time_left_than_the_restart_takes_ends_the_run_instead() {
    // JOBHERD_TIMEOUT=9s: whenever the eviction comes, less than the Job controller's 10s
    // back-off is left (real time here: time scale 1). Moving would be futile: the run ends,
    // deleting its children; the next pod, 10s later, starts past the deadline and ends at once.
    let cluster = cluster_with_cronjob(FakeCluster::builder().time_scale(1.0), |y| y);
    let mut env = held();
    env.push(("JOBHERD_TIMEOUT".into(), "9s".into()));
    start_parent(&cluster, "futile", &env);
    wait_for_log(&cluster, "futile", 0, "futile-1 running");
    assert!(cluster.evict(NS, &attempts(&cluster, "futile")[0].pod));
    let first = wait_for_end(&cluster, "futile", 0);
    assert_eq!(first.exit, Some(143), "{}", first.log);
    assert!(
        first.log.contains("jobherd: its pod is being disrupted (EvictionByEvictionAPI), but JOBHERD_TIMEOUT passes in")
            && first.log.contains("before the next attempt could start (about 10s): stopping the run instead of moving it"),
        "{}",
        first.log
    );
    assert!(!first.log.contains("jobherd moving"), "{}", first.log);
    assert_eq!(
        deleted_by(&cluster, PARENT_ACCOUNT),
        names("futile", &["0", "1"])
    );
    let second = wait_for_end(&cluster, "futile", 1);
    assert_eq!(second.exit, Some(3), "{}", second.log);
    assert_eq!(wait_until_finished(&cluster, "futile"), "Failed");
    assert_eq!(Children::of(&cluster).created, names("futile", &["0", "1"]));
}

#[test]
fn a_move_with_less_time_left_than_the_parents_active_deadline_allows_ends_the_run_instead() {
    // activeDeadlineSeconds: 9, so the next pod (after the Job controller's 10s back-off, in
    // real time here) would start past the Job's deadline, wherever the eviction comes: the
    // Job fails at its deadline before that, and no other pod runs.
    let cluster = cluster_with_cronjob(FakeCluster::builder().time_scale(1.0), |y| {
        y.replace("activeDeadlineSeconds: 1800", "activeDeadlineSeconds: 9")
    });
    start_parent(&cluster, "ads", &held());
    wait_for_log(&cluster, "ads", 0, "ads-1 running");
    assert!(cluster.evict(NS, &attempts(&cluster, "ads")[0].pod));
    let first = wait_for_end(&cluster, "ads", 0);
    assert_eq!(first.exit, Some(143), "{}", first.log);
    assert!(
        first.log.contains("jobherd: its pod is being disrupted (EvictionByEvictionAPI), but its parent Job's activeDeadlineSeconds passes in")
            && first.log.contains("moving would be futile"),
        "{}",
        first.log
    );
    assert_eq!(
        deleted_by(&cluster, PARENT_ACCOUNT),
        names("ads", &["0", "1"])
    );
    assert_eq!(wait_until_finished(&cluster, "ads"), "Failed");
    assert_eq!(attempts(&cluster, "ads").len(), 1);
    assert_eq!(Children::of(&cluster).created, names("ads", &["0", "1"]));
}

#[test]
fn the_next_attempt_of_a_moved_run_past_its_deadline_ends_at_once_deleting_what_it_adopted() {
    // JOBHERD_TIMEOUT counts from the parent Job's creation, which is 2h ago by the time the
    // next pod starts: it does not get the hour again.
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let mut env = held();
    env.push(("JOBHERD_TIMEOUT".into(), "1h".into()));
    start_parent(&cluster, "again", &env);
    wait_for_log(&cluster, "again", 0, "again-1 running");
    assert!(cluster.backdate(Kind::Job, NS, "again", Duration::from_secs(7200)));
    assert!(cluster.evict(NS, &attempts(&cluster, "again")[0].pod));
    let first = wait_for_end(&cluster, "again", 0);
    assert!(first.log.contains("jobherd moving"), "{}", first.log);
    let second = wait_for_end(&cluster, "again", 1);
    assert_eq!(second.exit, Some(3), "{}", second.log);
    for child in ["again-0", "again-1"] {
        let line = format!("{child} cancelled: Cancelled (JOBHERD_TIMEOUT passed)");
        assert!(second.log.contains(&line), "{line}: {}", second.log);
    }
    assert_eq!(
        deleted_by(&cluster, PARENT_ACCOUNT),
        names("again", &["0", "1"])
    );
    assert_eq!(Children::of(&cluster).created, names("again", &["0", "1"]));
    assert_eq!(wait_until_finished(&cluster, "again"), "Failed");
    let record = records(&cluster, "again");
    assert_eq!(record.last().unwrap()["exit_code"], 3);
}

#[test]
fn a_restarted_parent_past_its_deadline_deletes_a_fan_out_it_adopts_before_reading_its_source() {
    // The next attempt starts past JOBHERD_TIMEOUT and stops before its first list of Jobs
    // (which takes a second); its pod watch's first list takes longer, so when the Jobs are
    // listed `list`'s result is not known yet and `work` is not laid out. Its Jobs exist all
    // the same, and are deleted once it is.
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    start_parent(
        &cluster,
        "early",
        &fan_out_over_a_result(&[("JOBHERD_TIMEOUT", "1h")]),
    );
    wait_for_log(&cluster, "early", 0, "early-work-2 running");
    cluster.stall_only(secs(1), 2, ("list", "jobs"));
    cluster.stall_only(secs(5), 1, ("list", "pods"));
    assert!(cluster.backdate(Kind::Job, NS, "early", Duration::from_secs(7200)));
    kill_parent(&cluster);
    let second = wait_for_end(&cluster, "early", 1);
    assert_eq!(second.exit, Some(3), "{}", second.log);
    let work = names("early", &["work-0", "work-1", "work-2"]);
    assert_eq!(deleted_by(&cluster, PARENT_ACCOUNT), work, "{}", second.log);
    for child in &work {
        let line = format!("{child} cancelled: Cancelled (JOBHERD_TIMEOUT passed)");
        assert!(second.log.contains(&line), "{line}: {}", second.log);
    }
    assert_eq!(
        Children::of(&cluster).created,
        names("early", &["list", "work-0", "work-1", "work-2"])
    );
}

#[test]
fn the_next_attempts_resume_from_the_record_when_a_results_pod_and_job_are_gone() {
    // `list` succeeded and its result was read; then its Job and pod went (a TTL, a drain).
    // The run moves, and the next attempt is SIGKILLed: the third starts from the first's
    // record, does not create `list` again, and `use` gets its result.
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let plan = json!({"steps": [
        {"name": "list", "env": {"FAKE_MESSAGE": "v42"}},
        {"name": "gate", "depends_on": ["list"], "env": {"FAKE_HOLD": "gate"}},
        {"name": "use", "depends_on": ["list", "gate"],
         "env": {"FAKE_MESSAGE": "used ${JOBHERD_RESULT_LIST}"}},
    ]});
    let mut env = vars(&[("JOBHERD_IMAGE", "busybox")]);
    env.push(("JOBHERD_PLAN".into(), plan.to_string()));
    start_parent(&cluster, "rec", &env);
    // gate starts once list's result is read.
    wait_for_log(&cluster, "rec", 0, "rec-gate running");
    assert!(cluster.delete(Kind::Job, NS, "rec-list", Propagation::Background));
    assert!(cluster.wait_until(LONG, |c| pods_of_now(c, "rec-list") == 0));
    assert!(cluster.evict(NS, &attempts(&cluster, "rec")[0].pod));
    let first = wait_for_end(&cluster, "rec", 0);
    assert!(first.log.contains("jobherd moving"), "{}", first.log);
    let record = records(&cluster, "rec")[0].clone();
    assert_eq!(record["results"]["0"], json!(["v42"]), "{record}");

    wait_for_log(&cluster, "rec", 1, "rec-gate adopted");
    kill_parent(&cluster);
    let third = wait_for_log(&cluster, "rec", 2, "rec-gate adopted");
    assert!(
        third.contains("resuming from the record of an earlier attempt of this run"),
        "{third}"
    );
    cluster.release("gate");
    assert_eq!(wait_until_finished(&cluster, "rec"), "Complete");
    let exits: Vec<Option<i64>> = attempts(&cluster, "rec").iter().map(|a| a.exit).collect();
    assert_eq!(exits, [Some(143), Some(137), Some(0)]);
    assert_eq!(
        Children::of(&cluster).created,
        names("rec", &["gate", "list", "use"]),
        "list was not created again"
    );
    assert_eq!(env_of(&cluster, "rec-use")["JOBHERD_RESULT_LIST"], "v42");
    assert_eq!(support::herd::message_of(&cluster, "rec-use"), "used v42");
}

/// A child's pods that exist now.
fn pods_of_now(cluster: &FakeCluster, job: &str) -> usize {
    cluster.count(Kind::Pod, NS, |p| {
        p["metadata"]["labels"]["job-name"] == job
    })
}

#[test]
fn a_restarted_parent_adopts_a_large_fan_out_over_a_result_with_no_create_or_get_per_child() {
    // 40 children of a params_from step, held; the parent is SIGKILLed and restarted. The
    // Jobs it lists before it can lay the step out are kept and applied at lay-out: no
    // create answered AlreadyExists, no GET of a child, and no crash.
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let items: Vec<String> = (0..40).map(|i| format!("i{i}")).collect();
    let plan = json!({"steps": [
        {"name": "list", "env": {"FAKE_MESSAGE": serde_json::to_string(&items).unwrap()}},
        {"name": "work", "depends_on": ["list"], "params_from": "list",
         "env": {"FAKE_HOLD": "work", "FAKE_MESSAGE": "${JOBHERD_ITEM}"}},
        {"name": "merge", "depends_on": ["work"]},
    ]});
    let mut env = vars(&[
        ("JOBHERD_IMAGE", "busybox"),
        ("JOBHERD_QPS", "200"),
        ("JOBHERD_BURST", "200"),
    ]);
    env.push(("JOBHERD_PLAN".into(), plan.to_string()));
    start_parent(&cluster, "big", &env);
    let all_running = |c: &FakeCluster| {
        c.count(Kind::Pod, NS, |p| {
            p["metadata"]["labels"]["job-name"]
                .as_str()
                .is_some_and(|j| j.starts_with("big-work-"))
                && p["status"]["phase"] == "Running"
        }) == 40
    };
    assert!(cluster.wait_until(LONG, all_running));
    kill_parent(&cluster);
    // Every child adopted while held (in whatever order the lists give them), then released.
    let adopted = |log: &str| {
        log.matches(" adopted (created by an earlier attempt")
            .count()
    };
    let all_adopted = |c: &FakeCluster| {
        attempts(c, "big")
            .get(1)
            .is_some_and(|a| adopted(&a.log) >= 41)
    };
    assert!(cluster.wait_until(LONG, all_adopted));
    cluster.release("work");
    assert_eq!(wait_until_finished(&cluster, "big"), "Complete");
    let second = wait_for_end(&cluster, "big", 1);
    assert_eq!(second.exit, Some(0), "{}", second.log);
    assert_eq!(adopted(&second.log), 41, "list and the 40: {}", second.log);
    let requests = cluster.requests();
    let by_parent = |verb: &str, status: u16| {
        requests
            .iter()
            .filter(|r| {
                r.user == PARENT_ACCOUNT && r.resource == "jobs" && r.subresource.is_empty()
            })
            .filter(|r| r.verb == verb && r.status == status && r.name != "big")
            .count()
    };
    assert_eq!(by_parent("create", 409), 0, "no create of an adopted child");
    assert_eq!(by_parent("get", 200), 0, "no child looked up one by one");
    assert_eq!(by_parent("create", 201), 42, "list, the 40 and merge");
    assert_eq!(Children::of(&cluster).created.len(), 42);
    assert_eq!(
        env_of(&cluster, "big-merge")["JOBHERD_RESULT_WORK"],
        serde_json::to_string(&items).unwrap()
    );
}

#[test]
fn an_evicted_parent_leaves_its_pack_and_the_next_attempt_adopts_it() {
    let cluster = cluster_with_cronjob(FakeCluster::builder(), |y| y);
    let env = vars(&[
        ("JOBHERD_IMAGE", "busybox"),
        ("JOBHERD_ENV", r#"{"FAKE_HOLD":"work"}"#),
        ("JOBHERD_COUNT", "3"),
        ("JOBHERD_PACK", "indexed"),
    ]);
    start_parent(&cluster, "packed", &env);
    for i in 0..3 {
        wait_for_log(&cluster, "packed", 0, &format!("packed-{i} running"));
    }
    assert!(cluster.evict(NS, &attempts(&cluster, "packed")[0].pod));
    let first = wait_for_end(&cluster, "packed", 0);
    assert_eq!(first.exit, Some(143), "{}", first.log);
    assert!(first.log.contains("jobherd moving"), "{}", first.log);
    wait_for_log(&cluster, "packed", 1, "packed-2 adopted");
    cluster.release("work");
    assert_eq!(wait_until_finished(&cluster, "packed"), "Complete");
    let second = wait_for_end(&cluster, "packed", 1);
    assert_eq!(second.exit, Some(0), "{}", second.log);
    // One pack, created once and deleted by no one before it ended; each child's work ran once.
    let requests = cluster.requests();
    let parent_jobs = |verb: &str| {
        requests
            .iter()
            .filter(|r| r.user == PARENT_ACCOUNT && r.resource == "jobs")
            .filter(|r| r.subresource.is_empty() && r.verb == verb && r.status < 300)
            .count()
    };
    assert_eq!(parent_jobs("create"), 1, "{}", second.log);
    assert!(!first.log.contains("deleting"), "{}", first.log);
    let runs = cluster.count(Kind::Pod, NS, |p| {
        p["metadata"]["labels"]["job-name"]
            .as_str()
            .is_some_and(|j| j.starts_with("packed-pack"))
    });
    assert_eq!(runs, 3, "one pod for each child: {}", second.log);
}
