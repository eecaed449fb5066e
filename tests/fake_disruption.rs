//! The fake cluster when a run is moved rather than failed: pods evicted or otherwise disrupted
//! (`DisruptionTarget`), and Jobs suspended and resumed as Kueue does, asserted on the recorded
//! history against what `/work/shared/KUBERNETES.md` records of real control planes.

mod support;

use k8s_openapi::api::batch::v1::Job;
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

fn cond_true(obj: &Value, ty: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == ty && c["status"] == "True"))
}

fn phase(obj: &Value) -> &str {
    obj["status"]["phase"].as_str().unwrap_or("")
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
