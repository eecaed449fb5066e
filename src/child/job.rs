//! The batch/v1 Job of a child, as `kubectl create job NAME --image=IMAGE -- CMD` builds it:
//! a step's template from its settings layered over the variables and `JOBHERD_JOB_TEMPLATE`,
//! then each child's name, step label and env on top.

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    DEFAULT_BACKOFF_LIMIT, Identity, MANAGED_BY, MANAGER, MAX_NAME, QUEUE_LABEL, RUN_LABEL,
    STEP_LABEL, shorten,
};
use crate::config::{EnvMap, RestartPolicy, StepSettings};

/// How a settings layer is laid over a Job.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Layer {
    /// Values replace what the Job has (a step's own fields, the variables over a template).
    Override,
    /// Values only fill what the Job leaves unset (the variables under a step's own manifest).
    Fill,
}

/// Builds a step's Job template. Layers, lowest first: `JOBHERD_JOB_TEMPLATE`, the variables,
/// the step's own manifest (which replaces the template and beats the variables), the step's
/// fields. Name, step label and fan-out env are per child: see `instantiate`.
pub(super) fn build_template(
    defaults: &StepSettings,
    own: &StepSettings,
    id: &Identity,
) -> Result<Job, String> {
    let (mut job, inherited) = match &own.job {
        Some(manifest) => (manifest.clone(), Layer::Fill),
        None => (defaults.job.clone().unwrap_or_default(), Layer::Override),
    };
    scrub(&mut job);
    apply(&mut job, defaults, inherited);
    apply(&mut job, own, Layer::Override);

    let spec = job.spec.get_or_insert_with(Default::default);
    spec.backoff_limit.get_or_insert(DEFAULT_BACKOFF_LIMIT);
    let pod = spec.template.spec.get_or_insert_with(Default::default);
    let policy = pod
        .restart_policy
        .get_or_insert_with(|| RestartPolicy::OnFailure.as_str().to_string());
    if policy != "OnFailure" && policy != "Never" {
        return Err(format!(
            "restartPolicy {policy:?} is not allowed for a Job (OnFailure or Never)"
        ));
    }
    if container(&mut job)
        .image
        .as_deref()
        .is_none_or(str::is_empty)
    {
        return Err(
            "no image: set JOBHERD_IMAGE, the step's `image`, or an image in its Job manifest"
                .into(),
        );
    }
    let labels = [
        (MANAGED_BY.to_string(), MANAGER.to_string()),
        (RUN_LABEL.to_string(), id.run_id.clone()),
    ];
    job.metadata.namespace = id.namespace.clone();
    job.metadata.owner_references = id.owner.clone().map(|o| vec![o]);
    for meta in metadata_with_labels(&mut job) {
        meta.labels
            .get_or_insert_with(Default::default)
            .extend(labels.clone());
    }
    Ok(job)
}

/// One child's Job from its step's template.
pub(super) fn instantiate(template: &Job, name: &str, step_label: &str, extra_env: &EnvMap) -> Job {
    let mut job = template.clone();
    job.metadata.name = Some(name.to_string());
    let first = container(&mut job);
    if first.name.is_empty() {
        // As `kubectl create job`: the container is named after the Job.
        first.name = shorten(name, MAX_NAME);
    }
    // Ahead of the step's own variables, which may refer to them as `$(JOBHERD_ITEM)`: the
    // kubelet expands a reference only to a variable defined earlier in the list.
    let list = first.env.get_or_insert_with(Vec::new);
    let mut ahead = Vec::new();
    for (k, v) in extra_env {
        let var = EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            value_from: None,
        };
        match list.iter_mut().find(|e| e.name == *k) {
            Some(existing) => *existing = var,
            None => ahead.push(var),
        }
    }
    list.splice(0..0, ahead);
    if list.is_empty() {
        first.env = None;
    }
    for meta in metadata_with_labels(&mut job) {
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(STEP_LABEL.to_string(), step_label.to_string());
    }
    job
}

/// The Job's metadata and its pod template's: both carry jobherd's labels.
pub(super) fn metadata_with_labels(job: &mut Job) -> [&mut ObjectMeta; 2] {
    let spec = job.spec.get_or_insert_with(Default::default);
    let template = spec.template.metadata.get_or_insert_with(Default::default);
    [&mut job.metadata, template]
}

/// Drops what a server sets, so that `kubectl get job -o json` output works as a template.
fn scrub(job: &mut Job) {
    let keep = ObjectMeta {
        labels: job.metadata.labels.take(),
        annotations: job.metadata.annotations.take(),
        ..Default::default()
    };
    job.metadata = keep;
    job.status = None;
    if let Some(spec) = job.spec.as_mut() {
        spec.selector = None;
        spec.manual_selector = None;
        if let Some(meta) = spec.template.metadata.as_mut() {
            if let Some(labels) = meta.labels.as_mut() {
                labels.retain(|k, _| {
                    !matches!(
                        k.as_str(),
                        "controller-uid"
                            | "job-name"
                            | "batch.kubernetes.io/controller-uid"
                            | "batch.kubernetes.io/job-name"
                    )
                });
            }
            meta.name = None;
            meta.creation_timestamp = None;
        }
    }
}

pub(super) fn container(job: &mut Job) -> &mut Container {
    let spec = job.spec.get_or_insert_with(|| JobSpec {
        template: PodTemplateSpec::default(),
        ..Default::default()
    });
    let pod = spec.template.spec.get_or_insert_with(PodSpec::default);
    if pod.containers.is_empty() {
        pod.containers.push(Container::default());
    }
    &mut pod.containers[0]
}

fn apply(job: &mut Job, s: &StepSettings, layer: Layer) {
    let fill = layer == Layer::Fill;
    let c = container(job);
    if let Some(image) = &s.image
        && !(fill && c.image.is_some())
    {
        c.image = Some(image.clone());
    }
    let has_exec = s.shell.is_some() || s.command.is_some() || s.args.is_some();
    if has_exec && !(fill && (c.command.is_some() || c.args.is_some())) {
        if let Some(shell) = &s.shell {
            c.command = Some(vec!["/bin/sh".into(), "-c".into(), shell.clone()]);
            c.args = None;
        } else {
            if s.command.is_some() {
                c.command = s.command.clone();
            }
            c.args = s.args.clone();
        }
    }
    set_env(c, &s.env, layer);

    let spec = job.spec.get_or_insert_with(Default::default);
    set(&mut spec.backoff_limit, s.backoff_limit, fill);
    set(
        &mut spec.active_deadline_seconds,
        s.child_timeout.map(|d| d.as_secs() as i64),
        fill,
    );
    set(
        &mut spec.ttl_seconds_after_finished,
        s.ttl.map(|d| d.as_secs().min(i32::MAX as u64) as i32),
        fill,
    );
    let pod = spec.template.spec.get_or_insert_with(Default::default);
    set(
        &mut pod.restart_policy,
        s.restart_policy.map(|p| p.as_str().to_string()),
        fill,
    );
    if let Some(queue) = &s.queue {
        let labels = job.metadata.labels.get_or_insert_with(Default::default);
        if !(fill && labels.contains_key(QUEUE_LABEL)) {
            labels.insert(QUEUE_LABEL.to_string(), queue.clone());
        }
    }
}

fn set<T>(slot: &mut Option<T>, value: Option<T>, fill: bool) {
    if let Some(v) = value
        && !(fill && slot.is_some())
    {
        *slot = Some(v);
    }
}

fn set_env(c: &mut Container, env: &EnvMap, layer: Layer) {
    if env.is_empty() {
        return;
    }
    let list = c.env.get_or_insert_with(Vec::new);
    for (k, v) in env {
        put_env(list, k, v, layer == Layer::Override);
    }
}

/// Sets a variable in a container's env list: added when missing, replaced (whatever it was,
/// a value or a reference) only when `replace`.
pub(crate) fn put_env(list: &mut Vec<EnvVar>, name: &str, value: &str, replace: bool) {
    let var = EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    };
    match list.iter_mut().find(|e| e.name == name) {
        Some(existing) if replace => *existing = var,
        Some(_) => {}
        None => list.push(var),
    }
}
