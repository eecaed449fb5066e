//! The fake cluster's own tests: each behaviour of `support::fake`, shown through a real kube
//! client configured from the fake's kubeconfig, as jobherd would talk to it.

mod support;

use std::future::Future;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use serde_json::json;
use support::*;

/// Runs `f` with a kube client built from the cluster's kubeconfig, on a fresh runtime.
fn with_client<F, Fut, T>(cluster: &FakeCluster, f: F) -> T
where
    F: FnOnce(kube::Client) -> Fut,
    Fut: Future<Output = T>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let path = cluster.kubeconfig_path().to_path_buf();
    rt.block_on(async move {
        let kc = Kubeconfig::read_from(&path).expect("kubeconfig parses");
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("config");
        let client = kube::Client::try_from(config).expect("client");
        f(client).await
    })
}

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
    let created = with_client(&cluster, |client| async move {
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
