//! Disruptions of a pod: the Eviction API, the scheduler's preemption, the taint manager and the
//! kubelet's node-pressure eviction. From 1.26 each marks the pod `DisruptionTarget=True` with
//! its reason, so that a Job's `podFailurePolicy` can tell a disruption from a failure.
//!
//! The API-side ones write the condition (kube-apiserver's `addConditionAndDeletePod`, or the
//! controller's status patch) and then delete the pod with its own grace period: two writes,
//! back to back. The kubelet's own eviction deletes nothing: it stops the pod and reports the
//! condition with the terminal phase (`kubelet.rs`).

use serde_json::{Value, json};

use super::meta::{self, ApiError, Kind};
use super::store::{self, Propagation, Store};
use super::versions::Version;

/// One reason for `DisruptionTarget`, and who acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disruption {
    /// `POST pods/NAME/eviction` (`kubectl drain`).
    EvictionApi,
    /// The scheduler deletes a lower-priority pod to make room.
    Preemption,
    /// The taint manager deletes a pod that does not tolerate a `NoExecute` taint.
    TaintManager,
    /// The kubelet stops a pod under node pressure; the pod stays, `Failed` (`Evicted`).
    NodePressure,
}

impl Disruption {
    pub const REASONS: [&str; 4] = [
        "EvictionByEvictionAPI",
        "PreemptionByScheduler",
        "DeletionByTaintManager",
        "TerminationByKubelet",
    ];

    pub fn from_reason(reason: &str) -> Option<Disruption> {
        Some(match reason {
            "EvictionByEvictionAPI" => Disruption::EvictionApi,
            "PreemptionByScheduler" => Disruption::Preemption,
            "DeletionByTaintManager" => Disruption::TaintManager,
            "TerminationByKubelet" => Disruption::NodePressure,
            _ => return None,
        })
    }

    pub fn reason(self) -> &'static str {
        match self {
            Disruption::EvictionApi => "EvictionByEvictionAPI",
            Disruption::Preemption => "PreemptionByScheduler",
            Disruption::TaintManager => "DeletionByTaintManager",
            Disruption::NodePressure => "TerminationByKubelet",
        }
    }

    /// The condition's message, worded as the component that writes it.
    fn message(self) -> &'static str {
        match self {
            Disruption::EvictionApi => "Eviction API: evicting",
            Disruption::Preemption => {
                "default-scheduler: preempting to accommodate a higher priority pod"
            }
            Disruption::TaintManager => "Taint manager: deleting due to NoExecute taint",
            Disruption::NodePressure => NODE_PRESSURE,
        }
    }
}

/// What the kubelet's eviction manager says, in the pod's `message` and the condition's.
pub const NODE_PRESSURE: &str = "The node was low on resource: memory. Threshold quantity: 100Mi, \
    available: 51200Ki. ";

/// The `DisruptionTarget` condition a disruption writes.
pub fn condition(d: Disruption, message: &str) -> Value {
    json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
        "lastTransitionTime": meta::now_time(), "reason": d.reason(), "message": message})
}

/// Adds or updates a pod condition as `podutil.UpdatePodCondition` does: a new type is
/// appended, an existing one keeps its transition time unless its status changes. Returns
/// whether anything changed.
pub fn update_condition(pod: &mut Value, cond: Value) -> bool {
    if !pod["status"]["conditions"].is_array() {
        pod["status"]["conditions"] = json!([]);
    }
    let Some(list) = pod["status"]["conditions"].as_array_mut() else {
        return false;
    };
    match list.iter_mut().find(|c| c["type"] == cond["type"]) {
        None => {
            list.push(cond);
            true
        }
        Some(old) => {
            let mut new = cond;
            if old["status"] == new["status"] {
                new["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
            let changed = ["status", "reason", "message"]
                .iter()
                .any(|k| old[*k] != new[*k]);
            if changed {
                *old = new;
            }
            changed
        }
    }
}

/// An API-side disruption of a pod: the condition in one write (from 1.26), then a graceful
/// delete (`grace`: DeleteOptions' `gracePeriodSeconds`, else the pod's own). The kubelet's
/// node-pressure eviction is not one: see `Sim::kubelet_evict`.
pub fn mark_and_delete(
    st: &mut Store,
    v: Version,
    d: Disruption,
    ns: &str,
    name: &str,
    grace: Option<i64>,
    dry: bool,
) -> Result<(), ApiError> {
    let key = store::key(ns, name);
    let mut pod = st
        .get(Kind::Pod, &key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(Kind::Pod, name))?;
    if dry {
        return Ok(());
    }
    if v.disruption_target() && update_condition(&mut pod, condition(d, d.message())) {
        st.put(Kind::Pod, pod);
    }
    st.delete(Kind::Pod, &key, Propagation::Background, grace);
    Ok(())
}

/// What a `POST pods/NAME/eviction` asks for: the grace period, whether it is a dry run, and
/// the warnings for fields an Eviction does not have.
pub struct EvictionRequest {
    pub grace: Option<i64>,
    pub dry: bool,
    pub warnings: Vec<String>,
}

/// Reads an Eviction body as kube-apiserver decodes it: `policy/v1` (from 1.22) or
/// `policy/v1beta1`, or no type at all (the endpoint's own); the name must be the URL's;
/// unknown fields are ignored, warned about or refused by the version's field validation.
pub fn eviction_request(
    v: Version,
    ns: &str,
    name: &str,
    body: &Value,
    dry_run_query: bool,
    validation: Option<&str>,
) -> Result<EvictionRequest, ApiError> {
    let api_version = body["apiVersion"].as_str().unwrap_or("");
    let known = match api_version {
        "" | "policy/v1beta1" => true,
        "policy/v1" => v.0 >= 22,
        _ => false,
    };
    if !known || body["kind"].as_str().is_some_and(|k| k != "Eviction") {
        return Err(ApiError::bad_request(format!(
            "no kind \"{}\" is registered for version \"{api_version}\" in scheme \
             \"k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30\"",
            body["kind"].as_str().unwrap_or("Eviction"),
        )));
    }
    let unknown = unknown_fields(body);
    let mode = if v.field_validation() {
        validation.unwrap_or("Warn")
    } else {
        "Ignore"
    };
    if mode == "Strict" && !unknown.is_empty() {
        let fields: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        let version = api_version.rsplit('/').next().filter(|s| !s.is_empty());
        return Err(ApiError::bad_request(format!(
            "Eviction in version \"{}\" cannot be handled as a Eviction: strict decoding error: {}",
            version.unwrap_or(if v.0 >= 22 { "v1" } else { "v1beta1" }),
            fields.join(", ")
        )));
    }
    if body["metadata"]["namespace"]
        .as_str()
        .is_some_and(|n| !n.is_empty() && n != ns)
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if meta::name_of(body) != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let opts = &body["deleteOptions"];
    let dry_body = opts["dryRun"]
        .as_array()
        .is_some_and(|d| d.iter().any(|x| x == "All"));
    Ok(EvictionRequest {
        grace: opts["gracePeriodSeconds"].as_i64(),
        dry: dry_run_query || dry_body,
        warnings: if mode == "Warn" {
            unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect()
        } else {
            Vec::new()
        },
    })
}

/// Fields of an Eviction body that policy/v1 does not have (even when null: the strict decoder
/// goes by name). kube-rs's `Api::evict` sends `delete_options`, which is one of them.
fn unknown_fields(body: &Value) -> Vec<String> {
    const TOP: &[&str] = &["apiVersion", "kind", "metadata", "deleteOptions"];
    const DELETE_OPTIONS: &[&str] = &[
        "apiVersion",
        "kind",
        "gracePeriodSeconds",
        "preconditions",
        "orphanDependents",
        "propagationPolicy",
        "dryRun",
        "ignoreStoreReadErrorWithClusterBreakingPotential",
    ];
    let mut out = Vec::new();
    for (k, val) in body.as_object().into_iter().flatten() {
        if !TOP.contains(&k.as_str()) {
            out.push(k.clone());
        } else if k == "deleteOptions" {
            for opt in val.as_object().into_iter().flatten().map(|(k, _)| k) {
                if !DELETE_OPTIONS.contains(&opt.as_str()) {
                    out.push(format!("deleteOptions.{opt}"));
                }
            }
        }
    }
    out
}

/// kube-apiserver's answer to a successful eviction.
pub fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}
