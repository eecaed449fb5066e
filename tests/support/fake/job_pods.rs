//! A Job's pods as the Job controller sees them: which are its own, in which state, what a
//! `podFailurePolicy` makes of a failed one, the job-tracking finalizer, and how it builds a
//! new one from the template (with the completion index of an Indexed Job).

use serde_json::{Value, json};

use super::indexed::{self, INDEX};
use super::meta::{self, Kind};
use super::store::{self, Store};
use super::versions::Version;

/// The finalizer that keeps a Job's pod until the Job controller has counted it (1.26+).
pub const TRACKING: &str = "batch.kubernetes.io/job-tracking";

/// What a podFailurePolicy says about a failed pod.
pub enum Rule {
    Count,
    Ignore,
    FailJob(String),
    /// The pod's index fails at once (backoffLimitPerIndex only).
    FailIndex,
}

impl Rule {
    /// Whether the failure counts in `status.failed` (every action but `Ignore`).
    pub fn counts(&self) -> bool {
        !matches!(self, Rule::Ignore)
    }
}

/// The pods whose controller is the Job.
pub fn owned_pods(st: &Store, job_uid: &str) -> Vec<Value> {
    st.dependents(job_uid)
        .into_iter()
        .filter(|(k, _)| *k == Kind::Pod)
        .filter_map(|(_, k)| st.get(Kind::Pod, &k).cloned())
        .filter(|p| meta::controller_uid(p) == Some(job_uid))
        .collect()
}

pub fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or("Pending")
}

pub fn deleting(p: &Value) -> bool {
    !p["metadata"]["deletionTimestamp"].is_null()
}

pub fn is_terminal(p: &Value) -> bool {
    matches!(phase(p), "Succeeded" | "Failed")
}

pub fn is_active(p: &Value) -> bool {
    !is_terminal(p) && !deleting(p)
}

pub fn is_terminating(p: &Value) -> bool {
    !is_terminal(p) && deleting(p)
}

pub fn is_ready(p: &Value) -> bool {
    phase(p) == "Running"
        && p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The first podFailurePolicy rule that matches a failed pod decides what its failure means.
pub fn pod_failure_policy(spec: &Value, pod: &Value) -> Rule {
    let Some(rules) = spec["podFailurePolicy"]["rules"].as_array() else {
        return Rule::Count;
    };
    for (i, rule) in rules.iter().enumerate() {
        let action = rule["action"].as_str().unwrap_or("");
        let matched = if rule["onExitCodes"].is_object() {
            on_exit_codes(&rule["onExitCodes"], pod, action, i)
        } else {
            on_pod_conditions(rule, pod, action, i)
        };
        if let Some(message) = matched {
            return match action {
                "Ignore" => Rule::Ignore,
                "FailJob" => Rule::FailJob(message),
                "FailIndex" => Rule::FailIndex,
                _ => Rule::Count,
            };
        }
    }
    Rule::Count
}

/// An `onExitCodes` requirement: a terminated container (init or main) with a non-zero exit
/// code that the operator matches; the message a `FailJob` rule writes.
fn on_exit_codes(req: &Value, pod: &Value, action: &str, i: usize) -> Option<String> {
    let values: Vec<i64> = req["values"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let only = req["containerName"].as_str();
    let (ns, name) = (meta::namespace_of(pod), meta::name_of(pod));
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .flat_map(|list| pod["status"][*list].as_array().into_iter().flatten())
        .filter(|c| only.is_none_or(|n| c["name"] == n))
        .find_map(|c| {
            let code = c["state"]["terminated"]["exitCode"].as_i64()?;
            let hit = code != 0
                && match req["operator"].as_str() {
                    Some("NotIn") => !values.contains(&code),
                    _ => values.contains(&code),
                };
            hit.then(|| {
                format!(
                    "Container {} for pod {ns}/{name} failed with exit code {code} matching {action} rule at index {i}",
                    c["name"].as_str().unwrap_or("")
                )
            })
        })
}

/// An `onPodConditions` pattern the pod's conditions match.
fn on_pod_conditions(rule: &Value, pod: &Value, action: &str, i: usize) -> Option<String> {
    let (ns, name) = (meta::namespace_of(pod), meta::name_of(pod));
    rule["onPodConditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|pattern| {
            let ty = pattern["type"].as_str()?;
            let want = pattern["status"].as_str().unwrap_or("True");
            pod["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == ty && c["status"] == want)
                .then(|| {
                    format!(
                        "Pod {ns}/{name} has condition {ty} matching {action} rule at index {i}"
                    )
                })
        })
}

/// Removes the job-tracking finalizer from these pods (a pod being deleted whose grace period
/// is over goes with it). Returns how many had it: each is one patch of the real controller.
pub fn strip_tracking(st: &mut Store, pods: &[Value]) -> u32 {
    let mut patched = 0;
    for p in pods {
        let key = store::key(meta::namespace_of(p), meta::name_of(p));
        let Some(mut pod) = st.get(Kind::Pod, &key).cloned() else {
            continue;
        };
        let Some(fins) = pod["metadata"]["finalizers"].as_array_mut() else {
            continue;
        };
        let before = fins.len();
        fins.retain(|f| f != TRACKING);
        if fins.len() == before {
            continue;
        }
        if fins.is_empty()
            && let Some(m) = pod["metadata"].as_object_mut()
        {
            m.remove("finalizers");
        }
        st.put(Kind::Pod, pod);
        patched += 1;
    }
    patched
}

/// The labels the Job controller puts on a Job's pods (and the API on its template).
pub fn job_labels(v: Version, uid: &str, name: &str) -> Vec<(&'static str, String)> {
    let mut labels = vec![
        ("controller-uid", uid.to_string()),
        ("job-name", name.to_string()),
    ];
    if v.batch_labels() {
        labels.push(("batch.kubernetes.io/controller-uid", uid.to_string()));
        labels.push(("batch.kubernetes.io/job-name", name.to_string()));
    }
    labels
}

/// A pod as the Job controller creates it: `<job>-<5 chars>` (`<job>-<index>-<5 chars>` for an
/// Indexed Job, see [`add_index`]), template labels (which include the controller labels added
/// on Job create), a controller ownerReference, and from 1.26 the job-tracking finalizer.
pub fn pod_from_template(st: &Store, job: &Value, v: Version, index: Option<u32>) -> Value {
    let ns = meta::namespace_of(job);
    let job_name = meta::name_of(job);
    let tmpl = &job["spec"]["template"];
    let base = match index {
        Some(i) => format!("{job_name}-{i}"),
        None => job_name.to_string(),
    };
    let mut name = format!("{base}-{}", meta::random_suffix(5));
    while st.get(Kind::Pod, &store::key(ns, &name)).is_some() {
        name = format!("{base}-{}", meta::random_suffix(5));
    }
    let mut labels = tmpl["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    for (k, val) in job_labels(v, meta::uid_of(job), job_name) {
        labels[k] = json!(val);
    }
    let mut metadata = json!({
        "name": name, "generateName": format!("{base}-"), "namespace": ns, "labels": labels,
        "ownerReferences": [meta::owner_ref(Kind::Job, job, true)],
    });
    if tmpl["metadata"]["annotations"].is_object() {
        metadata["annotations"] = tmpl["metadata"]["annotations"].clone();
    }
    if v.tracking_finalizers() {
        metadata["finalizers"] = json!([TRACKING]);
    }
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": tmpl["spec"].clone(),
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    });
    if let Some(i) = index {
        add_index(&mut pod, job_name, i, v);
    }
    pod
}

/// An Indexed Job's pod: its index as annotation and (PodIndexLabel, 1.28+) label, hostname
/// `<job>-<index>`, and `JOB_COMPLETION_INDEX` from the downward API in every container that
/// does not set it itself, init containers too.
fn add_index(pod: &mut Value, job_name: &str, i: u32, v: Version) {
    let m = &mut pod["metadata"];
    if !m["annotations"].is_object() {
        m["annotations"] = json!({});
    }
    m["annotations"][INDEX] = json!(i.to_string());
    let source = if v.pod_index_label() {
        m["labels"][INDEX] = json!(i.to_string());
        "labels"
    } else {
        "annotations"
    };
    let spec = &mut pod["spec"];
    spec["hostname"] = json!(format!("{job_name}-{i}"));
    let env = json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef":
        {"fieldPath": format!("metadata.{source}['{INDEX}']")}}});
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_array_mut().into_iter().flatten() {
            if !c["env"].is_array() {
                c["env"] = json!([]);
            }
            if let Some(e) = c["env"].as_array_mut()
                && !e.iter().any(|x| x["name"] == "JOB_COMPLETION_INDEX")
            {
                e.push(env.clone());
            }
        }
    }
}

/// backoffLimitPerIndex: the pod's `job-index-failure-count` (and, when some were ignored,
/// `job-index-ignored-failure-count`).
pub fn add_failure_counts(pod: &mut Value, (counted, ignored): (u32, u32)) {
    let a = &mut pod["metadata"]["annotations"];
    a[indexed::FAILURE_COUNT] = json!(counted.to_string());
    if ignored > 0 {
        a[indexed::IGNORED_COUNT] = json!(ignored.to_string());
    }
}
