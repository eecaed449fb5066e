//! The Indexed Job that packs children of one step (SPEC §10), built from the step's template:
//! one completion index per child, `backoffLimitPerIndex` for its retries, `restartPolicy:
//! Never` (which that needs), a per-pod deadline for `JOBHERD_CHILD_TIMEOUT`, and a way for
//! each child to see its own variables: its index through the downward API, or its values in a
//! ConfigMap read by jobherd's entrypoint (see `pack.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::{
    Job, PodFailurePolicy, PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    ObjectFieldSelector, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::job::{container, instantiate, metadata_with_labels};
use super::{RUN_LABEL, STEP_LABEL};
use crate::config::{CHILD_PREFIX, EnvMap};
use crate::pack::{
    COMPLETION_INDEX, ENTRYPOINT, MEMBERS, PACK_LABEL, PACK_STEP, STUCK_CONDITION, VALUES_DIR,
    VALUES_FILE,
};

const BIN_VOLUME: &str = "jobherd-pack-bin";
const VALUES_VOLUME: &str = "jobherd-pack-values";

/// How the children of a pack learn who they are.
#[derive(Debug, Clone, PartialEq)]
pub enum Passing {
    /// Their index is their `JOBHERD_CHILD_INDEX` (the first children of a `count` step, in
    /// order), through the downward API; `count` is their `JOBHERD_CHILD_COUNT`.
    Index { count: usize },
    /// Each one's variables, in completion-index order (the values file, `pack.rs`), set by
    /// jobherd's entrypoint, which an init container copies from `image`.
    Values { values: String, image: String },
}

/// A pack, not built yet.
#[derive(Debug, Clone, PartialEq)]
pub struct PackJob {
    pub(super) template: Arc<Job>,
    pub name: String,
    pub label: String,
    /// The plan step (empty without a plan), for a restarted parent.
    pub(super) step: String,
    /// Its children's positions in their step, completion index `i` being the `i`-th.
    pub positions: Vec<usize>,
    pub(super) inputs: EnvMap,
    pub passing: Passing,
    pub parallelism: usize,
    /// `JOBHERD_FAIL_FAST`: the first failed index fails the pack.
    pub fail_fast: bool,
    pub(super) owner: Option<OwnerReference>,
}

impl PackJob {
    /// The Job, and the ConfigMap its children's values are in when they need one.
    pub fn build(&self) -> (Job, Option<ConfigMap>) {
        let mut job = instantiate(&self.template, &self.name, &self.label, &self.inputs);
        self.mark(&mut job);
        self.indexed(&mut job);
        let config_map = match &self.passing {
            Passing::Index { count } => {
                index_env(container(&mut job), *count);
                None
            }
            Passing::Values { values, image } => {
                entrypoint(&mut job, &self.name, image);
                Some(self.config_map(&job, values))
            }
        };
        (job, config_map)
    }

    /// Labels and annotations that say it is a pack, of which step, holding whom.
    fn mark(&self, job: &mut Job) {
        for meta in metadata_with_labels(job) {
            let labels = meta.labels.get_or_insert_with(Default::default);
            labels.insert(PACK_LABEL.into(), "true".into());
        }
        let annotations = job
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        annotations.insert(
            MEMBERS.into(),
            crate::pack::format_ranges(self.positions.iter().copied()),
        );
        annotations.insert(PACK_STEP.into(), self.step.clone());
    }

    /// Indexed, with the step's retries per index and its timeout per pod.
    fn indexed(&self, job: &mut Job) {
        let spec = job.spec.get_or_insert_with(Default::default);
        spec.completion_mode = Some("Indexed".into());
        spec.completions = Some(self.positions.len() as i32);
        spec.parallelism = Some(self.parallelism.max(1) as i32);
        spec.backoff_limit_per_index = Some(spec.backoff_limit.take().unwrap_or(6));
        if self.fail_fast {
            spec.max_failed_indexes = Some(0);
        }
        let deadline = spec.active_deadline_seconds.take();
        let mut rules = vec![stuck_rule()];
        if let Some(user) = spec.pod_failure_policy.take() {
            rules.extend(user.rules);
        }
        spec.pod_failure_policy = Some(PodFailurePolicy { rules });
        let pod = spec.template.spec.get_or_insert_with(Default::default);
        pod.restart_policy = Some("Never".into());
        pod.active_deadline_seconds = pod.active_deadline_seconds.or(deadline);
    }

    fn config_map(&self, job: &Job, values: &str) -> ConfigMap {
        let labels: BTreeMap<String, String> = job
            .metadata
            .labels
            .iter()
            .flatten()
            .filter(|(k, _)| *k == RUN_LABEL || *k == STEP_LABEL || *k == PACK_LABEL)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: job.metadata.namespace.clone(),
                labels: Some(labels),
                owner_references: self.owner.clone().map(|o| vec![o]),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(VALUES_FILE.into(), values.to_string())])),
            ..Default::default()
        }
    }
}

/// A stuck child's pod gets jobherd's condition before it is deleted: its index fails, as the
/// unpacked child would, instead of being retried into the same wait.
fn stuck_rule() -> PodFailurePolicyRule {
    PodFailurePolicyRule {
        action: "FailIndex".into(),
        on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
            type_: STUCK_CONDITION.into(),
            status: "True".into(),
        }]),
        on_exit_codes: None,
    }
}

/// `JOBHERD_CHILD_INDEX` from the pod's completion index, `JOBHERD_CHILD_COUNT` as it is.
fn index_env(c: &mut Container, count: usize) {
    let list = c.env.get_or_insert_with(Vec::new);
    let index = EnvVar {
        name: format!("{CHILD_PREFIX}INDEX"),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                api_version: None,
            }),
            ..Default::default()
        }),
    };
    let count = EnvVar {
        name: format!("{CHILD_PREFIX}COUNT"),
        value: Some(count.to_string()),
        value_from: None,
    };
    list.retain(|e| e.name != index.name && e.name != count.name);
    list.splice(0..0, [index, count]);
}

/// The child's command runs through jobherd's entrypoint, which an init container copies in,
/// and which reads the values from the pack's ConfigMap.
fn entrypoint(job: &mut Job, config_map: &str, image: &str) {
    let main = container(job);
    let mut command = vec![ENTRYPOINT.to_string(), "entrypoint".into(), "--".into()];
    command.extend(main.command.take().unwrap_or_default());
    command.extend(main.args.take().unwrap_or_default());
    main.command = Some(command);
    let mounts = main.volume_mounts.get_or_insert_with(Vec::new);
    mounts.push(mount(BIN_VOLUME, bin_dir(), true));
    mounts.push(mount(VALUES_VOLUME, VALUES_DIR, true));
    let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) else {
        return;
    };
    let init = Container {
        name: "jobherd-entrypoint".into(),
        image: Some(image.to_string()),
        command: Some(vec![
            "/jobherd".into(),
            "entrypoint".into(),
            "install".into(),
            ENTRYPOINT.into(),
        ]),
        volume_mounts: Some(vec![mount(BIN_VOLUME, bin_dir(), false)]),
        ..Default::default()
    };
    pod.init_containers
        .get_or_insert_with(Vec::new)
        .insert(0, init);
    let volumes = pod.volumes.get_or_insert_with(Vec::new);
    volumes.push(Volume {
        name: BIN_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    volumes.push(Volume {
        name: VALUES_VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    });
}

fn bin_dir() -> &'static str {
    ENTRYPOINT.rsplit_once('/').map_or("/", |(dir, _)| dir)
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..Default::default()
    }
}
