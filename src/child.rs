//! The children of a run: which ones there are (steps fanned out by count or params) and the
//! batch/v1 Job each one is, built the way `kubectl create job NAME --image=IMAGE -- CMD` would.

use std::collections::HashMap;
use std::ops::Range;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::config::{CHILD_PREFIX, ConfigError, EnvMap, FanOut, RestartPolicy, StepSettings};
use crate::plan::{self, Plan};

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const RUN_LABEL: &str = "jobherd.io/run";
pub const STEP_LABEL: &str = "jobherd.io/step";
/// The label Kueue reads to put a Job in a LocalQueue (`JOBHERD_QUEUE`). On the Job only: Kueue
/// reads a Job's own labels, and admits each child as a workload of its own because the
/// children's owner reference to the parent is not a `controller` one.
pub const QUEUE_LABEL: &str = "kueue.x-k8s.io/queue-name";
/// Kubernetes' limit for names that end up in labels (`job-name`) and for label values.
const MAX_NAME: usize = 63;
/// What Kubernetes would default anyway; set explicitly so the dry-run output says it.
const DEFAULT_BACKOFF_LIMIT: i32 = 6;

/// Who the children belong to: decided once per run (see `cluster::identify`).
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Value of `jobherd.io/run`: the parent's uid, or a generated id outside a pod.
    pub run_id: String,
    /// Child names are `<prefix>-<index or step>`.
    pub prefix: String,
    /// Namespace of the children; `None` only for a client dry run that knows none.
    pub namespace: Option<String>,
    /// The parent Job or Pod; `None` outside a pod or when children go to another namespace.
    pub owner: Option<OwnerReference>,
}

/// One child of the run. Its Job is built on demand from its step's template
/// ([`Children::job`]), so a herd of thousands keeps names, not Job objects, in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildSpec {
    /// The Job's name.
    pub name: String,
    /// Value of `jobherd.io/step`: the index without a plan, else the step (and index).
    pub label: String,
    /// Index of its step in [`Children::steps`].
    pub step: usize,
}

/// A step of the run (a plan step, or the whole run without a plan). Its children share one
/// Job template and differ only in name, step label and fan-out env.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    /// The plan step's name; `None` without a plan.
    pub name: Option<String>,
    /// Steps (indices into [`Children::steps`]) that must succeed before this one starts.
    pub depends_on: Vec<usize>,
    /// The plan steps it depends on, for the report.
    pub depends_on_names: Vec<String>,
    /// Its children, as indices into the run's children.
    pub children: Range<usize>,
    template: Job,
    fan_out: FanOut,
}

/// Every child of a run, in creation order (dependencies before dependants), and their steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    specs: Vec<ChildSpec>,
    steps: Vec<StepSpec>,
    by_name: HashMap<String, usize>,
}

impl Children {
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    pub fn get(&self, index: usize) -> &ChildSpec {
        &self.specs[index]
    }

    pub fn name(&self, index: usize) -> &str {
        &self.specs[index].name
    }

    pub fn iter(&self) -> impl Iterator<Item = &ChildSpec> {
        self.specs.iter()
    }

    pub fn steps(&self) -> &[StepSpec] {
        &self.steps
    }

    pub fn step_of(&self, index: usize) -> &StepSpec {
        &self.steps[self.specs[index].step]
    }

    /// What the report shows as a child's step: the plan step, or the index without a plan.
    pub fn step_name(&self, index: usize) -> &str {
        let spec = &self.specs[index];
        self.steps[spec.step].name.as_deref().unwrap_or(&spec.label)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The batch/v1 Job of one child, ready to create.
    pub fn job(&self, index: usize) -> Job {
        let spec = &self.specs[index];
        let step = &self.steps[spec.step];
        let position = index - step.children.start;
        instantiate(
            &step.template,
            &spec.name,
            &spec.label,
            &fan_out_env(&step.fan_out, position),
        )
    }
}

/// Expands the configuration (and plan, if any) into the run's children, in creation order.
/// Every step's Job is built and checked here, so a child without an image (the only thing
/// that can be missing after parsing) is an error before anything is created.
pub fn children(
    defaults: &StepSettings,
    plan: Option<&Plan>,
    id: &Identity,
) -> Result<Children, ConfigError> {
    let mut out = Children::empty();
    let Some(plan) = plan else {
        let template = build_template(defaults, &StepSettings::default(), id).map_err(|e| {
            let first = child_name(&id.prefix, "0");
            ConfigError::Plan(format!("child {first}: {e}"))
        })?;
        let fan_out = defaults.fan_out.clone();
        out.push_step(&id.prefix, None, vec![], vec![], template, fan_out);
        return Ok(out);
    };
    let mut step_ids: HashMap<&str, usize> = HashMap::new();
    for step in &plan.steps {
        let template = build_template(defaults, &step.settings, id)
            .map_err(|e| ConfigError::Plan(format!("step {}: {e}", step.name)))?;
        // Plans come in topological order, so every dependency already has its id.
        let depends_on = step
            .depends_on
            .iter()
            .filter_map(|d| step_ids.get(d.as_str()).copied())
            .collect();
        out.push_step(
            &id.prefix,
            Some(step.name.clone()),
            depends_on,
            step.depends_on.clone(),
            template,
            step.settings.fan_out.clone(),
        );
        step_ids.insert(step.name.as_str(), out.steps.len() - 1);
    }
    Ok(out)
}

/// The shape of one step as a run's record keeps it: enough to name its children again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepShape {
    /// The plan step; `None` without a plan.
    pub name: Option<String>,
    pub children: usize,
    /// Named `<step>-<index>` even when alone (`count`/`params` of one).
    pub fanned_out: bool,
    /// Indices of the steps it depends on.
    pub depends_on: Vec<usize>,
}

impl Children {
    fn empty() -> Self {
        Children {
            specs: Vec::new(),
            steps: Vec::new(),
            by_name: HashMap::new(),
        }
    }

    /// Every step's shape, in order (see `StepShape`).
    pub fn shape(&self) -> Vec<StepShape> {
        self.steps
            .iter()
            .map(|s| StepShape {
                name: s.name.clone(),
                children: s.children.len(),
                fanned_out: !matches!(s.fan_out, FanOut::Single),
                depends_on: s.depends_on.clone(),
            })
            .collect()
    }

    /// The children of a run known only by its shape (a record read back): the same names
    /// and labels as the run had, without Job templates.
    pub fn from_shape(prefix: &str, shape: &[StepShape]) -> Children {
        let mut out = Children::empty();
        for step in shape {
            let fan_out = if step.fanned_out {
                FanOut::Count(step.children as u32)
            } else {
                FanOut::Single
            };
            let names = step
                .depends_on
                .iter()
                .filter_map(|d| shape.get(*d)?.name.clone())
                .collect();
            let (name, deps) = (step.name.clone(), step.depends_on.clone());
            out.push_step(prefix, name, deps, names, Job::default(), fan_out);
        }
        out
    }

    /// Children known only by their names and step labels (Jobs found in the cluster).
    pub fn named(children: Vec<(String, String)>) -> Children {
        let mut out = Children::empty();
        for (name, label) in children {
            out.by_name.insert(name.clone(), out.specs.len());
            out.specs.push(ChildSpec {
                name,
                label,
                step: 0,
            });
        }
        out.steps.push(StepSpec {
            name: None,
            depends_on: vec![],
            depends_on_names: vec![],
            children: 0..out.specs.len(),
            template: Job::default(),
            fan_out: FanOut::Count(out.specs.len() as u32),
        });
        out
    }

    /// Adds a step and its children.
    fn push_step(
        &mut self,
        prefix: &str,
        name: Option<String>,
        depends_on: Vec<usize>,
        depends_on_names: Vec<String>,
        template: Job,
        fan_out: FanOut,
    ) {
        let step = self.steps.len();
        let start = self.specs.len();
        let fanned_out = !matches!(fan_out, FanOut::Single);
        for position in 0..fan_out_len(&fan_out) {
            let (child, label) = child_names(prefix, name.as_deref(), fanned_out, position);
            self.by_name.insert(child.clone(), self.specs.len());
            self.specs.push(ChildSpec {
                name: child,
                label,
                step,
            });
        }
        self.steps.push(StepSpec {
            name,
            depends_on,
            depends_on_names,
            children: start..self.specs.len(),
            template,
            fan_out,
        });
    }
}

/// The one naming rule: (Job name, `jobherd.io/step` label) of the child at `position` of a
/// step. Without a plan: `<prefix>-<index>`, label `<index>`. In a plan: `<prefix>-<step>`, or
/// `<prefix>-<step>-<index>` for a step that fans out, the step lowercased with `_` and `.`
/// made `-` in the name and kept as written in the label.
fn child_names(
    prefix: &str,
    step: Option<&str>,
    fanned_out: bool,
    position: usize,
) -> (String, String) {
    let Some(step) = step else {
        let suffix = position.to_string();
        return (child_name(prefix, &suffix), suffix);
    };
    let base = plan::k8s_name(step);
    let (suffix, label) = if fanned_out {
        (format!("{base}-{position}"), format!("{step}-{position}"))
    } else {
        (base, step.to_string())
    };
    (child_name(prefix, &suffix), shorten(&label, MAX_NAME))
}

fn fan_out_len(fan_out: &FanOut) -> usize {
    match fan_out {
        FanOut::Single => 1,
        FanOut::Count(n) => *n as usize,
        FanOut::Params(list) => list.len(),
    }
}

/// The env the child at `position` of a fan-out adds: nothing for a single child.
fn fan_out_env(fan_out: &FanOut, position: usize) -> EnvMap {
    match fan_out {
        FanOut::Single => EnvMap::new(),
        FanOut::Count(n) => index_env(position, *n as usize),
        FanOut::Params(list) => {
            let mut env = index_env(position, list.len());
            env.extend(list[position].clone());
            env
        }
    }
}

fn index_env(index: usize, count: usize) -> EnvMap {
    EnvMap::from([
        (format!("{CHILD_PREFIX}INDEX"), index.to_string()),
        (format!("{CHILD_PREFIX}COUNT"), count.to_string()),
    ])
}

/// `<prefix>-<suffix>`, shortened with a stable hash when longer than a Job name may be.
pub fn child_name(prefix: &str, suffix: &str) -> String {
    shorten(&format!("{prefix}-{suffix}"), MAX_NAME)
}

/// Cuts `s` to `max` characters keeping it unique and stable: the head of the string, `-`,
/// and 8 hex digits of a hash of the whole. The head never ends in a non-alphanumeric,
/// so the result stays a valid DNS-1123 label or label value.
pub fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let hash = format!("{:08x}", fnv1a(s) as u32);
    let head: String = s.chars().take(max - hash.len() - 1).collect();
    let head = head.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{head}-{hash}")
}

/// FNV-1a: tiny, and unlike std's hasher its output is fixed forever, which stable names need.
pub fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// How a settings layer is laid over a Job.
#[derive(Clone, Copy, PartialEq)]
enum Layer {
    /// Values replace what the Job has (a step's own fields, the variables over a template).
    Override,
    /// Values only fill what the Job leaves unset (the variables under a step's own manifest).
    Fill,
}

/// Builds a step's Job template. Layers, lowest first: `JOBHERD_JOB_TEMPLATE`, the variables,
/// the step's own manifest (which replaces the template and beats the variables), the step's
/// fields. Name, step label and fan-out env are per child: see `instantiate`.
fn build_template(
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
        (MANAGED_BY.to_string(), "jobherd".to_string()),
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
fn instantiate(template: &Job, name: &str, step_label: &str, extra_env: &EnvMap) -> Job {
    let mut job = template.clone();
    job.metadata.name = Some(name.to_string());
    let first = container(&mut job);
    if first.name.is_empty() {
        // As `kubectl create job`: the container is named after the Job.
        first.name = shorten(name, MAX_NAME);
    }
    set_env(first, extra_env, Layer::Override);
    for meta in metadata_with_labels(&mut job) {
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(STEP_LABEL.to_string(), step_label.to_string());
    }
    job
}

/// The Job's metadata and its pod template's: both carry jobherd's labels.
fn metadata_with_labels(job: &mut Job) -> [&mut ObjectMeta; 2] {
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

fn container(job: &mut Job) -> &mut Container {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::collections::BTreeMap;
    use std::time::Duration;

    /// One child's Job as `Children::job` builds it.
    fn build_job(
        name: &str,
        label: &str,
        defaults: &StepSettings,
        own: &StepSettings,
        extra_env: &EnvMap,
        id: &Identity,
    ) -> Result<Job, String> {
        build_template(defaults, own, id).map(|t| instantiate(&t, name, label, extra_env))
    }

    fn id() -> Identity {
        Identity {
            run_id: "uid-1".into(),
            prefix: "nightly".into(),
            namespace: Some("batch".into()),
            owner: Some(OwnerReference {
                api_version: "batch/v1".into(),
                kind: "Job".into(),
                name: "nightly".into(),
                uid: "uid-1".into(),
                ..Default::default()
            }),
        }
    }

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    fn json(job: &Job) -> serde_json::Value {
        serde_json::to_value(job).unwrap()
    }

    #[test]
    fn single_child_matches_kubectl_create_job() {
        // Reference: kubectl create job nightly-0 --image=busybox --dry-run=client -o json -- echo hi
        // (kubectl sets restartPolicy Never; jobherd's default is OnFailure as `kubectl run`).
        let c = config(&[
            ("JOBHERD_IMAGE", "busybox"),
            ("JOBHERD_COMMAND", r#"["echo","hi"]"#),
        ]);
        let kids = children(&c.defaults, None, &id()).unwrap();
        assert_eq!(kids.len(), 1);
        let j = json(&kids.job(0));
        assert_eq!(j["apiVersion"], "batch/v1");
        assert_eq!(j["kind"], "Job");
        assert_eq!(j["metadata"]["name"], "nightly-0");
        assert_eq!(j["metadata"]["namespace"], "batch");
        let c0 = &j["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c0["name"], "nightly-0");
        assert_eq!(c0["image"], "busybox");
        assert_eq!(c0["command"], serde_json::json!(["echo", "hi"]));
        assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "OnFailure");
        assert_eq!(j["spec"]["backoffLimit"], 6);
        for labels in [
            &j["metadata"]["labels"],
            &j["spec"]["template"]["metadata"]["labels"],
        ] {
            assert_eq!(labels["app.kubernetes.io/managed-by"], "jobherd");
            assert_eq!(labels["jobherd.io/run"], "uid-1");
            assert_eq!(labels["jobherd.io/step"], "0");
        }
        let owner = &j["metadata"]["ownerReferences"][0];
        assert_eq!(owner["uid"], "uid-1");
        assert!(owner.get("blockOwnerDeletion").is_none());
    }

    #[test]
    fn count_fans_out_with_index_env() {
        let c = config(&[("JOBHERD_IMAGE", "busybox"), ("JOBHERD_COUNT", "3")]);
        let kids = children(&c.defaults, None, &id()).unwrap();
        let names: Vec<_> = kids.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["nightly-0", "nightly-1", "nightly-2"]);
        let env = json(&kids.job(2))["spec"]["template"]["spec"]["containers"][0]["env"].clone();
        assert_eq!(
            env,
            serde_json::json!([
                {"name": "JOBHERD_CHILD_COUNT", "value": "3"},
                {"name": "JOBHERD_CHILD_INDEX", "value": "2"},
            ])
        );
    }

    #[test]
    fn params_become_env_over_the_common_env() {
        let c = config(&[
            ("JOBHERD_IMAGE", "perl"),
            (
                "JOBHERD_SHELL",
                "perl -Mbignum=bpi -wle 'print bpi($DIGITS)'",
            ),
            ("JOBHERD_ENV", r#"{"DIGITS":"10","MODE":"fast"}"#),
            ("JOBHERD_PARAMS", r#"[{"DIGITS":"100"},{"DIGITS":2000}]"#),
            ("JOBHERD_RESTART_POLICY", "Never"),
            ("JOBHERD_BACKOFF_LIMIT", "2"),
            ("JOBHERD_CHILD_TIMEOUT", "10m"),
            ("JOBHERD_TTL", "1h"),
        ]);
        let kids = children(&c.defaults, None, &id()).unwrap();
        assert_eq!(kids.len(), 2);
        let j = json(&kids.job(1));
        let c0 = &j["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c0["command"],
            serde_json::json!([
                "/bin/sh",
                "-c",
                "perl -Mbignum=bpi -wle 'print bpi($DIGITS)'"
            ])
        );
        let env: BTreeMap<String, String> = c0["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().into(),
                    e["value"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(env["DIGITS"], "2000");
        assert_eq!(env["MODE"], "fast");
        assert_eq!(env["JOBHERD_CHILD_INDEX"], "1");
        assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
        assert_eq!(j["spec"]["backoffLimit"], 2);
        assert_eq!(j["spec"]["activeDeadlineSeconds"], 600);
        assert_eq!(j["spec"]["ttlSecondsAfterFinished"], 3600);
    }

    #[test]
    fn template_is_the_base_and_variables_win() {
        let template = r#"{"apiVersion":"batch/v1","kind":"Job",
          "metadata":{"name":"old","uid":"x","resourceVersion":"9","labels":{"team":"data"}},
          "spec":{"backoffLimit":1,"selector":{"matchLabels":{"controller-uid":"x"}},
            "template":{"metadata":{"labels":{"controller-uid":"x","team":"data"}},
              "spec":{"serviceAccountName":"worker","restartPolicy":"Never",
                "containers":[{"name":"main","image":"old","resources":{"limits":{"cpu":"1"}}}]}}},
          "status":{"succeeded":1}}"#;
        let c = config(&[("JOBHERD_IMAGE", "new"), ("JOBHERD_JOB_TEMPLATE", template)]);
        let j = json(&children(&c.defaults, None, &id()).unwrap().job(0));
        assert_eq!(j["metadata"]["name"], "nightly-0");
        assert!(j["metadata"].get("uid").is_none());
        assert!(j.get("status").is_none());
        assert!(j["spec"].get("selector").is_none());
        assert_eq!(j["metadata"]["labels"]["team"], "data");
        let t = &j["spec"]["template"];
        assert!(t["metadata"]["labels"].get("controller-uid").is_none());
        assert_eq!(t["spec"]["serviceAccountName"], "worker");
        assert_eq!(
            t["spec"]["restartPolicy"], "Never",
            "unset variables keep the template's"
        );
        assert_eq!(j["spec"]["backoffLimit"], 1);
        assert_eq!(t["spec"]["containers"][0]["name"], "main");
        assert_eq!(t["spec"]["containers"][0]["image"], "new");
        assert_eq!(
            t["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "1"
        );
    }

    #[test]
    fn step_manifest_beats_inherited_variables_but_not_step_fields() {
        let manifest: Job = serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "sleep"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
              "containers": [{"name": "sleep", "image": "busybox", "command": ["sleep", "5"]}]}}}
        }))
        .unwrap();
        let defaults = StepSettings {
            image: Some("perl".into()),
            shell: Some("echo default".into()),
            env: EnvMap::from([("A".into(), "1".into())]),
            ..Default::default()
        };
        let mut own = StepSettings {
            job: Some(manifest),
            ..Default::default()
        };
        let j = json(&build_job("p-s", "s", &defaults, &own, &EnvMap::new(), &id()).unwrap());
        let c0 = &j["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c0["image"], "busybox");
        assert_eq!(c0["command"], serde_json::json!(["sleep", "5"]));
        assert_eq!(c0["env"][0]["name"], "A", "env fills in");
        own.image = Some("alpine".into());
        let j = json(&build_job("p-s", "s", &defaults, &own, &EnvMap::new(), &id()).unwrap());
        assert_eq!(
            j["spec"]["template"]["spec"]["containers"][0]["image"],
            "alpine"
        );
    }

    #[test]
    fn missing_image_and_bad_restart_policy_are_errors() {
        let defaults = StepSettings::default();
        let err = build_job("p-0", "0", &defaults, &defaults, &EnvMap::new(), &id()).unwrap_err();
        assert!(err.contains("no image"), "{err}");
        let template: Job = serde_json::from_value(serde_json::json!({
            "spec": {"template": {"spec": {"restartPolicy": "Always",
              "containers": [{"name": "c", "image": "busybox"}]}}}
        }))
        .unwrap();
        let defaults = StepSettings {
            job: Some(template),
            ..Default::default()
        };
        let err = build_job(
            "p-0",
            "0",
            &defaults,
            &StepSettings::default(),
            &EnvMap::new(),
            &id(),
        )
        .unwrap_err();
        assert!(err.contains("Always"), "{err}");
    }

    #[test]
    fn a_queue_labels_the_job_for_kueue_and_the_owner_is_no_controller() {
        let c = config(&[("JOBHERD_IMAGE", "busybox"), ("JOBHERD_QUEUE", "team-a")]);
        let j = json(&children(&c.defaults, None, &id()).unwrap().job(0));
        assert_eq!(j["metadata"]["labels"][QUEUE_LABEL], "team-a");
        assert!(
            j["spec"]["template"]["metadata"]["labels"]
                .get(QUEUE_LABEL)
                .is_none(),
            "Kueue reads the Job's labels; a pod template label would be read by its pod integration"
        );
        // Kueue treats a Job whose controller is a Job it manages as part of that Job's
        // workload: the children's owner reference must not be a controller one.
        assert!(
            j["metadata"]["ownerReferences"][0]
                .get("controller")
                .is_none()
        );
        let plan = crate::plan::parse(
            r#"{"steps": [{"name": "a"}, {"name": "b", "queue": "team-b"}]}"#,
            "test",
            std::path::Path::new(""),
        )
        .unwrap();
        let kids = children(&c.defaults, Some(&plan), &id()).unwrap();
        assert_eq!(
            json(&kids.job(0))["metadata"]["labels"][QUEUE_LABEL],
            "team-a"
        );
        assert_eq!(
            json(&kids.job(1))["metadata"]["labels"][QUEUE_LABEL],
            "team-b"
        );
    }

    #[test]
    fn long_names_are_shortened_stably_to_valid_labels() {
        let prefix = "a-very-long-cronjob-name-that-someone-chose-for-the-nightly-run-28434560";
        let a = child_name(prefix, "7");
        let b = child_name(prefix, "8");
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(a, child_name(prefix, "7"), "stable across calls");
        crate::config::check_dns_label(&a).unwrap();
        assert_eq!(child_name("short", "3"), "short-3");
        // A cut landing on '-' must not leave "--".
        let s = shorten(&format!("{}-{}", "x".repeat(53), "tail-of-name"), 63);
        assert!(!s.contains("--"), "{s}");
        crate::config::check_dns_label(&s).unwrap();
    }

    #[test]
    fn fnv_is_fixed() {
        // Names of running children depend on this value never changing.
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(""), 0xcbf29ce484222325);
        assert_eq!(fnv1a("a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn child_timeout_is_whole_seconds() {
        let s = StepSettings {
            image: Some("x".into()),
            child_timeout: Some(Duration::from_secs(90)),
            ..Default::default()
        };
        let j = json(
            &build_job(
                "p-0",
                "0",
                &s,
                &StepSettings::default(),
                &EnvMap::new(),
                &id(),
            )
            .unwrap(),
        );
        assert_eq!(j["spec"]["activeDeadlineSeconds"], 90);
    }
}
