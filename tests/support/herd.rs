//! A herd as the cluster recorded it. The parent: jobherd as the Job of the shipped
//! `cronjob.yaml`, as `kubectl create job --from=cronjob/jobherd-pi NAME` starts it; the fake's
//! kubelet runs the real binary in the parent's pods, and the Job controller replaces a pod that
//! failed or was disrupted, as the parent's `podFailurePolicy` and `backoffLimit` say. Each pod
//! is one *attempt* of the run; what it printed, its exit code and its termination message are
//! read from the recorded history (the cluster must record it), also once the pod is gone. The
//! children: which Jobs were created and deleted, what each was given and what it wrote.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::fake::{Builder, FakeCluster, Kind};

const NS: &str = "default";
/// The CronJob `cronjob.yaml` ships.
pub const CRONJOB: &str = "jobherd-pi";
/// The parent's identity: `serviceAccountName: jobherd` in cronjob.yaml.
pub const PARENT_ACCOUNT: &str = "system:serviceaccount:default:jobherd";
/// The annotation holding a run's record on its parent Job.
pub const RECORD: &str = "jobherd.io/outcome";

fn read(file: &str) -> String {
    std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).expect(file)
}

/// A cluster (recording history) holding the shipped RBAC and CronJob, with `edit` applied to
/// the CronJob's text.
pub fn cluster_with_cronjob(builder: Builder, edit: impl Fn(String) -> String) -> FakeCluster {
    let cluster = builder.record_history(true).start();
    cluster
        .kubectl_apply("rbac.yaml", &read("rbac.yaml"))
        .expect("rbac.yaml applies");
    cluster
        .kubectl_apply("cronjob.yaml", &edit(read("cronjob.yaml")))
        .expect("cronjob.yaml applies");
    cluster
}

/// Starts the CronJob's Job now, as `kubectl create job --from=cronjob/jobherd-pi NAME` does
/// (owned by the CronJob, annotated `instantiate: manual`), with the jobherd container's
/// `JOBHERD_*` variables replaced by `env`.
pub fn start_parent(cluster: &FakeCluster, name: &str, env: &[(String, String)]) {
    let cronjob = cluster
        .object(Kind::CronJob, NS, CRONJOB)
        .expect("the CronJob");
    let mut spec = cronjob["spec"]["jobTemplate"]["spec"].clone();
    let vars = spec["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .expect("env");
    vars.retain(|e| !e["name"].as_str().unwrap_or("").starts_with("JOBHERD_"));
    for (k, v) in env {
        vars.push(json!({"name": k, "value": v}));
    }
    let owner = json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": CRONJOB,
        "uid": cronjob["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]);
    cluster.create_raw(
        Kind::Job,
        json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NS, "ownerReferences": owner,
                "annotations": {"cronjob.kubernetes.io/instantiate": "manual"}},
            "spec": spec}),
    );
}

/// One pod of the parent: one attempt of its run.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub pod: String,
    pub uid: String,
    /// What jobherd printed (stdout and stderr), so far.
    pub log: String,
    /// Its container's exit code, once it ended.
    pub exit: Option<i64>,
    /// Its termination message, once it ended.
    pub message: String,
}

/// The parent's attempts, oldest first, as the history holds them now.
pub fn attempts(cluster: &FakeCluster, parent: &str) -> Vec<Attempt> {
    let pods = cluster.history(Kind::Pod);
    let mut order: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &pods {
        if r.object["metadata"]["labels"]["job-name"] == parent && seen.insert(r.uid().to_string())
        {
            order.push(r.uid().to_string());
        }
    }
    order
        .into_iter()
        .map(|uid| {
            let last = pods
                .iter()
                .rev()
                .find(|r| r.uid() == uid)
                .expect("a version");
            let terminated = &last.object["status"]["containerStatuses"][0]["state"]["terminated"];
            Attempt {
                pod: last.name().to_string(),
                log: cluster.log_lines_of_uid(&uid).join("\n"),
                exit: terminated["exitCode"].as_i64(),
                message: terminated["message"].as_str().unwrap_or("").to_string(),
                uid,
            }
        })
        .collect()
}

/// Waits until attempt `n` (0 = the first pod) printed `text`; returns what it printed then.
pub fn wait_for_log(cluster: &FakeCluster, parent: &str, n: usize, text: &str) -> String {
    let mut said = String::new();
    let seen = cluster.wait_until(Duration::from_secs(60), |c| {
        said = attempts(c, parent)
            .get(n)
            .map(|a| a.log.clone())
            .unwrap_or_default();
        said.contains(text)
    });
    assert!(
        seen,
        "attempt {n} of {parent} never said {text:?}; it said:\n{said}"
    );
    said
}

/// Waits until attempt `n` of the parent has ended; returns it.
pub fn wait_for_end(cluster: &FakeCluster, parent: &str, n: usize) -> Attempt {
    let ended = |c: &FakeCluster| attempts(c, parent).get(n).is_some_and(|a| a.exit.is_some());
    let over = cluster.wait_until(Duration::from_secs(90), ended);
    let all = attempts(cluster, parent);
    assert!(over, "attempt {n} of {parent} did not end: {all:#?}");
    all[n].clone()
}

/// Whether the parent Job has the final condition `Complete` or `Failed`.
pub fn finished(cluster: &FakeCluster, parent: &str) -> Option<String> {
    let job = cluster.object(Kind::Job, NS, parent)?;
    let conditions = job["status"]["conditions"].as_array()?.clone();
    conditions
        .iter()
        .find(|c| {
            matches!(c["type"].as_str(), Some("Complete" | "Failed")) && c["status"] == "True"
        })
        .map(|c| c["type"].as_str().unwrap_or_default().to_string())
}

/// Waits for the parent Job's final condition; returns it.
pub fn wait_until_finished(cluster: &FakeCluster, parent: &str) -> String {
    let mut end = None;
    let done = cluster.wait_until(Duration::from_secs(90), |c| {
        end = finished(c, parent);
        end.is_some()
    });
    assert!(
        done,
        "{parent} never finished; its attempts: {:#?}",
        attempts(cluster, parent)
    );
    end.unwrap_or_default()
}

/// The parent's record (`jobherd.io/outcome`) as each attempt left it: every distinct value the
/// annotation took, in order.
pub fn records(cluster: &FakeCluster, parent: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for r in cluster.history_of(Kind::Job, NS, parent) {
        let Some(text) = r.object["metadata"]["annotations"][RECORD].as_str() else {
            continue;
        };
        let record: Value = serde_json::from_str(text).expect("the record is JSON");
        if out.last() != Some(&record) {
            out.push(record);
        }
    }
    out
}

/// The pid of the one jobherd process the cluster runs (the parent's current attempt).
pub fn parent_pid(cluster: &FakeCluster) -> u32 {
    let mut pids = Vec::new();
    let one = cluster.wait_until(Duration::from_secs(60), |c| {
        pids = c.process_ids();
        pids.len() == 1
    });
    assert!(one, "one jobherd process, not {pids:?}");
    pids[0]
}

/// Child Jobs (labelled `app.kubernetes.io/managed-by: jobherd`) as the history holds them:
/// each creation (by name, one entry per uid) and each deletion.
pub struct Children {
    pub created: Vec<String>,
    pub deleted: Vec<String>,
}

impl Children {
    pub fn of(cluster: &FakeCluster) -> Children {
        let mut seen = BTreeSet::new();
        let (mut created, mut deleted) = (Vec::new(), Vec::new());
        for r in cluster.history(Kind::Job) {
            if r.object["metadata"]["labels"]["app.kubernetes.io/managed-by"] != "jobherd" {
                continue;
            }
            if seen.insert(r.uid().to_string()) {
                created.push(r.name().to_string());
            }
            if r.event == "DELETED" {
                deleted.push(r.name().to_string());
            }
        }
        created.sort();
        deleted.sort();
        Children { created, deleted }
    }
}

/// The variables a child Job's container was given, as it was created.
pub fn env_of(cluster: &FakeCluster, job: &str) -> Value {
    let first = cluster
        .history_of(Kind::Job, NS, job)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no Job {job} was created"));
    let mut env = serde_json::Map::new();
    for e in first.object["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
    {
        env.insert(
            e["name"].as_str().unwrap_or("").to_string(),
            e["value"].clone(),
        );
    }
    Value::Object(env)
}

/// What a child wrote to its termination message: the message of its newest pod that ended
/// (also once the pod is gone), empty when none did.
pub fn message_of(cluster: &FakeCluster, job: &str) -> String {
    cluster
        .history(Kind::Pod)
        .iter()
        .rev()
        .filter(|r| r.object["metadata"]["labels"]["job-name"] == job)
        .find_map(|r| {
            r.object["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// The child Jobs `user` asked to delete, by name: deletes by name, and deletecollections by
/// their run and step labels (matched against the Jobs the history holds).
pub fn deleted_by(cluster: &FakeCluster, user: &str) -> Vec<String> {
    let jobs = cluster.history(Kind::Job);
    let mut names = BTreeSet::new();
    for r in cluster.requests() {
        if r.user != user || r.resource != "jobs" || r.status >= 300 {
            continue;
        }
        match r.verb {
            "delete" => {
                names.insert(r.name.clone());
            }
            "deletecollection" => {
                let selector = r.label_selector().unwrap_or_default();
                let run = selector
                    .split(',')
                    .find_map(|s| s.strip_prefix("jobherd.io/run="))
                    .unwrap_or_default()
                    .to_string();
                let steps: Vec<&str> = selector
                    .split_once("jobherd.io/step in (")
                    .and_then(|(_, rest)| rest.split_once(')'))
                    .map(|(list, _)| list.split(',').collect())
                    .unwrap_or_default();
                for j in &jobs {
                    let labels = &j.object["metadata"]["labels"];
                    let step = labels["jobherd.io/step"].as_str().unwrap_or_default();
                    if labels["jobherd.io/run"] == run.as_str() && steps.contains(&step) {
                        names.insert(j.name().to_string());
                    }
                }
            }
            _ => {}
        }
    }
    names.into_iter().collect()
}
