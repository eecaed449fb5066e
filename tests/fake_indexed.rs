//! Indexed Jobs in the fake cluster, row by row as KUBERNETES.md records them at 1.32
//! ("Indexed Jobs that pack many children"): the index on each pod, `backoffLimitPerIndex`,
//! `maxFailedIndexes`, `FailIndex`, a pod's own deadline, the API's validation and versions;
//! and the Job controller's request count the fake models beside it.

mod support;

use serde_json::{Value, json};
use support::*;

const INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// An Indexed Job, `restartPolicy: Never`, whose pods run by `env` (`FAKE_<NAME>_<index>`
/// for one index), with `spec` merged into the Job's spec.
fn indexed(name: &str, completions: u32, env: &[(&str, &str)], spec: Value) -> Value {
    let env: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let mut job = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"completionMode": "Indexed", "completions": completions,
            "parallelism": completions,
            "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox", "env": env}]}}},
    });
    for (k, v) in spec.as_object().into_iter().flatten() {
        job["spec"][k] = v.clone();
    }
    job
}

fn job_status(cluster: &FakeCluster, name: &str) -> Value {
    cluster
        .object(Kind::Job, "default", name)
        .map(|j| j["status"].clone())
        .unwrap_or_default()
}

/// `(type, reason)` of the Job's conditions that are True, in order.
fn conditions(status: &Value) -> Vec<(String, String)> {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "True")
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (s("type"), s("reason"))
        })
        .collect()
}

fn done(cluster: &FakeCluster, name: &str) -> bool {
    conditions(&job_status(cluster, name))
        .iter()
        .any(|(t, _)| t == "Complete" || t == "Failed")
}

fn pair(ty: &str, reason: &str) -> (String, String) {
    (ty.to_string(), reason.to_string())
}

/// The conditions of a Job that failed for `reason`: `FailureTarget`, then `Failed` (1.31+).
fn failed_by(reason: &str) -> [(String, String); 2] {
    [pair("FailureTarget", reason), pair("Failed", reason)]
}

/// The status of Job `name` once it has ended (waits up to 10 s).
fn ended(cluster: &FakeCluster, name: &str) -> Value {
    assert!(
        cluster.wait_until(secs(10), |c| done(c, name)),
        "{name} never ended"
    );
    job_status(cluster, name)
}

/// Every pod the Job ever had (from the recorded history), as last seen.
fn pods_ever(cluster: &FakeCluster, job: &str) -> Vec<Value> {
    let mut last: Vec<Value> = Vec::new();
    for r in cluster.history(Kind::Pod) {
        if r.object["metadata"]["labels"]["batch.kubernetes.io/job-name"] != job {
            continue;
        }
        match last.iter_mut().find(|p| p["metadata"]["uid"] == r.uid()) {
            Some(p) if r.event != "DELETED" => *p = r.object,
            Some(_) => {}
            None => last.push(r.object),
        }
    }
    last
}

fn index(pod: &Value) -> String {
    pod["metadata"]["annotations"][INDEX]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn every_pod_carries_its_index_as_annotation_label_env_and_name() {
    let cluster = FakeCluster::builder().record_history(true).start();
    let mut job = indexed(
        "idx",
        3,
        &[("FAKE_MESSAGE", "${MINE}/${JOB_COMPLETION_INDEX}")],
        json!({"backoffLimitPerIndex": 0}),
    );
    // Any variable can take the index through the downward API.
    job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .expect("env")
        .push(json!({"name": "MINE", "valueFrom": {"fieldRef":
            {"fieldPath": format!("metadata.annotations['{INDEX}']")}}}));
    cluster.create_raw(Kind::Job, job);
    let status = ended(&cluster, "idx");
    assert_eq!(
        conditions(&status),
        [
            pair("SuccessCriteriaMet", "CompletionsReached"),
            pair("Complete", "CompletionsReached")
        ]
    );
    assert_eq!(
        (&status["completedIndexes"], &status["failedIndexes"]),
        (&json!("0-2"), &json!(""))
    );
    let mut seen = Vec::new();
    for pod in pods_ever(&cluster, "idx") {
        let i = index(&pod);
        assert_eq!(pod["metadata"]["labels"][INDEX], i.as_str(), "{pod}");
        let name = pod["metadata"]["name"].as_str().unwrap_or("");
        assert!(
            name.starts_with(&format!("idx-{i}-")) && name.len() == 5 + i.len() + 5,
            "{name}"
        );
        assert_eq!(pod["metadata"]["generateName"], format!("idx-{i}-"));
        assert_eq!(pod["spec"]["hostname"], format!("idx-{i}"));
        assert_eq!(
            pod["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"],
            "0"
        );
        let env = &pod["spec"]["containers"][0]["env"];
        let added = env
            .as_array()
            .and_then(|e| e.iter().find(|v| v["name"] == "JOB_COMPLETION_INDEX"))
            .expect("JOB_COMPLETION_INDEX");
        assert_eq!(
            added["valueFrom"]["fieldRef"]["fieldPath"],
            format!("metadata.labels['{INDEX}']")
        );
        let message = &pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"];
        assert_eq!(message, &json!(format!("{i}/{i}")));
        seen.push(i);
    }
    seen.sort();
    assert_eq!(seen, ["0", "1", "2"]);
}

#[test]
fn a_failing_index_is_retried_alone_after_its_back_off_and_then_fails_the_job() {
    // KUBERNETES.md: 5 completions, backoffLimitPerIndex 1, index 2 exits 3.
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .time_scale(0.02)
        .start();
    cluster.create_raw(
        Kind::Job,
        indexed(
            "per",
            5,
            &[("FAKE_EXIT_2", "3"), ("FAKE_RUN_MS", "10")],
            json!({"backoffLimitPerIndex": 1}),
        ),
    );
    let status = ended(&cluster, "per");
    assert_eq!(conditions(&status), failed_by("FailedIndexes"));
    assert_eq!(status["completedIndexes"], "0,1,3,4");
    assert_eq!(status["failedIndexes"], "2");
    assert_eq!(
        (&status["failed"], &status["succeeded"]),
        (&json!(2), &json!(4))
    );
    assert_eq!(status["conditions"][1]["message"], "Job has failed indexes");

    // Before the retry: the other indexes done, index 2 neither failed nor counted yet.
    let jobs = cluster.history_of(Kind::Job, "default", "per");
    let early = jobs
        .iter()
        .find(|r| r.object["status"]["completedIndexes"] == "0,1,3,4")
        .expect("the other indexes completed first");
    assert_eq!(early.object["status"]["failedIndexes"], "");
    assert!(
        early.object["status"]["failed"].is_null(),
        "{}",
        early.object
    );
    assert!(conditions(&early.object["status"]).is_empty());

    let pods = pods_ever(&cluster, "per");
    let of = |i: &str| pods.iter().filter(|p| index(p) == i).count();
    assert_eq!(
        (of("0"), of("1"), of("2"), of("3"), of("4")),
        (1, 1, 2, 1, 1)
    );
    let counts: Vec<&Value> = pods
        .iter()
        .filter(|p| index(p) == "2")
        .map(|p| &p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"])
        .collect();
    assert_eq!(counts, [&json!("0"), &json!("1")]);
    // The second pod of index 2 waited for the pod-failure back-off: 10 s, 200 ms at 0.02.
    let history = cluster.history(Kind::Pod);
    let first_failed = history
        .iter()
        .find(|r| index(&r.object) == "2" && r.object["status"]["phase"] == "Failed")
        .expect("index 2 failed");
    let retry = history
        .iter()
        .filter(|r| index(&r.object) == "2" && r.event == "ADDED")
        .nth(1)
        .expect("a second pod for index 2");
    assert!(retry.at.duration_since(first_failed.at) >= millis(200));
}

#[test]
fn past_max_failed_indexes_the_running_indexes_are_deleted_and_count_as_failed() {
    // KUBERNETES.md: 4 completions, backoffLimitPerIndex 0, maxFailedIndexes 0, index 1 exits
    // 3, the others sleep.
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    cluster.create_raw(
        Kind::Job,
        indexed(
            "max",
            4,
            &[
                ("FAKE_RUN_MS", "60000"),
                ("FAKE_RUN_MS_1", "20"),
                ("FAKE_EXIT_1", "3"),
                ("FAKE_TERM_MS", "100"),
            ],
            json!({"backoffLimitPerIndex": 0, "maxFailedIndexes": 0}),
        ),
    );
    let reason = "MaxFailedIndexesExceeded";
    let status = ended(&cluster, "max");
    assert_eq!(conditions(&status), failed_by(reason));
    assert_eq!(
        status["conditions"][0]["message"],
        "Job has exceeded the specified maximal number of failed indexes"
    );
    assert_eq!(
        (&status["failed"], &status["terminating"]),
        (&json!(4), &json!(0))
    );
    assert_eq!(status["failedIndexes"], "1");
    let jobs = cluster.history_of(Kind::Job, "default", "max");
    let target = jobs
        .iter()
        .position(|r| {
            conditions(&r.object["status"])
                .iter()
                .any(|(t, _)| t == "FailureTarget")
        })
        .expect("FailureTarget");
    assert!(
        jobs[target..]
            .iter()
            .any(|r| r.object["status"]["terminating"] == 3),
        "the three running indexes were being deleted"
    );
    let failed = jobs
        .iter()
        .position(|r| {
            conditions(&r.object["status"])
                .iter()
                .any(|(t, _)| t == "Failed")
        })
        .expect("Failed");
    assert!(target < failed);
    let sleepers: Vec<Value> = pods_ever(&cluster, "max")
        .into_iter()
        .filter(|p| index(p) != "1")
        .collect();
    assert_eq!(sleepers.len(), 3);
    for p in &sleepers {
        assert_eq!(p["status"]["phase"], "Failed", "{p}");
        assert!(!p["metadata"]["deletionTimestamp"].is_null());
    }
}

#[test]
fn fail_index_fails_an_index_at_once_and_the_others_still_run() {
    // KUBERNETES.md: 3 completions, backoffLimitPerIndex 3, FailIndex on exit 4, index 0
    // exits 4.
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    let policy = json!({"rules": [{"action": "FailIndex",
        "onExitCodes": {"operator": "In", "values": [4]}}]});
    cluster.create_raw(
        Kind::Job,
        indexed(
            "fi",
            3,
            &[("FAKE_EXIT_0", "4")],
            json!({"backoffLimitPerIndex": 3, "podFailurePolicy": policy}),
        ),
    );
    let status = ended(&cluster, "fi");
    assert_eq!(conditions(&status), failed_by("FailedIndexes"));
    assert_eq!(
        (&status["failedIndexes"], &status["completedIndexes"]),
        (&json!("0"), &json!("1,2"))
    );
    assert_eq!(status["failed"], 1);
    let pods = pods_ever(&cluster, "fi");
    assert_eq!(pods.len(), 3, "no retry of index 0");
}

#[test]
fn a_pods_own_deadline_fails_its_index() {
    // KUBERNETES.md: 2 completions, backoffLimitPerIndex 0, pod activeDeadlineSeconds, index 0
    // sleeps past it.
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    let mut job = indexed(
        "dl",
        2,
        &[("FAKE_RUN_MS_0", "30000"), ("FAKE_TERM_MS", "50")],
        json!({"backoffLimitPerIndex": 0}),
    );
    job["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(2);
    cluster.create_raw(Kind::Job, job);
    let status = ended(&cluster, "dl");
    assert_eq!(conditions(&status), failed_by("FailedIndexes"));
    assert_eq!(
        (&status["failedIndexes"], &status["completedIndexes"]),
        (&json!("0"), &json!("1"))
    );
    let pod = pods_ever(&cluster, "dl")
        .into_iter()
        .find(|p| index(p) == "0")
        .expect("index 0");
    assert_eq!(pod["status"]["phase"], "Failed");
    assert_eq!(pod["status"]["reason"], "DeadlineExceeded");
    assert_eq!(
        pod["status"]["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    let terminated = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["exitCode"], 143);
    assert!(
        pod["metadata"]["deletionTimestamp"].is_null(),
        "the kubelet deletes nothing"
    );
    let conds = pod["status"]["conditions"].to_string();
    assert!(!conds.contains("DisruptionTarget"), "{conds}");
}

#[test]
fn the_api_refuses_what_the_real_validation_refuses() {
    let cluster = FakeCluster::builder().version(32).start();
    let jobs = "/apis/batch/v1/namespaces/default/jobs";
    let refused = |job: Value| {
        let (code, _, status) = cluster.raw_request("POST", jobs, &job);
        assert_eq!(code, 422, "{status}");
        status["message"].as_str().unwrap_or("").to_string()
    };
    let mut non_indexed = indexed("a", 3, &[], json!({"backoffLimitPerIndex": 1}));
    non_indexed["spec"]["completionMode"] = json!("NonIndexed");
    assert_eq!(
        refused(non_indexed),
        "Job.batch \"a\" is invalid: spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode"
    );
    assert_eq!(
        refused(indexed("b", 3, &[], json!({"maxFailedIndexes": 1}))),
        "Job.batch \"b\" is invalid: spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified"
    );
    assert_eq!(
        refused(indexed(
            "c",
            3,
            &[],
            json!({"backoffLimitPerIndex": 1, "maxFailedIndexes": 5})
        )),
        "Job.batch \"c\" is invalid: spec.maxFailedIndexes: Invalid value: 5: must be less than or equal to completions"
    );
    let fail_index = json!({"rules": [{"action": "FailIndex",
        "onExitCodes": {"operator": "In", "values": [4]}}]});
    assert_eq!(
        refused(indexed(
            "d",
            3,
            &[],
            json!({"podFailurePolicy": fail_index})
        )),
        "Job.batch \"d\" is invalid: spec.podFailurePolicy.rules[0].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set"
    );
    let mut no_completions = indexed("e", 3, &[], json!({}));
    no_completions["spec"]["completions"] = Value::Null;
    assert_eq!(
        refused(no_completions),
        "Job.batch \"e\" is invalid: spec.completions: Required value: when completion mode is Indexed"
    );
    let huge = json!({"backoffLimitPerIndex": 0, "completions": 100_001, "parallelism": 20_000});
    assert_eq!(
        refused(indexed("f", 3, &[], huge)),
        "Job.batch \"f\" is invalid: [spec.maxFailedIndexes: Required value: must be specified when completions is above 100000, spec.parallelism: Invalid value: 20000: must be less than or equal to 10000 when completions are above 100000 and used with backoff limit per index]"
    );
    let long = "x".repeat(62);
    assert_eq!(
        refused(indexed(&long, 10, &[], json!({}))),
        format!(
            "Job.batch \"{long}\" is invalid: metadata.name: Invalid value: \"{long}\": will not able to create pod with invalid DNS label: {long}-9"
        )
    );
    // The real API lets OnFailure through (the field's doc says Never; validation does not),
    // and leaves the Job-wide backoffLimit out of the way.
    let mut on_failure = indexed("g", 3, &[], json!({"backoffLimitPerIndex": 1}));
    on_failure["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    let (code, _, made) = cluster.raw_request("POST", jobs, &on_failure);
    assert_eq!(code, 201, "{made}");
    assert_eq!(made["spec"]["backoffLimit"], 2147483647);
    let (code, _, made) = cluster.raw_request("POST", jobs, &indexed("h", 3, &[], json!({})));
    assert_eq!((code, &made["spec"]["backoffLimit"]), (201, &json!(6)));
}

#[test]
fn backoff_limit_per_index_is_dropped_at_1_28_and_unknown_before() {
    let job = || {
        let policy = json!({"rules": [
            {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [4]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]});
        indexed(
            "old",
            2,
            &[],
            json!({"backoffLimitPerIndex": 1, "maxFailedIndexes": 1, "podFailurePolicy": policy}),
        )
    };
    let jobs = "/apis/batch/v1/namespaces/default/jobs";
    // 1.28: alpha and off, so dropped without a word, FailIndex rules with it.
    let cluster = FakeCluster::builder().version(28).start();
    let (code, warnings, made) = cluster.raw_request("POST", jobs, &job());
    assert_eq!((code, warnings.len()), (201, 0), "{made}");
    assert!(
        made["spec"]["backoffLimitPerIndex"].is_null()
            && made["spec"]["maxFailedIndexes"].is_null()
    );
    assert_eq!(made["spec"]["backoffLimit"], 6);
    assert_eq!(
        made["spec"]["podFailurePolicy"]["rules"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // 1.27: the fields are unknown (a warning), and FailIndex is no action at all.
    let cluster = FakeCluster::builder().version(27).start();
    let mut plain = job();
    plain["spec"]["podFailurePolicy"]["rules"]
        .as_array_mut()
        .map(|r| r.remove(0));
    let (code, warnings, made) = cluster.raw_request("POST", jobs, &plain);
    assert_eq!(code, 201, "{made}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("unknown field \\\"spec.backoffLimitPerIndex\\\"")),
        "{warnings:?}"
    );
    assert!(made["spec"]["backoffLimitPerIndex"].is_null());
    let mut fail_index = job();
    fail_index["metadata"]["name"] = json!("old2");
    let (code, _, status) = cluster.raw_request("POST", jobs, &fail_index);
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "Job.batch \"old2\" is invalid: spec.podFailurePolicy.rules[0].action: Unsupported value: \"FailIndex\": supported values: \"Count\", \"FailJob\", \"Ignore\""
    );
}

#[test]
fn the_job_controllers_requests_follow_the_audit_of_the_four_packed_jobs() {
    // KUBERNETES.md's four Indexed Jobs, 15 pods in all: 15 creates, 15 finalizer patches,
    // 17 status updates, 22 Events (15 SuccessfulCreate, 3 SuccessfulDelete, 4 Warnings).
    let cluster = FakeCluster::builder().version(32).start();
    let fail_index = json!({"rules": [{"action": "FailIndex",
        "onExitCodes": {"operator": "In", "values": [4]}}]});
    let mut deadline = indexed(
        "four",
        2,
        &[("FAKE_RUN_MS_0", "30000"), ("FAKE_TERM_MS", "50")],
        json!({"backoffLimitPerIndex": 0}),
    );
    deadline["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(2);
    let jobs = [
        indexed(
            "one",
            5,
            &[("FAKE_EXIT_2", "3")],
            json!({"backoffLimitPerIndex": 1}),
        ),
        indexed(
            "two",
            4,
            &[
                ("FAKE_RUN_MS", "60000"),
                ("FAKE_RUN_MS_1", "20"),
                ("FAKE_EXIT_1", "3"),
            ],
            json!({"backoffLimitPerIndex": 0, "maxFailedIndexes": 0}),
        ),
        indexed(
            "three",
            3,
            &[("FAKE_EXIT_0", "4")],
            json!({"backoffLimitPerIndex": 3, "podFailurePolicy": fail_index}),
        ),
        deadline,
    ];
    for job in jobs {
        cluster.create_raw(Kind::Job, job);
    }
    let names = ["one", "two", "three", "four"];
    assert!(cluster.wait_until(secs(15), |c| names.iter().all(|n| done(c, n))));
    let updates: Vec<u64> = names
        .iter()
        .map(|n| cluster.controller_requests_of("default", n).status_updates)
        .collect();
    // One per sync that changed something, a second where pods went through
    // uncountedTerminatedPods or the Job finished (the cost model's doc); a sync more where a
    // loaded machine spreads what the lab's pods did within one batch period over two.
    let expected = [5, 5, 3, 4];
    for (n, (got, want)) in names.iter().zip(updates.iter().zip(expected)) {
        assert!((want..=want + 1).contains(got), "{n}: {updates:?}");
    }
    let all = cluster.controller_requests();
    let exact = (
        all.pod_creates,
        all.finalizer_patches,
        all.events,
        all.pod_deletes,
    );
    assert_eq!(exact, (15, 15, 22, 3));
    assert!((17..=19).contains(&all.status_updates), "{all:?}");
    assert_eq!(all.total(), 15 + 15 + 22 + 3 + all.status_updates);
}

#[test]
fn a_single_pod_job_costs_the_controller_about_seven_requests() {
    let cluster = FakeCluster::builder().version(32).start();
    for n in 0..3 {
        cluster.create_raw(
            Kind::Job,
            json!({"metadata": {"name": format!("single-{n}")}, "spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}}}),
        );
    }
    assert!(cluster.wait_until(secs(10), |c| {
        (0..3).all(|n| done(c, &format!("single-{n}")))
    }));
    for n in 0..3 {
        let r = cluster.controller_requests_of("default", &format!("single-{n}"));
        // A create, its finalizer patch, SuccessfulCreate and Completed, and three status
        // updates: the pod created (active), then uncounted with SuccessCriteriaMet, and
        // Complete; a fourth when a loaded machine kept the pod running past a batch period.
        let exact = (r.pod_creates, r.finalizer_patches, r.events);
        assert_eq!(exact, (1, 1, 2), "single-{n}: {r:?}");
        assert!((3..=4).contains(&r.status_updates), "single-{n}: {r:?}");
        assert_eq!(r.total(), 4 + r.status_updates);
    }
    cluster.reset_controller_requests();
    assert_eq!(cluster.controller_requests().total(), 0);
}

#[test]
fn one_indexed_job_of_a_thousand_costs_about_two_requests_per_pod() {
    // KUBERNETES.md: 2,029 requests for 1,000 completions. Creates and finalizer patches, one
    // each per pod; 25 Events before client-go's spam filter stops them; a handful of status
    // updates, as syncs see up to 500 pods each.
    let cluster = FakeCluster::builder().version(32).start();
    cluster.create_raw(
        Kind::Job,
        indexed(
            "big",
            1000,
            &[("FAKE_RUN_MS", "20")],
            json!({"backoffLimitPerIndex": 0}),
        ),
    );
    assert!(cluster.wait_until(secs(60), |c| done(c, "big")));
    let r = cluster.controller_requests_of("default", "big");
    assert_eq!(
        (r.pod_creates, r.finalizer_patches, r.events),
        (1000, 1000, 25),
        "{r:?}"
    );
    // Each sync that saw pods end writes once: more of them when the pods' ends spread over
    // more than a batch period (a loaded machine).
    assert!((4..=12).contains(&r.status_updates), "{r:?}");
    assert!((2029..=2037).contains(&r.total()), "{r:?}");
}

#[test]
fn fail_job_and_ignore_rules_still_apply_to_an_indexed_job() {
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    let policy = json!({"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [5]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]});
    // Ignore: an evicted index runs again after its back-off, not counted, and its new pod
    // carries the ignored failure.
    cluster.create_raw(
        Kind::Job,
        indexed(
            "ig",
            2,
            &[("FAKE_HOLD_0", "idx0"), ("FAKE_TERM_MS", "20")],
            json!({"backoffLimitPerIndex": 0, "podFailurePolicy": policy.clone()}),
        ),
    );
    let running_0 = |c: &FakeCluster| {
        c.pods_of("default", "ig").into_iter().find(|p| {
            let v = serde_json::to_value(p).unwrap_or_default();
            index(&v) == "0" && v["status"]["phase"] == "Running"
        })
    };
    assert!(cluster.wait_until(secs(10), |c| running_0(c).is_some()));
    let first = running_0(&cluster)
        .and_then(|p| p.metadata.name)
        .expect("pod");
    assert!(cluster.evict("default", &first));
    assert!(cluster.wait_until(secs(10), |c| {
        running_0(c).is_some_and(|p| p.metadata.name.as_deref() != Some(first.as_str()))
    }));
    let second = serde_json::to_value(running_0(&cluster).expect("replacement")).expect("pod");
    let annotations = &second["metadata"]["annotations"];
    assert_eq!(
        (
            &annotations["batch.kubernetes.io/job-index-failure-count"],
            &annotations["batch.kubernetes.io/job-index-ignored-failure-count"]
        ),
        (&json!("0"), &json!("1"))
    );
    cluster.release("idx0");
    let status = ended(&cluster, "ig");
    assert_eq!(
        conditions(&status)[1],
        pair("Complete", "CompletionsReached")
    );
    assert!(status["failed"].is_null(), "{status}");
    assert_eq!(status["failedIndexes"], "");

    // FailJob: the whole Job fails, whatever the index's own limit.
    cluster.create_raw(
        Kind::Job,
        indexed(
            "fj",
            2,
            // Index 0 is done before index 1 fails: no running pod to delete.
            &[("FAKE_EXIT_1", "5"), ("FAKE_RUN_MS_1", "300")],
            json!({"backoffLimitPerIndex": 1, "podFailurePolicy": policy}),
        ),
    );
    let status = ended(&cluster, "fj");
    assert_eq!(conditions(&status), failed_by("PodFailurePolicy"));
    assert_eq!(
        (
            &status["failed"],
            &status["failedIndexes"],
            &status["completedIndexes"]
        ),
        (&json!(1), &json!(""), &json!("0"))
    );
    assert_eq!(
        pods_ever(&cluster, "fj").len(),
        2,
        "index 1 did not run again"
    );
}
