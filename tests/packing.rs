//! Packed fan-outs (SPEC §10, `JOBHERD_PACK=indexed`) against the fake cluster's Indexed Jobs:
//! a packed child is still a child (the same report, child for child, as unpacked), sees the
//! environment it sees unpacked, fails and is retried alone, and a pack costs the cluster's Job
//! controller a fraction of what a Job per child does.

mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::{FakeCluster, Kind};

const NS: &str = "default";

/// What a report says of each child, in the words both a packed and an unpacked run use.
fn children(report: &Value) -> BTreeMap<String, (String, String, u64, Value)> {
    report["children"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                (
                    c["result"].as_str().unwrap_or_default().to_string(),
                    c["reason"].as_str().unwrap_or_default().to_string(),
                    c["attempts"].as_u64().unwrap_or(0),
                    c["output"].clone(),
                ),
            )
        })
        .collect()
}

/// Runs a herd with `vars`, packed or not, on a fresh cluster; returns the cluster, the exit
/// code and the JSON report.
fn run(pack: bool, vars: &[(&str, &str)]) -> (FakeCluster, Option<i32>, Value, String) {
    let cluster = FakeCluster::builder().record_history(true).start();
    let report = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "herd")
        .env("JOBHERD_RESTART_POLICY", "Never")
        .env("JOBHERD_REPORT_FILE", report.path().to_str().unwrap());
    if pack {
        cmd = cmd
            .env("JOBHERD_PACK", "indexed")
            .env("JOBHERD_PACK_IMAGE", "jobherd:test");
    }
    for (k, v) in vars {
        cmd = cmd.env(k, v);
    }
    let out = cmd.run();
    let text = std::fs::read_to_string(report.path()).unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (cluster, out.code, json, format!("{out}"))
}

/// Every pack the run created, as first stored (also those deleted since).
fn pack_jobs(cluster: &FakeCluster) -> Vec<Value> {
    let mut seen = std::collections::BTreeSet::new();
    cluster
        .history(Kind::Job)
        .into_iter()
        .map(|r| r.object)
        .filter(|j| j["metadata"]["labels"]["jobherd.io/pack"] == "true")
        .filter(|j| {
            seen.insert(
                j["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn a_packed_fan_out_reports_each_child_as_the_unpacked_one_would() {
    // Five children, the third fails both its attempts; each writes its index.
    let vars = [
        ("JOBHERD_COUNT", "5"),
        ("JOBHERD_BACKOFF_LIMIT", "1"),
        (
            "JOBHERD_ENV",
            r#"{"FAKE_MESSAGE":"${JOBHERD_CHILD_INDEX}","FAKE_EXIT_2":"3"}"#,
        ),
    ];
    let (plain, code, unpacked, out) = run(false, &vars);
    assert_eq!(code, Some(1), "{out}");
    let (packed_cluster, code, packed, out) = run(true, &vars);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(children(&packed), children(&unpacked), "{out}");
    let third = &children(&packed)["herd-2"];
    assert_eq!(
        (third.0.as_str(), third.1.as_str(), third.2),
        ("failed", "BackoffLimitExceeded", 2)
    );
    assert_eq!(children(&packed)["herd-4"].3, Value::from(4));
    assert_eq!(plain.jobs_created(), 5);
    assert_eq!(packed_cluster.jobs_created(), 1, "one Indexed Job: {out}");
    let job = &pack_jobs(&packed_cluster)[0];
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(job["spec"]["completions"], 5);
    assert_eq!(job["spec"]["backoffLimitPerIndex"], 1);
    assert_eq!(
        job["spec"]["template"]["spec"]["restartPolicy"], "Never",
        "backoffLimitPerIndex needs it"
    );
    assert!(
        job["spec"]["template"]["spec"]["initContainers"].is_null(),
        "the index comes through the downward API: no entrypoint needed"
    );
    assert!(out.contains("herd-2 failed: BackoffLimitExceeded"), "{out}");
}

#[test]
fn packed_children_get_their_own_params_through_jobherds_entrypoint() {
    let vars = [
        (
            "JOBHERD_PARAMS",
            r#"[{"PART":"eu"},{"PART":"us"},{"PART":"apac"}]"#,
        ),
        ("JOBHERD_COMMAND", r#"["etl","--part","$(PART)"]"#),
        (
            "JOBHERD_ENV",
            r#"{"FAKE_MESSAGE":"${PART}-${JOBHERD_CHILD_INDEX}-${JOBHERD_CHILD_COUNT}"}"#,
        ),
    ];
    let (_, code, unpacked, out) = run(false, &vars);
    assert_eq!(code, Some(0), "{out}");
    let (cluster, code, packed, out) = run(true, &vars);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(children(&packed), children(&unpacked));
    assert_eq!(children(&packed)["herd-1"].3, Value::from("us-1-3"));
    let job = &pack_jobs(&cluster)[0];
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["initContainers"][0]["image"], "jobherd:test");
    assert_eq!(
        pod["containers"][0]["command"],
        serde_json::json!([
            "/jobherd-pack/bin/jobherd",
            "entrypoint",
            "--",
            "etl",
            "--part",
            "$(PART)"
        ])
    );
    let values = cluster
        .object(
            Kind::ConfigMap,
            NS,
            job["metadata"]["name"].as_str().unwrap(),
        )
        .expect("the pack's values");
    assert!(
        values["data"]["values.json"]
            .as_str()
            .unwrap()
            .contains(r#""PART":"apac""#),
        "{values}"
    );
}

#[test]
fn a_fan_out_bigger_than_the_pack_size_becomes_several_packs_numbered_as_one() {
    let vars = [
        ("JOBHERD_COUNT", "7"),
        ("JOBHERD_PACK_SIZE", "3"),
        ("JOBHERD_COMMAND", r#"["work"]"#),
        (
            "JOBHERD_ENV",
            r#"{"FAKE_MESSAGE":"${JOBHERD_CHILD_INDEX}/${JOBHERD_CHILD_COUNT}"}"#,
        ),
    ];
    let (cluster, code, packed, out) = run(true, &vars);
    assert_eq!(code, Some(0), "{out}");
    let mut sizes: Vec<u64> = pack_jobs(&cluster)
        .iter()
        .map(|j| j["spec"]["completions"].as_u64().unwrap())
        .collect();
    sizes.sort();
    assert_eq!(sizes, vec![1, 3, 3]);
    let got = children(&packed);
    for i in 0..7 {
        assert_eq!(
            got[&format!("herd-{i}")].3,
            Value::from(format!("{i}/7")),
            "{out}"
        );
    }
}

#[test]
fn a_packed_step_fans_out_over_a_result_and_hands_its_results_on() {
    let plan = serde_json::json!({"steps": [
        {"name": "list", "env": {"FAKE_MESSAGE": r#"["a","b","c"]"#}},
        {"name": "work", "depends_on": ["list"], "params_from": "list", "pack": "indexed",
         "command": ["work", "$(JOBHERD_ITEM)"], "env": {"FAKE_MESSAGE": "${JOBHERD_ITEM}!"}},
        {"name": "merge", "depends_on": ["work"], "env": {"FAKE_MESSAGE": "${JOBHERD_RESULT_WORK}"}},
    ]})
    .to_string();
    let vars = [
        ("JOBHERD_PLAN", plan.as_str()),
        ("JOBHERD_PACK_IMAGE", "jobherd:test"),
    ];
    let (cluster, code, report, out) = run(false, &vars);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(pack_jobs(&cluster).len(), 1, "the step's own pack: indexed");
    assert_eq!(
        children(&report)["herd-merge"].3,
        serde_json::json!(["a!", "b!", "c!"]),
        "{out}"
    );
    assert_eq!(cluster.jobs_created(), 3, "list, the pack, merge");
}

#[test]
fn fail_fast_fails_the_pack_at_its_first_failed_child_and_cancels_the_rest() {
    let vars = [
        ("JOBHERD_COUNT", "4"),
        ("JOBHERD_FAIL_FAST", "true"),
        ("JOBHERD_BACKOFF_LIMIT", "0"),
        (
            "JOBHERD_ENV",
            r#"{"FAKE_EXIT_1":"3","FAKE_RUN_MS":"60000","FAKE_RUN_MS_1":"10"}"#,
        ),
    ];
    let (cluster, code, report, out) = run(true, &vars);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(pack_jobs(&cluster)[0]["spec"]["maxFailedIndexes"], 0);
    let got = children(&report);
    assert_eq!(got["herd-1"].0, "failed");
    for i in [0, 2, 3] {
        assert_eq!(got[&format!("herd-{i}")].0, "cancelled", "{out}");
    }
}

#[test]
fn packing_on_a_cluster_before_1_29_exits_2_before_creating_anything() {
    let cluster = FakeCluster::builder().version(28).start();
    let out = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_COUNT", "3")
        .env("JOBHERD_PACK", "indexed")
        .run();
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("this cluster runs 1.28"), "{out}");
    assert!(out.stderr.contains("1.29 or newer"), "{out}");
    assert_eq!(cluster.jobs_created(), 0);
}

#[test]
fn a_step_without_a_command_for_the_entrypoint_runs_unpacked_and_says_why() {
    let vars = [("JOBHERD_PARAMS", r#"[{"A":"1"},{"A":"2"}]"#)];
    let (cluster, code, _, out) = run(true, &vars);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("is not packed"), "{out}");
    assert!(out.contains("no command"), "{out}");
    assert_eq!(cluster.jobs_created(), 2);
    assert!(pack_jobs(&cluster).is_empty());
}

#[test]
fn a_restarted_parent_adopts_its_pack_without_creating_anything() {
    let (cluster, packed, out) = restarted(true, false);
    assert_eq!(cluster.jobs_created(), 1, "{out}");
    let (cluster, unpacked, _) = restarted(false, false);
    assert_eq!(cluster.jobs_created(), 3);
    assert_eq!(children(&packed).len(), 3, "{out}");
    assert_eq!(children(&packed)["nightly-1-2"].3, Value::from(2), "{out}");
    assert_eq!(children(&packed), children(&unpacked), "{out}");
}

/// The children ended while no parent ran: the restarted parent finds a finished pack (no
/// pod event will come), and still reports each child as the unpacked one.
#[test]
fn a_parent_restarted_after_its_pack_finished_reports_it_as_unpacked() {
    let (_, packed, out) = restarted(true, true);
    let (_, unpacked, _) = restarted(false, true);
    assert_eq!(children(&packed).len(), 3, "{out}");
    assert_eq!(children(&packed)["nightly-1-1"].2, 1, "one attempt: {out}");
    assert_eq!(children(&packed), children(&unpacked), "{out}");
}

/// A parent killed while its three children run, and started again (once they have finished,
/// with `done_while_down`); returns the cluster, the second attempt's JSON report and its output.
fn restarted(pack: bool, done_while_down: bool) -> (FakeCluster, Value, String) {
    let cluster = FakeCluster::start();
    let parent = cluster.create_parent(NS, "nightly-1");
    let report = tempfile::NamedTempFile::new().unwrap();
    let start = || {
        let cmd = cluster
            .jobherd()
            .in_pod(&parent)
            .env("JOBHERD_IMAGE", "busybox")
            .env("JOBHERD_COUNT", "3")
            .env("JOBHERD_RESTART_POLICY", "Never")
            .env("JOBHERD_REPORT_FILE", report.path().to_str().unwrap())
            .env(
                "JOBHERD_ENV",
                r#"{"FAKE_HOLD":"work","FAKE_MESSAGE":"${JOBHERD_CHILD_INDEX}"}"#,
            );
        match pack {
            true => cmd.env("JOBHERD_PACK", "indexed"),
            false => cmd,
        }
        .spawn()
    };
    let mut first = start();
    first.wait_for_stdout("nightly-1-2 created", std::time::Duration::from_secs(30));
    first.kill();
    first.wait();
    if done_while_down {
        cluster.release("work");
        cluster.wait_until(std::time::Duration::from_secs(30), |c| {
            let children: Vec<_> = c
                .jobs(NS)
                .into_iter()
                .filter(|j| j.metadata.name.as_deref() != Some("nightly-1"))
                .collect();
            !children.is_empty()
                && children.iter().all(|j| {
                    let conditions = j.status.as_ref().and_then(|s| s.conditions.clone());
                    conditions
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Complete" && c.status == "True")
                })
        });
    }
    let mut second = start();
    second.wait_for_stdout("nightly-1-2 adopted", std::time::Duration::from_secs(30));
    cluster.release("work");
    let out = second.wait();
    assert_eq!(out.code, Some(0), "{out}");
    let json = serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap()).unwrap();
    (cluster, json, format!("{out}"))
}

#[test]
fn a_pack_costs_the_job_controller_a_fraction_of_a_job_per_child() {
    let vars = [("JOBHERD_COUNT", "60")];
    let (plain, code, _, out) = run(false, &vars);
    assert_eq!(code, Some(0), "{out}");
    let (packed, code, _, out) = run(true, &vars);
    assert_eq!(code, Some(0), "{out}");
    let (plain, packed) = (
        plain.controller_requests().total(),
        packed.controller_requests().total(),
    );
    assert!(packed * 2 < plain, "packed {packed}, unpacked {plain}");
}

/// Runs jobherd as the parent Job `name` (in its pod) with `vars`, packed or not; ends the
/// parent with the exit code, as the Job controller would.
fn run_parent(
    cluster: &FakeCluster,
    name: &str,
    pack: bool,
    vars: &[(&str, &str)],
) -> support::Output {
    let parent = cluster.create_parent(NS, name);
    let mut cmd = cluster
        .jobherd()
        .in_pod(&parent)
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_RESTART_POLICY", "Never")
        .env("JOBHERD_BACKOFF_LIMIT", "0");
    if pack {
        cmd = cmd
            .env("JOBHERD_PACK", "indexed")
            .env("JOBHERD_PACK_IMAGE", "jobherd:test");
    }
    for (k, v) in vars {
        cmd = cmd.env(k, v);
    }
    let out = cmd.run();
    if let Some(code) = out.code {
        cluster.finish_parent(&parent, code);
    }
    out
}

#[test]
fn a_retry_of_a_packed_run_packs_only_the_failed_children_numbered_as_before() {
    let (cluster, report, out) = retry_of_a_run(true, false);
    let packs = pack_jobs(&cluster);
    let second: Vec<&Value> = packs
        .iter()
        .filter(|j| {
            j["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("nightly-2")
        })
        .collect();
    assert_eq!(second.len(), 1, "{out}");
    assert_eq!(second[0]["spec"]["completions"], 2);
    assert_eq!(
        second[0]["metadata"]["annotations"]["jobherd.io/pack-members"],
        "1,4"
    );
    let got = children(&report);
    assert_eq!(
        got["nightly-2-1"].3,
        Value::from(1),
        "the child keeps its index: {out}"
    );
    assert_eq!(got["nightly-2-4"].3, Value::from(4));
    for i in [0, 2, 3, 5] {
        let child = &report_child(&report, &format!("nightly-2-{i}"));
        assert_eq!(child["earlier_run"], "nightly-1", "{out}");
    }
    let (_, unpacked, _) = retry_of_a_run(false, false);
    assert_eq!(children(&report).len(), 6, "{out}");
    assert_eq!(children(&report), children(&unpacked), "{out}");
}

/// A parent that died before writing its record: the retry reads the packs back instead,
/// which children succeeded from their `completedIndexes` and what they wrote from their pods.
#[test]
fn a_retry_of_a_packed_run_that_left_no_record_reads_its_packs() {
    let (_, report, out) = retry_of_a_run(true, true);
    for i in [0, 2, 3, 5] {
        let child = &report_child(&report, &format!("nightly-2-{i}"));
        assert_eq!(child["earlier_run"], "nightly-1", "{out}");
        assert_eq!(
            child["output"],
            Value::from(i),
            "its own index's pod: {out}"
        );
    }
    let (_, unpacked, _) = retry_of_a_run(false, true);
    assert_eq!(children(&report).len(), 6, "{out}");
    assert_eq!(children(&report), children(&unpacked), "{out}");
}

/// A run of six, packed or not, with children 1 and 4 failing, then its retry, whose children
/// all succeed; `forget_record` takes the first parent's record away before the retry.
/// Returns the cluster, the retry's JSON report and its output.
fn retry_of_a_run(pack: bool, forget_record: bool) -> (FakeCluster, Value, String) {
    let cluster = FakeCluster::builder().record_history(true).start();
    let vars = [
        ("JOBHERD_COUNT", "6"),
        ("JOBHERD_COMMAND", r#"["work"]"#),
        (
            "JOBHERD_ENV",
            r#"{"FAKE_MESSAGE":"${JOBHERD_CHILD_INDEX}","FAKE_EXIT_1":"3","FAKE_EXIT_4":"3"}"#,
        ),
    ];
    let out = run_parent(&cluster, "nightly-1", pack, &vars);
    assert_eq!(out.code, Some(1), "{out}");
    if forget_record {
        let removed =
            serde_json::json!({"metadata": {"annotations": {"jobherd.io/outcome": null}}});
        cluster.with_client(|client| async move {
            let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> =
                kube::Api::namespaced(client, NS);
            let patch = kube::api::Patch::Merge(&removed);
            jobs.patch("nightly-1", &kube::api::PatchParams::default(), &patch)
                .await
                .expect("remove the record");
        });
        let parent = cluster.job(NS, "nightly-1").unwrap();
        let annotations = parent.metadata.annotations.unwrap_or_default();
        assert!(!annotations.contains_key("jobherd.io/outcome"));
    }
    let report = tempfile::NamedTempFile::new().unwrap();
    let retry = [
        ("JOBHERD_COUNT", "6"),
        ("JOBHERD_COMMAND", r#"["work"]"#),
        (
            "JOBHERD_ENV",
            r#"{"FAKE_MESSAGE":"${JOBHERD_CHILD_INDEX}"}"#,
        ),
        ("JOBHERD_RETRY", "nightly-1"),
        ("JOBHERD_REPORT_FILE", report.path().to_str().unwrap()),
    ];
    let out = run_parent(&cluster, "nightly-2", pack, &retry);
    assert_eq!(out.code, Some(0), "{out}");
    let json = serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap()).unwrap();
    (cluster, json, format!("{out}"))
}

fn report_child(report: &Value, name: &str) -> Value {
    report["children"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_stuck_packed_child_fails_alone_and_its_pack_goes_on() {
    let vars = [
        ("JOBHERD_COUNT", "3"),
        ("JOBHERD_STUCK_TIMEOUT", "1s"),
        ("JOBHERD_BACKOFF_LIMIT", "3"),
        ("JOBHERD_ENV", r#"{"FAKE_WAITING_1":"ErrImagePull"}"#),
    ];
    let (cluster, code, report, out) = run(true, &vars);
    assert_eq!(code, Some(1), "{out}");
    let got = children(&report);
    assert_eq!(got["herd-1"].0, "failed");
    assert_eq!(got["herd-1"].1, "ErrImagePull", "{out}");
    assert_eq!(got["herd-0"].0, "succeeded");
    assert_eq!(got["herd-2"].0, "succeeded");
    let (_, _, unpacked, _) = run(false, &vars);
    assert_eq!(got, children(&unpacked), "{out}");
    let pack = &pack_jobs(&cluster)[0];
    let name = pack["metadata"]["name"].as_str().unwrap();
    let last = cluster
        .history_of(Kind::Job, NS, name)
        .last()
        .unwrap()
        .object
        .clone();
    assert_eq!(
        last["status"]["failedIndexes"], "1",
        "the index failed, not retried: {last}"
    );
    assert_eq!(last["status"]["completedIndexes"], "0,2");
}

#[test]
fn a_child_timeout_is_each_packed_childs_own_deadline() {
    let vars = [
        ("JOBHERD_COUNT", "2"),
        ("JOBHERD_CHILD_TIMEOUT", "1s"),
        ("JOBHERD_ENV", r#"{"FAKE_RUN_MS_0":"60000"}"#),
    ];
    let (cluster, code, report, out) = run(true, &vars);
    assert_eq!(code, Some(1), "{out}");
    let got = children(&report);
    assert_eq!(
        (got["herd-0"].0.as_str(), got["herd-0"].1.as_str()),
        ("failed", "DeadlineExceeded"),
        "{out}"
    );
    assert_eq!(got["herd-1"].0, "succeeded");
    let pod = &pack_jobs(&cluster)[0]["spec"]["template"]["spec"];
    assert_eq!(pod["activeDeadlineSeconds"], 1);
}

#[test]
fn a_packed_job_waits_in_kueue_as_one_workload() {
    let cluster = FakeCluster::builder().kueue(true).start();
    let mut h = cluster
        .jobherd()
        .env("JOBHERD_IMAGE", "busybox")
        .env("JOBHERD_NAME_PREFIX", "q")
        .env("JOBHERD_COUNT", "3")
        .env("JOBHERD_PACK", "indexed")
        .env("JOBHERD_QUEUE", "batch")
        .spawn();
    h.wait_for_stdout("q-2 queued", std::time::Duration::from_secs(30));
    let packs: Vec<Value> = cluster
        .objects(Kind::Job, NS)
        .into_iter()
        .filter(|j| j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "batch")
        .collect();
    assert_eq!(packs.len(), 1, "one workload");
    assert!(cluster.admit(NS, packs[0]["metadata"]["name"].as_str().unwrap()));
    let out = h.wait();
    assert_eq!(out.code, Some(0), "{out}");
}

#[test]
fn a_packed_plan_with_a_fan_out_over_a_result_reports_as_the_unpacked_one() {
    let plan = serde_json::json!({"steps": [
        {"name": "list", "env": {"FAKE_MESSAGE": r#"["a","b","c","d"]"#}},
        {"name": "work", "depends_on": ["list"], "params_from": "list",
         "command": ["work"], "env": {"FAKE_MESSAGE": "${JOBHERD_ITEM}${JOBHERD_CHILD_INDEX}"}},
        {"name": "count", "count": 3, "depends_on": ["list"],
         "env": {"FAKE_MESSAGE": "${JOBHERD_CHILD_INDEX}", "FAKE_EXIT_1": "3"}},
        {"name": "merge", "depends_on": ["work"], "env": {"FAKE_MESSAGE": "${JOBHERD_RESULT_WORK}"}},
        {"name": "notify", "depends_on": ["count", "merge"], "when": "always"},
    ]})
    .to_string();
    let vars = [
        ("JOBHERD_PLAN", plan.as_str()),
        ("JOBHERD_BACKOFF_LIMIT", "0"),
    ];
    let (_, code, unpacked, out) = run(false, &vars);
    assert_eq!(code, Some(1), "{out}");
    let (cluster, code, packed, out) = run(true, &vars);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(children(&packed), children(&unpacked), "{out}");
    assert_eq!(pack_jobs(&cluster).len(), 2, "work and count");
    assert_eq!(
        children(&packed)["herd-merge"].3,
        serde_json::json!(["a0", "b1", "c2", "d3"])
    );
}

/// A stop (SIGTERM, `JOBHERD_TIMEOUT`) deletes a pack in one request, pods and all, and its
/// children end cancelled, as unpacked ones do.
#[test]
fn a_stop_deletes_each_pack_with_one_request() {
    for (stop, code) in [("SIGTERM", 143), ("JOBHERD_TIMEOUT", 3)] {
        let cluster = FakeCluster::start();
        let report = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = cluster
            .jobherd()
            .env("JOBHERD_IMAGE", "busybox")
            .env("JOBHERD_NAME_PREFIX", "herd")
            .env("JOBHERD_COUNT", "4")
            .env("JOBHERD_PACK", "indexed")
            .env("JOBHERD_REPORT_FILE", report.path().to_str().unwrap())
            .env("JOBHERD_ENV", r#"{"FAKE_HOLD":"work"}"#);
        if stop == "JOBHERD_TIMEOUT" {
            cmd = cmd.env("JOBHERD_TIMEOUT", "3s");
        }
        let mut h = cmd.spawn();
        if stop == "SIGTERM" {
            h.wait_for_stdout("herd-3 running", std::time::Duration::from_secs(30));
            h.signal(libc::SIGTERM);
        }
        let out = h.wait();
        assert_eq!(out.code, Some(code), "{stop}: {out}");
        let requests = cluster.requests();
        let count = |verb: &str| {
            requests
                .iter()
                .filter(|r| r.resource == "jobs" && r.subresource.is_empty())
                .filter(|r| r.verb.starts_with(verb) && r.status < 300)
                .count()
        };
        // (A loaded machine may let the timeout pass before the pack is created.)
        assert!(count("create") <= 1, "{out}");
        assert_eq!(
            count("delete"),
            count("create"),
            "{stop}: one request for the pack: {out}"
        );
        assert!(
            cluster.wait_until(std::time::Duration::from_secs(30), |c| c
                .jobs(NS)
                .is_empty()
                && c.pods(NS).is_empty()),
            "{stop}: the pack and its pods are gone"
        );
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap()).unwrap();
        let got = children(&json);
        assert_eq!(got.len(), 4, "{stop}: {out}");
        assert!(
            got.values().all(|c| c.0 == "cancelled"),
            "{stop}: {got:?} {out}"
        );
    }
}

/// A restarted parent stopped by SIGTERM deletes the packs it adopted, as those it created:
/// a deletecollection by their step labels, which must be the packs' own.
#[test]
fn a_stop_deletes_the_packs_a_restarted_parent_adopted() {
    let cluster = FakeCluster::start();
    let parent = cluster.create_parent(NS, "nightly-1");
    let start = || {
        cluster
            .jobherd()
            .in_pod(&parent)
            .env("JOBHERD_IMAGE", "busybox")
            .env("JOBHERD_COUNT", "4")
            .env("JOBHERD_COMMAND", r#"["work"]"#)
            .env("JOBHERD_PACK", "indexed")
            .env("JOBHERD_PACK_SIZE", "2")
            .env("JOBHERD_PACK_IMAGE", "jobherd:test")
            .env("JOBHERD_ENV", r#"{"FAKE_HOLD":"work"}"#)
            .spawn()
    };
    let mut first = start();
    first.wait_for_stdout("nightly-1-3 running", std::time::Duration::from_secs(30));
    first.kill();
    first.wait();
    let mut second = start();
    second.wait_for_stdout("nightly-1-3 adopted", std::time::Duration::from_secs(30));
    second.signal(libc::SIGTERM);
    let out = second.wait();
    assert_eq!(out.code, Some(143), "{out}");
    assert_eq!(cluster.jobs_created(), 2, "two packs, created once: {out}");
    let packs_left = |c: &FakeCluster| {
        c.jobs(NS)
            .into_iter()
            .filter_map(|j| j.metadata.name)
            .filter(|name| name != "nightly-1")
            .collect::<Vec<_>>()
    };
    cluster.wait_until(std::time::Duration::from_secs(30), |c| {
        packs_left(c).is_empty()
    });
    assert_eq!(packs_left(&cluster), Vec::<String>::new(), "{out}");
}
