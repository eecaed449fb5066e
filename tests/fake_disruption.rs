//! The fake cluster when a run is moved rather than failed: pods evicted or otherwise disrupted
//! (`DisruptionTarget`), and Jobs suspended and resumed as Kueue does, asserted on the recorded
//! history against what `/work/shared/KUBERNETES.md` records of real control planes.

mod support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, EvictParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::*;

const NS: &str = "default";

/// A Job of one `Never` pod whose container `main` has this fate, with `spec` merged in.
fn job(name: &str, env: &[(&str, &str)], spec: Value) -> Job {
    let env: Vec<Value> = env
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    let mut job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "env": env}]}}},
    });
    for (k, v) in spec.as_object().expect("spec is an object") {
        job["spec"][k] = v.clone();
    }
    serde_json::from_value(job).expect("job json")
}

/// `podFailurePolicy`: a disruption is not a failure of the Job.
fn ignore_disruptions() -> Value {
    json!({"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]})
}

/// The condition `ty` of a Job or pod version, whatever its status.
fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
}

fn cond_true(obj: &Value, ty: &str) -> bool {
    condition(obj, ty).is_some_and(|c| c["status"] == "True")
}

fn deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

fn phase(obj: &Value) -> &str {
    obj["status"]["phase"].as_str().unwrap_or("")
}

fn first(history: &[Revision], pred: impl Fn(&Value) -> bool) -> Option<usize> {
    history.iter().position(|r| pred(&r.object))
}

/// Waits for a Running pod of `job` other than `besides`; returns its name.
fn running_pod(cluster: &FakeCluster, job: &str, besides: &[&str]) -> String {
    let mut name = None;
    let found = cluster.wait_until(secs(30), |c| {
        name = c.pods_of(NS, job).into_iter().find_map(|p| {
            let n = p.metadata.name.clone()?;
            let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
            (running && !besides.contains(&n.as_str())).then_some(n)
        });
        name.is_some()
    });
    assert!(found, "no Running pod of {job} besides {besides:?}");
    name.unwrap_or_default()
}

fn eviction(pod: &str) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": pod, "namespace": NS}})
}

fn eviction_path(pod: &str) -> String {
    format!("/api/v1/namespaces/{NS}/pods/{pod}/eviction")
}

// ---------------------------------------------------------------------------------------------
// Evictions and other disruptions

#[test]
fn an_ignored_eviction_is_not_counted_and_replaced_after_the_pod_failure_back_off() {
    // 10 s on a real cluster; at time scale 0.05, 500 ms.
    let cluster = FakeCluster::builder()
        .version(32)
        .time_scale(0.05)
        .record_history(true)
        .start();
    cluster.create_job(job(
        "moved",
        &[("FAKE_RUN_MS", "60000"), ("FAKE_TERM_MS", "20")],
        json!({"podFailurePolicy": ignore_disruptions()}),
    ));
    let evicted = running_pod(&cluster, "moved", &[]);
    assert!(cluster.evict(NS, &evicted));
    let replacement = running_pod(&cluster, "moved", &[&evicted]);

    let failed_at = cluster
        .history_of(Kind::Pod, NS, &evicted)
        .into_iter()
        .find(|r| phase(&r.object) == "Failed")
        .expect("the evicted pod ended Failed")
        .at;
    let created_at = cluster.history_of(Kind::Pod, NS, &replacement)[0].at;
    let waited = created_at.duration_since(failed_at);
    assert!(
        waited >= millis(500),
        "the replacement came {waited:?} after the eviction"
    );
    let jobs = cluster.history_of(Kind::Job, NS, "moved");
    assert!(
        jobs.iter()
            .all(|r| r.object["status"]["failed"].is_null()
                && !cond_true(&r.object, "FailureTarget")),
        "an Ignored disruption is no failure of the Job"
    );
}

#[test]
fn the_eviction_api_marks_the_pod_then_deletes_it_gracefully() {
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    cluster.create_job(job(
        "drained",
        &[("FAKE_RUN_MS", "60000"), ("FAKE_TERM_MS", "20")],
        json!({"podFailurePolicy": ignore_disruptions()}),
    ));
    let pod = running_pod(&cluster, "drained", &[]);
    let mut body = eviction(&pod);
    body["deleteOptions"] = json!({"gracePeriodSeconds": 5});
    let (status, warnings, answer) = cluster.raw_request("POST", &eviction_path(&pod), &body);
    assert_eq!(status, 201, "{answer}");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        answer,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
    );
    let request = cluster
        .requests()
        .into_iter()
        .find(|r| r.subresource == "eviction")
        .expect("the eviction is recorded");
    assert_eq!(
        (
            request.verb,
            request.resource.as_str(),
            request.name.as_str()
        ),
        ("create", "pods", pod.as_str())
    );
    assert_eq!(request.status, 201);

    assert!(cluster.wait_until(secs(10), |c| c.pod(NS, &pod).is_none()));
    let h = cluster.history_of(Kind::Pod, NS, &pod);
    let marked = first(&h, |p| cond_true(p, "DisruptionTarget")).expect("the condition");
    let c = condition(&h[marked].object, "DisruptionTarget").expect("condition");
    assert_eq!(
        (&c["reason"], &c["message"]),
        (
            &json!("EvictionByEvictionAPI"),
            &json!("Eviction API: evicting")
        )
    );
    // kube-apiserver's addConditionAndDeletePod: an update, then the delete, back to back.
    let deleted = first(&h, deleting).expect("the delete");
    assert_eq!(
        deleted,
        marked + 1,
        "the condition comes in the write before the delete"
    );
    assert_eq!(h[deleted].rv, h[marked].rv + 1, "nothing in between");
    assert_eq!(
        h[deleted].object["metadata"]["deletionGracePeriodSeconds"],
        5
    );
    assert!(
        h[deleted..]
            .iter()
            .all(|r| cond_true(&r.object, "DisruptionTarget") && deleting(&r.object)),
        "from then on every version shows both"
    );
    assert!(h.iter().any(|r| phase(&r.object) == "Failed"));
    assert_eq!(h.last().map(|r| r.event), Some("DELETED"));
}

#[test]
fn an_evicted_pod_reads_as_terminating_with_its_disruption_until_it_stops() {
    let cluster = FakeCluster::builder().version(32).start();
    let mut slow = job(
        "slow",
        &[("FAKE_RUN_MS", "600000"), ("FAKE_TERM_MS", "600000")],
        json!({"podFailurePolicy": ignore_disruptions()}),
    );
    if let Some(spec) = slow.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        spec.termination_grace_period_seconds = Some(900);
    }
    cluster.create_job(slow);
    let pod = running_pod(&cluster, "slow", &[]);
    let (status, _, _) = cluster.raw_request("POST", &eviction_path(&pod), &eviction(&pod));
    assert_eq!(status, 201);
    // What a process being stopped reads when it GETs its own pod.
    let seen: Pod = cluster.with_client(|client| async move {
        Api::<Pod>::default_namespaced(client)
            .get(&pod)
            .await
            .expect("the pod is still there")
    });
    let seen = serde_json::to_value(seen).expect("pod json");
    assert!(deleting(&seen), "{seen}");
    assert_eq!(phase(&seen), "Running");
    let c = condition(&seen, "DisruptionTarget").expect("the condition");
    assert_eq!(
        (&c["status"], &c["reason"]),
        (&json!("True"), &json!("EvictionByEvictionAPI"))
    );
}

#[test]
fn evicting_a_missing_pod_answers_not_found() {
    let cluster = FakeCluster::start();
    let (status, _, answer) =
        cluster.raw_request("POST", &eviction_path("ghost"), &eviction("ghost"));
    assert_eq!(status, 404);
    assert_eq!(answer["reason"], "NotFound");
    assert_eq!(answer["message"], "pods \"ghost\" not found");
    assert_eq!(answer["details"], json!({"name": "ghost", "kind": "pods"}));
    assert!(!cluster.evict(NS, "ghost"));
    assert_eq!(cluster.count_requests("create", "pods/eviction"), 1);
}

#[test]
fn an_eviction_must_name_the_pod_of_its_url_and_a_dry_run_changes_nothing() {
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    cluster.create_job(job("kept", &[("FAKE_HOLD", "kept")], json!({})));
    let pod = running_pod(&cluster, "kept", &[]);
    let (status, _, answer) = cluster.raw_request("POST", &eviction_path(&pod), &eviction("other"));
    assert_eq!(status, 400);
    assert_eq!(
        answer["message"],
        "name in URL does not match name in Eviction object"
    );
    let dry = format!("{}?dryRun=All", eviction_path(&pod));
    assert_eq!(cluster.raw_request("POST", &dry, &eviction(&pod)).0, 201);
    let mut in_body = eviction(&pod);
    in_body["deleteOptions"] = json!({"dryRun": ["All"]});
    assert_eq!(
        cluster
            .raw_request("POST", &eviction_path(&pod), &in_body)
            .0,
        201
    );
    // Writes are synchronous: had anything been written, it would be in the history now.
    let h = cluster.history_of(Kind::Pod, NS, &pod);
    assert!(
        h.iter()
            .all(|r| !deleting(&r.object) && condition(&r.object, "DisruptionTarget").is_none())
    );
}

#[test]
fn evictions_decode_as_each_versions_policy_api() {
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    for name in ["kube-body", "by-kube", "by-beta"] {
        cluster.create_job(job(name, &[("FAKE_HOLD", "never")], json!({})));
    }
    // kube-rs sends no type, and its delete options as `delete_options`, which the API does not
    // know: warned about and ignored, as kube-apiserver does.
    let body_pod = running_pod(&cluster, "kube-body", &[]);
    let (status, warnings, _) = cluster.raw_request(
        "POST",
        &eviction_path(&body_pod),
        &json!({"delete_options": {"gracePeriodSeconds": 0}, "metadata": {"name": body_pod}}),
    );
    assert_eq!(status, 201);
    assert_eq!(warnings, [r#"299 - "unknown field \"delete_options\"""#]);
    let h = cluster.history_of(Kind::Pod, NS, &body_pod);
    let deleted = h.iter().find(|r| deleting(&r.object)).expect("deleted");
    assert_eq!(
        deleted.object["metadata"]["deletionGracePeriodSeconds"], 30,
        "the pod's own grace period: the unknown field's 0 is not read"
    );
    let kube_pod = running_pod(&cluster, "by-kube", &[]);
    let answer = cluster.with_client(|client| async move {
        Api::<Pod>::default_namespaced(client)
            .evict(&kube_pod, &EvictParams::default())
            .await
            .expect("kube's evict")
    });
    assert_eq!(answer.code, 201);
    let beta_pod = running_pod(&cluster, "by-beta", &[]);
    let mut beta = eviction(&beta_pod);
    beta["apiVersion"] = json!("policy/v1beta1");
    assert_eq!(
        cluster
            .raw_request("POST", &eviction_path(&beta_pod), &beta)
            .0,
        201
    );

    let old = FakeCluster::builder().version(21).start();
    old.create_job(job("old", &[("FAKE_HOLD", "never")], json!({})));
    let old_pod = running_pod(&old, "old", &[]);
    let (status, _, answer) =
        old.raw_request("POST", &eviction_path(&old_pod), &eviction(&old_pod));
    assert_eq!(status, 400, "policy/v1 Eviction is 1.22's: {answer}");
    beta["metadata"]["name"] = json!(old_pod);
    assert_eq!(
        old.raw_request("POST", &eviction_path(&old_pod), &beta).0,
        201
    );
}

#[test]
fn before_1_26_an_eviction_is_a_plain_graceful_delete() {
    let cluster = FakeCluster::builder()
        .version(25)
        .record_history(true)
        .start();
    cluster.create_job(job(
        "plain",
        &[("FAKE_RUN_MS", "60000"), ("FAKE_TERM_MS", "20")],
        json!({}),
    ));
    let pod = running_pod(&cluster, "plain", &[]);
    assert!(cluster.evict(NS, &pod));
    assert!(cluster.wait_until(secs(10), |c| c.pod(NS, &pod).is_none()));
    let h = cluster.history_of(Kind::Pod, NS, &pod);
    assert!(h.iter().any(|r| deleting(&r.object)));
    assert!(
        h.iter()
            .all(|r| condition(&r.object, "DisruptionTarget").is_none()),
        "PodDisruptionConditions is on from 1.26"
    );
}

#[test]
fn preemption_and_the_taint_manager_mark_the_pod_then_delete_it() {
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    let cases = [
        (
            "preempted",
            "PreemptionByScheduler",
            "default-scheduler: preempting to accommodate a higher priority pod",
        ),
        (
            "tainted",
            "DeletionByTaintManager",
            "Taint manager: deleting due to NoExecute taint",
        ),
    ];
    for (name, _, _) in cases {
        cluster.create_job(job(
            name,
            &[("FAKE_RUN_MS", "60000"), ("FAKE_TERM_MS", "20")],
            json!({"podFailurePolicy": ignore_disruptions()}),
        ));
    }
    for (name, reason, message) in cases {
        let pod = running_pod(&cluster, name, &[]);
        assert!(cluster.disrupt(NS, &pod, reason));
        assert!(cluster.wait_until(secs(10), |c| c.pod(NS, &pod).is_none()));
        let h = cluster.history_of(Kind::Pod, NS, &pod);
        let marked = first(&h, |p| cond_true(p, "DisruptionTarget")).expect(reason);
        let c = condition(&h[marked].object, "DisruptionTarget").expect("condition");
        assert_eq!(
            (&c["reason"], &c["message"]),
            (&json!(reason), &json!(message))
        );
        assert!(!deleting(&h[marked].object));
        assert_eq!(
            first(&h, deleting),
            Some(marked + 1),
            "{reason}: then the delete"
        );
    }
}

#[test]
fn node_pressure_eviction_stops_the_pod_and_leaves_it_failed() {
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    cluster.create_job(job(
        "pressed",
        &[("FAKE_RUN_MS", "60000"), ("FAKE_TERM_MS", "20")],
        json!({"podFailurePolicy": ignore_disruptions()}),
    ));
    let pod = running_pod(&cluster, "pressed", &[]);
    assert!(cluster.disrupt(NS, &pod, "TerminationByKubelet"));
    let replacement = running_pod(&cluster, "pressed", &[&pod]);

    let h = cluster.history_of(Kind::Pod, NS, &pod);
    assert!(
        h.iter().all(|r| !deleting(&r.object)),
        "the kubelet deletes nothing"
    );
    let failed = first(&h, |p| phase(p) == "Failed").expect("Failed");
    assert_eq!(
        first(&h, |p| condition(p, "DisruptionTarget").is_some()),
        Some(failed),
        "the condition comes with the terminal phase, not before"
    );
    let end = &h[failed].object;
    assert_eq!(end["status"]["reason"], "Evicted");
    assert!(
        end["status"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("The node was low on resource: memory.")),
        "{end}"
    );
    let c = condition(end, "DisruptionTarget").expect("condition");
    assert_eq!(
        (&c["status"], &c["reason"]),
        (&json!("True"), &json!("TerminationByKubelet"))
    );
    assert_eq!(c["message"], end["status"]["message"]);
    assert_eq!(
        end["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 143,
        "SIGTERM"
    );
    // The pod stays, released by the Job controller, which replaced it without a failure.
    let kept = cluster
        .pod(NS, &pod)
        .expect("an evicted pod stays in the API");
    assert!(
        kept.metadata.finalizers.is_none(),
        "{:?}",
        kept.metadata.finalizers
    );
    assert_ne!(replacement, pod);
    let status = cluster
        .job(NS, "pressed")
        .and_then(|j| j.status)
        .expect("status");
    assert_eq!(status.failed, None);
}

#[test]
fn an_evicted_herd_gets_sigterm_while_its_pod_shows_why() {
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    let herd: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "herd"},
        "spec": {"backoffLimit": 0, "podFailurePolicy": ignore_disruptions(),
            "template": {"spec": {"restartPolicy": "Never", "serviceAccountName": "jobherd",
            "containers": [{"name": "jobherd", "image": "jobherd:test", "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "JOBHERD_IMAGE", "value": "busybox"},
                {"name": "JOBHERD_COUNT", "value": "1"},
                {"name": "JOBHERD_ENV", "value": r#"{"FAKE_HOLD":"never"}"#},
            ]}]}}},
    }))
    .expect("herd job");
    cluster.create_job(herd);
    assert!(cluster.wait_until(secs(60), |c| {
        c.pods_of(NS, "herd-0")
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    }));
    let pod = running_pod(&cluster, "herd", &[]);
    let (status, _, _) = cluster.raw_request("POST", &eviction_path(&pod), &eviction(&pod));
    assert_eq!(status, 201);
    assert!(cluster.wait_until(secs(30), |c| c.pod(NS, &pod).is_none()));

    let h = cluster.history_of(Kind::Pod, NS, &pod);
    let terminated = |r: &Revision| {
        r.object["status"]["containerStatuses"][0]["state"]["terminated"].is_object()
    };
    let end = h
        .iter()
        .find(|r| terminated(r))
        .expect("the container ended");
    assert_eq!(
        end.object["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"], 143,
        "a real SIGTERM"
    );
    // Every version from the delete until the container ended shows why: what the process
    // reads when it GETs its pod after the SIGTERM.
    let deleted = h.iter().position(|r| deleting(&r.object)).expect("deleted");
    let stopping: Vec<&Revision> = h[deleted..].iter().take_while(|r| !terminated(r)).collect();
    assert!(!stopping.is_empty());
    assert!(
        stopping
            .iter()
            .all(|r| cond_true(&r.object, "DisruptionTarget") && deleting(&r.object))
    );
    // It acted after the SIGTERM while its pod was still there: it read its own pod back,
    // saw why, and left its child to the next attempt, as its Job goes on (SPEC §9).
    let gone = h.last().expect("history").at;
    let after: Vec<Request> = cluster
        .requests()
        .into_iter()
        .filter(|r| r.user == "system:serviceaccount:default:jobherd" && r.at > h[deleted].at)
        .filter(|r| r.at < gone)
        .collect();
    assert!(
        after
            .iter()
            .any(|r| r.verb == "get" && r.resource == "pods" && r.name == pod),
        "{after:?}"
    );
    assert!(
        !after
            .iter()
            .any(|r| matches!(r.verb, "delete" | "deletecollection") && r.resource == "jobs"),
        "{after:?}"
    );
    assert!(
        cluster.job(NS, "herd-0").is_some(),
        "the child stays for the next attempt"
    );
}

// ---------------------------------------------------------------------------------------------
// Suspended Jobs (KUBERNETES.md, "Suspended Jobs"): admission, preemption, resumption.

/// Sets `spec.suspend` through the API, as Kueue's controller does.
fn set_suspend(cluster: &FakeCluster, name: &str, suspend: bool) {
    let name = name.to_string();
    cluster.with_client(|client| async move {
        let patch = json!({"spec": {"suspend": suspend}});
        Api::<Job>::default_namespaced(client)
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch spec.suspend")
    });
}

/// The versions of a Job whose update resumed it (`Suspended` turned `False`).
fn resumes(history: &[Revision]) -> Vec<usize> {
    (1..history.len())
        .filter(|&i| {
            cond_true(&history[i - 1].object, "Suspended")
                && condition(&history[i].object, "Suspended")
                    .is_some_and(|c| c["status"] == "False")
        })
        .collect()
}

fn start_time(job: &Value) -> Option<jiff::Timestamp> {
    job["status"]["startTime"].as_str()?.parse().ok()
}

/// The Events about `job` as `(reason, message)`, sorted (their names do not order them).
fn events_of(cluster: &FakeCluster, job: &str) -> Vec<(String, String)> {
    let mut events: Vec<(String, String)> = cluster
        .events(NS)
        .into_iter()
        .filter(|e| e["involvedObject"]["name"] == job)
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (text("reason"), text("message"))
        })
        .collect();
    events.sort();
    events
}

#[test]
fn a_job_created_suspended_waits_with_no_start_time_and_no_pods() {
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    cluster.create_job(job("queued", &[], json!({"suspend": true})));
    assert!(cluster.wait_until(secs(10), |c| {
        c.object(Kind::Job, NS, "queued")
            .is_some_and(|j| cond_true(&j, "Suspended"))
    }));
    let job = cluster.object(Kind::Job, NS, "queued").expect("job");
    let c = condition(&job, "Suspended").expect("Suspended");
    assert_eq!(
        (&c["reason"], &c["message"]),
        (&json!("JobSuspended"), &json!("Job suspended"))
    );
    let status = &job["status"];
    assert_eq!(status["terminating"], 0);
    assert_eq!(status["ready"], 0);
    assert!(
        status["startTime"].is_null() && status["active"].is_null(),
        "{status}"
    );
    assert!(cluster.history(Kind::Pod).is_empty());
    assert_eq!(
        events_of(&cluster, "queued"),
        [("Suspended".to_string(), "Job suspended".to_string())]
    );
}

#[test]
fn admission_resumes_with_start_time_and_a_pod_in_one_update() {
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    cluster.create_job(job(
        "admitted",
        &[("FAKE_HOLD", "admitted")],
        json!({"suspend": true}),
    ));
    assert!(cluster.wait_until(secs(10), |c| {
        c.object(Kind::Job, NS, "admitted")
            .is_some_and(|j| cond_true(&j, "Suspended"))
    }));
    set_suspend(&cluster, "admitted", false);
    running_pod(&cluster, "admitted", &[]);

    let h = cluster.history_of(Kind::Job, NS, "admitted");
    let resumed = *resumes(&h).first().expect("resumed");
    let j = &h[resumed].object;
    let c = condition(j, "Suspended").expect("Suspended");
    assert_eq!(
        (&c["reason"], &c["message"]),
        (&json!("JobResumed"), &json!("Job resumed"))
    );
    assert_eq!(j["status"]["active"], 1, "{j}");
    assert!(start_time(j).is_some(), "{j}");
    assert!(
        h[..resumed].iter().all(|r| start_time(&r.object).is_none()),
        "no startTime while it waited"
    );
    assert_eq!(
        events_of(&cluster, "admitted")
            .into_iter()
            .map(|(reason, _)| reason)
            .collect::<Vec<_>>(),
        ["Resumed", "Suspended"]
    );
}

#[test]
fn preemption_deletes_the_pod_without_counting_it() {
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    cluster.create_job(job(
        "preempted",
        &[("FAKE_HOLD", "preempted"), ("FAKE_TERM_MS", "20")],
        json!({}),
    ));
    let pod = running_pod(&cluster, "preempted", &[]);
    set_suspend(&cluster, "preempted", true);
    assert!(cluster.wait_until(secs(10), |c| c.pod(NS, &pod).is_none()));
    assert!(cluster.wait_until(secs(10), |c| {
        c.object(Kind::Job, NS, "preempted")
            .is_some_and(|j| j["status"]["terminating"] == 0)
    }));

    let h = cluster.history_of(Kind::Job, NS, "preempted");
    let suspended = first(&h, |j| cond_true(j, "Suspended")).expect("suspended");
    let j = &h[suspended].object;
    assert!(j["status"]["active"].is_null(), "{j}");
    assert_eq!(j["status"]["terminating"], 1, "{j}");
    assert!(
        start_time(j).is_some(),
        "1.32 keeps startTime while suspended (it is reset on resume)"
    );
    assert!(
        h.iter().all(|r| r.object["status"]["failed"].is_null()),
        "a pod deleted for suspension is no failure"
    );
    let p = cluster.history_of(Kind::Pod, NS, &pod);
    assert!(p.iter().any(|r| phase(&r.object) == "Failed"));
    // The controller releases the pod from job tracking before deleting it (deleteJobPods).
    let released = first(&p, |o| o["metadata"]["finalizers"].is_null()).expect("released");
    let deleted = first(&p, deleting).expect("deleted");
    assert!(
        released < deleted,
        "finalizer gone at {released}, delete at {deleted}"
    );
    assert!(
        events_of(&cluster, "preempted")
            .contains(&("Suspended".to_string(), "Job suspended".to_string()))
    );
}

#[test]
fn resuming_again_resets_start_time_and_the_deadline_counts_from_there() {
    let cluster = FakeCluster::builder()
        .version(32)
        .record_history(true)
        .start();
    cluster.create_job(job(
        "deadline",
        &[("FAKE_HOLD", "deadline"), ("FAKE_TERM_MS", "20")],
        json!({"suspend": true, "activeDeadlineSeconds": 2}),
    ));
    set_suspend(&cluster, "deadline", false);
    let first_pod = running_pod(&cluster, "deadline", &[]);
    let s1 = cluster
        .object(Kind::Job, NS, "deadline")
        .and_then(|j| start_time(&j))
        .expect("startTime");
    set_suspend(&cluster, "deadline", true);
    assert!(cluster.wait_until(secs(10), |c| c.pod(NS, &first_pod).is_none()));
    // Past the deadline as counted from the first start (a wait on the clock, not a guess).
    assert!(cluster.wait_until(secs(10), |_| {
        jiff::Timestamp::now() >= s1 + jiff::SignedDuration::from_secs(3)
    }));
    set_suspend(&cluster, "deadline", false);
    assert!(cluster.wait_until(secs(20), |c| {
        c.object(Kind::Job, NS, "deadline")
            .is_some_and(|j| cond_true(&j, "Failed"))
    }));

    let h = cluster.history_of(Kind::Job, NS, "deadline");
    let resumes = resumes(&h);
    assert_eq!(resumes.len(), 2, "admitted twice");
    let resumed_again = resumes[1];
    let s2 = start_time(&h[resumed_again].object).expect("startTime");
    assert!(s2 > s1, "startTime reset: {s1} then {s2}");
    let failing = first(&h, |j| cond_true(j, "FailureTarget")).expect("FailureTarget");
    assert!(
        failing > resumed_again,
        "not failed for the deadline counted from {s1}"
    );
    let c = condition(&h[failing].object, "FailureTarget").expect("FailureTarget");
    assert_eq!(c["reason"], "DeadlineExceeded");
    assert!(
        h[failing].time >= s2 + jiff::SignedDuration::from_secs(2),
        "the deadline counts from {s2}: failed at {}",
        h[failing].time
    );
    assert_eq!(
        cluster
            .history(Kind::Pod)
            .iter()
            .filter(|r| r.event == "ADDED")
            .count(),
        2
    );
}

#[test]
fn a_resumed_job_completes_and_keeps_its_suspended_false_condition() {
    let cluster = FakeCluster::builder().version(32).start();
    cluster.create_job(job(
        "done",
        &[("FAKE_RUN_MS", "5")],
        json!({"suspend": true}),
    ));
    assert!(cluster.wait_until(secs(10), |c| {
        c.object(Kind::Job, NS, "done")
            .is_some_and(|j| cond_true(&j, "Suspended"))
    }));
    set_suspend(&cluster, "done", false);
    assert!(cluster.wait_until(secs(10), |c| {
        c.object(Kind::Job, NS, "done")
            .is_some_and(|j| cond_true(&j, "Complete"))
    }));
    let job = cluster.object(Kind::Job, NS, "done").expect("job");
    let conditions: Vec<(&str, &str)> = job["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap_or(""),
                c["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        conditions,
        [
            ("Suspended", "False"),
            ("SuccessCriteriaMet", "True"),
            ("Complete", "True")
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Kueue, as far as the Job controller can tell.

fn queued(name: &str, env: &[(&str, &str)]) -> Job {
    let mut j = job(name, env, json!({}));
    j.metadata.labels = Some(
        [(
            "kueue.x-k8s.io/queue-name".to_string(),
            "team-a".to_string(),
        )]
        .into(),
    );
    j
}

#[test]
fn kueue_creates_queued_jobs_suspended_and_leaves_others_alone() {
    let cluster = FakeCluster::builder()
        .version(32)
        .kueue(true)
        .record_history(true)
        .start();
    let through_api = queued("via-api", &[]);
    cluster.with_client(|client| async move {
        Api::<Job>::default_namespaced(client)
            .create(&PostParams::default(), &through_api)
            .await
            .expect("create")
    });
    cluster.create_job(queued("direct", &[]));
    cluster.create_job(job("unqueued", &[("FAKE_RUN_MS", "5")], json!({})));
    assert!(cluster.wait_until(secs(10), |c| {
        c.object(Kind::Job, NS, "unqueued")
            .is_some_and(|j| cond_true(&j, "Complete"))
    }));
    for name in ["via-api", "direct"] {
        assert!(cluster.wait_until(secs(10), |c| {
            c.object(Kind::Job, NS, name)
                .is_some_and(|j| cond_true(&j, "Suspended"))
        }));
        let h = cluster.history_of(Kind::Job, NS, name);
        assert_eq!(
            h[0].object["spec"]["suspend"], true,
            "{name} is created suspended, not suspended later"
        );
        assert!(cluster.pods_of(NS, name).is_empty(), "{name}");
    }
    let unqueued = cluster.history_of(Kind::Job, NS, "unqueued");
    assert_eq!(unqueued[0].object["spec"]["suspend"], false);
}

#[test]
fn kueue_admits_and_preempts_a_job_by_updating_its_spec() {
    let cluster = FakeCluster::builder()
        .version(32)
        .kueue(true)
        .record_history(true)
        .start();
    cluster.create_job(queued(
        "work",
        &[("FAKE_HOLD", "work"), ("FAKE_TERM_MS", "20")],
    ));
    assert!(!cluster.admit(NS, "missing") && !cluster.preempt(NS, "missing"));
    assert!(cluster.admit(NS, "work"));
    let first_pod = running_pod(&cluster, "work", &[]);
    assert!(cluster.preempt(NS, "work"));
    assert!(cluster.wait_until(secs(10), |c| c.pod(NS, &first_pod).is_none()));
    assert!(cluster.admit(NS, "work"));
    running_pod(&cluster, "work", &[&first_pod]);
    cluster.release("work");
    assert!(cluster.wait_until(secs(10), |c| {
        c.object(Kind::Job, NS, "work")
            .is_some_and(|j| cond_true(&j, "Complete"))
    }));

    let h = cluster.history_of(Kind::Job, NS, "work");
    let mut generations: Vec<(i64, bool)> = h
        .iter()
        .map(|r| {
            let m = &r.object;
            (
                m["metadata"]["generation"].as_i64().unwrap_or(0),
                m["spec"]["suspend"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    generations.dedup();
    assert_eq!(
        generations,
        [(1, true), (2, false), (3, true), (4, false)],
        "each flip is one spec update"
    );
    let status = cluster
        .job(NS, "work")
        .and_then(|j| j.status)
        .expect("status");
    assert_eq!((status.succeeded, status.failed), (Some(1), None));
}
