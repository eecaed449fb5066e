//! What Kueue does to Jobs, as far as jobherd can tell: its mutating webhook creates every Job
//! of a queue (label `kueue.x-k8s.io/queue-name`) suspended, and its controller admits a Job by
//! setting `spec.suspend: false` and preempts it by setting `true` again. No queues, quotas,
//! Workload objects or admission order: a test decides when to admit and preempt.

use serde_json::{Value, json};

use super::meta::Kind;
use super::store::{Key, Store};

/// The label that puts a Job in a Kueue LocalQueue.
pub const QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";

/// Kueue's webhook on create: a Job with a queue name is suspended until admitted.
pub fn webhook(kind: Kind, obj: &mut Value) {
    let queued = obj["metadata"]["labels"][QUEUE_LABEL]
        .as_str()
        .is_some_and(|q| !q.is_empty());
    if kind == Kind::Job && queued {
        obj["spec"]["suspend"] = json!(true);
    }
}

/// Kueue's controller: an update of the Job's `spec.suspend` (none when it already is so).
/// Returns whether the Job exists.
pub fn set_suspend(st: &mut Store, key: &Key, suspend: bool) -> bool {
    let Some(mut job) = st.get(Kind::Job, key).cloned() else {
        return false;
    };
    if job["spec"]["suspend"].as_bool() != Some(suspend) {
        job["spec"]["suspend"] = json!(suspend);
        let generation = job["metadata"]["generation"].as_i64().unwrap_or(1);
        job["metadata"]["generation"] = json!(generation + 1);
        st.put(Kind::Job, job);
    }
    true
}
