//! The fake cluster's own tests: each behaviour of `support::fake`, shown through a real kube
//! client configured from the fake's kubeconfig, as jobherd would talk to it.

mod support;

use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use support::*;

/// A minimal Job whose pod template carries the given fate env.
fn job(name: &str, restart: &str, env: &[(&str, &str)]) -> Job {
    let env: Vec<_> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "jobherd", "jobherd.io/run": "r1"}},
        "spec": {"backoffLimit": 2, "template": {
            "metadata": {"labels": {"jobherd.io/run": "r1"}},
            "spec": {"restartPolicy": restart, "containers": [{"name": "main", "image": "busybox", "env": env}]},
        }},
    }))
    .expect("job json")
}

fn conditions(cluster: &FakeCluster, name: &str) -> Vec<(String, String)> {
    cluster
        .job("default", name)
        .and_then(|j| j.status)
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.status == "True")
        .map(|c| (c.type_, c.reason.unwrap_or_default()))
        .collect()
}

fn has_condition(cluster: &FakeCluster, name: &str, ty: &str) -> bool {
    conditions(cluster, name).iter().any(|(t, _)| t == ty)
}

#[test]
fn kube_client_speaks_plain_http_through_the_kubeconfig() {
    let cluster = FakeCluster::start();
    let created = cluster
        .with_client(|client| async move {
            let jobs: Api<Job> = Api::default_namespaced(client);
            jobs.create(&PostParams::default(), &job("hello", "Never", &[]))
                .await
        })
        .expect("create over http");
    let meta = &created.metadata;
    assert!(
        meta.uid.is_some() && meta.creation_timestamp.is_some() && meta.resource_version.is_some()
    );
    assert_eq!(meta.generation, Some(1));
    let spec = created.spec.expect("spec");
    let selector = spec
        .selector
        .and_then(|s| s.match_labels)
        .expect("selector filled in");
    assert_eq!(
        selector.get("batch.kubernetes.io/controller-uid"),
        meta.uid.as_ref()
    );
    let labels = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .expect("template labels");
    assert_eq!(labels.get("job-name").map(String::as_str), Some("hello"));
    assert_eq!(labels.get("controller-uid"), meta.uid.as_ref());
    assert_eq!(labels.get("jobherd.io/run").map(String::as_str), Some("r1"));
    let reqs = cluster.requests();
    assert!(reqs.iter().any(|r| r.verb == "create"
        && r.resource == "jobs"
        && r.group == "batch"
        && r.status == 201));
}

#[test]
fn job_succeeds_with_success_criteria_then_complete() {
    let cluster = FakeCluster::start();
    cluster.create_job(job("ok", "Never", &[("FAKE_RUN_MS", "20")]));
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "ok", "Complete")));
    let j = cluster.job("default", "ok").expect("job");
    let status = j.status.expect("status");
    assert_eq!(status.succeeded, Some(1));
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    let types: Vec<String> = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    let pods = cluster.pods_of("default", "ok");
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    for key in [
        "job-name",
        "controller-uid",
        "batch.kubernetes.io/job-name",
        "batch.kubernetes.io/controller-uid",
        "jobherd.io/run",
    ] {
        assert!(labels.contains_key(key), "pod label {key}");
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    assert!(
        name.starts_with("ok-") && name.len() == "ok-".len() + 5,
        "{name}"
    );
    let owner = &pod.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );
    assert_eq!(
        cluster.log_lines("default", &name),
        Some(vec![format!("hello from {name}")])
    );
}

#[test]
fn runner_starts_the_real_binary_with_a_clean_environment() {
    let cluster = FakeCluster::start();
    let parent = cluster.create_parent("default", "nightly-123");
    let out = cluster.jobherd().in_pod(&parent).timeout(secs(30)).run();
    assert!(out.code.is_some() || out.signal.is_some(), "{out}");
    let pod = cluster
        .pod("default", &parent.pod_name)
        .expect("parent pod");
    let owner = &pod.metadata.owner_references.unwrap_or_default()[0];
    assert_eq!(
        (owner.name.as_str(), owner.uid.as_str()),
        (parent.job_name.as_str(), parent.job_uid.as_str())
    );
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Running"));
}

fn job_with(name: &str, restart: &str, env: &[(&str, &str)], spec: serde_json::Value) -> Job {
    let mut v = serde_json::to_value(job(name, restart, env)).expect("job value");
    if let Some(extra) = spec.as_object() {
        for (k, val) in extra {
            v["spec"][k] = val.clone();
        }
    }
    serde_json::from_value(v).expect("job json")
}

fn api_error(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn pod_names(cluster: &FakeCluster, job: &str) -> Vec<String> {
    cluster
        .pods_of("default", job)
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect()
}

fn phase(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

#[test]
fn list_and_watch_filter_by_label_selector() {
    let cluster = FakeCluster::start();
    let mut other = job("other", "Never", &[]);
    other.metadata.labels = Some([("jobherd.io/run".to_string(), "r2".to_string())].into());
    cluster.create_job(other);
    cluster.create_job(job("mine", "Never", &[("FAKE_RUN_MS", "5000")]));
    cluster.with_client(|client| async move {
        let jobs: Api<Job> = Api::default_namespaced(client.clone());
        let mine = jobs
            .list(&ListParams::default().labels("jobherd.io/run=r1"))
            .await
            .expect("list");
        assert_eq!(mine.items.len(), 1);
        assert_eq!(mine.items[0].metadata.name.as_deref(), Some("mine"));
        for (sel, n) in [
            ("jobherd.io/run in (r1,r2)", 2),
            ("jobherd.io/run!=r1", 1),
            ("!jobherd.io/run", 0),
            ("app.kubernetes.io/managed-by", 1),
        ] {
            assert_eq!(
                jobs.list(&ListParams::default().labels(sel))
                    .await
                    .expect("list")
                    .items
                    .len(),
                n,
                "{sel}"
            );
        }
        let by_name = jobs
            .list(&ListParams::default().fields("metadata.name=other"))
            .await
            .expect("list");
        assert_eq!(by_name.items.len(), 1);
        let paged = jobs
            .list(&ListParams::default().limit(1))
            .await
            .expect("page 1");
        let token = paged.metadata.continue_.clone().expect("continue token");
        let rest = jobs
            .list(&ListParams::default().limit(1).continue_token(&token))
            .await
            .expect("page 2");
        assert_eq!((paged.items.len(), rest.items.len()), (1, 1));
        assert_ne!(paged.items[0].metadata.name, rest.items[0].metadata.name);

        let rv = mine.metadata.resource_version.clone().expect("list rv");
        let pods: Api<Pod> = Api::default_namespaced(client);
        let wp = WatchParams::default().labels("job-name=mine").timeout(5);
        let mut stream = pods.watch(&wp, "0").await.expect("watch").boxed();
        // rv 0: the current state first, as synthetic ADDED events.
        match stream.try_next().await.expect("event") {
            Some(WatchEvent::Added(p)) => {
                assert!(p.metadata.name.expect("name").starts_with("mine-"))
            }
            other => panic!("expected ADDED, got {other:?}"),
        }
        let mut from_rv = jobs
            .watch(
                &WatchParams::default()
                    .labels("jobherd.io/run=r1")
                    .timeout(5),
                &rv,
            )
            .await
            .expect("watch")
            .boxed();
        cluster_patch_label(&jobs).await;
        match from_rv.try_next().await.expect("event") {
            Some(WatchEvent::Modified(j)) => assert_eq!(j.metadata.name.as_deref(), Some("mine")),
            other => panic!("expected MODIFIED, got {other:?}"),
        }
    });
}

async fn cluster_patch_label(jobs: &Api<Job>) {
    let patch = json!({"metadata": {"annotations": {"seen": "yes"}}});
    jobs.patch("mine", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
}

#[test]
fn create_honours_generate_name_conflicts_dry_run_and_validation() {
    let cluster = FakeCluster::start();
    cluster.with_client(|client| async move {
        let jobs: Api<Job> = Api::default_namespaced(client);
        let mut generated = job("", "Never", &[]);
        generated.metadata.name = None;
        generated.metadata.generate_name = Some("gen-".into());
        let made = jobs
            .create(&PostParams::default(), &generated)
            .await
            .expect("generateName");
        let name = made.metadata.name.expect("name");
        assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

        jobs.create(&PostParams::default(), &job("dup", "Never", &[]))
            .await
            .expect("first");
        let (code, reason, message) = api_error(
            jobs.create(&PostParams::default(), &job("dup", "Never", &[]))
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (code, reason.as_str(), message.as_str()),
            (409, "AlreadyExists", "jobs.batch \"dup\" already exists")
        );

        let dry = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let echoed = jobs
            .create(&dry, &job("dry", "Never", &[]))
            .await
            .expect("dry run");
        assert_eq!(echoed.metadata.name.as_deref(), Some("dry"));
        assert!(
            jobs.get_opt("dry").await.expect("get").is_none(),
            "dryRun=All must not store"
        );

        let (code, reason, _) = api_error(
            jobs.create(&PostParams::default(), &job("Bad_Name", "Never", &[]))
                .await
                .unwrap_err(),
        );
        assert_eq!((code, reason.as_str()), (422, "Invalid"));
        let long = "x".repeat(64);
        let (code, _, message) = api_error(
            jobs.create(&PostParams::default(), &job(&long, "Never", &[]))
                .await
                .unwrap_err(),
        );
        assert_eq!(code, 422);
        assert!(
            message.contains("must be no more than 63 characters"),
            "{message}"
        );
        let (code, _, message) = api_error(
            jobs.create(&PostParams::default(), &job("always", "Always", &[]))
                .await
                .unwrap_err(),
        );
        assert!(
            code == 422 && message.contains("restartPolicy"),
            "{message}"
        );
        let (code, reason, message) = api_error(jobs.get("nope").await.unwrap_err());
        assert_eq!(
            (code, reason.as_str(), message.as_str()),
            (404, "NotFound", "jobs.batch \"nope\" not found")
        );
    });
    assert_eq!(cluster.jobs("default").len(), 2);
}

#[test]
fn never_policy_retries_with_new_pods_until_backoff_limit() {
    let cluster = FakeCluster::start();
    cluster.create_job(job(
        "flaky",
        "Never",
        &[
            ("FAKE_EXIT", "1"),
            ("FAKE_RUN_MS", "5"),
            ("FAKE_PENDING_MS", "1"),
        ],
    ));
    assert!(
        cluster.wait_until(secs(10), |c| has_condition(c, "flaky", "Failed")),
        "{:?}",
        conditions(&cluster, "flaky")
    );
    assert_eq!(
        conditions(&cluster, "flaky"),
        [
            (
                "FailureTarget".to_string(),
                "BackoffLimitExceeded".to_string()
            ),
            ("Failed".into(), "BackoffLimitExceeded".into())
        ]
    );
    let status = cluster
        .job("default", "flaky")
        .and_then(|j| j.status)
        .expect("status");
    // backoffLimit 2: the third failed pod fails the Job.
    assert_eq!(
        (status.failed, status.active, status.completion_time),
        (Some(3), None, None)
    );
    let pods = cluster.pods_of("default", "flaky");
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| phase(p) == "Failed"));
    let name = pods[0].metadata.name.clone().expect("name");
    assert_eq!(
        cluster.log_lines("default", &name),
        Some(vec![format!("hello from {name}"), "exit code 1".into()])
    );
}

#[test]
fn exit_codes_per_attempt_let_a_job_succeed_on_retry() {
    let cluster = FakeCluster::start();
    cluster.create_job(job(
        "retry",
        "Never",
        &[("FAKE_EXIT", "3,0"), ("FAKE_RUN_MS", "5")],
    ));
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "retry", "Complete")));
    let status = cluster
        .job("default", "retry")
        .and_then(|j| j.status)
        .expect("status");
    assert_eq!((status.failed, status.succeeded), (Some(1), Some(1)));
}

#[test]
fn on_failure_restarts_in_place_then_deletes_the_pod() {
    let cluster = FakeCluster::builder().record_history(true).start();
    cluster.create_job(job(
        "crashy",
        "OnFailure",
        &[("FAKE_EXIT", "2"), ("FAKE_RUN_MS", "5")],
    ));
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "crashy", "Failed")));
    let restarts_seen = cluster
        .history(Kind::Pod)
        .iter()
        .filter_map(|r| r.object["status"]["containerStatuses"][0]["restartCount"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(restarts_seen >= 1, "the container restarted in place");
    assert_eq!(
        conditions(&cluster, "crashy").last().map(|c| c.1.as_str()),
        Some("BackoffLimitExceeded")
    );
    assert!(
        cluster.pods_of("default", "crashy").is_empty(),
        "the failed pod is deleted"
    );
    let status = cluster
        .job("default", "crashy")
        .and_then(|j| j.status)
        .expect("status");
    assert_eq!(status.failed, Some(1));
}

#[test]
fn active_deadline_fails_the_job_and_kills_its_pod() {
    let cluster = FakeCluster::start();
    cluster.create_job(job_with(
        "slow",
        "Never",
        &[("FAKE_RUN_MS", "60000")],
        json!({"activeDeadlineSeconds": 1}),
    ));
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "slow", "Failed")));
    assert_eq!(
        conditions(&cluster, "slow"),
        [
            ("FailureTarget".to_string(), "DeadlineExceeded".to_string()),
            ("Failed".into(), "DeadlineExceeded".into())
        ]
    );
    assert!(cluster.pods_of("default", "slow").is_empty());
}

#[test]
fn a_shortened_active_deadline_counts_at_once() {
    let cluster = FakeCluster::start();
    cluster.create_job(job_with(
        "shortened",
        "Never",
        &[("FAKE_RUN_MS", "600000")],
        json!({"activeDeadlineSeconds": 600}),
    ));
    assert!(cluster.wait_until(secs(10), |c| {
        c.pods_of("default", "shortened")
            .iter()
            .any(|p| phase(p) == "Running")
    }));
    let start = cluster
        .job("default", "shortened")
        .and_then(|j| j.status?.start_time)
        .expect("startTime")
        .0;
    // Two seconds from now: the controller must not wait for the old ten minutes.
    let deadline = jiff::Timestamp::now().duration_since(start).as_secs() + 2;
    cluster.with_client(|client| async move {
        let jobs: Api<Job> = Api::default_namespaced(client);
        let patch = json!({"spec": {"activeDeadlineSeconds": deadline}});
        jobs.patch("shortened", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch")
    });
    assert!(cluster.wait_until(secs(20), |c| has_condition(c, "shortened", "Failed")));
    assert_eq!(
        conditions(&cluster, "shortened").last(),
        Some(&("Failed".to_string(), "DeadlineExceeded".to_string()))
    );
}

#[test]
fn parallelism_and_completions() {
    let cluster = FakeCluster::builder().record_history(true).start();
    cluster.create_job(job_with(
        "fan",
        "Never",
        &[("FAKE_RUN_MS", "100")],
        json!({"completions": 4, "parallelism": 2}),
    ));
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "fan", "Complete")));
    let active = |p: &serde_json::Value| {
        matches!(p["status"]["phase"].as_str(), Some("Pending" | "Running")) && !deleting(p)
    };
    assert_eq!(
        peak(&cluster.history(Kind::Pod), active),
        2,
        "parallelism 2 used, never more at once"
    );
    assert_eq!(cluster.pods_of("default", "fan").len(), 4);
    assert_eq!(
        cluster
            .job("default", "fan")
            .and_then(|j| j.status)
            .and_then(|s| s.succeeded),
        Some(4)
    );
}

#[test]
fn suspend_holds_pods_until_resumed() {
    let cluster = FakeCluster::builder().record_history(true).start();
    cluster.create_job(job_with("later", "Never", &[], json!({"suspend": true})));
    assert!(cluster.wait_until(secs(5), |c| has_condition(c, "later", "Suspended")));
    let resumed = cluster.with_client(|client| async move {
        let jobs: Api<Job> = Api::default_namespaced(client);
        let patch = json!({"spec": {"suspend": false}});
        jobs.patch("later", &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .expect("resume")
    });
    let resumed_rv: u64 = resumed
        .metadata
        .resource_version
        .and_then(|rv| rv.parse().ok())
        .expect("rv");
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "later", "Complete")));
    assert!(!has_condition(&cluster, "later", "Suspended"));
    let pods = cluster.history(Kind::Pod);
    assert!(!pods.is_empty());
    assert!(
        pods.iter().all(|r| r.rv > resumed_rv),
        "no pod while the Job was suspended"
    );
}

#[test]
fn ttl_after_finished_deletes_job_and_pods() {
    let cluster = FakeCluster::start();
    cluster.create_job(job_with(
        "brief",
        "Never",
        &[("FAKE_RUN_MS", "5")],
        json!({"ttlSecondsAfterFinished": 0}),
    ));
    assert!(
        cluster.wait_until(secs(10), |c| c.job("default", "brief").is_none()
            && c.pods("default").is_empty())
    );
}

#[test]
fn deletion_orphans_by_default_and_cascades_in_background_or_foreground() {
    let cluster = FakeCluster::start();
    for name in ["orphan", "bg", "fg"] {
        cluster.create_job(job(name, "Never", &[("FAKE_RUN_MS", "60000")]));
    }
    assert!(cluster.wait_until(secs(5), |c| {
        ["orphan", "bg", "fg"]
            .iter()
            .all(|n| pod_names(c, n).len() == 1)
    }));
    let orphan_pod = pod_names(&cluster, "orphan")[0].clone();
    let fg_job_uid = cluster
        .job("default", "fg")
        .and_then(|j| j.metadata.uid)
        .expect("uid");
    let fg_seen = cluster.with_client(|client| async move {
        let jobs: Api<Job> = Api::default_namespaced(client);
        jobs.delete("orphan", &DeleteParams::default())
            .await
            .expect("delete orphan");
        jobs.delete("bg", &DeleteParams::background())
            .await
            .expect("delete bg");
        let fg = jobs
            .delete("fg", &DeleteParams::foreground())
            .await
            .expect("delete fg");
        fg.left().map(|j| {
            (
                j.metadata.deletion_timestamp.is_some(),
                j.metadata.finalizers.unwrap_or_default(),
            )
        })
    });
    let (marked, finalizers) = fg_seen.expect("foreground delete answers the marked Job");
    assert!(
        marked && finalizers == ["foregroundDeletion"],
        "{finalizers:?}"
    );
    assert!(cluster.wait_until(secs(5), |c| c.jobs("default").is_empty()));
    assert!(cluster.wait_until(secs(5), |c| c.pods("default").len() == 1));
    let left = cluster
        .pod("default", &orphan_pod)
        .expect("the orphan pod stays");
    assert!(
        left.metadata.owner_references.is_none(),
        "orphaned pods lose their ownerReference"
    );
    assert!(cluster.pods("default").iter().all(|p| {
        p.metadata
            .owner_references
            .iter()
            .flatten()
            .all(|o| o.uid != fg_job_uid)
    }));
}

#[test]
fn deleting_the_parent_cascades_to_children_and_their_pods() {
    let cluster = FakeCluster::start();
    let parent = cluster.create_parent("default", "nightly-1");
    let mut child = job("nightly-1-0", "Never", &[("FAKE_RUN_MS", "60000")]);
    child.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: parent.job_name.clone(),
            uid: parent.job_uid.clone(),
            ..Default::default()
        },
    ]);
    cluster.create_job(child);
    assert!(cluster.wait_until(secs(5), |c| pod_names(c, "nightly-1-0").len() == 1));
    assert!(cluster.delete(Kind::Job, "default", "nightly-1", Propagation::Background));
    assert!(cluster.wait_until(secs(5), |c| c.jobs("default").is_empty()
        && c.pods("default").is_empty()));
}

#[test]
fn pod_logs_tail_timestamps_follow_and_404_when_gone() {
    let cluster = FakeCluster::start();
    cluster.create_job(job(
        "talk",
        "Never",
        &[
            ("FAKE_LOG", "one\\ntwo\\nthree"),
            ("FAKE_RUN_MS", "300"),
            ("FAKE_EXIT", "4"),
        ],
    ));
    assert!(cluster.wait_until(secs(5), |c| {
        c.pods_of("default", "talk")
            .iter()
            .any(|p| phase(p) == "Running")
    }));
    let pod = pod_names(&cluster, "talk")[0].clone();
    let p = pod.clone();
    let (tail, stamped, followed) = cluster.with_client(|client| async move {
        let pods: Api<Pod> = Api::default_namespaced(client);
        let tail = pods
            .logs(
                &p,
                &LogParams {
                    tail_lines: Some(2),
                    ..Default::default()
                },
            )
            .await
            .expect("tail");
        let stamped = pods
            .logs(
                &p,
                &LogParams {
                    timestamps: true,
                    ..Default::default()
                },
            )
            .await
            .expect("ts");
        let follow = LogParams {
            follow: true,
            ..Default::default()
        };
        let lines: Vec<String> = pods
            .log_stream(&p, &follow)
            .await
            .expect("follow")
            .lines()
            .try_collect()
            .await
            .expect("lines");
        (tail, stamped, lines)
    });
    assert_eq!(tail, "two\nthree\n");
    let first = stamped.lines().next().expect("a line");
    let (ts, text) = first.split_once(' ').expect("timestamp prefix");
    assert!(
        ts.parse::<jiff::Timestamp>().is_ok() && text == "one",
        "{first}"
    );
    // follow ends when the container terminates, after its last line.
    assert_eq!(followed, ["one", "two", "three", "exit code 4"]);

    cluster.delete(Kind::Pod, "default", &pod, Propagation::Background);
    let gone = cluster.with_client(|client| async move {
        Api::<Pod>::default_namespaced(client)
            .logs(&pod, &LogParams::default())
            .await
    });
    assert_eq!(api_error(gone.unwrap_err()).0, 404);
}

#[test]
fn stuck_pods_show_waiting_reasons_and_unschedulable() {
    let cluster = FakeCluster::builder().record_history(true).start();
    cluster.create_job(job("pull", "Never", &[("FAKE_WAITING", "ErrImagePull")]));
    cluster.create_job(job(
        "config",
        "Never",
        &[("FAKE_WAITING", "CreateContainerConfigError")],
    ));
    cluster.create_job(job("nowhere", "Never", &[("FAKE_UNSCHEDULABLE", "1")]));
    let mut missing = job("missing", "Never", &[]);
    if let Some(spec) = missing.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        spec.containers[0].image = Some("fake-missing/nothing:1".into());
    }
    cluster.create_job(missing);
    let waiting = |c: &FakeCluster, job: &str| -> Vec<String> {
        c.pods_of("default", job)
            .into_iter()
            .filter_map(|p| {
                p.status?
                    .container_statuses?
                    .first()?
                    .state
                    .clone()?
                    .waiting?
                    .reason
            })
            .collect()
    };
    assert!(cluster.wait_until(secs(5), |c| waiting(c, "config")
        == ["CreateContainerConfigError"]));
    assert!(
        cluster.wait_until(secs(5), |c| waiting(c, "missing") == ["ErrImagePull"]
            || waiting(c, "missing") == ["ImagePullBackOff"])
    );
    assert!(cluster.wait_until(secs(5), |c| !waiting(c, "pull").is_empty()));
    let pull = pod_names(&cluster, "pull")[0].clone();
    let pulled = |reason: &str| {
        cluster.wait_until(secs(5), |c| {
            c.history_of(Kind::Pod, "default", &pull).iter().any(|r| {
                r.object["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == reason
            })
        })
    };
    assert!(
        pulled("ErrImagePull") && pulled("ImagePullBackOff"),
        "ErrImagePull alternates with ImagePullBackOff"
    );
    let unscheduled = |c: &FakeCluster| {
        c.pods_of("default", "nowhere").iter().any(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default()
                .iter()
                .any(|cond| {
                    cond.type_ == "PodScheduled"
                        && cond.status == "False"
                        && cond.reason.as_deref() == Some("Unschedulable")
                })
        })
    };
    assert!(cluster.wait_until(secs(5), unscheduled));
    assert!(
        cluster
            .pods("default")
            .iter()
            .all(|p| phase(p) == "Pending")
    );
    let pod = pod_names(&cluster, "config")[0].clone();
    let logs = cluster.with_client(|client| async move {
        Api::<Pod>::default_namespaced(client)
            .logs(&pod, &LogParams::default())
            .await
    });
    let (code, _, message) = api_error(logs.unwrap_err());
    assert!(
        code == 400 && message.contains("is waiting to start"),
        "{message}"
    );
}

#[test]
fn pre_131_clusters_only_set_complete_and_failed() {
    let cluster = FakeCluster::builder().pre_131_conditions(true).start();
    cluster.create_job(job("ok", "Never", &[("FAKE_RUN_MS", "5")]));
    cluster.create_job(job(
        "bad",
        "Never",
        &[("FAKE_RUN_MS", "5"), ("FAKE_EXIT", "1")],
    ));
    assert!(
        cluster.wait_until(secs(10), |c| has_condition(c, "ok", "Complete")
            && has_condition(c, "bad", "Failed"))
    );
    assert_eq!(
        conditions(&cluster, "ok"),
        [("Complete".to_string(), String::new())]
    );
    assert_eq!(
        conditions(&cluster, "bad"),
        [("Failed".to_string(), "BackoffLimitExceeded".to_string())]
    );
}

#[test]
fn watcher_resumes_after_410_by_listing_again() {
    let cluster = FakeCluster::start();
    cluster.create_job(job("first", "Never", &[("FAKE_RUN_MS", "60000")]));
    let c = &cluster;
    c.with_client(|client| async move {
        let jobs: Api<Job> = Api::default_namespaced(client);
        let cfg = watcher::Config::default().labels("jobherd.io/run=r1");
        let mut names = std::pin::pin!(watcher(jobs, cfg).default_backoff().applied_objects());
        let first = names.try_next().await.expect("event").expect("object");
        assert_eq!(first.metadata.name.as_deref(), Some("first"));
        let lists_before = c.count_requests("list", "jobs");
        c.compact();
        c.drop_watches();
        c.create_job(job("second", "Never", &[("FAKE_RUN_MS", "60000")]));
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            // The watcher surfaces the interruption as an error item, then recovers.
            while let Some(item) = names.next().await {
                let Ok(j) = item else { continue };
                if j.metadata.name.as_deref() == Some("second") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true));
        assert!(
            c.count_requests("list", "jobs") > lists_before,
            "the watcher re-listed after 410 Expired"
        );
    });
}

#[test]
fn watch_from_compacted_version_gets_an_expired_error_event() {
    let cluster = FakeCluster::builder().compaction_window(3).start();
    let old_rv = cluster.resource_version().to_string();
    for i in 0..5 {
        cluster.create_raw(Kind::CronJob, json!({"metadata": {"name": format!("c{i}")}, "spec": {"schedule": "* * * * *", "jobTemplate": {}}}));
    }
    let ev = cluster.with_client(|client| async move {
        let jobs: Api<Job> = Api::default_namespaced(client);
        let mut s = jobs
            .watch(&WatchParams::default().timeout(2), &old_rv)
            .await
            .expect("watch")
            .boxed();
        s.try_next().await
    });
    match ev {
        Ok(Some(WatchEvent::Error(e))) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[test]
fn too_many_requests_with_retry_after_is_retried_by_kube() {
    let cluster = FakeCluster::start();
    cluster.fail_next(1, 429, Some(1), Some(("list", "jobs")));
    let started = Instant::now();
    let listed = cluster.with_client(|client| async move {
        Api::<Job>::default_namespaced(client)
            .list(&ListParams::default())
            .await
    });
    assert!(listed.is_ok(), "{listed:?}");
    assert!(
        started.elapsed() >= millis(900),
        "kube waited for Retry-After"
    );
    let statuses: Vec<u16> = cluster
        .requests()
        .iter()
        .filter(|r| r.verb == "list")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [429, 200]);
    cluster.fail_next(1, 500, None, None);
    let failed = cluster.with_client(|client| async move {
        Api::<Job>::default_namespaced(client).get_opt("x").await
    });
    assert_eq!(api_error(failed.unwrap_err()).0, 500);
}

#[test]
fn forbidden_verbs_answer_403_like_rbac() {
    let cluster = FakeCluster::start();
    cluster.forbid("create", "jobs");
    let refused = cluster.with_client(|client| async move {
        Api::<Job>::default_namespaced(client)
            .create(&PostParams::default(), &job("x", "Never", &[]))
            .await
    });
    let (code, reason, message) = api_error(refused.unwrap_err());
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        message,
        "jobs.batch is forbidden: User \"system:serviceaccount:default:jobherd\" cannot create resource \"jobs\" in API group \"batch\" in the namespace \"default\""
    );
    cluster.allow("create", "jobs");
    let ok = cluster.with_client(|client| async move {
        Api::<Job>::default_namespaced(client)
            .create(&PostParams::default(), &job("x", "Never", &[]))
            .await
    });
    assert!(ok.is_ok());
}

#[test]
fn stall_delays_responses() {
    let cluster = FakeCluster::start();
    cluster.stall(millis(300), 1);
    let started = Instant::now();
    cluster.with_client(|client| async move {
        Api::<Job>::default_namespaced(client)
            .list(&ListParams::default())
            .await
            .expect("list");
    });
    assert!(started.elapsed() >= millis(300));
}

#[test]
fn restart_on_the_same_port_keeps_state_and_watchers_recover() {
    let cluster = FakeCluster::start();
    let c = &cluster;
    c.with_client(|client| async move {
        let jobs: Api<Job> = Api::default_namespaced(client);
        jobs.create(
            &PostParams::default(),
            &job("before", "Never", &[("FAKE_RUN_MS", "60000")]),
        )
        .await
        .expect("create");
        let mut names = std::pin::pin!(
            watcher(jobs.clone(), watcher::Config::default())
                .default_backoff()
                .applied_objects()
        );
        assert!(names.try_next().await.expect("event").is_some());
        c.stop();
        assert!(
            jobs.get("before").await.is_err(),
            "nothing listens while stopped"
        );
        c.create_job(job("during", "Never", &[("FAKE_RUN_MS", "60000")]));
        c.restart();
        assert!(
            jobs.get("before").await.is_ok(),
            "state kept across the restart"
        );
        let seen = tokio::time::timeout(Duration::from_secs(10), async {
            // The watcher surfaces the interruption as an error item, then recovers.
            while let Some(item) = names.next().await {
                let Ok(j) = item else { continue };
                if j.metadata.name.as_deref() == Some("during") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(seen, Ok(true));
    });
}

#[test]
fn requests_are_recorded_with_verb_resource_and_status() {
    let cluster = FakeCluster::start();
    let parent = cluster.create_parent("default", "p");
    let pod = parent.pod_name.clone();
    cluster.with_client(|client| async move {
        let pods: Api<Pod> = Api::default_namespaced(client.clone());
        pods.get(&pod).await.expect("own pod");
        let jobs: Api<Job> = Api::default_namespaced(client.clone());
        let patch = json!({"metadata": {"annotations": {"jobherd.io/summary": "3/3 succeeded"}}});
        jobs.patch("p", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotate parent");
        let events: Api<Event> = Api::default_namespaced(client);
        let ev: Event = serde_json::from_value(json!({
            "metadata": {"generateName": "p."}, "eventTime": "2024-01-01T00:00:00.000000Z",
            "reportingController": "jobherd.io/jobherd", "reportingInstance": "p", "action": "Run",
            "reason": "Succeeded", "type": "Normal", "note": "3/3 succeeded",
            "regarding": {"kind": "Job", "name": "p", "namespace": "default"},
        }))
        .expect("event");
        events
            .create(&PostParams::default(), &ev)
            .await
            .expect("event");
    });
    let reqs = cluster.requests();
    let summary: Vec<(&str, &str, &str, u16)> = reqs
        .iter()
        .map(|r| (r.verb, r.resource.as_str(), r.name.as_str(), r.status))
        .collect();
    assert_eq!(
        summary,
        [
            ("get", "pods", parent.pod_name.as_str(), 200),
            ("patch", "jobs", "p", 200),
            ("create", "events", "", 201)
        ]
    );
    assert_eq!(reqs[2].group, "events.k8s.io");
    assert!(reqs.windows(2).all(|w| w[0].at <= w[1].at));
    let annotated = cluster
        .job("default", "p")
        .and_then(|j| j.metadata.annotations)
        .unwrap_or_default();
    assert_eq!(
        annotated.get("jobherd.io/summary").map(String::as_str),
        Some("3/3 succeeded")
    );
    assert_eq!(cluster.events("default").len(), 1);
    cluster.clear_requests();
    assert!(cluster.requests().is_empty());
}

#[test]
fn two_thousand_jobs_complete_without_the_fake_being_the_bottleneck() {
    let cluster = FakeCluster::start();
    let started = Instant::now();
    for i in 0..2000 {
        cluster.create_job(job(
            &format!("bulk-{i}"),
            "Never",
            &[("FAKE_RUN_MS", "20"), ("FAKE_PENDING_MS", "5")],
        ));
    }
    eprintln!("created in {:?}", started.elapsed());
    let done = |c: &FakeCluster| c.count(Kind::Job, "default", |j| j["status"]["succeeded"] == 1);
    assert!(
        cluster.wait_until(secs(60), |c| done(c) == 2000),
        "{} done",
        done(&cluster)
    );
    eprintln!("2000 jobs created and completed in {:?}", started.elapsed());
}

#[test]
fn watches_send_bookmarks_and_end_at_timeout_seconds() {
    let cluster = FakeCluster::builder().bookmark_interval(millis(50)).start();
    let events = cluster.with_client(|client| async move {
        let jobs: Api<Job> = Api::default_namespaced(client);
        let wp = WatchParams::default().timeout(1);
        let stream = jobs.watch(&wp, "0").await.expect("watch");
        stream.try_collect::<Vec<_>>().await.expect("events")
    });
    assert!(
        events.iter().any(|e| matches!(e, WatchEvent::Bookmark(_))),
        "{events:?}"
    );
    assert_eq!(
        cluster.watch_count(),
        0,
        "the stream ended at timeoutSeconds"
    );
}

// ---------------------------------------------------------------------------------------------
// Fidelity to real control planes (/work/shared/KUBERNETES.md), asserted on recorded history:
// every version of every object, in the order watchers saw them.

/// Whether a Job (or pod) version has condition `ty` with status True.
fn cond_true(obj: &serde_json::Value, ty: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == ty && c["status"] == "True"))
}

fn finalizers(obj: &serde_json::Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn deleting(obj: &serde_json::Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

/// The first version (index) for which `pred` holds.
fn first(history: &[Revision], pred: impl Fn(&Revision) -> bool) -> Option<usize> {
    history.iter().position(pred)
}

/// A Job as JSON, with a pod template patched by `pod_spec` (merged into the pod spec).
fn job_json(
    name: &str,
    restart: &str,
    env: &[(&str, &str)],
    spec: serde_json::Value,
) -> serde_json::Value {
    serde_json::to_value(job_with(name, restart, env, spec)).expect("job value")
}

fn with_pod_spec(mut job: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    for (k, v) in extra.as_object().expect("object") {
        job["spec"]["template"]["spec"][k] = v.clone();
    }
    job
}

#[test]
fn success_criteria_met_comes_in_an_earlier_update_than_complete() {
    let cluster = FakeCluster::builder().record_history(true).start();
    cluster.create_job(job("ok", "Never", &[("FAKE_RUN_MS", "20")]));
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "ok", "Complete")));
    let jobs = cluster.history_of(Kind::Job, "default", "ok");
    let met = first(&jobs, |r| cond_true(&r.object, "SuccessCriteriaMet")).expect("interim");
    let complete = first(&jobs, |r| cond_true(&r.object, "Complete")).expect("final");
    assert!(
        met < complete,
        "SuccessCriteriaMet at {met}, Complete at {complete}"
    );
    // The count passed through uncountedTerminatedPods while the pod kept its finalizer.
    let uncounted = first(&jobs, |r| {
        r.object["status"]["uncountedTerminatedPods"]["succeeded"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })
    .expect("an update listing the pod as uncounted");
    let counted = first(&jobs, |r| r.object["status"]["succeeded"] == 1).expect("counted");
    assert!(uncounted < counted);
    let pods = cluster.history(Kind::Pod);
    assert!(
        pods.iter().any(
            |r| r.object["status"]["phase"] == "Running" && finalizers(&r.object) == [TRACKING]
        )
    );
    let released = pods
        .iter()
        .find(|r| r.object["status"]["phase"] == "Succeeded" && finalizers(&r.object).is_empty())
        .expect("the finalizer is removed once the pod is counted");
    assert!(jobs[uncounted].rv < released.rv && released.rv < jobs[counted].rv);
    let last = &jobs[jobs.len() - 1].object["status"];
    assert_eq!(last["uncountedTerminatedPods"], json!({}));
    assert_eq!(
        (last["ready"].clone(), last["terminating"].clone()),
        (json!(0), json!(0))
    );
}

#[test]
fn failed_waits_until_no_pod_is_terminating() {
    // OnFailure, backoffLimit 1, as in KUBERNETES.md: FailureTarget with terminating: 1, Failed
    // once the pod has gone.
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    cluster.create_job(job_with(
        "crash",
        "OnFailure",
        &[
            ("FAKE_EXIT", "1"),
            ("FAKE_RUN_MS", "1000"),
            ("FAKE_TERM_MS", "200"),
        ],
        json!({"backoffLimit": 1}),
    ));
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "crash", "Failed")));
    let jobs = cluster.history_of(Kind::Job, "default", "crash");
    let target = first(&jobs, |r| cond_true(&r.object, "FailureTarget")).expect("interim");
    let failed = first(&jobs, |r| cond_true(&r.object, "Failed")).expect("final");
    assert!(target < failed);
    assert!(
        jobs[target..failed]
            .iter()
            .any(|r| r.object["status"]["terminating"] == 1),
        "the pod was seen terminating between FailureTarget and Failed"
    );
    assert_eq!(jobs[failed].object["status"]["terminating"], 0);
    assert_eq!(jobs[failed].object["status"]["failed"], 1);
    assert_eq!(
        conditions(&cluster, "crash"),
        [
            (
                "FailureTarget".to_string(),
                "BackoffLimitExceeded".to_string()
            ),
            ("Failed".into(), "BackoffLimitExceeded".into())
        ]
    );
    let pods = cluster.history(Kind::Pod);
    let still_running = first(&pods, |r| {
        deleting(&r.object) && r.object["status"]["phase"] == "Running"
    })
    .expect("the deleted pod kept running for a while");
    let stopped = first(&pods, |r| {
        deleting(&r.object) && r.object["status"]["phase"] == "Failed"
    })
    .expect("then it stopped");
    assert!(pods[still_running].rv < pods[stopped].rv);
    assert!(
        pods[stopped].rv < jobs[failed].rv,
        "Failed waited for the pod"
    );
    let before = pods[still_running].at;
    assert!(pods[stopped].at.duration_since(before) >= millis(150));
}

#[test]
fn deleted_pod_gets_sigterm_then_sigkill_after_its_grace_period() {
    let cluster = FakeCluster::builder().record_history(true).start();
    // One that exits 100 ms after SIGTERM, one that ignores it and is killed after 1 s.
    cluster.create_job(job("polite", "Never", &[("FAKE_RUN_MS", "60000")]));
    let stubborn = with_pod_spec(
        job_json(
            "stubborn",
            "Never",
            &[("FAKE_RUN_MS", "60000"), ("FAKE_TERM_MS", "60000")],
            json!({}),
        ),
        json!({"terminationGracePeriodSeconds": 1}),
    );
    cluster.create_job(serde_json::from_value(stubborn).expect("job"));
    let running = |c: &FakeCluster, job: &str| {
        c.pods_of("default", job)
            .iter()
            .any(|p| phase(p) == "Running")
    };
    assert!(cluster.wait_until(secs(10), |c| running(c, "polite") && running(c, "stubborn")));
    let polite = pod_names(&cluster, "polite")[0].clone();
    let stubborn = pod_names(&cluster, "stubborn")[0].clone();
    let (p, s) = (polite.clone(), stubborn.clone());
    let answered = cluster.with_client(|client| async move {
        let pods: Api<Pod> = Api::default_namespaced(client);
        let a = pods
            .delete(&p, &DeleteParams::default())
            .await
            .expect("delete");
        let b = pods
            .delete(&s, &DeleteParams::default())
            .await
            .expect("delete");
        (a.left(), b.left())
    });
    let marked = answered.0.expect("a graceful delete answers the pod");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    assert_eq!(
        answered
            .1
            .and_then(|p| p.metadata.deletion_grace_period_seconds),
        Some(1)
    );
    assert!(
        cluster.wait_until(secs(10), |c| c.pod("default", &polite).is_none()
            && c.pod("default", &stubborn).is_none())
    );
    for (name, code, at_least) in [(&polite, 143, millis(100)), (&stubborn, 137, secs(1))] {
        let h = cluster.history_of(Kind::Pod, "default", name);
        let marked = first(&h, |r| deleting(&r.object)).expect("marked for deletion");
        assert_eq!(h[marked].object["status"]["phase"], "Running", "{name}");
        let ended = first(&h, |r| {
            r.object["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == code
        })
        .unwrap_or_else(|| panic!("{name} ended with {code}"));
        assert_eq!(h[ended].object["status"]["phase"], "Failed");
        assert!(
            h[ended].at.duration_since(h[marked].at) >= at_least,
            "{name}"
        );
        assert_eq!(h.last().map(|r| r.event), Some("DELETED"));
    }
}

#[test]
fn background_deletion_removes_the_job_at_once_and_its_pods_gracefully() {
    let cluster = FakeCluster::builder().record_history(true).start();
    cluster.create_job(job(
        "bg",
        "Never",
        &[("FAKE_RUN_MS", "60000"), ("FAKE_TERM_MS", "300")],
    ));
    assert!(cluster.wait_until(secs(10), |c| {
        c.pods_of("default", "bg")
            .iter()
            .any(|p| phase(p) == "Running")
    }));
    cluster.with_client(|client| async move {
        Api::<Job>::default_namespaced(client)
            .delete("bg", &DeleteParams::background())
            .await
            .expect("delete")
    });
    assert!(
        cluster.job("default", "bg").is_none(),
        "the Job goes at once"
    );
    assert!(cluster.wait_until(secs(10), |c| c.pods("default").is_empty()));
    let job_gone = cluster
        .history_of(Kind::Job, "default", "bg")
        .last()
        .map(|r| (r.event, r.rv))
        .expect("job history");
    assert_eq!(job_gone.0, "DELETED");
    let pods = cluster.history(Kind::Pod);
    let marked = first(&pods, |r| deleting(&r.object)).expect("the pod was deleted gracefully");
    assert!(job_gone.1 < pods[marked].rv);
    assert_eq!(pods[marked].object["status"]["phase"], "Running");
    // Its Job is gone: the job-tracking finalizer does not hold the pod back.
    assert!(
        pods[marked..]
            .iter()
            .any(|r| finalizers(&r.object).is_empty())
    );
    assert_eq!(pods.last().map(|r| r.event), Some("DELETED"));
}

/// For each pod of a Job's history, in creation order: when it was added and when it failed.
fn pod_lifetimes(pods: &[Revision]) -> Vec<(Instant, Option<Instant>)> {
    let mut out: Vec<(String, Instant, Option<Instant>)> = Vec::new();
    for r in pods {
        match out.iter_mut().find(|(uid, _, _)| uid == r.uid()) {
            None => out.push((r.uid().to_string(), r.at, None)),
            Some((_, _, failed)) => {
                if failed.is_none() && r.object["status"]["phase"] == "Failed" {
                    *failed = Some(r.at);
                }
            }
        }
    }
    out.into_iter().map(|(_, a, f)| (a, f)).collect()
}

#[test]
fn never_pods_are_replaced_after_the_controllers_doubling_back_off() {
    // 10 s then 20 s on a real cluster; at time scale 0.02, 200 ms then 400 ms.
    let cluster = FakeCluster::builder()
        .record_history(true)
        .time_scale(0.02)
        .start();
    cluster.create_job(job(
        "flaky",
        "Never",
        &[
            ("FAKE_EXIT", "1"),
            ("FAKE_RUN_MS", "5"),
            ("FAKE_PENDING_MS", "1"),
        ],
    ));
    assert!(cluster.wait_until(secs(20), |c| has_condition(c, "flaky", "Failed")));
    let lives = pod_lifetimes(&cluster.history(Kind::Pod));
    assert_eq!(lives.len(), 3, "backoffLimit 2: three pods");
    for (n, back_off) in [(1, millis(200)), (2, millis(400))] {
        let failed = lives[n - 1].1.expect("the earlier pod failed");
        let waited = lives[n].0.duration_since(failed);
        assert!(
            waited >= back_off,
            "pod {n} came {waited:?} after the failure"
        );
    }
}

#[test]
fn on_failure_containers_restart_with_crash_loop_back_off() {
    // The kubelet restarts at once, then after 10 s, 20 s... (200 ms, 400 ms at scale 0.02).
    let cluster = FakeCluster::builder()
        .record_history(true)
        .time_scale(0.02)
        .start();
    cluster.create_job(job_with(
        "crashy",
        "OnFailure",
        &[("FAKE_EXIT", "2"), ("FAKE_RUN_MS", "5")],
        json!({"backoffLimit": 3}),
    ));
    assert!(cluster.wait_until(secs(20), |c| has_condition(c, "crashy", "Failed")));
    let pods = cluster.history(Kind::Pod);
    let container = |r: &Revision| r.object["status"]["containerStatuses"][0].clone();
    let backing_off: Vec<&Revision> = pods
        .iter()
        .filter(|r| container(r)["state"]["waiting"]["reason"] == "CrashLoopBackOff")
        .collect();
    assert!(!backing_off.is_empty(), "CrashLoopBackOff between restarts");
    assert!(
        backing_off.iter().all(|r| {
            let c = container(r);
            c["restartCount"].as_u64() >= Some(1) && c["lastState"]["terminated"]["exitCode"] == 2
        }),
        "the first restart is immediate"
    );
    // When restart n started running.
    let started = |n: u64| {
        pods.iter()
            .find(|r| {
                let c = container(r);
                c["restartCount"] == n && !c["state"]["running"].is_null()
            })
            .map(|r| r.at)
            .unwrap_or_else(|| panic!("restart {n} ran"))
    };
    let ended = |n: u64| {
        pods.iter()
            .find(|r| {
                let c = container(r);
                c["restartCount"] == n && !c["state"]["terminated"].is_null()
            })
            .map(|r| r.at)
            .unwrap_or_else(|| panic!("attempt {n} ended"))
    };
    assert!(started(2).duration_since(ended(1)) >= millis(200));
    assert!(started(3).duration_since(ended(2)) >= millis(400));
    let status = cluster
        .job("default", "crashy")
        .and_then(|j| j.status)
        .expect("status");
    assert_eq!(status.failed, Some(1), "one pod, restarted in place");
}

#[test]
fn failed_count_ends_one_above_backoff_limit() {
    // backoffLimit 3 means three retries: four failed pods, in every version (the seed's
    // "3 or 4" came from controllers before 1.20 that counted workqueue requeues).
    for version in [21, 33] {
        let cluster = FakeCluster::builder().version(version).start();
        cluster.create_job(job_with(
            "limit",
            "Never",
            &[("FAKE_EXIT", "1"), ("FAKE_RUN_MS", "5")],
            json!({"backoffLimit": 3}),
        ));
        assert!(cluster.wait_until(secs(20), |c| has_condition(c, "limit", "Failed")));
        let status = cluster
            .job("default", "limit")
            .and_then(|j| j.status)
            .expect("status");
        assert_eq!(status.failed, Some(4), "1.{version}");
        assert_eq!(cluster.pods_of("default", "limit").len(), 4, "1.{version}");
    }
}

#[test]
fn version_1_21_has_no_interim_conditions_finalizers_or_newer_fields() {
    let cluster = FakeCluster::builder()
        .version(21)
        .record_history(true)
        .start();
    let mut j = job_json(
        "old",
        "Never",
        &[("FAKE_RUN_MS", "20")],
        json!({"completionMode": "NonIndexed"}),
    );
    j["spec"]["podReplacementPolicy"] = json!("Failed");
    let (minor, stored) = cluster.with_client(|client| async move {
        let minor = client.apiserver_version().await.expect("version").minor;
        let jobs: Api<Job> = Api::default_namespaced(client);
        let j: Job = serde_json::from_value(j).expect("job");
        let stored = jobs
            .create(&PostParams::default(), &j)
            .await
            .expect("create");
        (minor, serde_json::to_value(stored).expect("json"))
    });
    assert_eq!(minor, "21");
    for gone in ["completionMode", "suspend", "podReplacementPolicy"] {
        assert!(stored["spec"][gone].is_null(), "spec.{gone} at 1.21");
    }
    let uid = stored["metadata"]["uid"].clone();
    assert_eq!(
        stored["spec"]["selector"],
        json!({"matchLabels": {"controller-uid": uid}})
    );
    let labels = stored["spec"]["template"]["metadata"]["labels"].clone();
    assert!(labels["batch.kubernetes.io/job-name"].is_null() && labels["job-name"] == "old");
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "old", "Complete")));
    assert_eq!(
        conditions(&cluster, "old"),
        [("Complete".to_string(), String::new())]
    );
    assert!(
        cluster
            .history(Kind::Pod)
            .iter()
            .all(|r| finalizers(&r.object).is_empty())
    );
    for r in cluster.history_of(Kind::Job, "default", "old") {
        for absent in ["ready", "terminating", "uncountedTerminatedPods"] {
            assert!(
                r.object["status"][absent].is_null(),
                "status.{absent} at 1.21"
            );
        }
    }
}

#[test]
fn unknown_fields_are_pruned_before_1_25_then_warned_about_or_refused() {
    let mut body = with_pod_spec(
        job_json(
            "fields",
            "Never",
            &[],
            json!({"podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3]}}]}}),
        ),
        json!({"hostUsers": false}),
    );
    // A field no Kubernetes has (k8s-openapi's Job would drop it, so it is added here).
    body["spec"]["bogus"] = json!(1);
    let path = "/apis/batch/v1/namespaces/default/jobs";
    // 1.21: no field validation; unknown fields are dropped silently.
    let old = FakeCluster::builder().version(21).start();
    let (code, warnings, stored) = old.raw_request("POST", path, &body);
    assert_eq!((code, warnings.len()), (201, 0), "{stored}");
    for gone in ["bogus", "podFailurePolicy"] {
        assert!(stored["spec"][gone].is_null(), "{gone}");
    }
    // 1.25: podFailurePolicy is known but its gate is off (dropped without a word); hostUsers
    // (alpha, off) too; bogus is unknown: warned about.
    let mid = FakeCluster::builder().version(25).start();
    let (code, warnings, stored) = mid.raw_request("POST", path, &body);
    assert_eq!(code, 201);
    assert_eq!(warnings, [r#"299 - "unknown field \"spec.bogus\"""#]);
    assert!(stored["spec"]["podFailurePolicy"].is_null());
    assert!(stored["spec"]["template"]["spec"]["hostUsers"].is_null());
    // 1.33: podFailurePolicy and hostUsers are kept; Strict refuses the unknown field.
    let new = FakeCluster::start();
    let (code, _, stored) = new.raw_request("POST", path, &body);
    assert_eq!(code, 201);
    assert!(stored["spec"]["podFailurePolicy"].is_object());
    assert_eq!(stored["spec"]["template"]["spec"]["hostUsers"], false);
    let mut again = body.clone();
    again["metadata"]["name"] = json!("strict");
    let (code, _, status) =
        new.raw_request("POST", &format!("{path}?fieldValidation=Strict"), &again);
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        r#"Job in version "v1" cannot be handled as a Job: strict decoding error: unknown field "spec.bogus""#
    );
    assert!(new.job("default", "strict").is_none());
    // Newer than the version: unknown there, as a 1.24 server says.
    let before = FakeCluster::builder().version(24).start();
    let (_, warnings, _) =
        before.raw_request("POST", &format!("{path}?fieldValidation=Strict"), &body);
    assert!(warnings.is_empty(), "1.24 has no field validation");
}

#[test]
fn cronjob_yaml_is_refused_by_kubectl_at_1_21_and_applies_at_1_32() {
    let read = |f: &str| {
        std::fs::read_to_string(format!("{}/{f}", env!("CARGO_MANIFEST_DIR"))).expect("manifest")
    };
    let cronjob = read("cronjob.yaml");
    let old = FakeCluster::builder().version(21).start();
    let refused = old
        .kubectl_apply("cronjob.yaml", &cronjob)
        .expect_err("1.21 refuses it");
    assert!(
        refused.contains(r#"error validating data: ValidationError(CronJob.spec.jobTemplate.spec): unknown field "podFailurePolicy" in io.k8s.api.batch.v1.JobSpec"#),
        "{refused}"
    );
    assert!(
        refused.starts_with(r#"error: error validating "cronjob.yaml""#),
        "{refused}"
    );
    assert!(
        old.objects(Kind::CronJob, "default").is_empty(),
        "nothing applied"
    );
    let rbac = old
        .kubectl_apply("rbac.yaml", &read("rbac.yaml"))
        .expect("rbac applies at 1.21");
    let kinds: Vec<&str> = rbac.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(kinds, ["ServiceAccount", "Role", "RoleBinding"]);
    // Kinds the fake does not serve are validated all the same (and not stored).
    let typo = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndatta: {a: b}\n";
    let refused = old
        .kubectl_apply("cm.yaml", typo)
        .expect_err("unknown field");
    assert!(
        refused.contains(
            r#"ValidationError(ConfigMap): unknown field "datta" in io.k8s.api.core.v1.ConfigMap"#
        ),
        "{refused}"
    );

    let new = FakeCluster::builder().version(32).start();
    let applied = new
        .kubectl_apply("cronjob.yaml", &cronjob)
        .expect("1.32 takes it");
    assert_eq!(applied.len(), 1);
    let stored = new
        .object(Kind::CronJob, "default", "jobherd-pi")
        .expect("stored");
    assert!(stored["spec"]["jobTemplate"]["spec"]["podFailurePolicy"].is_object());
    assert_eq!(stored["spec"]["concurrencyPolicy"], "Forbid");
    // kubectl >= 1.25 asks the server to be strict.
    let mut typo = cronjob.replace("concurrencyPolicy:", "concurrencyPolicyy:");
    typo = typo.replace("name: jobherd-pi\n", "name: jobherd-typo\n");
    let refused = new
        .kubectl_apply(
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\ndatta: {}\n",
        )
        .expect_err("strict");
    assert!(
        refused.ends_with(r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "datta""#),
        "{refused}"
    );
    let refused = new.kubectl_apply("typo.yaml", &typo).expect_err("strict");
    assert!(
        refused.contains(r#"Error from server (BadRequest): error when creating "typo.yaml": CronJob in version "v1" cannot be handled as a CronJob: strict decoding error: unknown field "spec.concurrencyPolicyy""#),
        "{refused}"
    );
}

#[test]
fn each_container_has_its_own_fate_and_log() {
    let cluster = FakeCluster::start();
    let mut j = job_json(
        "pair",
        "Never",
        &[("FAKE_RUN_MS", "20"), ("FAKE_LOG", "main says hi")],
        json!({"backoffLimit": 0}),
    );
    j["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(json!({"name": "sidecar", "image": "busybox", "env": [
            {"name": "FAKE_RUN_MS", "value": "200"}, {"name": "FAKE_EXIT", "value": "3"},
            {"name": "FAKE_LOG", "value": "sidecar fails"}]}));
    cluster.create_job(serde_json::from_value(j).expect("job"));
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "pair", "Failed")));
    let pod = &cluster.pods_of("default", "pair")[0];
    let name = pod.metadata.name.clone().expect("name");
    let statuses = pod
        .status
        .clone()
        .and_then(|s| s.container_statuses)
        .expect("statuses");
    let codes: Vec<(String, i32)> = statuses
        .iter()
        .map(|s| {
            let t = s
                .state
                .clone()
                .and_then(|s| s.terminated)
                .expect("terminated");
            (s.name.clone(), t.exit_code)
        })
        .collect();
    assert_eq!(codes, [("main".to_string(), 0), ("sidecar".to_string(), 3)]);
    assert_eq!(phase(pod), "Failed");
    assert_eq!(
        cluster.container_log_lines("default", &name, "sidecar"),
        Some(vec!["sidecar fails".to_string(), "exit code 3".into()])
    );
    assert_eq!(
        cluster.log_lines("default", &name),
        Some(vec!["main says hi".to_string()])
    );
}

#[test]
fn pod_failure_policy_fails_the_job_or_ignores_disruptions() {
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    let policy = json!({"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [3]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]});
    cluster.create_job(job_with(
        "exit3",
        "Never",
        &[("FAKE_EXIT", "3"), ("FAKE_RUN_MS", "5")],
        json!({"podFailurePolicy": policy.clone()}),
    ));
    cluster.create_job(job_with(
        "evicted",
        "Never",
        &[
            ("FAKE_EXIT", "1,0"),
            ("FAKE_RUN_MS", "60000"),
            ("FAKE_TERM_MS", "20"),
        ],
        json!({"podFailurePolicy": policy, "backoffLimit": 0}),
    ));
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "exit3", "Failed")));
    assert_eq!(
        conditions(&cluster, "exit3"),
        [
            ("FailureTarget".to_string(), "PodFailurePolicy".to_string()),
            ("Failed".into(), "PodFailurePolicy".into())
        ]
    );
    let warning = cluster
        .events("default")
        .into_iter()
        .find(|e| e["reason"] == "PodFailurePolicy")
        .expect("a Warning Event");
    assert_eq!(warning["type"], "Warning");
    assert!(
        warning["message"]
            .as_str()
            .is_some_and(|m| m.contains("failed with exit code 3 matching FailJob rule at index 0")),
        "{warning}"
    );
    // An eviction is ignored: the Job (backoffLimit 0) replaces the pod instead of failing.
    assert!(cluster.wait_until(secs(10), |c| {
        c.pods_of("default", "evicted")
            .iter()
            .any(|p| phase(p) == "Running")
    }));
    let first_pod = pod_names(&cluster, "evicted")[0].clone();
    assert!(cluster.evict("default", &first_pod));
    assert!(cluster.wait_until(secs(10), |c| {
        c.pods_of("default", "evicted")
            .iter()
            .any(|p| p.metadata.name.as_ref() != Some(&first_pod) && phase(p) == "Running")
    }));
    let status = cluster
        .job("default", "evicted")
        .and_then(|j| j.status)
        .expect("status");
    assert_eq!(status.failed, None, "the eviction is not a failure");
    assert!(!has_condition(&cluster, "evicted", "Failed"));
    let h = cluster.history_of(Kind::Pod, "default", &first_pod);
    assert!(
        h.iter()
            .any(|r| cond_true(&r.object, "DisruptionTarget") && deleting(&r.object))
    );
}

#[test]
fn held_containers_run_until_released() {
    let cluster = FakeCluster::builder().record_history(true).start();
    cluster.create_job(job(
        "held",
        "Never",
        &[("FAKE_HOLD", "go"), ("FAKE_RUN_MS", "0")],
    ));
    assert!(cluster.wait_until(secs(10), |c| {
        c.pods_of("default", "held")
            .iter()
            .any(|p| phase(p) == "Running")
    }));
    let released_after = cluster.resource_version();
    cluster.release("go");
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "held", "Complete")));
    let done = cluster
        .history(Kind::Pod)
        .into_iter()
        .find(|r| r.object["status"]["phase"] == "Succeeded")
        .expect("succeeded");
    assert!(done.rv > released_after, "nothing ended before the release");
    // Released names stay released.
    cluster.create_job(job("later", "Never", &[("FAKE_HOLD", "go")]));
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "later", "Complete")));
}

#[test]
fn missing_config_map_reference_is_a_create_container_config_error() {
    let cluster = FakeCluster::start();
    let mut j = job_json("cfg", "Never", &[], json!({}));
    j["spec"]["template"]["spec"]["containers"][0]["env"] = json!([
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "a"}}}]);
    cluster.create_job(serde_json::from_value(j).expect("job"));
    let reason = |c: &FakeCluster| {
        c.pods_of("default", "cfg")
            .first()
            .and_then(|p| {
                p.status
                    .clone()?
                    .container_statuses?
                    .first()?
                    .state
                    .clone()?
                    .waiting
            })
            .map(|w| (w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
    };
    let expected = Some((
        "CreateContainerConfigError".to_string(),
        "configmap \"settings\" not found".to_string(),
    ));
    assert!(
        cluster.wait_until(secs(10), |c| reason(c) == expected),
        "{:?}",
        reason(&cluster)
    );
}

// ---------------------------------------------------------------------------------------------
// Containers of jobherd's image run the real binary.

/// A Job whose pod runs jobherd (image `jobherd:test`) with these env entries, knowing itself
/// through the downward API as cronjob.yaml sets it up.
fn herd_job(name: &str, env: serde_json::Value) -> Job {
    let mut all = vec![
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
    ];
    all.extend(env.as_array().cloned().unwrap_or_default());
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "serviceAccountName": "jobherd",
            "containers": [{"name": "jobherd", "image": "jobherd:test", "env": all,
                "terminationMessagePolicy": "FallbackToLogsOnError"}],
        }}},
    }))
    .expect("herd job")
}

fn env_value(name: &str, value: &str) -> serde_json::Value {
    json!({"name": name, "value": value})
}

/// The terminated state of a Job's (only) pod's first container.
fn terminated(cluster: &FakeCluster, job: &str) -> serde_json::Value {
    let pod = &cluster.pods_of("default", job)[0];
    let v = serde_json::to_value(pod).expect("pod json");
    v["status"]["containerStatuses"][0]["state"]["terminated"].clone()
}

#[test]
fn jobherd_image_runs_the_real_binary_with_its_output_as_the_pod_log() {
    let cluster = FakeCluster::start();
    cluster.create_job(herd_job(
        "dry",
        json!([
            env_value("JOBHERD_DRY_RUN", "client"),
            env_value("JOBHERD_IMAGE", "busybox"),
            env_value("JOBHERD_COUNT", "2"),
        ]),
    ));
    assert!(
        cluster.wait_until(secs(30), |c| has_condition(c, "dry", "Complete")),
        "{:?}",
        conditions(&cluster, "dry")
    );
    assert_eq!(terminated(&cluster, "dry")["exitCode"], 0);
    assert_eq!(terminated(&cluster, "dry")["reason"], "Completed");
    let pod = pod_names(&cluster, "dry")[0].clone();
    let log = cluster.log_lines("default", &pod).expect("log").join("\n");
    let list: serde_json::Value = serde_json::from_str(&log).expect("the dry run's JSON");
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|j| j["metadata"]["name"].as_str())
        .collect();
    // A client dry run asks the API nothing, not even who its parent is.
    assert_eq!(names.len(), 2);
    assert!(
        names[0].starts_with("jobherd-") && names[0].ends_with("-0"),
        "{names:?}"
    );
    assert_eq!(cluster.jobs("default").len(), 1, "nothing created");
}

#[test]
fn jobherd_with_a_bad_variable_exits_2_and_says_why_in_the_termination_message() {
    let cluster = FakeCluster::start();
    cluster.create_job(herd_job(
        "bad",
        json!([
            env_value("JOBHERD_IMAGE", "busybox"),
            env_value("JOBHERD_COUNT", "-1"),
        ]),
    ));
    assert!(cluster.wait_until(secs(30), |c| has_condition(c, "bad", "Failed")));
    let t = terminated(&cluster, "bad");
    assert_eq!(
        (t["exitCode"].clone(), t["reason"].clone()),
        (json!(2), json!("Error"))
    );
    let message = t["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("JOBHERD_COUNT") && message.contains("\"-1\""),
        "FallbackToLogsOnError: the last log lines: {t}"
    );
}

#[test]
fn a_herd_runs_inside_the_cluster_as_a_jobs_pod() {
    let cluster = FakeCluster::start();
    cluster.create_job(herd_job(
        "nightly",
        json!([
            env_value("JOBHERD_IMAGE", "busybox"),
            env_value("JOBHERD_COUNT", "2"),
        ]),
    ));
    assert!(
        cluster.wait_until(secs(60), |c| has_condition(c, "nightly", "Complete")),
        "{:?}",
        conditions(&cluster, "nightly")
    );
    let parent = cluster.job("default", "nightly").expect("parent");
    let parent_uid = parent.metadata.uid.clone().expect("uid");
    let t = terminated(&cluster, "nightly");
    assert_eq!(t["exitCode"], 0, "{t}");
    assert!(
        t["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("jobherd succeeded: 2 succeeded of 2 children")),
        "the summary is the termination message: {t}"
    );
    for child in ["nightly-0", "nightly-1"] {
        let job = cluster.job("default", child).expect(child);
        let owner = &job.metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Job", parent_uid.as_str())
        );
        assert!(has_condition(&cluster, child, "Complete"), "{child}");
    }
    let summary = parent.metadata.annotations.unwrap_or_default();
    assert!(
        summary
            .get("jobherd.io/summary")
            .is_some_and(|s| s.starts_with("jobherd succeeded")),
        "{summary:?}"
    );
}

#[test]
fn herds_nest_two_deep() {
    let cluster = FakeCluster::start();
    // The top herd's one child is itself a herd: a jobherd pod that knows itself through the
    // downward API (JOBHERD_JOB_TEMPLATE) and runs two busybox children.
    let template = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "herd", "image": "jobherd:test",
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "JOBHERD_IMAGE", "value": "busybox"},
                {"name": "JOBHERD_COUNT", "value": "2"},
            ],
        }]}}},
    });
    cluster.create_job(herd_job(
        "top",
        json!([
            env_value("JOBHERD_IMAGE", "jobherd:test"),
            env_value("JOBHERD_JOB_TEMPLATE", &template.to_string()),
        ]),
    ));
    assert!(
        cluster.wait_until(secs(90), |c| has_condition(c, "top", "Complete")),
        "{:?}",
        conditions(&cluster, "top")
    );
    let mid = cluster.job("default", "top-0").expect("the middle herd");
    let mid_uid = mid.metadata.uid.clone().expect("uid");
    assert!(has_condition(&cluster, "top-0", "Complete"));
    for leaf in ["top-0-0", "top-0-1"] {
        let job = cluster.job("default", leaf).expect(leaf);
        let owner = &job.metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!(owner.uid, mid_uid, "{leaf} belongs to the middle herd");
        assert!(has_condition(&cluster, leaf, "Complete"), "{leaf}");
    }
    assert_eq!(terminated(&cluster, "top-0")["exitCode"], 0);
}

#[test]
fn a_deleted_herd_pod_gets_a_real_sigterm_and_cleans_up() {
    let cluster = FakeCluster::builder().record_history(true).start();
    cluster.create_job(herd_job(
        "stopping",
        json!([
            env_value("JOBHERD_IMAGE", "busybox"),
            env_value("JOBHERD_COUNT", "2"),
            env_value("JOBHERD_ENV", r#"{"FAKE_HOLD":"never"}"#),
        ]),
    ));
    assert!(cluster.wait_until(secs(60), |c| {
        ["stopping-0", "stopping-1"].iter().all(|j| {
            c.pods_of("default", j)
                .iter()
                .any(|p| phase(p) == "Running")
        })
    }));
    let pod = pod_names(&cluster, "stopping")[0].clone();
    assert!(cluster.delete(Kind::Pod, "default", &pod, Propagation::Background));
    // jobherd exits 143 on SIGTERM after deleting its active children.
    assert!(cluster.wait_until(secs(30), |c| c.pod("default", &pod).is_none()));
    let h = cluster.history_of(Kind::Pod, "default", &pod);
    let code = h.iter().find_map(|r| {
        r.object["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"].as_i64()
    });
    assert_eq!(code, Some(143));
    assert!(
        cluster.job("default", "stopping-0").is_none()
            && cluster.job("default", "stopping-1").is_none()
    );
}

#[test]
fn jobherd_processes_die_with_the_cluster_even_when_a_test_panics() {
    let pids = std::sync::Mutex::new(Vec::new());
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let cluster = FakeCluster::start();
        cluster.create_job(herd_job(
            "doomed",
            json!([
                env_value("JOBHERD_IMAGE", "busybox"),
                env_value("JOBHERD_ENV", r#"{"FAKE_HOLD":"never"}"#),
            ]),
        ));
        assert!(cluster.wait_until(secs(60), |c| c.job("default", "doomed-0").is_some()));
        *pids.lock().expect("pids") = cluster.process_ids();
        panic!("a test failing while jobherd runs in a pod");
    }));
    assert!(failed.is_err());
    let pids = pids.into_inner().expect("pids");
    assert_eq!(pids.len(), 1, "the herd's process");
    // Gone, or a zombie waiting for this process to reap it.
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
    };
    let end = Instant::now() + secs(10);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < end {
        std::thread::sleep(millis(20));
    }
    assert!(
        !pids.iter().any(|p| alive(*p)),
        "a jobherd outlived its cluster"
    );
}

#[test]
fn a_herd_past_its_jobs_deadline_is_stopped_with_sigterm() {
    // cronjob.yaml's activeDeadlineSeconds: the Job controller deletes the herd's pod, whose
    // jobherd gets SIGTERM, deletes its active children and exits 143.
    let cluster = FakeCluster::start();
    let mut job = herd_job(
        "late",
        json!([
            env_value("JOBHERD_IMAGE", "busybox"),
            env_value("JOBHERD_ENV", r#"{"FAKE_HOLD":"never"}"#),
        ]),
    );
    if let Some(spec) = job.spec.as_mut() {
        spec.active_deadline_seconds = Some(2);
    }
    cluster.create_job(job);
    assert!(cluster.wait_until(secs(30), |c| c.job("default", "late-0").is_some()));
    assert!(cluster.wait_until(secs(30), |c| has_condition(c, "late", "Failed")));
    assert_eq!(
        conditions(&cluster, "late").last().map(|c| c.1.clone()),
        Some("DeadlineExceeded".to_string())
    );
    assert!(
        cluster.job("default", "late-0").is_none(),
        "the child was deleted"
    );
}

#[test]
fn indexed_jobs_run_one_pod_per_index_from_1_22() {
    for version in [21, 33] {
        let cluster = FakeCluster::builder().version(version).start();
        cluster.create_job(job_with(
            "idx",
            "Never",
            &[("FAKE_RUN_MS", "20")],
            json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3}),
        ));
        assert!(cluster.wait_until(secs(10), |c| has_condition(c, "idx", "Complete")));
        let job = cluster.object(Kind::Job, "default", "idx").expect("job");
        let pods = cluster.pods_of("default", "idx");
        assert_eq!(pods.len(), 3);
        if version < 22 {
            // IndexedJob is alpha and off: the field is dropped, the Job is NonIndexed.
            assert!(job["spec"]["completionMode"].is_null());
            assert!(job["status"]["completedIndexes"].is_null());
            continue;
        }
        assert_eq!(job["status"]["completedIndexes"], "0-2", "{job}");
        let mut indexes: Vec<String> = pods
            .iter()
            .map(|p| {
                let v = serde_json::to_value(p).expect("pod");
                let i = v["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                    .as_str()
                    .expect("index annotation")
                    .to_string();
                assert!(
                    v["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&format!("idx-{i}-"))),
                    "{v}"
                );
                assert_eq!(v["spec"]["hostname"], format!("idx-{i}"));
                let env = v["spec"]["containers"][0]["env"].to_string();
                assert!(env.contains("JOB_COMPLETION_INDEX"), "{env}");
                i
            })
            .collect();
        indexes.sort();
        assert_eq!(indexes, ["0", "1", "2"]);
    }
}

// ---------------------------------------------------------------------------------------------
// Init containers: one after the other, before the others, with the fates of any container.

/// A Job whose pod has these init containers (name, env) before its `main`.
fn with_inits(name: &str, restart: &str, inits: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let mut j = job_json(
        name,
        restart,
        &[("FAKE_RUN_MS", "20")],
        json!({"backoffLimit": 0}),
    );
    let inits: Vec<serde_json::Value> = inits
        .iter()
        .map(|(n, env)| json!({"name": n, "image": "busybox", "env": env}))
        .collect();
    j["spec"]["template"]["spec"]["initContainers"] = json!(inits);
    j
}

fn state_of(statuses: &serde_json::Value, i: usize) -> String {
    let s = &statuses[i]["state"];
    for st in ["waiting", "running", "terminated"] {
        if s[st].is_object() {
            return format!("{st}:{}", s[st]["reason"].as_str().unwrap_or(""));
        }
    }
    String::new()
}

#[test]
fn init_containers_run_one_after_the_other_before_the_others() {
    let cluster = FakeCluster::builder().record_history(true).start();
    let slow = json!([{"name": "FAKE_RUN_MS", "value": "30"}]);
    cluster.create_raw(
        Kind::Job,
        with_inits(
            "boot",
            "Never",
            &[("fetch", slow.clone()), ("unpack", slow)],
        ),
    );
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "boot", "Complete")));
    // (init 0, init 1, main, Initialized) as each version showed them.
    let seen: Vec<(String, String, String, String)> = cluster
        .history(Kind::Pod)
        .iter()
        .filter(|r| r.object["status"]["initContainerStatuses"].is_array())
        .map(|r| {
            let s = &r.object["status"];
            let init = s["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Initialized"))
                .map(|c| format!("{}{}", c["status"], c["message"]))
                .unwrap_or_default();
            let inits = &s["initContainerStatuses"];
            (
                state_of(inits, 0),
                state_of(inits, 1),
                state_of(&s["containerStatuses"], 0),
                init,
            )
        })
        .collect();
    let waiting = "waiting:PodInitializing".to_string();
    let expect = |a: &str, b: &str, main: &str, init: &str| {
        (
            a.to_string(),
            b.to_string(),
            main.to_string(),
            init.to_string(),
        )
    };
    let order = [
        expect(
            "running:",
            &waiting,
            &waiting,
            "\"False\"\"containers with incomplete status: [fetch unpack]\"",
        ),
        expect(
            "terminated:Completed",
            "running:",
            &waiting,
            "\"False\"\"containers with incomplete status: [unpack]\"",
        ),
        expect(
            "terminated:Completed",
            "terminated:Completed",
            "running:",
            "\"True\"null",
        ),
        expect(
            "terminated:Completed",
            "terminated:Completed",
            "terminated:Completed",
            "\"True\"null",
        ),
    ];
    let mut at = 0;
    for step in &order {
        at += seen[at..]
            .iter()
            .position(|s| s == step)
            .unwrap_or_else(|| panic!("{step:?} after {at} in {seen:#?}"));
    }
    let pod = &cluster.pods_of("default", "boot")[0];
    let name = pod.metadata.name.clone().expect("name");
    assert_eq!(
        cluster.container_log_lines("default", &name, "unpack"),
        Some(vec![format!("hello from {name}")])
    );
    let (code, _, _) = cluster.raw_request(
        "GET",
        &format!("/api/v1/namespaces/default/pods/{name}/log?container=fetch"),
        &json!(null),
    );
    assert_eq!(code, 200, "an init container's log is served too");
}

#[test]
fn a_failing_init_container_fails_a_never_pod_and_the_job_by_its_policy() {
    let cluster = FakeCluster::builder().version(32).start();
    let mut j = with_inits(
        "bad-init",
        "Never",
        &[("setup", json!([{"name": "FAKE_EXIT", "value": "2"}]))],
    );
    j["spec"]["podFailurePolicy"] = json!({"rules": [{"action": "FailJob",
        "onExitCodes": {"containerName": "setup", "operator": "In", "values": [2]}}]});
    cluster.create_raw(Kind::Job, j);
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "bad-init", "Failed")));
    assert_eq!(
        conditions(&cluster, "bad-init"),
        [
            ("FailureTarget".to_string(), "PodFailurePolicy".to_string()),
            ("Failed".into(), "PodFailurePolicy".into())
        ]
    );
    let pod = serde_json::to_value(&cluster.pods_of("default", "bad-init")[0]).expect("pod");
    let s = &pod["status"];
    assert_eq!(s["phase"], "Failed");
    assert_eq!(state_of(&s["initContainerStatuses"], 0), "terminated:Error");
    assert_eq!(
        s["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
        2
    );
    assert_eq!(
        state_of(&s["containerStatuses"], 0),
        "waiting:PodInitializing"
    );
    let warning = cluster
        .events("default")
        .into_iter()
        .find(|e| e["reason"] == "PodFailurePolicy")
        .expect("a Warning Event");
    assert!(
        warning["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Container setup for pod default/bad-init-")),
        "{warning}"
    );
}

#[test]
fn a_failing_init_container_restarts_with_back_off_in_an_on_failure_pod() {
    let cluster = FakeCluster::builder()
        .record_history(true)
        .time_scale(0.02)
        .start();
    let mut j = with_inits(
        "retry-init",
        "OnFailure",
        &[("setup", json!([{"name": "FAKE_EXIT", "value": "1,1,0"}]))],
    );
    j["spec"]["backoffLimit"] = json!(6);
    cluster.create_raw(Kind::Job, j);
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "retry-init", "Complete")));
    let history = cluster.history(Kind::Pod);
    assert!(history.iter().any(|r| {
        let init = &r.object["status"]["initContainerStatuses"][0];
        init["state"]["waiting"]["reason"] == "CrashLoopBackOff" && init["restartCount"] == 1
    }));
    let last = &history.last().expect("history").object["status"];
    assert_eq!(last["initContainerStatuses"][0]["restartCount"], 2);
    assert_eq!(last["phase"], "Succeeded");
}

#[test]
fn an_init_container_of_jobherds_image_does_not_run_jobherd() {
    let cluster = FakeCluster::start();
    let mut j = with_inits("copy", "Never", &[]);
    j["spec"]["template"]["spec"]["initContainers"] = json!([{"name": "copy-entrypoint",
        "image": "jobherd:test", "command": ["/jobherd", "--copy-to", "/shared"]}]);
    cluster.create_raw(Kind::Job, j);
    assert!(cluster.wait_until(secs(10), |c| has_condition(c, "copy", "Complete")));
    let pod = serde_json::to_value(&cluster.pods_of("default", "copy")[0]).expect("pod");
    assert_eq!(
        pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    assert!(
        cluster
            .requests()
            .iter()
            .all(|r| !r.user.starts_with("system:serviceaccount:")),
        "no jobherd process talked to the cluster"
    );
}
