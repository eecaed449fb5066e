//! What kube-apiserver does to an object before storing it: defaulting, the Job controller's
//! selector and labels, and the validation rules jobherd can trip over.

use serde_json::{Value, json};

use super::configmap;
use super::job_pods;
use super::meta::{self, ApiError, Kind};
use super::versions::Version;

/// Defaults and validates a new object (its uid already set) as version `v` does. Fields `v`
/// does not take are gone already (`versions::admit`). `reset_status` mirrors the API ignoring
/// a client's status on create; direct inserts from tests keep theirs.
pub fn admit_create(
    kind: Kind,
    obj: &mut Value,
    reset_status: bool,
    v: Version,
) -> Result<(), ApiError> {
    let name = meta::name_of(obj).to_string();
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push((
            "metadata.name".to_string(),
            "Required value: name or generateName is required".to_string(),
        ));
        return Err(ApiError::invalid(kind, &name, causes));
    }
    meta::validate_meta(obj, "metadata", &mut causes);
    match kind {
        Kind::Job => admit_job(obj, &mut causes, v),
        Kind::Pod => {
            if reset_status || !obj["status"].is_object() {
                obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            }
            if obj["spec"]["restartPolicy"].is_null() {
                obj["spec"]["restartPolicy"] = json!("Always");
            }
            pod_spec_defaults(&mut obj["spec"], "spec", &mut causes);
        }
        Kind::Event => {
            for (field, what) in [
                ("eventTime", "Required value"),
                ("reportingController", "Required value"),
                ("reportingInstance", "Required value"),
                ("action", "Required value"),
                ("reason", "Required value"),
            ] {
                if obj[field].as_str().is_none_or(str::is_empty) {
                    causes.push((field.to_string(), what.to_string()));
                }
            }
            let ty = obj["type"].as_str().unwrap_or("");
            if ty != "Normal" && ty != "Warning" {
                causes.push((
                    "type".into(),
                    format!(
                        "Unsupported value: \"{ty}\": supported values: \"Normal\", \"Warning\""
                    ),
                ));
            }
        }
        Kind::CoreEvent => {
            if !obj["involvedObject"].is_object() {
                causes.push(("involvedObject".into(), "Required value".into()));
            }
        }
        Kind::ConfigMap => configmap::validate(obj, v, &mut causes),
        Kind::CronJob => {
            let spec = &mut obj["spec"];
            if spec["schedule"].as_str().is_none_or(str::is_empty) {
                causes.push(("spec.schedule".into(), "Required value".into()));
            }
            for (field, default) in [
                ("concurrencyPolicy", json!("Allow")),
                ("suspend", json!(false)),
                ("successfulJobsHistoryLimit", json!(3)),
                ("failedJobsHistoryLimit", json!(1)),
            ] {
                if spec.is_object() && spec[field].is_null() {
                    spec[field] = default;
                }
            }
            // The pod template is defaulted like any PodSpec (Job defaults wait for the Job).
            let pod = &mut spec["jobTemplate"]["spec"]["template"]["spec"];
            if pod["containers"].is_array() {
                pod_spec_defaults(pod, "", &mut Vec::new());
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(kind, &name, causes))
    }
}

fn admit_job(job: &mut Value, causes: &mut Vec<(String, String)>, v: Version) {
    let uid = meta::uid_of(job).to_string();
    let name = meta::name_of(job).to_string();
    let spec = &mut job["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    job_spec_defaults(spec, v);
    index_rules(spec, &name, v, causes);
    failure_policy_actions(spec, v, causes);
    if spec["podFailurePolicy"].is_object()
        && spec["template"]["spec"]["restartPolicy"].as_str() != Some("Never")
    {
        causes.push((
            "spec.template.spec.restartPolicy".into(),
            format!(
                "Invalid value: \"{}\": only \"Never\" is supported when podFailurePolicy is specified",
                spec["template"]["spec"]["restartPolicy"].as_str().unwrap_or("")
            ),
        ));
    }
    if !spec["selector"].is_null() && spec["manualSelector"].as_bool() != Some(true) {
        causes.push((
            "spec.selector".into(),
            "Invalid value: \"\": `selector` will be auto-generated".into(),
        ));
    }
    let selector_label = if v.batch_labels() {
        "batch.kubernetes.io/controller-uid"
    } else {
        "controller-uid"
    };
    spec["selector"] = json!({"matchLabels": {selector_label: uid}});
    let tmpl = &mut spec["template"];
    if !tmpl["metadata"]["labels"].is_object() {
        tmpl["metadata"]["labels"] = json!({});
    }
    let labels = &mut tmpl["metadata"]["labels"];
    for (k, val) in job_pods::job_labels(v, &uid, &name) {
        labels[k] = json!(val);
    }
    meta::validate_meta(&tmpl.clone(), "spec.template.metadata", causes);
    match tmpl["spec"]["restartPolicy"].as_str() {
        Some("Never" | "OnFailure") => {}
        None => causes.push((
            "spec.template.spec.restartPolicy".into(),
            "Required value: valid values: \"OnFailure\", \"Never\"".into(),
        )),
        Some(other) => causes.push((
            "spec.template.spec.restartPolicy".into(),
            format!("Unsupported value: \"{other}\": supported values: \"OnFailure\", \"Never\""),
        )),
    }
    pod_spec_defaults(&mut tmpl["spec"], "spec.template.spec", causes);
}

/// `SetDefaults_Job`, for the fields the version has.
fn job_spec_defaults(spec: &mut Value, v: Version) {
    if spec["completions"].is_null() && spec["parallelism"].is_null() {
        spec["completions"] = json!(1);
    }
    // With backoffLimitPerIndex the Job-wide limit is left out of the way (MaxInt32).
    let backoff_limit = if spec["backoffLimitPerIndex"].is_null() {
        6
    } else {
        i32::MAX
    };
    let mut defaults = vec![
        ("parallelism", json!(1)),
        ("backoffLimit", json!(backoff_limit)),
    ];
    if v.indexed_and_suspend() {
        defaults.push(("completionMode", json!("NonIndexed")));
        defaults.push(("suspend", json!(false)));
    }
    if v.job_terminating() {
        // With a podFailurePolicy, pods are only replaced once they are terminal.
        let policy = if spec["podFailurePolicy"].is_object() {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        defaults.push(("podReplacementPolicy", json!(policy)));
    }
    for (field, default) in defaults {
        if spec[field].is_null() {
            spec[field] = default;
        }
    }
}

/// `validateJobSpec`'s rules for Indexed Jobs and backoffLimitPerIndex (whose fields are gone
/// already where the version does not take them).
fn index_rules(spec: &Value, name: &str, v: Version, causes: &mut Vec<(String, String)>) {
    let per_index = spec["backoffLimitPerIndex"].as_i64();
    let max_failed = spec["maxFailedIndexes"].as_i64();
    let fields = [
        ("backoffLimitPerIndex", per_index),
        ("maxFailedIndexes", max_failed),
    ];
    for (field, n) in fields {
        if let Some(n) = n.filter(|n| *n < 0) {
            let text = format!("Invalid value: {n}: must be greater than or equal to 0");
            causes.push((format!("spec.{field}"), text));
        }
    }
    if max_failed.is_some() && per_index.is_none() {
        let text = "Required value: when maxFailedIndexes is specified";
        causes.push(("spec.backoffLimitPerIndex".into(), text.into()));
    }
    if spec["completionMode"] != "Indexed" {
        for (field, n) in fields {
            if let Some(n) = n {
                let text = format!("Invalid value: {n}: requires indexed completion mode");
                causes.push((format!("spec.{field}"), text));
            }
        }
        return;
    }
    let Some(completions) = spec["completions"].as_i64() else {
        let text = "Required value: when completion mode is Indexed";
        causes.push(("spec.completions".into(), text.into()));
        return;
    };
    indexed_limits(spec, completions, causes);
    // The hostname of the last index's pod must be a DNS label.
    let hostname = format!("{name}-{}", completions - 1);
    if v.pod_index_label() && completions > 0 && !meta::is_dns1123_label(&hostname) {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: \"{name}\": will not able to create pod with invalid DNS label: {hostname}"),
        ));
    }
}

/// The sizes an Indexed Job may have: parallelism and maxFailedIndexes up to 100,000, and
/// above 100,000 completions with backoffLimitPerIndex, both at most 10,000.
fn indexed_limits(spec: &Value, completions: i64, causes: &mut Vec<(String, String)>) {
    let parallelism = spec["parallelism"].as_i64().unwrap_or(1);
    let max_failed = spec["maxFailedIndexes"].as_i64();
    let mut over = |field: &str, n: i64, max: i64, what: &str| {
        if n > max {
            let text = format!("Invalid value: {n}: must be less than or equal to {what}");
            causes.push((format!("spec.{field}"), text));
        }
    };
    over(
        "parallelism",
        parallelism,
        100_000,
        "100000 when completion mode is Indexed",
    );
    if let Some(m) = max_failed {
        over("maxFailedIndexes", m, completions, "completions");
        over("maxFailedIndexes", m, 100_000, "100000");
    }
    if completions <= 100_000 || spec["backoffLimitPerIndex"].is_null() {
        return;
    }
    let high = "10000 when completions are above 100000 and used with backoff limit per index";
    match max_failed {
        Some(m) => over("maxFailedIndexes", m, 10_000, high),
        None => causes.push((
            "spec.maxFailedIndexes".into(),
            "Required value: must be specified when completions is above 100000".into(),
        )),
    }
    let mut over = |field: &str, n: i64| {
        if n > 10_000 {
            let text = format!("Invalid value: {n}: must be less than or equal to {high}");
            causes.push((format!("spec.{field}"), text));
        }
    };
    over("parallelism", parallelism);
}

/// podFailurePolicy rule actions: `FailIndex` is unknown before 1.28, dropped while its
/// feature gate is off (1.28), and needs backoffLimitPerIndex from 1.29.
fn failure_policy_actions(spec: &mut Value, v: Version, causes: &mut Vec<(String, String)>) {
    let per_index = !spec["backoffLimitPerIndex"].is_null();
    // `get_mut`, not indexing, which would create the policy it looks for.
    let Some(rules) = spec
        .get_mut("podFailurePolicy")
        .and_then(|p| p.get_mut("rules"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    if v.0 == 28 {
        rules.retain(|r| r["action"] != "FailIndex");
    }
    let supported: &[&str] = if v.0 >= 28 {
        &["Count", "FailIndex", "FailJob", "Ignore"]
    } else {
        &["Count", "FailJob", "Ignore"]
    };
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("spec.podFailurePolicy.rules[{i}].action");
        let action = rule["action"].as_str().unwrap_or("");
        let list = supported
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let problem = match action {
            "" => Some(format!(
                "Required value: valid values: [{}]",
                list.replace(", ", " ")
            )),
            "FailIndex" if supported.contains(&action) && !per_index => Some(
                "Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set".into(),
            ),
            a if !supported.contains(&a) => Some(format!(
                "Unsupported value: \"{a}\": supported values: {list}"
            )),
            _ => None,
        };
        if let Some(problem) = problem {
            causes.push((path, problem));
        }
    }
}

fn pod_spec_defaults(spec: &mut Value, path: &str, causes: &mut Vec<(String, String)>) {
    for (field, default) in [
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
    ] {
        if spec[field].is_null() {
            spec[field] = default;
        }
    }
    if spec["containers"].as_array().is_none_or(|c| c.is_empty()) {
        causes.push((format!("{path}.containers"), "Required value".into()));
        return;
    }
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for (i, c) in containers.iter_mut().enumerate() {
            container_defaults(c, &format!("{path}.{list}[{i}]"), causes);
        }
    }
}

/// A container's defaults (init containers' too), and the rules on its name and image.
fn container_defaults(c: &mut Value, path: &str, causes: &mut Vec<(String, String)>) {
    let name = c["name"].as_str().unwrap_or("");
    if !meta::is_dns1123_label(name) {
        causes.push((format!("{path}.name"), format!("Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'")));
    }
    let image = c["image"].as_str().unwrap_or("").to_string();
    if image.is_empty() {
        causes.push((format!("{path}.image"), "Required value".into()));
    }
    let tagged = image
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':') || last.contains('@'));
    let pull = if !tagged || image.ends_with(":latest") {
        "Always"
    } else {
        "IfNotPresent"
    };
    for (field, default) in [
        ("terminationMessagePath", json!("/dev/termination-log")),
        ("terminationMessagePolicy", json!("File")),
        ("imagePullPolicy", json!(pull)),
        ("resources", json!({})),
    ] {
        if c[field].is_null() {
            c[field] = default;
        }
    }
}

/// Rules on update: immutable Job fields, a ConfigMap's validity and `immutable`, as the real
/// API enforces them.
pub fn check_update(kind: Kind, old: &Value, new: &Value, v: Version) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    match kind {
        Kind::Job => {
            for field in ["selector", "template", "completionMode"] {
                if old["spec"][field] != new["spec"][field] {
                    causes.push((
                        format!("spec.{field}"),
                        "Invalid value: field is immutable".to_string(),
                    ));
                }
            }
        }
        Kind::ConfigMap => {
            configmap::validate(new, v, &mut causes);
            configmap::check_update(old, new, &mut causes);
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(kind, meta::name_of(old), causes))
    }
}
