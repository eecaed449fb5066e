//! Results between steps (SPEC §8) end to end: results read from the children's termination
//! messages, handed to the steps after them as `JOBHERD_RESULT_<STEP>`, fanned out over
//! (`params_from`), kept for a retry; and steps that run on failure or always (`when`). The real
//! binary against the fake cluster, whose containers write `FAKE_MESSAGE` to their
//! termination-message file (`${NAME}` expanded from their environment).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{FakeCluster, Kind, Output, Propagation, secs};

const NS: &str = "default";
const LONG: Duration = Duration::from_secs(60);

/// The env of a created child Job's container, as a JSON object.
fn env_of(cluster: &FakeCluster, job: &str) -> Value {
    let job = cluster
        .object(Kind::Job, NS, job)
        .unwrap_or_else(|| panic!("no Job {job}"));
    let mut env = serde_json::Map::new();
    for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
    {
        env.insert(e["name"].as_str().unwrap().into(), e["value"].clone());
    }
    Value::Object(env)
}

/// A step's result as its dependant `job` got it, parsed.
fn given(cluster: &FakeCluster, job: &str, var: &str) -> Value {
    let env = env_of(cluster, job);
    let text = env[var]
        .as_str()
        .unwrap_or_else(|| panic!("{job} has no {var}: {env}"));
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()))
}

/// jobherd with a plan, children named `etl-...`.
fn with_plan(cluster: &FakeCluster, plan: Value) -> support::Jobherd {
    cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "etl")
        .env("JOBHERD_BACKOFF_LIMIT", "0")
        .env("JOBHERD_PLAN", plan.to_string())
}

/// The env that makes a fake child write `message` as its result.
fn writes(message: &str) -> Value {
    json!({ "FAKE_MESSAGE": message })
}

/// The line of `child`'s that contains `what`.
fn line<'a>(out: &'a Output, child: &str, what: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| l.starts_with(&format!("{child} ")) && l.contains(what))
        .unwrap_or_else(|| panic!("no line `{child} ... {what}`: {out}"))
}

/// The ETL of docs/plans.md: list the partitions, process each, merge.
fn etl(list_result: &str) -> Value {
    json!({"steps": [
        {"name": "list", "env": writes(list_result)},
        {"name": "process", "depends_on": ["list"], "params_from": "list",
         "env": writes(r#"{"partition":"${JOBHERD_ITEM}","rows":${JOBHERD_CHILD_INDEX}}"#)},
        {"name": "merge", "depends_on": ["process"]},
    ]})
}

#[test]
fn a_dynamic_fan_out_of_three_hands_every_result_to_the_merge() {
    let cluster = FakeCluster::start();
    let report = cluster.temp_dir().join("report.json");
    let out = with_plan(&cluster, etl(r#"["2026-12-01","2026-12-02","2026-12-03"]"#))
        .env("JOBHERD_REPORT_FILE", &report)
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        cluster.job_names(NS),
        [
            "etl-list",
            "etl-merge",
            "etl-process-0",
            "etl-process-1",
            "etl-process-2"
        ]
    );
    let p1 = env_of(&cluster, "etl-process-1");
    assert_eq!(p1["JOBHERD_ITEM"], "2026-12-02");
    assert_eq!(p1["JOBHERD_CHILD_INDEX"], "1");
    assert_eq!(p1["JOBHERD_CHILD_COUNT"], "3");
    assert!(
        p1.get("JOBHERD_RESULT_LIST").is_none(),
        "a child of a fan-out over a result gets its element, not the whole list: {p1}"
    );
    let merged = json!([
        {"partition": "2026-12-01", "rows": 0},
        {"partition": "2026-12-02", "rows": 1},
        {"partition": "2026-12-03", "rows": 2},
    ]);
    assert_eq!(
        given(&cluster, "etl-merge", "JOBHERD_RESULT_PROCESS"),
        merged
    );
    // list and merge are known at the start; process's children only once list's result is.
    let first = out.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("jobherd run ")
            && first.ends_with(
                ": 2 children, and those step process fans out to, in namespace default (no parent)"
            ),
        "{out}"
    );
    assert!(
        line(&out, "etl-process-2", "list").contains(r#"{"partition":"2026-12-03","rows":2}"#),
        "the table shows each child's output: {out}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(report["results"]["process"], merged);
    assert_eq!(report["results"]["list"][1], "2026-12-02");
    let names: Vec<&str> = report["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "etl-list",
            "etl-process-0",
            "etl-process-1",
            "etl-process-2",
            "etl-merge"
        ],
        "step by step"
    );
    assert_eq!(report["children"][3]["output"]["partition"], "2026-12-03");
}

#[test]
fn a_dynamic_fan_out_of_a_thousand_respects_parallelism_and_names() {
    let cluster = FakeCluster::builder().record_history(true).start();
    let items: Vec<u32> = (0..1000).collect();
    let list = serde_json::to_string(&items).unwrap();
    assert!(list.len() <= 4096, "a termination message holds 4 KiB");
    let plan = json!({"steps": [
        {"name": "list", "env": writes(&list)},
        {"name": "work", "depends_on": ["list"], "params_from": "list",
         "env": {"FAKE_RUN_MS": "10"}},
    ]});
    let out = with_plan(&cluster, plan)
        .env("JOBHERD_PARALLELISM", "50")
        .env("JOBHERD_QPS", "500")
        .env("JOBHERD_BURST", "500")
        .timeout(secs(300))
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains("jobherd succeeded: 1001 succeeded of 1001 children"),
        "{out}"
    );
    assert!(
        out.stdout.contains("progress: a counts line every 10s"),
        "past 100 children, counts lines: {out}"
    );
    let last = env_of(&cluster, "etl-work-999");
    assert_eq!(last["JOBHERD_ITEM"], "999");
    assert_eq!(last["JOBHERD_CHILD_COUNT"], "1000");
    let history = cluster.history(Kind::Job);
    // Active as jobherd counts it: from its create until its Job's outcome is known.
    let active = support::peak(&history, |j| {
        let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(j.clone()).unwrap();
        j["metadata"]["labels"]["jobherd.io/step"]
            .as_str()
            .is_some_and(|s| s.starts_with("work-"))
            && jobherd::conditions::outcome(&job).is_none()
    });
    assert_eq!(active, 50, "JOBHERD_PARALLELISM used, never passed");
}

#[test]
fn a_result_that_is_not_a_json_array_fails_the_step_with_bad_result() {
    let cluster = FakeCluster::start();
    let out = with_plan(&cluster, etl("partition-1 partition-2 partition-3")).run();
    assert_eq!(out.code, Some(1), "{out}");
    let failed = line(&out, "etl-process", "failed");
    assert!(
        failed.contains(
            r#"failed: BadResult (step process: the result of step list is not JSON: "partition-1 partition-2 partition-3")"#
        ),
        "{out}"
    );
    assert!(
        line(&out, "etl-merge", "skipped").contains("DependencyFailed"),
        "{out}"
    );
    assert_eq!(cluster.job_names(NS), ["etl-list"], "nothing else created");
}

#[test]
fn a_missing_result_fails_the_step_that_fans_out_over_it() {
    let cluster = FakeCluster::start();
    let plan = json!({"steps": [
        {"name": "list"},
        {"name": "process", "depends_on": ["list"], "params_from": "list"},
    ]});
    let out = with_plan(&cluster, plan).run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        line(&out, "etl-process", "failed").contains(
            "BadResult (step process: step list gave no result: its child wrote nothing to its termination message)"
        ),
        "{out}"
    );
}

#[test]
fn an_empty_list_is_a_step_with_no_children_that_succeeded() {
    let cluster = FakeCluster::start();
    let out = with_plan(&cluster, etl("[]")).run();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(cluster.job_names(NS), ["etl-list", "etl-merge"]);
    assert_eq!(
        given(&cluster, "etl-merge", "JOBHERD_RESULT_PROCESS"),
        json!([])
    );
    assert!(
        out.stdout
            .contains("jobherd succeeded: 2 succeeded of 2 children"),
        "{out}"
    );
}

#[test]
fn objects_in_a_list_become_the_childrens_variables() {
    let cluster = FakeCluster::start();
    let plan = json!({"steps": [
        {"name": "list", "env": writes(r#"[{"REGION":"eu","SHARDS":3},{"REGION":"us","SHARDS":5}]"#)},
        {"name": "fetch", "depends_on": ["list"], "params_from": "list"},
    ]});
    let out = with_plan(&cluster, plan).run();
    assert_eq!(out.code, Some(0), "{out}");
    let us = env_of(&cluster, "etl-fetch-1");
    assert_eq!(us["REGION"], "us");
    assert_eq!(us["SHARDS"], "5");
    assert!(us.get("JOBHERD_ITEM").is_none(), "{us}");
}

#[test]
fn a_nested_jobherd_parent_runs_as_a_child_of_a_dynamic_fan_out() {
    // Each region's child is a jobherd parent of its own: it gets JOBHERD_ITEM,
    // JOBHERD_RESULT_VERSION and JOBHERD_CHILD_*, which its typo guard lets through.
    let cluster = FakeCluster::start();
    let plan = json!({"steps": [
        {"name": "list", "env": writes(r#"["eu","us"]"#)},
        {"name": "version", "env": writes("v42")},
        {"name": "region", "depends_on": ["list", "version"], "params_from": "list",
         "image": "jobherd:0.1.0", "command": ["/jobherd"],
         "env": {"JOBHERD_IMAGE": "busybox", "JOBHERD_COUNT": "2",
                 "JOBHERD_NAME_PREFIX": "region-$(JOBHERD_ITEM)"}},
    ]});
    let out = with_plan(&cluster, plan).timeout(secs(120)).run();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        env_of(&cluster, "etl-region-1")["JOBHERD_RESULT_VERSION"],
        "v42"
    );
    let mut grandchildren: Vec<String> = cluster
        .job_names(NS)
        .into_iter()
        .filter(|n| n.starts_with("region-"))
        .collect();
    grandchildren.sort();
    assert_eq!(
        grandchildren,
        ["region-eu-0", "region-eu-1", "region-us-0", "region-us-1"]
    );
    // A nested jobherd's result is its summary, which it writes to its termination message.
    assert!(
        line(&out, "etl-region-0", "list").contains("jobherd succeeded: 2 succeeded of 2"),
        "{out}"
    );
}

/// Load, then revert it when it failed, and notify whatever happened.
fn load_revert_notify(load_exit: &str) -> Value {
    json!({"steps": [
        {"name": "load", "env": {"FAKE_EXIT": load_exit}},
        {"name": "revert", "depends_on": ["load"], "when": "failed"},
        {"name": "notify", "depends_on": ["load", "revert"], "when": "always"},
    ]})
}

#[test]
fn a_failed_step_runs_its_revert_and_the_run_still_fails() {
    let cluster = FakeCluster::start();
    let out = with_plan(&cluster, load_revert_notify("1")).run();
    assert_eq!(
        out.code,
        Some(1),
        "a step that had to succeed did not: {out}"
    );
    assert_eq!(
        cluster.job_names(NS),
        ["etl-load", "etl-notify", "etl-revert"]
    );
    assert!(
        line(&out, "etl-revert", "succeeded").contains("[2/3]"),
        "{out}"
    );
    let revert = out.stdout.find("etl-revert created").unwrap();
    let notify = out.stdout.find("etl-notify created").unwrap();
    assert!(revert < notify, "notify waits for the revert: {out}");
    assert!(
        out.stdout
            .contains("jobherd failed: 2 succeeded, 1 failed of 3 children"),
        "{out}"
    );
}

#[test]
fn a_revert_that_is_not_needed_is_skipped_and_harms_nothing() {
    let cluster = FakeCluster::start();
    let out = with_plan(&cluster, load_revert_notify("0")).run();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(cluster.job_names(NS), ["etl-load", "etl-notify"]);
    assert!(
        line(&out, "etl-revert", "skipped").contains("skipped: NotNeeded"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("jobherd succeeded: 2 succeeded, 1 not needed of 3 children"),
        "{out}"
    );
}

#[test]
fn what_depends_on_an_unneeded_step_is_not_needed_either() {
    let cluster = FakeCluster::start();
    let plan = json!({"steps": [
        {"name": "load"},
        {"name": "revert", "depends_on": ["load"], "when": "failed"},
        {"name": "page", "depends_on": ["revert"]},
    ]});
    let out = with_plan(&cluster, plan).run();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        line(&out, "etl-page", "skipped").contains("NotNeeded"),
        "{out}"
    );
}

#[test]
fn fail_fast_cancels_the_rest_and_the_always_step_still_runs() {
    let cluster = FakeCluster::start();
    let plan = json!({"steps": [
        {"name": "fast", "env": {"FAKE_EXIT": "1"}},
        {"name": "slow", "env": {"FAKE_HOLD": "slow"}},
        {"name": "after-slow", "depends_on": ["slow"]},
        {"name": "notify", "depends_on": ["fast", "after-slow"], "when": "always"},
    ]});
    let out = with_plan(&cluster, plan)
        .env("JOBHERD_FAIL_FAST", "true")
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        line(&out, "etl-slow", "cancelled").contains("JOBHERD_FAIL_FAST"),
        "{out}"
    );
    assert!(
        line(&out, "etl-after-slow", "skipped").contains("NotStarted"),
        "{out}"
    );
    let stop = out.stdout.find("jobherd stopping").unwrap();
    let notify = out.stdout.find("etl-notify created").expect("notify ran");
    assert!(stop < notify, "{out}");
    // How it ended, on one progress line.
    let ends = [" succeeded", " failed", " cancelled", " skipped"];
    let done: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("etl-notify ") && l.ends_with(']'))
        .filter(|l| ends.iter().any(|e| l.contains(e)))
        .collect();
    assert_eq!(done.len(), 1, "{out}");
    assert!(
        done[0].starts_with("etl-notify succeeded after 1 attempt"),
        "{out}"
    );
}

#[test]
fn a_result_too_large_for_a_variable_fails_the_step_that_would_get_it() {
    // 40 children each write 3,500 bytes (under the kubelet's 4 KiB): their array is past
    // 128 KiB.
    let cluster = FakeCluster::start();
    let plan = json!({"steps": [
        {"name": "big", "count": 40, "env": {"FAKE_MESSAGE": "x", "FAKE_MESSAGE_REPEAT": "3500"}},
        {"name": "merge", "depends_on": ["big"]},
    ]});
    let out = with_plan(&cluster, plan).run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        line(&out, "etl-merge", "failed").contains(
            "BadResult (step merge: JOBHERD_RESULT_BIG would be 137 KiB, more than an environment variable can hold (128 KiB)"
        ),
        "{out}"
    );
    assert!(cluster.job(NS, "etl-merge").is_none(), "never created");
}

#[test]
fn a_retry_runs_only_the_failed_partition_and_hands_the_merge_the_earlier_results() {
    let cluster = FakeCluster::start();
    // Partition b is held until its Job is deleted from outside: it fails in the first run.
    // Released, a retry's new Job for it succeeds.
    let plan = json!({"steps": [
        {"name": "list", "env": writes(r#"[{"P":"a"},{"P":"b","FAKE_HOLD":"b"},{"P":"c"}]"#)},
        {"name": "process", "depends_on": ["list"], "params_from": "list",
         "env": writes(r#"{"partition":"${P}"}"#)},
        {"name": "merge", "depends_on": ["process"]},
        {"name": "notify", "depends_on": ["merge"], "when": "always"},
    ]});
    let first = cluster.create_parent(NS, "etl-1");
    let mut h = cluster
        .jobherd()
        .in_pod(&first)
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_PLAN", plan.to_string())
        .spawn();
    h.wait_for_stdout("etl-1-process-1 running", LONG);
    h.wait_for_stdout("etl-1-process-0 succeeded", LONG);
    h.wait_for_stdout("etl-1-process-2 succeeded", LONG);
    assert!(cluster.delete(Kind::Job, NS, "etl-1-process-1", Propagation::Background));
    let out = h.wait();
    assert_eq!(out.code, Some(1), "{out}");
    cluster.finish_parent(&first, 1);
    cluster.release("b");
    let creates_before = cluster.jobs_created();

    let second = cluster.create_parent(NS, "etl-2");
    let out = cluster
        .jobherd()
        .in_pod(&second)
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_PLAN", plan.to_string())
        .env("JOBHERD_RETRY", "etl-1")
        .run();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        cluster.jobs_created() - creates_before,
        3,
        "process-1, merge, and notify, which tells this run's outcome: {out}"
    );
    assert!(
        line(&out, "etl-2-notify", "succeeded").contains("after 1 attempt"),
        "{out}"
    );
    assert!(
        line(&out, "etl-2-process-2", "succeeded").contains("in earlier run etl-1"),
        "{out}"
    );
    assert_eq!(
        given(&cluster, "etl-2-merge", "JOBHERD_RESULT_PROCESS"),
        json!([{"partition": "a"}, {"partition": "b"}, {"partition": "c"}]),
        "the merge sees the earlier results and the new one"
    );
    assert_eq!(
        env_of(&cluster, "etl-2-process-1")["P"],
        "b",
        "the list's result is the earlier run's"
    );
}

/// The `BadResult` line of `child`: its progress line saying it failed.
fn bad_result<'a>(out: &'a Output, child: &str) -> &'a str {
    let failed = line(out, child, "failed");
    assert!(failed.contains("failed: BadResult ("), "{out}");
    failed
}

#[test]
fn a_result_whose_pod_is_gone_fails_the_fan_out_naming_that() {
    // JOBHERD_TTL=0: the TTL controller deletes list's Job, and with it its pod, as soon as it
    // succeeded; jobherd cannot watch pods, so it looks for the pod after its short grace and
    // finds it gone. It warns at the start that this may happen.
    let cluster = FakeCluster::start();
    cluster.forbid("watch", "pods");
    let out = with_plan(&cluster, etl(r#"["a","b"]"#))
        .env("JOBHERD_TTL", "0")
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("JOBHERD_TTL is 0s: a child's Job and pods may be deleted before jobherd has read what it wrote"),
        "{out}"
    );
    assert!(
        bad_result(&out, "etl-process").contains(
            "step process: the result of step list cannot be read: child etl-list succeeded, but its succeeded pod is gone (removed by a TTL, the garbage collector or a node drain) before its result was read"
        ),
        "{out}"
    );
    assert!(
        line(&out, "etl-merge", "skipped").contains("DependencyFailed"),
        "{out}"
    );
}

#[test]
fn a_result_that_may_not_be_read_fails_the_fan_out_naming_the_missing_rule() {
    let cluster = FakeCluster::start();
    cluster.forbid("list", "pods");
    let out = with_plan(&cluster, etl(r#"["a","b"]"#)).run();
    assert_eq!(out.code, Some(1), "{out}");
    let failed = bad_result(&out, "etl-process");
    assert!(
        failed.contains("the result of step list cannot be read: child etl-list succeeded, but reading its pods is forbidden (")
            && failed.contains("jobherd's Role needs `list` on pods"),
        "{out}"
    );
    assert_eq!(cluster.job_names(NS), ["etl-list"], "nothing else created");
}

#[test]
fn a_fan_out_over_a_step_that_failed_or_was_skipped_says_so() {
    // `when: always`: the fan-out is decided whatever its source did, and has nothing to fan
    // out over.
    let cluster = FakeCluster::start();
    let plan = json!({"steps": [
        {"name": "pre", "env": {"FAKE_EXIT": "1"}},
        {"name": "list", "depends_on": ["pre"]},
        {"name": "broken", "env": {"FAKE_EXIT": "1"}},
        {"name": "after-skipped", "depends_on": ["list"], "params_from": "list", "when": "always"},
        {"name": "after-failed", "depends_on": ["broken"], "params_from": "broken", "when": "always"},
    ]});
    let out = with_plan(&cluster, plan).run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        bad_result(&out, "etl-after-skipped")
            .contains("step after-skipped: step list was skipped: it has no result to give"),
        "{out}"
    );
    assert!(
        bad_result(&out, "etl-after-failed")
            .contains("step after-failed: step broken failed: it has no result to give"),
        "{out}"
    );
    assert_eq!(cluster.job_names(NS), ["etl-broken", "etl-pre"]);
}

#[test]
fn a_result_the_kubelet_cut_fails_the_dependant_instead_of_passing_its_end() {
    // 5,000 bytes written: the kubelet keeps the last 4,096, which are no result.
    let cluster = FakeCluster::start();
    let plan = json!({"steps": [
        {"name": "big", "env": {"FAKE_MESSAGE": "x", "FAKE_MESSAGE_REPEAT": "5000"}},
        {"name": "merge", "depends_on": ["big"]},
    ]});
    let out = with_plan(&cluster, plan).run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        bad_result(&out, "etl-merge").contains(
            "the result of step big cannot be read: child etl-big succeeded, but its termination message was cut by the kubelet, which keeps only the last 4096 bytes"
        ),
        "{out}"
    );
    assert!(cluster.job(NS, "etl-merge").is_none(), "never created");
}

/// `n` variables of `bytes` bytes each.
fn filler(n: usize, bytes: usize) -> Value {
    let vars: serde_json::Map<String, Value> = (0..n)
        .map(|i| (format!("FILL_{i}"), Value::String("f".repeat(bytes))))
        .collect();
    Value::Object(vars)
}

/// jobherd with a plan given as a file (too large for a variable).
fn with_plan_file(cluster: &FakeCluster, plan: Value) -> support::Jobherd {
    let path = cluster.temp_dir().join("plan.json");
    std::fs::write(&path, plan.to_string()).unwrap();
    cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "etl")
        .env("JOBHERD_BACKOFF_LIMIT", "0")
        .env("JOBHERD_PLAN_FILE", path)
}

#[test]
fn a_child_too_large_to_create_fails_alone_naming_its_size_and_the_limit() {
    // Child 0 has one variable of 1.2 MB, child 1 ten of 120 KB (a Job of 1.2 MB), child 2
    // none: only child 2 is created.
    let cluster = FakeCluster::start();
    let plan = json!({"steps": [{"name": "load", "params": [
        {"BLOB": "b".repeat(1_200_000)},
        filler(10, 120_000),
        {},
    ]}]});
    let out = with_plan_file(&cluster, plan).run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        line(&out, "etl-load-0", "failed").contains(
            "failed: TooLarge (BLOB would be 1172 KiB, more than an environment variable can hold (128 KiB)"
        ),
        "{out}"
    );
    let job = line(&out, "etl-load-1", "failed");
    assert!(
        job.contains("failed: TooLarge (its Job would weigh ")
            && job.contains(" KiB, more than the 1024 KiB a Job may"),
        "{out}"
    );
    assert!(
        line(&out, "etl-load-2", "succeeded").contains("after 1 attempt"),
        "{out}"
    );
    assert_eq!(cluster.job_names(NS), ["etl-load-2"]);
}

#[test]
fn a_result_that_makes_each_job_of_a_count_step_too_large_fails_those_children_only() {
    // 36 children write 3,500 bytes each: their list (126 KiB) fits in a variable, but with
    // the 960 KB of variables `wide` already has, each of its Jobs would pass 1 MiB. `narrow`
    // gets the same result and runs.
    let cluster = FakeCluster::start();
    let plan = json!({"steps": [
        {"name": "big", "count": 36, "env": {"FAKE_MESSAGE": "x", "FAKE_MESSAGE_REPEAT": "3500"}},
        {"name": "wide", "count": 2, "depends_on": ["big"], "env": filler(8, 120_000)},
        {"name": "narrow", "depends_on": ["big"]},
    ]});
    let out = with_plan_file(&cluster, plan).timeout(secs(120)).run();
    assert_eq!(out.code, Some(1), "{out}");
    for child in ["etl-wide-0", "etl-wide-1"] {
        let failed = line(&out, child, "failed");
        assert!(
            failed.contains("failed: TooLarge (its Job would weigh ")
                && failed.contains("more than the 1024 KiB a Job may"),
            "{out}"
        );
    }
    assert!(
        line(&out, "etl-narrow", "succeeded").contains("after 1 attempt"),
        "{out}"
    );
    let names = cluster.job_names(NS);
    assert!(
        !names.iter().any(|n| n.starts_with("etl-wide")),
        "{names:?}"
    );
    let given = env_of(&cluster, "etl-narrow")["JOBHERD_RESULT_BIG"].clone();
    let expected = serde_json::to_string(&vec!["x".repeat(3500); 36]).unwrap();
    assert!(given == expected.as_str(), "narrow got the whole result");
}

#[test]
fn a_job_the_api_refuses_as_too_large_fails_alone() {
    let cluster = FakeCluster::start();
    cluster.fail_next(1, 413, None, Some(("create", "jobs")));
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "big")
        .env("JOBHERD_COUNT", "3")
        .env("JOBHERD_PARALLELISM", "1")
        .run();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        line(&out, "big-0", "failed")
            .contains("failed: TooLarge (the API refused its Job as too large"),
        "{out}"
    );
    assert_eq!(cluster.job_names(NS), ["big-1", "big-2"]);
    assert!(
        out.stdout
            .contains("jobherd failed: 2 succeeded, 1 failed of 3 children"),
        "{out}"
    );
}

#[test]
fn an_interrupt_after_fail_fast_ends_the_always_step_too() {
    // Fail fast is a soft stop: notify (`when: always`) still runs. A SIGINT is a hard one: it
    // ends notify too, and the run exits 130 with its report written.
    let cluster = FakeCluster::builder().record_history(true).start();
    let report = cluster.temp_dir().join("report.json");
    let plan = json!({"steps": [
        {"name": "load", "env": {"FAKE_HOLD": "load", "FAKE_EXIT": "1"}},
        {"name": "slow", "env": {"FAKE_HOLD": "slow"}},
        {"name": "notify", "depends_on": ["load", "slow"], "when": "always",
         "env": {"FAKE_HOLD": "notify"}},
    ]});
    let mut h = with_plan(&cluster, plan)
        .env("JOBHERD_RESTART_POLICY", "Never")
        .env("JOBHERD_FAIL_FAST", "true")
        .env("JOBHERD_REPORT_FILE", &report)
        .spawn();
    h.wait_for_stdout("etl-slow running", LONG);
    h.wait_for_stdout("etl-load running", LONG);
    cluster.release("load");
    h.wait_for_stdout("etl-notify running", LONG);
    h.signal(libc::SIGINT);
    let out = h.wait();
    assert_eq!(out.code, Some(130), "{out}");
    assert!(
        line(&out, "etl-slow", "cancelled").contains("JOBHERD_FAIL_FAST"),
        "{out}"
    );
    assert!(
        line(&out, "etl-notify", "cancelled").contains("interrupted (SIGINT)"),
        "{out}"
    );
    let deleted = support::herd::deleted_by(&cluster, "fake-token");
    assert_eq!(deleted, ["etl-notify", "etl-slow"]);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(report["exit_code"], 130, "{report}");
    assert!(
        out.stdout
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("jobherd interrupted: "),
        "{out}"
    );
}
